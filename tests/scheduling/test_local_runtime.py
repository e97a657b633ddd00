"""`dialbot schedule run` with the default runtime: real probes on a virtual bank.

The night's plan is made from the fleet the runtime opens (hardware/ of a
served generated world) and executed by the flow runner over real ptys and
python-gsmmodem-new, in a child process. What must hold afterwards: every
planned probe ran; the findings are exactly the world's misbehaviours (the
billing flows find each of these knobs on their own); no SIM is subscribed
according to the network's ground truth; no obligation is pending; the
evidence chain verifies. A modem that dies mid-night takes only its own SIM
out of the night, is reported out of service, and leaves nothing subscribed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from flows.flowrig import Rig, generate, serve
from sqlalchemy import select

from dialbot.db.evidence import verify_chain
from dialbot.db.models import Finding, Run, Service, Sim, Sp
from dialbot.db.obligations import sims_with_pending
from dialbot.scheduling.models import NightPlan, PlanItemRow

# Knobs the billing flow of their service (monthly or per_use) finds alone.
KNOBS = ["charge_first", "prompt_price", "overcharge", "double", "cancel_broken", "silent"]
SCHEDULE = """
name = "night"
cron = "0 1 * * *"
window_end = "05:30"
flows = ["monthly", "per_use"]
coverage = "month"
per_sp_concurrency = 1
"""


def schedule_run(
    rig: Rig, timeout: float = 90, schedule: str = SCHEDULE
) -> subprocess.CompletedProcess[str]:
    """`dialbot schedule run night` as a QA engineer would type it (default runtime)."""
    folder = Path(rig.config.source).parent
    (folder / "schedules").mkdir(exist_ok=True)
    (folder / "schedules" / "night.toml").write_text(schedule, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "DIALBOT_RUNTIME"}
    return subprocess.run(
        [sys.executable, "-m", "dialbot", "--config", str(rig.config.source),
         "schedule", "run", "night", "--window", "30"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def findings_by_service(rig: Rig) -> dict[tuple[str, str], set[str]]:
    with rig.db() as session:
        rows = session.execute(select(Finding.sp_code, Finding.service_code, Finding.code))
        out: dict[tuple[str, str], set[str]] = {}
        for sp, service, code in rows:
            out.setdefault((sp, service or ""), set()).add(code)
        return out


def test_night_runs_real_probes_and_finds_every_knob(tmp_path: Path) -> None:
    data, expected = generate(seed=31, knobs=KNOBS, honest=2, modems=4)
    with serve(tmp_path, data) as rig:
        done = schedule_run(rig)
        assert done.returncode == 0, done.stderr[-3000:]
        with rig.db() as session:
            night = session.scalars(select(NightPlan)).one()
            items = session.scalars(select(PlanItemRow)).all()
            probed = session.execute(
                select(Sp.code, Service.code, Run.flow, Run.state)
                .join(Service, Run.service_id == Service.id)
                .join(Sp, Service.sp_id == Sp.id)
            ).all()
        assert night.state == "done"
        assert len(items) == len(expected), "every service of the catalogue is planned"
        assert Counter(i.state for i in items) == {"done": len(expected)}
        assert all(i.run_id is not None for i in items)
        assert sorted((sp, svc) for sp, svc, _, _ in probed) == sorted(expected)
        assert {state for *_, state in probed} == {"done"}
        got = findings_by_service(rig)
        assert set(got) <= set(expected), f"findings nobody expected: {set(got) - set(expected)}"
        for key, codes in expected.items():
            assert got.get(key, set()) == codes, f"{key}: expected {codes}, got {got.get(key)}"
        assert rig.subscribed() == {}
        assert sims_with_pending(rig.db) == []
        assert verify_chain(rig.db).ok


def test_dead_modem_leaves_the_night_and_nothing_subscribed(tmp_path: Path) -> None:
    # slot 1 answers a few dozen AT commands, then never again (mid-probe)
    data, expected = generate(seed=32, knobs=[], honest=8, modems=3,
                              faults={1: {"stop_after_commands": 60}})  # fmt: skip
    with serve(tmp_path, data) as rig:
        done = schedule_run(rig)
        assert done.returncode == 0, done.stderr[-3000:]
        with rig.db() as session:
            items = session.scalars(select(PlanItemRow)).all()
        by_state = Counter(i.state for i in items)
        assert len(items) == len(expected)
        assert by_state["infra_failed"] >= 1, by_state
        assert by_state["done"] >= len(expected) // 2, by_state
        dead = {i.sim_id for i in items if i.state == "infra_failed"}
        assert len(dead) == 1, "only the dead modem's SIM leaves the night"
        after = [i for i in items if i.sim_id in dead and i.state not in ("done", "infra_failed")]
        # what its SIM had left is skipped, unless idle SIMs took it while its probe hung
        moved = [i for i in items if i.reason.endswith("+moved")]
        assert after or moved
        assert all(i.state == "skipped" and "out of service" in (i.error or "")
                   for i in after)  # fmt: skip
        assert all(i.sim_id not in dead and i.state == "done" for i in moved)
        with rig.db() as session:
            dead_msisdn = session.scalars(select(Sim.msisdn).where(Sim.id.in_(dead))).one()
        # an order the dead modem sent stays owed (truthfully), nobody else owes anything
        assert set(sims_with_pending(rig.db)) <= {dead_msisdn}
        assert rig.subscribed() == {}
        assert verify_chain(rig.db).ok


def test_idle_fleet_runs_every_flow_of_every_service(tmp_path: Path) -> None:
    """Daily coverage, three flows, a fleet with room to spare: every applicable flow of
    every service runs that night (issue 14), each flow of a service on another SIM."""
    data, expected = generate(seed=33, knobs=[], honest=6, modems=4)
    every_flow = SCHEDULE.replace('["monthly", "per_use"]', '["decline", "monthly", "per_use"]')
    every_flow = every_flow.replace('"month"', '"day"')
    with serve(tmp_path, data) as rig:
        done = schedule_run(rig, timeout=180, schedule=every_flow)
        assert done.returncode == 0, done.stderr[-3000:]
        with rig.db() as session:
            night = session.scalars(select(NightPlan)).one()
            items = session.scalars(select(PlanItemRow)).all()
            billing = dict(session.execute(select(Service.id, Service.billing)).all())
            runs = session.execute(select(Run.service_id, Run.flow, Run.state)).all()
        pairs = {(sid, flow) for sid, kind in billing.items() for flow in ("decline", kind)}
        assert len(pairs) == 2 * len(expected)
        assert sorted((i.service_id, i.flow) for i in items) == sorted(pairs)
        assert night.state == "done"
        assert Counter(i.state for i in items) == {"done": len(pairs)}
        for sid in billing:
            assert len({i.sim_id for i in items if i.service_id == sid}) == 2, "one SIM per flow"
        probes = [(sid, flow) for sid, flow, state in runs if sid is not None and state == "done"]
        assert sorted(probes) == sorted(pairs)  # (hygiene runs have no service)
        assert any("covers 12/12 due (service, flow) pairs; period coverage 100%" in n
                   for n in night.notes), night.notes  # fmt: skip
        assert findings_by_service(rig) == {}, "honest services, no findings"
        assert rig.subscribed() == {}
        assert sims_with_pending(rig.db) == []
        assert verify_chain(rig.db).ok

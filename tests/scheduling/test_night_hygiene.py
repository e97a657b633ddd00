"""A night checks its SIMs' hygiene as a sweep does: before the first probe and after the last.

An SP of a generated world subscribes every clean SIM silently (its
``unsolicited_subscribe`` is 1.0 and its simulated nights are short), before
dialbot's night begins. `dialbot schedule run` with the default runtime (the
local fleet, real ptys, python-gsmmodem-new) must then: find the silent
subscription on every SIM in the hygiene check at the start of the night
(UNSOLICITED_SUBSCRIPTION against that service, nothing else against anyone),
clean it (the network's ground truth lists nothing at the end), check every
SIM again after its last probe, leave no obligation pending and an evidence
chain that verifies; the findings raise alerts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flows.flowrig import Rig, generate, serve
from scheduling.test_local_runtime import schedule_run
from sqlalchemy import select

from dialbot.db.evidence import verify_chain
from dialbot.db.models import Finding, Run, Sim
from dialbot.db.obligations import sims_with_pending
from dialbot.db.types import utcnow
from dialbot.scheduling.alerts import scan_findings
from dialbot.scheduling.models import AlertEvent, PlanItemRow

SILENT_NIGHT_S = 0.5  # the SP's first simulated night subscribes every SIM within this


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def silent_world() -> tuple[dict[str, Any], tuple[str, str]]:
    """Four honest services on two modems; one monthly service subscribes SIMs silently."""
    data, _ = generate(seed=40, knobs=[], honest=4, modems=2)
    silent = next(sp for sp in data["sps"] if sp["services"][0]["billing"] == "monthly")
    silent["services"][0]["behaviour"]["unsolicited_subscribe"] = 1.0
    data["night_s"] = SILENT_NIGHT_S
    return data, (silent["code"], silent["services"][0]["code"])


def silence_after_first_night(rig: Rig, sp_code: str) -> None:
    """Wait until the SP has subscribed every SIM, then end its nights.

    The simulator's nights repeat every ``night_s``: left running, the SP would
    subscribe a SIM again right after the night's last check cleaned it, and
    the ground truth at the end would say nothing about dialbot.
    """
    msisdns = {sim.msisdn for sim in rig.world.sims}
    wait_for(lambda: set(rig.subscribed()) == msisdns, "the silent subscriptions")
    network: Any = rig.bank.network

    def quiet() -> None:
        network.agents[sp_code].night = lambda _night_s: None

    rig.bank.call(quiet)


def test_night_hygiene_finds_and_cleans_a_silent_subscription(tmp_path: Path) -> None:
    data, (sp_code, service_code) = silent_world()
    with serve(tmp_path, data) as rig:
        silence_after_first_night(rig, sp_code)
        since = utcnow()
        done = schedule_run(rig)
        assert done.returncode == 0, done.stderr[-3000:]

        assert rig.subscribed() == {}, "the night's hygiene cleaned every SIM"
        assert sims_with_pending(rig.db) == []
        assert verify_chain(rig.db).ok
        with rig.db() as session:
            findings = session.scalars(select(Finding)).all()
            runs = {r.id: r for r in session.scalars(select(Run))}
            items = session.scalars(select(PlanItemRow)).all()
            sims = dict(session.execute(select(Sim.msisdn, Sim.id)).all())
        assert {i.state for i in items} == {"done"}
        assert {(f.code, f.sp_code, f.service_code) for f in findings} == {
            ("UNSOLICITED_SUBSCRIPTION", sp_code, service_code)
        }, "the silent SP's subscription and nothing else"
        assert {f.sim for f in findings} == {sim.msisdn for sim in rig.world.sims}
        for sim in rig.world.sims:
            sim_id = sims[sim.msisdn]
            probes = [i.run_id for i in items if i.sim_id == sim_id]
            assert probes, f"SIM {sim.msisdn} probed tonight"
            mine = sorted(run_id for run_id, run in runs.items() if run.sim_id == sim_id)
            found = [f.run_id for f in findings if f.sim == sim.msisdn]
            assert len(found) == 1
            assert runs[found[0]].flow == "hygiene"
            assert found[0] < min(p for p in probes if p is not None), "found before probing"
            first, last = runs[mine[0]], runs[mine[-1]]
            assert first.flow == last.flow == "hygiene" and first.id != last.id
            assert {first.state, last.state} == {"done"}

        assert scan_findings(rig.db, since) == len(findings)
        with rig.db() as session:
            kinds = session.scalars(select(AlertEvent.kind)).all()
        assert kinds == ["unsolicited_subscription"] * len(findings)

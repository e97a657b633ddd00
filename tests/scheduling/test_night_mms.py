"""A night with MMS services: planned with the MMS flows, only on modems that browse, each
behaviour exactly its findings, nothing left subscribed (default runtime, real probes)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from flows.flowrig import Rig, serve
from flows.mmsworld import MMS, mms_world
from sqlalchemy import select

from dialbot.db.evidence import verify_chain
from dialbot.db.models import Finding, Sim
from dialbot.db.obligations import sims_with_pending
from dialbot.scheduling.models import PlanItemRow

SCHEDULE = """
name = "night"
cron = "0 1 * * *"
window_end = "05:30"
flows = ["monthly", "per_use"]
coverage = "month"
per_sp_concurrency = 2
"""


def schedule_run(rig: Rig) -> subprocess.CompletedProcess[str]:
    folder = Path(rig.config.source).parent
    (folder / "schedules").mkdir(exist_ok=True)
    (folder / "schedules" / "night.toml").write_text(SCHEDULE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "DIALBOT_RUNTIME"}
    return subprocess.run(
        [sys.executable, "-m", "dialbot", "--config", str(rig.config.source),
         "schedule", "run", "night", "--window", "30"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip


def test_night_probes_mms_services_with_their_flows_on_browsing_modems(tmp_path: Path) -> None:
    slots = {1: {"dialect": "simcom"}, 2: {"dialect": "quectel"}, 3: {"dialect": "huawei"}}
    data = mms_world(slots)
    (sp,) = data["sps"]
    # one SP per service: a SIM never probes the same SP twice in a row
    data["sps"] = [
        {"code": f"90310{i}", "name": f"彩信{i}号", "hotline": sp["hotline"], "services": [svc]}
        for i, svc in enumerate(sp["services"])
    ]
    with serve(tmp_path, data) as rig:
        done = schedule_run(rig)
        assert done.returncode == 0, done.stderr[-3000:]
        with rig.db() as session:
            items = session.scalars(select(PlanItemRow)).all()
            huawei = session.scalars(select(Sim.id).where(Sim.msisdn == rig.world.sims[2].msisdn))
            huawei_id = huawei.one_or_none()
            rows = session.execute(select(Finding.service_code, Finding.code)).all()
        assert Counter(i.flow for i in items) == {"mms": 5, "mms_per_use": 2}
        assert Counter(i.state for i in items) == {"done": len(MMS)}
        assert all(i.sim_id != huawei_id for i in items)  # the Huawei cannot browse
        found: dict[str, set[str]] = {code: set() for code in MMS}
        for service_code, code in rows:
            found.setdefault(service_code or "", set()).add(code)
        assert found == {code: codes for code, (_, _, codes) in MMS.items()}
        assert rig.subscribed() == {}
        assert sims_with_pending(rig.db) == []
        assert verify_chain(rig.db).ok

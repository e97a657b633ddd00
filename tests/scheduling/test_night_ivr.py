"""A night (`dialbot schedule run`, default runtime) that probes IVR lines with the ivr flow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flows.flowrig import serve
from flows.ivrworld import LINES, ivr_world
from sqlalchemy import select

from dialbot.db.models import Finding, Run
from dialbot.db.obligations import sims_with_pending
from dialbot.scheduling.models import NightPlan

SCHEDULE = """
name = "voice"
cron = "0 1 * * *"
window_end = "05:30"
flows = ["ivr"]
coverage = "month"
per_sp_concurrency = 6

[selection]
billing = ["per_minute"]
"""


def test_night_probes_ivr_lines(tmp_path: Path) -> None:
    with serve(tmp_path, ivr_world("huawei")) as rig:
        folder = Path(rig.config.source).parent
        (folder / "schedules").mkdir(exist_ok=True)
        (folder / "schedules" / "voice.toml").write_text(SCHEDULE, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k != "DIALBOT_RUNTIME"}
        done = subprocess.run(
            [sys.executable, "-m", "dialbot", "--config", str(rig.config.source),
             "schedule", "run", "voice", "--window", "30"],
            cwd=folder, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        with rig.db() as session:
            assert session.scalars(select(NightPlan.state)).one() == "done"
            runs = session.execute(select(Run.flow, Run.state).where(Run.flow != "hygiene")).all()
            found = session.execute(select(Finding.service_code, Finding.code)).all()
        assert sorted(runs) == [("ivr", "done")] * len(LINES)
        got: dict[str, set[str]] = {}
        for service, code in found:
            got.setdefault(service or "", set()).add(code)
        assert got == {code: codes for code, (_, codes) in LINES.items() if codes}
        assert rig.subscribed() == {}
        assert sims_with_pending(rig.db) == []

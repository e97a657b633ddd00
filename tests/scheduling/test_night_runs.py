"""A night ends with no run `running`: the watch of the night's process is closed and judged.

`dialbot schedule run` (the default local runtime, in a process of its own)
while an SP sends a message to a SIM in the middle of the night: the
message is recorded by the night's watch, judged, and when the night ends
no run of any kind is left open.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from flows.flowrig import Rig, generate, serve
from sqlalchemy import select

from dialbot.db.models import EvidenceEvent, Run, Sim, Sp
from dialbot.db.obligations import sims_with_pending

SCHEDULE = """
name = "night"
cron = "0 1 * * *"
window_end = "05:30"
flows = ["monthly", "per_use"]
coverage = "month"
per_sp_concurrency = 1
"""


def night_process(rig: Rig, out: Path) -> subprocess.Popen[bytes]:
    folder = Path(rig.config.source).parent
    (folder / "schedules").mkdir(exist_ok=True)
    (folder / "schedules" / "night.toml").write_text(SCHEDULE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "DIALBOT_RUNTIME"}
    return subprocess.Popen(
        [sys.executable, "-m", "dialbot", "--config", str(rig.config.source),
         "schedule", "run", "night", "--window", "30"],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=(out / "night.err").open("wb"),
    )  # fmt: skip


def first_running(rig: Rig) -> tuple[str, str] | None:
    """(SIM, SP code) of a running probe run, once the night has one."""
    with rig.db() as session:
        row = session.execute(
            select(Sim.msisdn, Sp.code)
            .join(Run, Run.sim_id == Sim.id)
            .join(Sp, Sp.id == Run.sp_id)
            .where(Run.state == "running", Run.service_id.is_not(None))
        ).first()
    return None if row is None else (str(row[0]), str(row[1]))


def test_a_night_ends_with_no_run_running(tmp_path: Path) -> None:
    data, _ = generate(seed=56, knobs=[], honest=3, modems=2)
    with serve(tmp_path / "w", data) as rig:
        proc = night_process(rig, tmp_path)
        try:
            deadline = time.monotonic() + 60
            while (found := first_running(rig)) is None:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
            msisdn, probed = found
            sender = next(sp for sp in rig.world.sps if sp.code != probed)  # not the probe's
            network: Any = rig.bank.network
            text = network.agents[sender.code].words.spam(sender.services[0], 0)
            access = sender.services[0].access
            rig.bank.call(lambda: network.send(msisdn, access, text, 0.0))
            assert proc.wait(timeout=120) == 0, (tmp_path / "night.err").read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err = (tmp_path / "night.err").read_text()
        assert "Traceback" not in err, err[-3000:]
        with rig.db() as session:
            left = session.execute(
                select(Run.id, Run.flow, Run.state).where(
                    Run.state.in_(["planned", "running", "judging"])
                )
            ).all()
            watch = session.execute(
                select(Run.state)
                .join(EvidenceEvent, EvidenceEvent.run_id == Run.id)
                .where(Run.flow == "watch", EvidenceEvent.text == text)
            ).all()
        assert left == []
        assert [state for (state,) in watch] == ["done"]  # the message was judged
        assert sims_with_pending(rig.db) == []
        assert rig.subscribed() == {}

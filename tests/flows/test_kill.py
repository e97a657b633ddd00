"""Kill the robot in the middle of a sweep (SIGKILL), restart it: nothing is lost.

The virtual bank lives in the test process, so the network (and what the
SPs did to the SIMs) survives the robot's death, as a real one would. After
each kill a new sweep must first discharge what the dead one left: its runs
are aborted and judged on what they saw (only the rules that need nothing
else), obligations discharged, no SIM stays subscribed, the
evidence chain verifies, and the findings are exactly those of the world.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from flowrig import Rig, by_service, generate, serve
from sqlalchemy import select

from dialbot.db.evidence import verify_chain
from dialbot.db.models import CleanupObligation, Run
from dialbot.db.obligations import sims_with_pending
from dialbot.db.types import utcnow
from dialbot.flows.recovery import DEAD


def _sweep_process(config: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.Popen(
        [sys.executable, "-m", "dialbot", "--config", str(config), "sweep", "--timeout", "3"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )


def _orders(rig: Rig) -> int:
    with rig.db() as session:
        return len(session.scalars(select(CleanupObligation.id)).all())


def _wait_for_new_orders(rig: Rig, before: int, deadline_s: float) -> None:
    """Wait (with a deadline) until this sweep has placed an order: the kill then hurts."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if _orders(rig) > before:
            return
        time.sleep(0.05)
    raise AssertionError("the sweep never placed an order")


def test_killed_sweeps_leave_nothing_behind(tmp_path: Path, flow_db: str | None) -> None:
    rng = random.Random(4)
    data, expected = generate(seed=31, honest=2, modems=6)
    with serve(tmp_path, data, db_url=flow_db) as rig:
        assert rig.config.source is not None
        for _ in range(2):
            before = _orders(rig)
            proc = _sweep_process(rig.config.source)
            try:
                _wait_for_new_orders(rig, before, 30.0)
                time.sleep(rng.uniform(0.0, 3.0))  # a random point of the sweep
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
            with rig.db() as session:  # the runs the kill interrupted
                killed_runs = len(session.scalars(select(Run).where(Run.state == "running")).all())
                assert killed_runs
        report = rig.sweep()  # the restart
        assert report.complete
        got = by_service(report)
        assert {k: got.get(k, set()) for k in expected} == expected
        assert set(got) <= set(expected)
        assert sims_with_pending(rig.db) == [], (report.benched, report.pending)
        assert rig.subscribed() == {}
        assert verify_chain(rig.db).ok
        with rig.db() as session:
            left = session.scalars(select(Run).where(Run.state.in_(["planned", "running"]))).all()
            assert [
                (r.id, r.flow, r.state, r.sim_id, r.owner_pid, r.created_at) for r in left
            ] == []
            aborted = session.scalars(select(Run).where(Run.state == "aborted")).all()
            assert len(aborted) >= killed_runs  # at least those of each kill
            assert all(r.ended_at is not None and r.ended_at <= utcnow() for r in aborted)
            # each was judged on what it saw, once, by the restart (issue 13 item 2)
            assert all(r.judged_at is not None and (r.error or "").startswith(DEAD)
                       for r in aborted)  # fmt: skip

"""A night rides out a PostgreSQL restart: `dialbot schedule run` on a private server that the
test stops mid-night and starts again (real probes on a virtual bank).

What must hold: the command ends 0 with the night done; the findings are
those of a night without the outage; no service was ordered twice; no SIM is
subscribed (the network's ground truth); nothing is owed; the chain verifies.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from flows.flowrig import generate, serve
from pgserver import PrivatePostgres, private_pg  # noqa: F401  (fixture)
from scheduling.test_local_runtime import SCHEDULE, findings_by_service
from sqlalchemy import func, select

from dialbot.db.evidence import verify_chain
from dialbot.db.models import CleanupObligation
from dialbot.db.obligations import sims_with_pending
from dialbot.scheduling.models import PlanItemRow

KNOBS = ["charge_first", "overcharge", "cancel_broken"]
DEADLINE_S = 120.0


def _wait(predicate, what: str, timeout: float = DEADLINE_S) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_night_survives_a_postgresql_restart(
    tmp_path: Path,
    private_pg: PrivatePostgres,  # noqa: F811
) -> None:
    data, expected = generate(seed=41, knobs=KNOBS, honest=3, modems=3)
    with serve(tmp_path, data, db_url=private_pg.url) as rig:
        folder = Path(rig.config.source).parent
        (folder / "schedules").mkdir(exist_ok=True)
        (folder / "schedules" / "night.toml").write_text(SCHEDULE, encoding="utf-8")
        log = folder / "night.log"
        env = {k: v for k, v in os.environ.items() if k != "DIALBOT_RUNTIME"}
        with log.open("w") as stream:
            child = subprocess.Popen(
                [sys.executable, "-m", "dialbot", "--config", str(rig.config.source),
                 "schedule", "run", "night", "--window", "30"],
                cwd=folder, env=env, stdout=stream, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            try:

                def some_done() -> bool:
                    with rig.db() as session:
                        done = session.scalar(
                            select(func.count())
                            .select_from(PlanItemRow)
                            .where(PlanItemRow.state == "done")
                        )
                    return bool(done) or child.poll() is not None

                _wait(some_done, "the night's first probe")
                assert child.poll() is None, log.read_text()[-3000:]
                private_pg.stop()
                _wait(lambda: "unreachable" in log.read_text(), "the night to meet the outage")
                private_pg.start()
                code = child.wait(timeout=DEADLINE_S * 2)
            finally:
                if child.poll() is None:
                    child.kill()
        output = log.read_text()
        assert code == 0, output[-3000:]
        assert "Traceback" not in output
        assert output.count("unreachable") >= 1 and "is back" in output
        with rig.db() as session:
            items = session.scalars(select(PlanItemRow)).all()
            orders = Counter(
                session.scalars(select(CleanupObligation.service_code).where(
                    CleanupObligation.run_id.is_not(None)))
            )  # fmt: skip
        assert Counter(i.state for i in items) == {"done": len(expected)}
        assert all(n == 1 for n in orders.values()), f"ordered twice: {orders}"
        got = findings_by_service(rig)
        for key, codes in expected.items():
            assert got.get(key, set()) == codes, f"{key}: expected {codes}, got {got.get(key)}"
        assert rig.subscribed() == {}
        assert sims_with_pending(rig.db) == []
        assert verify_chain(rig.db).ok


def test_outage_past_the_limit_ends_the_night_with_one_line(
    tmp_path: Path,
    private_pg: PrivatePostgres,  # noqa: F811
) -> None:
    data, _ = generate(seed=42, knobs=["overcharge"], honest=3, modems=3)
    with serve(tmp_path, data, db_url=private_pg.url) as rig:
        folder = Path(rig.config.source).parent
        config = Path(rig.config.source)
        config.write_text(
            config.read_text(encoding="utf-8").replace(
                "[database]\n", "[database]\noutage_limit_s = 2\n"
            ),
            encoding="utf-8",
        )
        (folder / "schedules").mkdir(exist_ok=True)
        (folder / "schedules" / "night.toml").write_text(SCHEDULE, encoding="utf-8")
        before = verify_chain(rig.db).checked
        env = {k: v for k, v in os.environ.items() if k != "DIALBOT_RUNTIME"}
        child = subprocess.Popen(
            [sys.executable, "-m", "dialbot", "--config", str(config),
             "schedule", "run", "night", "--window", "30"],
            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            _wait(lambda: verify_chain(rig.db).checked > before + 3, "evidence of the night")
            private_pg.stop()
            _, err = child.communicate(timeout=DEADLINE_S)
        finally:
            if child.poll() is None:
                child.kill()
        assert child.returncode == 3, err[-3000:]
        assert "Traceback" not in err, err
        errors = [line for line in err.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and "outage_limit_s" in errors[0], err[-3000:]
        private_pg.start()
        result = verify_chain(rig.db)
        assert result.ok and result.checked > before + 3  # what was recorded is all there

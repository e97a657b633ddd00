"""A PostgreSQL outage is waited out, not fatal (a private server the test stops and starts)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from pgserver import PrivatePostgres, private_pg  # noqa: F401  (fixture)
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import engine_of, open_database, write_session
from dialbot.db.evidence import append_event, verify_chain
from dialbot.db.outage import DatabaseUnavailable, guard_of, heartbeat_cutoff, survives_outage
from dialbot.db.types import utcnow
from dialbot.scheduling.hosts import beat, register_worker, worker_alive

DEADLINE_S = 60.0


def wait_until(predicate, what: str, timeout: float = DEADLINE_S) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def db(private_pg: PrivatePostgres) -> sessionmaker[Session]:  # noqa: F811
    factory = open_database(private_pg.url, outage_limit_s=60)
    yield factory
    engine_of(factory).dispose()


def test_write_during_outage_waits_and_lands_in_order(
    private_pg: PrivatePostgres,  # noqa: F811
    db: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="dialbot.db")
    append_event(db, "note", text="before")
    private_pg.stop()
    done: list[int] = []

    def writer() -> None:
        for n in range(3):
            done.append(append_event(db, "note", text=f"during {n}").id)

    thread = threading.Thread(target=writer)
    thread.start()
    guard = guard_of(db)
    assert guard is not None
    wait_until(lambda: guard.down, "the writer to meet the outage")
    assert not done  # nothing was written while the server was away
    private_pg.start()
    thread.join(DEADLINE_S)
    assert not thread.is_alive()
    assert done == [2, 3, 4]  # in order, after the one before the outage
    assert verify_chain(db).ok
    assert guard.outages == 1 and guard.back_at is not None
    lines = [r.getMessage() for r in caplog.records if r.name == "dialbot.db"]
    assert sum("unreachable" in line for line in lines) == 1
    assert sum("is back" in line for line in lines) == 1


def test_transaction_cut_mid_way_is_run_again(db: sessionmaker[Session]) -> None:
    attempts: list[int] = []

    @survives_outage
    def cut_once(factory: sessionmaker[Session]) -> int:
        with write_session(factory) as session:
            attempts.append(1)
            if len(attempts) == 1:  # the server ends this very connection, as a restart does
                session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
            return int(session.scalar(text("SELECT 41 + 1")) or 0)

    assert cut_once(db) == 42
    assert len(attempts) == 2


def test_outage_longer_than_limit_raises(private_pg: PrivatePostgres) -> None:  # noqa: F811
    factory = open_database(private_pg.url, outage_limit_s=1.0)
    try:
        append_event(factory, "note", text="kept")
        private_pg.stop()
        start = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="outage_limit_s"):
            append_event(factory, "note", text="never")
        assert time.monotonic() - start < 30
        private_pg.start()
        assert verify_chain(factory).ok  # what was recorded is still there
        assert verify_chain(factory).checked == 1
    finally:
        engine_of(factory).dispose()


def test_cli_on_a_database_never_reached_is_one_line_exit_3(
    private_pg: PrivatePostgres,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Not an outage (this process never reached it): said at once, not waited for."""
    config = tmp_path / "dialbot.toml"
    config.write_text(f'[database]\nurl = "{private_pg.url}"\noutage_limit_s = 300\n')
    private_pg.stop()
    env = {**os.environ, "DIALBOT_CONFIG": str(config)}
    env.pop("DIALBOT_DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "dialbot", "evidence", "verify"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 3
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "127.0.0.1" in errors[0]
    assert "Traceback" not in result.stderr
    assert "unreachable" not in result.stderr  # no outage was waited for


def test_heartbeats_missed_during_outage_do_not_kill_a_worker(
    private_pg: PrivatePostgres,  # noqa: F811
    db: sessionmaker[Session],
) -> None:
    stale_after = timedelta(seconds=30)
    worker = register_worker(db, host="h", pid=1, bank="b1", region=None, modems=1)
    beat(db, worker, "b1")
    with write_session(db) as session:  # its last beat was long ago, as after a long outage
        session.execute(
            text("UPDATE fleet_workers SET heartbeat_at = :t WHERE id = :id"),
            {"t": utcnow() - timedelta(minutes=10), "id": worker},
        )
    # Judged once the server has been up longer than stale_after: the silent worker is dead.
    assert not worker_alive(db, worker, stale_after, now=utcnow() + 3 * stale_after)
    private_pg.stop()
    private_pg.start()
    # Just after the restart nobody could have beaten: the worker is not taken for dead.
    assert worker_alive(db, worker, stale_after)
    assert heartbeat_cutoff(db, stale_after, utcnow()) < utcnow() - timedelta(minutes=10)
    # ... and a whole stale_after after the restart, it is (it never beat again).
    assert not worker_alive(db, worker, stale_after, now=utcnow() + 3 * stale_after)

"""The SQLite write gate: writers of one process queue on it, it is always let go, and a
lock held elsewhere still ends in "database is locked" after the busy timeout."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db import writegate
from dialbot.db.engine import open_database, write_connection, write_session
from dialbot.db.evidence import append_event, verify_chain


@pytest.fixture
def db(tmp_path: Path) -> sessionmaker[Session]:
    return open_database(f"sqlite:///{tmp_path / 'gate.db'}")


def gate_of(tmp_path: Path) -> threading.Lock:
    return writegate.gate_for(str((tmp_path / "gate.db").absolute()))


def test_the_gate_is_held_for_the_transaction_and_let_go_at_its_end(
    db: sessionmaker[Session], tmp_path: Path
) -> None:
    gate = gate_of(tmp_path)
    with write_connection(db) as conn:
        conn.execute(text("SELECT 1"))
        assert gate.locked()
    assert not gate.locked()
    with write_session(db) as session:
        session.execute(text("SELECT 1"))
        assert gate.locked()
    assert not gate.locked()


def test_a_failed_transaction_lets_the_gate_go(db: sessionmaker[Session], tmp_path: Path) -> None:
    gate = gate_of(tmp_path)
    with pytest.raises(ZeroDivisionError), write_connection(db) as conn:
        conn.execute(text("SELECT 1"))
        raise ZeroDivisionError
    assert not gate.locked()
    with pytest.raises(Exception, match="no such table"), write_session(db) as session:
        session.execute(text("INSERT INTO nowhere VALUES (1)"))
    assert not gate.locked()
    append_event(db, "note", text="after the failures")  # the next writer gets in
    assert verify_chain(db).ok


def test_writers_of_one_process_all_get_through_in_turn(db: sessionmaker[Session]) -> None:
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for k in range(20):
                append_event(db, "note", text=f"writer {n} event {k}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    result = verify_chain(db)
    assert result.ok and result.checked == 160


def test_a_lock_held_elsewhere_still_times_out_and_the_gate_is_let_go(tmp_path: Path) -> None:
    """Another process (here: a connection outside dialbot) holds SQLite's lock: the gate's
    own tries give up at the busy timeout with SQLite's error, as the busy handler did."""
    path = tmp_path / "held.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE t (x)")
    other.execute("BEGIN IMMEDIATE")
    mine = sqlite3.connect(path, isolation_level=None)
    gate = threading.Lock()
    info: dict[object, object] = {}
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        writegate.begin_immediate(mine, gate, info, timeout_ms=200)
    assert not gate.locked() and not info
    assert mine.execute("PRAGMA busy_timeout").fetchone()[0] == 200  # restored
    other.execute("COMMIT")
    writegate.begin_immediate(mine, gate, info, timeout_ms=200)
    assert gate.locked() and mine.in_transaction
    mine.execute("COMMIT")
    writegate.release(info)
    assert not gate.locked()

"""Taking SQLite's write lock without its busy handler's sleeps.

SQLite has one write lock per database. A writer that finds it taken waits
in SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25 … 100 ms
between tries, whatever the holder is doing: a fleet's writers each hold the
lock for about a millisecond, so a waiter sleeps far past the moment it came
free while threads that arrive later take it first. On a compressed night
(bench/night_bench.py: ~450 write transactions a second from three
processes, the lock held ~60 % of the time) a write waited 24 ms on average
and up to 3 s for a lock held 1.3 ms.

So a ``BEGIN IMMEDIATE`` goes through two gates instead:

- one lock per database in each process: the process's threads queue on it
  and the one that releases it wakes the next at once;
- the thread at the head of its process's queue takes SQLite's lock with its
  own tries, a tenth of a millisecond apart at first and never more than a
  millisecond apart, against the other processes (the busy handler is off for
  that one statement).

Both gates keep SQLite's busy timeout as their limit, so a writer that cannot
get the lock still fails with "database is locked" after it, as before.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

_GATES: dict[str, threading.Lock] = {}
_GATES_LOCK = threading.Lock()
GATED = "dialbot_write_gate"  # in a connection's info while it holds its process's gate
FIRST_TRY_S = 0.0001
MAX_TRY_S = 0.001


def gate_for(database: str) -> threading.Lock:
    """The process's gate for one database file."""
    with _GATES_LOCK:
        return _GATES.setdefault(database, threading.Lock())


def begin_immediate(dbapi: sqlite3.Connection, gate: threading.Lock, info: dict[Any, Any],
                    timeout_ms: int) -> None:  # fmt: skip
    """``BEGIN IMMEDIATE`` on ``dbapi`` through the gate; the gate stays held (noted in
    ``info``) until :func:`release` at the transaction's end."""
    deadline = time.monotonic() + timeout_ms / 1000
    if not gate.acquire(timeout=timeout_ms / 1000):
        raise sqlite3.OperationalError("database is locked (waited for this process's writers)")
    info[GATED] = gate
    try:
        _take(dbapi, deadline, timeout_ms)
    except BaseException:
        release(info)
        raise


def _take(dbapi: sqlite3.Connection, deadline: float, timeout_ms: int) -> None:
    """SQLite's lock, tried at short intervals until the deadline (the busy handler off
    meanwhile: it would sleep on its own schedule instead)."""
    pause = FIRST_TRY_S
    dbapi.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                dbapi.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(MAX_TRY_S, pause * 2)
    finally:
        dbapi.execute(f"PRAGMA busy_timeout = {timeout_ms}")


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def release(info: dict[Any, Any]) -> None:
    """Let the process's next writer in (a no-op for a connection that holds no gate)."""
    gate = info.pop(GATED, None)
    if gate is not None:
        gate.release()

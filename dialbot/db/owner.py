"""Who owns a run: a process, named by host, pid and the process's start time.

Several dialbot processes may share one database (a `dialbot probe` beside
a night, the workers of a distributed fleet, a restart after a crash). A
run that is still open belongs to the process that opened it, and only a
run whose owner is gone may be taken over (aborted, and judged on what it
saw, by ``dialbot.flows.recovery``). Whether an owner is gone:

- on this host: its pid is not alive, or it is alive but started at another
  time (the pid was reused by an unrelated process after a crash);
- on another host: its runs' heartbeat (stamped every ``HEARTBEAT_S`` while
  the owner lives, see :class:`RunBeat`) is older than the stale limit —
  the same test the distributed controller applies to workers;
- a run with no owner (written before owners existed): its heartbeat is
  missing or stale.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import write_session
from dialbot.db.models import Run, RunState
from dialbot.db.outage import survives_outage
from dialbot.db.types import utcnow

log = logging.getLogger(__name__)

# Seconds between two heartbeats of a process's open runs; a run of another
# host is stale (its owner dead) after STALE_AFTER without one.
HEARTBEAT_S = 10.0
STALE_AFTER = timedelta(seconds=60)
# Start times read twice from /proc agree to the clock tick; stored ones to the microsecond.
_SAME_START = timedelta(seconds=1)


@dataclass(frozen=True)
class Owner:
    """One process: the host it runs on, its pid, and when it started (None: unknown)."""

    host: str
    pid: int
    started_at: datetime | None


def process_start(pid: int) -> datetime | None:
    """When process ``pid`` of this host started (Linux /proc); None when unknown or gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    # field 22 (starttime, clock ticks since boot) comes after the parenthesised name
    fields = stat[stat.rfind(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return datetime.fromtimestamp(boot + int(fields[19]) / ticks, UTC)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (zombies count as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: the signal test is all there is
    return state[state.rfind(")") + 2 :][:1] not in ("Z", "X")


@cache
def this_process() -> Owner:
    """The owner stamped on the runs this process opens."""
    pid = os.getpid()
    return Owner(socket.gethostname(), pid, process_start(pid))


def owner_alive(
    host: str | None,
    pid: int | None,
    started_at: datetime | None,
    heartbeat_at: datetime | None,
    *,
    stale_after: timedelta = STALE_AFTER,
    now: datetime | None = None,
) -> bool:
    """Whether the process that owns a run still lives (see the module docstring)."""
    me = this_process()
    if host == me.host and pid is not None:
        if pid == me.pid and (started_at is None or me.started_at is None
                              or abs(started_at - me.started_at) <= _SAME_START):  # fmt: skip
            return True
        if not pid_alive(pid):
            return False
        actual = process_start(pid)
        if started_at is None or actual is None:
            return True  # cannot tell a reused pid: fail safe, leave its runs alone
        return abs(actual - started_at) <= _SAME_START
    if heartbeat_at is None:
        return False
    return heartbeat_at >= (now or utcnow()) - stale_after


@survives_outage
def beat_owned(db: sessionmaker[Session], owner: Owner | None = None) -> int:
    """Stamp the heartbeat of every open run this process owns; returns how many."""
    me = owner or this_process()
    with write_session(db) as session:
        result = session.execute(
            update(Run)
            .where(
                Run.owner_host == me.host,
                Run.owner_pid == me.pid,
                Run.state.in_([RunState.RUNNING.value, RunState.JUDGING.value]),
            )
            .values(heartbeat_at=utcnow())
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


class RunBeat:
    """A daemon thread beating this process's open runs while a sweep, probe or night lasts
    (runs wait for minutes in a window, and a watch run stays open for hours)."""

    def __init__(self, db: sessionmaker[Session], every_s: float = HEARTBEAT_S) -> None:
        self.db = db
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RunBeat:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="run heartbeat", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                beat_owned(self.db)
            except Exception:  # the database may blink; the next beat tries again
                log.exception("run heartbeat failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.every_s * 2)

"""Riding out a database outage: wait, reconnect, retry — and give up only after a limit.

A central PostgreSQL restarts for upgrades, failovers and crashes; a night of
probes (or a worker holding 64 modems) must not die of ten seconds of that.
Three pieces, installed by :func:`dialbot.db.engine.make_engine` on PostgreSQL:

- Every new connection goes through :meth:`OutageGuard.connect`, which keeps
  trying with backoff while the server refuses or is starting up — once the
  process has reached the database: a database never reached at all is a
  wrong URL or a server that is not there, and the command says so at once. With the
  pool's pre-ping, a checkout during an outage therefore *waits* instead of
  failing — reads and writes anywhere in dialbot block until the database is
  back, in the order they were made (a probe's evidence reaches the hash
  chain in order; an obligation is written before its order goes out, so no
  order leaves while the database is away).
- A transaction cut by the outage (the server terminated its connection
  mid-way) was rolled back; :func:`survives_outage` runs the storage function
  again once the database answers. The storage helpers are whole transactions
  taking the session factory first, so running one again is safe.
- The guard remembers when the last outage ended (:meth:`OutageGuard.back_at`),
  so heartbeats that could not be written meanwhile do not make live workers
  look dead afterwards (:func:`heartbeat_cutoff`).

One log line when an outage starts, one when it ends. An outage longer than
``outage_limit_s`` raises :class:`DatabaseUnavailable`, which commands turn
into a one-line error and exit status 3 (nothing recorded is lost: what was
committed stays committed; what was not is still on the modem or never sent).
SQLite has no server to lose; none of this is installed there.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Engine, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.types import utcnow
from dialbot.errors import DialbotError

log = logging.getLogger("dialbot.db")

DEFAULT_OUTAGE_LIMIT_S = 300.0
FIRST_BACKOFF_S = 0.2
MAX_BACKOFF_S = 5.0
# SQLSTATEs that mean "the server went away or is not accepting connections yet".
_GONE_STATES = ("08", "57P01", "57P02", "57P03")

P = ParamSpec("P")
T = TypeVar("T")


class DatabaseUnavailable(DialbotError):
    """The database stayed unreachable for longer than the configured limit."""


def is_outage(exc: BaseException) -> bool:
    """Whether an error means the server is (or was) unreachable, not that a statement is wrong."""
    if isinstance(exc, DatabaseUnavailable):
        return False
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig or exc
    state = getattr(exc, "sqlstate", None)
    if state is not None:
        return any(str(state).startswith(prefix) for prefix in _GONE_STATES)
    module = type(exc).__module__
    # psycopg raises a bare OperationalError (no SQLSTATE) when it cannot connect at all.
    return module.startswith("psycopg") and type(exc).__name__ == "OperationalError"


class OutageGuard:
    """One per engine: tracks the current outage, logs it once, enforces the limit."""

    def __init__(self, name: str, limit_s: float = DEFAULT_OUTAGE_LIMIT_S) -> None:
        self.name = name
        self.limit_s = limit_s
        self._lock = threading.Lock()
        self._since: float | None = None  # monotonic start of the outage under way
        self._since_wall: datetime | None = None
        self._back_at: datetime | None = None
        self._connected_once = False  # a database never reached is a wrong URL, not an outage
        self.outages = 0

    @property
    def back_at(self) -> datetime | None:
        """When the last outage this process saw ended (None: none seen)."""
        with self._lock:
            return self._back_at

    @property
    def down(self) -> bool:
        with self._lock:
            return self._since is not None

    def failed(self, exc: BaseException) -> float:
        """Note a failed attempt; returns the seconds the outage has lasted so far."""
        with self._lock:
            if self._since is None:
                self._since, self._since_wall = time.monotonic(), utcnow()
                self.outages += 1
                reason = (
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                )
                log.warning(
                    "database %s unreachable (%s); waiting up to %.0f s for it",
                    self.name, reason, self.limit_s,
                )  # fmt: skip
            elapsed = time.monotonic() - self._since
        if elapsed > self.limit_s:
            raise DatabaseUnavailable(
                f"database {self.name} unreachable for more than {self.limit_s:.0f} s "
                f"([database] outage_limit_s); stopping — nothing recorded is lost, "
                f"run the command again when the database is back"
            ) from exc
        return elapsed

    def succeeded(self) -> None:
        """A connection worked: close the outage under way, if any."""
        with self._lock:
            self._connected_once = True
            if self._since is None:
                return
            lasted = time.monotonic() - self._since
            self._since, self._since_wall = None, None
            self._back_at = utcnow()
        log.warning("database %s is back after %.1f s", self.name, lasted)

    def pause(self, attempt: int) -> None:
        """Backoff before the next attempt: short at first (a restart takes seconds)."""
        time.sleep(min(MAX_BACKOFF_S, FIRST_BACKOFF_S * (2 ** min(attempt, 8))))

    def connect(self, connect: Callable[[], Any]) -> Any:
        """Open a DBAPI connection, waiting out an outage (raises past the limit)."""
        attempt = 0
        while True:
            try:
                connection = connect()
            except Exception as exc:  # the driver's own error types
                if not is_outage(exc) or not self._connected_once:
                    raise
                self.failed(exc)
                self.pause(attempt)
                attempt += 1
                continue
            self.succeeded()
            return connection


def install(engine: Engine, limit_s: float) -> OutageGuard:
    """Route the engine's new connections through a guard, and remember it on the engine."""
    guard = OutageGuard(engine.url.render_as_string(hide_password=True), limit_s)

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        return guard.connect(lambda: dialect.connect(*cargs, **cparams))

    _GUARDS[engine] = guard
    return guard


# The guard of each engine, forgotten with the engine.
_GUARDS: weakref.WeakKeyDictionary[Engine, OutageGuard] = weakref.WeakKeyDictionary()


def guard_of(db: sessionmaker[Session] | Engine) -> OutageGuard | None:
    """The guard of a session factory's engine (None on SQLite)."""
    engine = db if isinstance(db, Engine) else db.kw.get("bind")
    return _GUARDS.get(engine) if isinstance(engine, Engine) else None


def survives_outage(fn: Callable[P, T]) -> Callable[P, T]:
    """Run a storage function (a whole transaction; session factory first, or a method of
    an object holding it as ``db``) again when an outage cut it: the cut transaction was rolled back, so running it again is safe."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        guard = _guard_of_call(args)
        attempt = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if guard is None or not is_outage(exc):
                    raise
                guard.failed(exc)
                guard.pause(attempt)
                attempt += 1

    return wrapper


def _guard_of_call(args: tuple[object, ...]) -> OutageGuard | None:
    """The guard of a storage call: its first argument, or that object's ``db`` (methods)."""
    if not args:
        return None
    first = args[0]
    factory = first if isinstance(first, sessionmaker) else getattr(first, "db", None)
    return guard_of(factory) if isinstance(factory, sessionmaker) else None


def heartbeat_cutoff(db: sessionmaker[Session], stale_after: timedelta, now: datetime) -> datetime:
    """Heartbeats older than this are stale — but never because the database was away.

    A worker cannot stamp its heartbeat while the database is down; after the
    outage it gets a whole ``stale_after`` to do so before it counts as dead.
    The end of the outage is the later of the one this process saw and the
    server's own start (a restart this process slept through).
    """
    cutoff = now - stale_after
    back = latest_restart(db)
    if back is not None and back > cutoff:
        return datetime.min.replace(tzinfo=UTC)  # nobody is stale yet
    return cutoff


def latest_restart(db: sessionmaker[Session]) -> datetime | None:
    """The end of the latest outage known: seen by this process, or the server's start."""
    guard = guard_of(db)
    if guard is None:
        return None
    seen = guard.back_at
    started = _server_started(db)
    candidates = [t for t in (seen, started) if t is not None]
    return max(candidates) if candidates else None


@survives_outage
def _server_started(db: sessionmaker[Session]) -> datetime | None:
    with db() as session:
        value = session.scalar(text("SELECT pg_postmaster_start_time()"))
    return value if isinstance(value, datetime) else None

"""Engine and session factory: one place that knows each database's quirks.

SQLite is the embedded default and PostgreSQL the production database; the
same models, migrations and code run on both. Per-dialect hooks:

- SQLite: WAL (readers never block the writer), foreign keys on, a busy
  timeout, and SQLAlchemy (not the sqlite3 driver) emits BEGIN, so that a
  writer can take the write lock up front with ``BEGIN IMMEDIATE``
  (see :func:`write_session`) instead of failing half-way with
  "database is locked" when two writers race.
- PostgreSQL: psycopg 3; a ``postgresql://`` URL is rewritten to
  ``postgresql+psycopg://`` so operators can paste the usual libpq URL.

:func:`open_database` applies the migrations shipped in the package before
it hands out sessions, so every command starts on the current schema.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db import outage, writegate
from dialbot.db.outage import DEFAULT_OUTAGE_LIMIT_S
from dialbot.errors import ConfigError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option that asks for the write lock at BEGIN (SQLite only).
WRITE_LOCK_OPTION = "dialbot_write_lock"
# Execution options (PostgreSQL; see `_pipelined`): a statement to send just before
# this one, and whether to commit right after it (for the last one of a transaction).
BEFORE_OPTION = "dialbot_before"
COMMIT_OPTION = "dialbot_commit"
# Key of the PostgreSQL advisory lock that serialises concurrent migrations.
_MIGRATION_LOCK_KEY = 0x6469616C  # "dial"


def normalize_url(url: str | URL) -> URL:
    """Parse a database URL and pick psycopg 3 for PostgreSQL.

    Raises ConfigError for something that is not a database URL, because the
    URL comes from dialbot.toml or DIALBOT_DATABASE_URL.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError; keep the reason
        raise ConfigError("database url", str(url), f"not a database URL ({exc})") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(
    url: str | URL, *, outage_limit_s: float = DEFAULT_OUTAGE_LIMIT_S, **kwargs: Any
) -> Engine:
    """Create an engine with dialbot's per-dialect settings installed.

    On PostgreSQL a lost server is waited for, up to ``outage_limit_s``
    (``dialbot.db.outage``); a checkout blocked meanwhile may wait as long.
    """
    parsed = normalize_url(url)
    # A fleet has a thread per modem (256 on a big host) and far fewer pooled connections:
    # a thread waits its turn for one rather than fail after the default 30 s.
    if parsed.database not in (None, "", ":memory:"):  # a pooled database, not a singleton
        kwargs.setdefault("pool_timeout", max(30.0, outage_limit_s))
    if parsed.get_backend_name() == "sqlite":
        _ensure_sqlite_dir(parsed)
        engine = create_engine(parsed, **kwargs)
        _install_sqlite_hooks(engine, parsed.database or "")
        return engine
    if parsed.get_backend_name() == "postgresql":
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("application_name", "dialbot")
        kwargs.setdefault("pool_pre_ping", True)
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
        outage.install(engine, outage_limit_s)
        event.listen(engine, "do_execute", _pipelined)
        return engine
    return create_engine(parsed, **kwargs)


def _pipelined(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    """Send a statement marked with `BEFORE_OPTION` or `COMMIT_OPTION` in one round
    trip with the statement before it (and the ``BEGIN``) or the ``COMMIT`` after it.

    psycopg's pipeline mode: the server runs them back to back, without waiting
    for the client in between. That matters for a transaction holding a lock
    others queue on (the evidence chain head): it is taken, used and released
    with the client in the way only once. If one fails the rest is skipped, the
    error is raised here and the transaction rolls back as usual; after a commit
    SQLAlchemy's own finds nothing left to do.
    """
    before = context.execution_options.get(BEFORE_OPTION)
    commit = context.execution_options.get(COMMIT_OPTION)
    if not before and not commit:
        return False  # SQLAlchemy runs it as usual
    connection = cursor.connection
    with connection.pipeline():
        if before:
            connection.execute(before)
        cursor.execute(statement, parameters)
        if commit:
            connection.commit()
    return True


def _ensure_sqlite_dir(url: URL) -> None:
    """Create the folder of a file database, so a fresh checkout just works."""
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _ensure_wal(cursor: Any) -> None:
    """Switch the file to WAL once (the mode is persistent).

    The switch needs an exclusive lock and SQLite may refuse it at once
    ("database is locked") rather than wait for the busy timeout when several
    processes open a new database together; so it is retried briefly.
    """
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _install_sqlite_hooks(engine: Engine, database: str) -> None:
    """WAL, foreign keys, busy timeout, and BEGIN emitted by SQLAlchemy (a writer's
    through the process's write gate, :mod:`dialbot.db.writegate`)."""
    # an in-memory database is one connection's own: nothing to queue for
    memory = not database or database == ":memory:" or database.startswith("file:")
    gate = None if memory else writegate.gate_for(str(Path(database).expanduser().absolute()))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop the sqlite3 driver from issuing its own (deferred) BEGINs.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            _ensure_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(WRITE_LOCK_OPTION):
            if gate is None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                return
            dbapi = conn.connection.driver_connection
            writegate.begin_immediate(dbapi, gate, conn.info, SQLITE_BUSY_TIMEOUT_MS)
        else:
            conn.exec_driver_sql("BEGIN")

    # the transaction's end lets the process's next writer in; so does a connection
    # returned, reset or dropped without one (an error half-way)
    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _on_end(conn: Any) -> None:
        writegate.release(conn.info)

    def _on_return(_dbapi: Any, record: Any, *_: Any) -> None:
        if record is not None:
            writegate.release(record.info)

    event.listen(engine, "checkin", lambda dbapi, record: _on_return(dbapi, record))
    event.listen(engine, "reset", lambda dbapi, record, state: _on_return(dbapi, record))
    event.listen(engine, "invalidate", lambda dbapi, record, exc: _on_return(dbapi, record))


def engine_of(session_factory: sessionmaker[Session]) -> Engine:
    """The engine a session factory from :func:`open_database` is bound to."""
    bind = session_factory.kw.get("bind")
    if not isinstance(bind, Engine):
        raise TypeError("session factory is not bound to an engine")
    return bind


@contextmanager
def write_session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for a read-modify-write transaction, committed on success.

    On SQLite the transaction starts with ``BEGIN IMMEDIATE``: it waits (busy
    timeout) for the single write lock before reading, so what it reads cannot
    go stale before it writes. On PostgreSQL it is an ordinary transaction;
    code that needs serialisation there takes a row or advisory lock.
    """
    with session_factory.begin() as session:
        session.connection(execution_options={WRITE_LOCK_OPTION: True})
        yield session


@contextmanager
def write_connection(session_factory: sessionmaker[Session]) -> Iterator[Connection]:
    """`write_session` without the ORM, committed on success: for the appends every probe
    makes many of (evidence, received PDUs), where a session's bookkeeping costs more
    CPU than the statements and a bank's modems share one interpreter."""
    with engine_of(session_factory).connect() as conn:
        conn.execution_options(**{WRITE_LOCK_OPTION: True})
        with conn.begin():
            yield conn


def alembic_config(connection: Any | None = None) -> AlembicConfig:
    """Alembic configured in code: no alembic.ini is needed at runtime."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` in one transaction.

    Two processes starting at once must not both create the tables: SQLite
    takes the write lock at BEGIN, PostgreSQL an advisory transaction lock.
    """
    with engine.connect() as connection:
        connection = connection.execution_options(**{WRITE_LOCK_OPTION: True})
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            command.upgrade(alembic_config(connection), revision)


def open_database(
    url: str | URL,
    *,
    migrate_schema: bool = True,
    outage_limit_s: float = DEFAULT_OUTAGE_LIMIT_S,
) -> sessionmaker[Session]:
    """Engine + migrations + session factory: what every command starts with.

    Sessions do not expire objects on commit, so rows returned by the storage
    helpers stay readable after their session has closed.
    """
    engine = make_engine(url, outage_limit_s=outage_limit_s)
    if migrate_schema:
        migrate(engine)
    return sessionmaker(bind=engine, expire_on_commit=False)

"""Migrations: applied automatically, idempotent, and matching the models, on both backends."""

from __future__ import annotations

import threading

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import (
    alembic_config,
    engine_of,
    make_engine,
    normalize_url,
    open_database,
)
from dialbot.db.models import load_all_models

TABLES = {
    "sps",
    "services",
    "service_versions",
    "sims",
    "runs",
    "evidence_events",
    "evidence_head",
    "findings",
    "cleanup_obligations",
    "alembic_version",
}


def test_open_database_creates_every_table(session_factory: sessionmaker[Session]) -> None:
    names = set(inspect(engine_of(session_factory)).get_table_names())
    assert TABLES <= names
    with session_factory() as session:
        version = session.scalar(text("SELECT version_num FROM alembic_version"))
    assert version == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_models_match_migrations(session_factory: sessionmaker[Session]) -> None:
    """Autogenerate finds nothing to add: the migration and the models agree."""
    with engine_of(session_factory).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), load_all_models().metadata)
    assert diff == []


def test_open_database_twice_is_harmless(db_url: str) -> None:
    first = open_database(db_url)
    second = open_database(db_url)
    try:
        with second() as session:
            assert session.scalar(text("SELECT count(*) FROM evidence_head")) == 1
    finally:
        engine_of(first).dispose()
        engine_of(second).dispose()


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    factory = open_database(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")
    try:
        with factory() as session:
            assert session.scalar(text("PRAGMA journal_mode")) == "wal"
            assert session.scalar(text("PRAGMA foreign_keys")) == 1
            assert session.scalar(text("PRAGMA busy_timeout")) > 0
    finally:
        engine_of(factory).dispose()


def test_postgresql_url_uses_psycopg3() -> None:
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert make_engine("postgresql://u@h/db").dialect.driver == "psycopg"


def test_concurrent_start_ups_migrate_once(db_url: str) -> None:
    """Several processes starting at once on an empty database must not collide."""
    factories: list[sessionmaker[Session]] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(4)

    def start() -> None:
        try:
            gate.wait(timeout=30)
            factories.append(open_database(db_url))
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert errors == [] and len(factories) == 4
        with factories[0]() as session:
            assert session.scalar(text("SELECT count(*) FROM evidence_head")) == 1
            assert session.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    finally:
        for factory in factories:
            engine_of(factory).dispose()

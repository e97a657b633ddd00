"""Database fixtures: every storage test runs on SQLite and on real PostgreSQL.

``db_url`` is parametrized over ``sqlite`` (a file in tmp_path) and
``postgresql`` (one fresh database per test session on 127.0.0.1:5432,
dropped at the end; its schema is emptied before each test). Set
DIALBOT_TEST_PG=0 to skip PostgreSQL, DIALBOT_TEST_PG_URL to use another
server (the URL of a database to connect to for CREATE DATABASE).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import engine_of, open_database

PG_ADMIN_URL = os.environ.get(
    "DIALBOT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _libpq(url: str) -> str:
    """A SQLAlchemy-style URL as psycopg wants it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of its own for this test session."""
    if os.environ.get("DIALBOT_TEST_PG", "1") == "0":
        pytest.skip("PostgreSQL tests disabled (DIALBOT_TEST_PG=0)")
    name = f"dialbot_test_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({exc}); "
            "start it or set DIALBOT_TEST_PG=0"
        )
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def reset_pg_schema(url: str) -> None:
    """Empty the session database so each test starts from no schema at all."""
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A URL of an empty database, on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'dialbot.db'}"
    url: str = request.getfixturevalue("pg_database")
    reset_pg_schema(url)
    return url


@pytest.fixture
def session_factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    """A migrated database, disposed of after the test."""
    factory = open_database(db_url)
    yield factory
    engine_of(factory).dispose()

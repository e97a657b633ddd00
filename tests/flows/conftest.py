"""Fixtures of the end-to-end flow tests: the database a rig runs on.

``flow_db`` is parametrized over ``sqlite`` (None: the SQLite file that the
rig's dialbot.toml names beside the world) and ``postgresql`` (the URL of a
database created for this one test and dropped after it, so killed
processes and leftovers of other tests never meet). Which tests take it is
decided in flowrig.py's header.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import LiteralString

import psycopg
import pytest
from dbfixtures import PG_ADMIN_URL, _libpq
from psycopg import sql
from sqlalchemy.engine import make_url


@pytest.fixture(autouse=True)
def _no_database_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rig's dialbot.toml decides the database, not the caller's environment."""
    monkeypatch.delenv("DIALBOT_DATABASE_URL", raising=False)


def _admin(statement: LiteralString, database: str) -> None:
    """CREATE/DROP DATABASE (outside a transaction), the name quoted as an identifier."""
    with psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(database)))


@pytest.fixture
def fresh_pg_database() -> Iterator[str]:
    """A PostgreSQL database of this test's own (unique name), dropped afterwards."""
    if os.environ.get("DIALBOT_TEST_PG", "1") == "0":
        pytest.skip("PostgreSQL tests disabled (DIALBOT_TEST_PG=0)")
    name = f"dialbot_flow_{secrets.token_hex(6)}"
    try:
        _admin("CREATE DATABASE {}", name)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({exc}); "
            "start it or set DIALBOT_TEST_PG=0"
        )
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


@pytest.fixture(params=["sqlite", "postgresql"])
def flow_db(request: pytest.FixtureRequest) -> str | None:
    """The database of a rig: None for the default SQLite file, else a fresh PostgreSQL URL."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("fresh_pg_database")
    return url

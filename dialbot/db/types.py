"""Column types that behave the same on SQLite and PostgreSQL.

SQLite has no time zone type: a naive datetime would silently lose the
offset. :class:`AwareDateTime` refuses naive values, stores UTC, and always
hands back aware UTC datetimes, so hashes over timestamps and period queries
give the same answer on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Integer ids that are 64-bit on PostgreSQL but stay SQLite's rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Now, aware, in UTC: what is stored; display converts to the carrier zone."""
    return datetime.now(UTC)


class AwareDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware in Python and UTC in storage."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} (dialbot stores aware times)")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

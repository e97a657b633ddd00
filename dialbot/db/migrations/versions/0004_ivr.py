"""Voice (IVR) services: `per_minute` billing and the check on the catalogue `channel`.

The `channel` column itself and the `call` evidence kind came with 0004_wap
(spec/channels.md §1, §8); this revision widens the billing check and makes
`channel` one of sms | wap | mms | ivr.

Frozen: describes the schema as of this revision and does not import the
models.

SQLite cannot change a CHECK constraint in place, and rebuilding a table
(alembic's batch mode) would run into the foreign keys of every row that
references it (runs, versions). Widening an IN list only loosens a
constraint, and a CHECK that every stored row already meets (checked here
first) changes nothing stored, for which SQLite documents editing the stored
schema text (https://sqlite.org/lang_altertable.html § "making other kinds of
table schema changes"): that is done here, within the migration's
transaction, and checked.

Revision ID: 0004_ivr
Revises: 0004_wap
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004_ivr"
down_revision: str | None = "0004_wap"
branch_labels: str | None = None
depends_on: str | None = None

CHANNELS = ("sms", "wap", "mms", "ivr")
BILLING_OLD = ("monthly", "per_use")
BILLING_NEW = ("monthly", "per_use", "per_minute")
# The services column as 0004_wap added it (ALTER TABLE ... ADD COLUMN on SQLite).
CHANNEL_COLUMN = "channel VARCHAR(8) DEFAULT 'sms' NOT NULL"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


CHANNEL_CHECKED = (
    f"{CHANNEL_COLUMN} CONSTRAINT ck_services_channel CHECK ({_in('channel', CHANNELS)})"
)
# (text in the stored schema of `services` before, the same text after)
EDITS = (
    ("'monthly', 'per_use'", "'monthly', 'per_use', 'per_minute'"),
    (CHANNEL_COLUMN, CHANNEL_CHECKED),
)


def _sqlite() -> bool:
    return bool(op.get_bind().dialect.name == "sqlite")


def _sqlite_edit_schema(table: str, old: str, new: str) -> None:
    """Replace text in a table's stored CREATE statement (SQLite only), exactly once."""
    conn = op.get_bind()
    version = int(conn.exec_driver_sql("PRAGMA schema_version").scalar() or 0)
    sql = conn.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table}
    ).scalar()
    if not isinstance(sql, str) or sql.count(old) != 1:
        raise RuntimeError(f"0004_ivr: cannot find {old!r} once in the schema of {table}")
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        conn.execute(
            sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = :t"),
            {"sql": sql.replace(old, new), "t": table},
        )
        conn.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    finally:
        conn.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    bad = op.get_bind().execute(
        sa.text(f"SELECT count(*) FROM services WHERE NOT ({_in('channel', CHANNELS)})")
    )
    if bad.scalar():
        raise RuntimeError("0004_ivr: services with a channel other than sms|wap|mms|ivr")
    if _sqlite():
        for old, new in EDITS:
            _sqlite_edit_schema("services", old, new)
        return
    op.drop_constraint("ck_services_billing", "services", type_="check")
    op.create_check_constraint("ck_services_billing", "services", _in("billing", BILLING_NEW))
    op.create_check_constraint("ck_services_channel", "services", _in("channel", CHANNELS))


def downgrade() -> None:
    if _sqlite():
        for old, new in reversed(EDITS):
            _sqlite_edit_schema("services", new, old)
        return
    op.drop_constraint("ck_services_channel", "services", type_="check")
    op.drop_constraint("ck_services_billing", "services", type_="check")
    op.create_check_constraint("ck_services_billing", "services", _in("billing", BILLING_OLD))

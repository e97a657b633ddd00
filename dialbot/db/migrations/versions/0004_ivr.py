"""Voice (IVR) services: the catalogue `channel` column, `per_minute` billing, `call` evidence.

Frozen: describes the schema as of this revision and does not import the
models.

SQLite cannot change a CHECK constraint in place, and rebuilding a table
(alembic's batch mode) would run into the foreign keys of every row that
references it (runs, versions) and drop the evidence log's append-only
triggers. Widening an IN list only loosens a constraint, for which SQLite
documents editing the stored schema text (https://sqlite.org/lang_altertable.html
§ "making other kinds of table schema changes"): that is done here, within
the migration's transaction, and checked.

Revision ID: 0004_ivr
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004_ivr"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

CHANNELS = ("sms", "wap", "mms", "ivr")
BILLING_OLD = ("monthly", "per_use")
BILLING_NEW = ("monthly", "per_use", "per_minute")
KINDS_OLD = ("sms_out", "sms_in", "balance", "subscriptions", "ussd", "modem_fault", "note")
KINDS_NEW = (*KINDS_OLD, "call")
# (table, constraint, column, text in the old list, the same text in the new list)
WIDENED = (
    ("services", "ck_services_billing", "billing", "'monthly', 'per_use'", "'monthly', 'per_use', 'per_minute'"),
    ("evidence_events", "ck_evidence_kind", "kind", "'modem_fault', 'note'", "'modem_fault', 'note', 'call'"),
)  # fmt: skip


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


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


def _channel() -> sa.Column:
    return sa.Column("channel", sa.String(8), nullable=False, server_default="sms")


def upgrade() -> None:
    if _sqlite():
        for table, _name, _column, old, new in WIDENED:
            _sqlite_edit_schema(table, old, new)
        op.execute(
            "ALTER TABLE services ADD COLUMN channel VARCHAR(8) DEFAULT 'sms' NOT NULL "
            f"CONSTRAINT ck_services_channel CHECK ({_in('channel', CHANNELS)})"
        )
        op.add_column("service_versions", _channel())
        return
    op.drop_constraint("ck_services_billing", "services", type_="check")
    op.create_check_constraint("ck_services_billing", "services", _in("billing", BILLING_NEW))
    op.drop_constraint("ck_evidence_kind", "evidence_events", type_="check")
    op.create_check_constraint("ck_evidence_kind", "evidence_events", _in("kind", KINDS_NEW))
    op.add_column("services", _channel())
    op.create_check_constraint("ck_services_channel", "services", _in("channel", CHANNELS))
    op.add_column("service_versions", _channel())


def downgrade() -> None:
    if _sqlite():
        for table, _name, _column, old, new in WIDENED:
            _sqlite_edit_schema(table, new, old)
        with op.batch_alter_table("service_versions") as batch:
            batch.drop_column("channel")
        op.execute("ALTER TABLE services DROP COLUMN channel")
        return
    op.drop_column("service_versions", "channel")
    op.drop_constraint("ck_services_channel", "services", type_="check")
    op.drop_column("services", "channel")
    op.drop_constraint("ck_evidence_kind", "evidence_events", type_="check")
    op.create_check_constraint("ck_evidence_kind", "evidence_events", _in("kind", KINDS_OLD))
    op.drop_constraint("ck_services_billing", "services", type_="check")
    op.create_check_constraint("ck_services_billing", "services", _in("billing", BILLING_OLD))

"""Voice (IVR) services: the catalogue `channel` column, `per_minute` billing, `call` evidence.

Frozen: describes the schema as of this revision and does not import the
models. SQLite rebuilds a table to change a CHECK constraint (batch mode),
which drops the evidence log's append-only triggers: they are re-created.

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


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _sqlite() -> bool:
    return bool(op.get_bind().dialect.name == "sqlite")


def _sqlite_triggers(create: bool) -> None:
    for action in ("UPDATE", "DELETE"):
        name = f"evidence_events_no_{action.lower()}"
        if create:
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {action} ON evidence_events BEGIN "
                "SELECT RAISE(ABORT, 'evidence_events is append-only'); END"
            )
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def _channel() -> sa.Column:
    return sa.Column("channel", sa.String(8), nullable=False, server_default="sms")


def _checks(billing: tuple[str, ...], kinds: tuple[str, ...], channel: bool) -> None:
    with op.batch_alter_table("services") as batch:
        batch.drop_constraint("ck_services_billing", type_="check")
        batch.create_check_constraint("ck_services_billing", _in("billing", billing))
        if channel:
            batch.add_column(_channel())
            batch.create_check_constraint("ck_services_channel", _in("channel", CHANNELS))
        else:
            batch.drop_constraint("ck_services_channel", type_="check")
            batch.drop_column("channel")
    with op.batch_alter_table("service_versions") as batch:
        if channel:
            batch.add_column(_channel())
        else:
            batch.drop_column("channel")
    if _sqlite():
        _sqlite_triggers(create=False)
    with op.batch_alter_table("evidence_events") as batch:
        batch.drop_constraint("ck_evidence_kind", type_="check")
        batch.create_check_constraint("ck_evidence_kind", _in("kind", kinds))
    if _sqlite():
        _sqlite_triggers(create=True)


def upgrade() -> None:
    _checks(BILLING_NEW, KINDS_NEW, channel=True)


def downgrade() -> None:
    _checks(BILLING_OLD, KINDS_OLD, channel=False)

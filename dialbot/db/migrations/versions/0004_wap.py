"""Catalogue channels (spec/channels.md §1): `channel` and the WAP entry `url`.

Also the evidence kinds of spec/channels.md §8 (`http`, `wap_push`, `mms`,
`call`). SQLite cannot alter a CHECK constraint: the table is rebuilt (batch
mode) and its append-only triggers are dropped first and made again after.

Frozen: describes the schema as of this revision and does not import the
models. Existing services are SMS services.

Revision ID: 0004_wap
Revises: 0004_planner
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004_wap"
down_revision: str | None = "0005_month"
branch_labels: str | None = None
depends_on: str | None = None

TABLES = ("services", "service_versions")
OLD_KINDS = ("sms_out", "sms_in", "balance", "subscriptions", "ussd", "modem_fault", "note")
NEW_KINDS = (*OLD_KINDS, "http", "wap_push", "mms", "call")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _evidence_kinds(kinds: tuple[str, ...]) -> None:
    """Replace the kind CHECK of the evidence log, keeping it append-only."""
    if op.get_bind().dialect.name == "sqlite":
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS evidence_events_no_{action}")
        with op.batch_alter_table("evidence_events", recreate="always") as batch:
            batch.drop_constraint("ck_evidence_kind", type_="check")
            batch.create_check_constraint("ck_evidence_kind", _in("kind", kinds))
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER evidence_events_no_{action.lower()} BEFORE {action} "
                "ON evidence_events BEGIN "
                "SELECT RAISE(ABORT, 'evidence_events is append-only'); END"
            )
        return
    op.drop_constraint("ck_evidence_kind", "evidence_events", type_="check")
    op.create_check_constraint("ck_evidence_kind", "evidence_events", _in("kind", kinds))


def upgrade() -> None:
    for table in TABLES:
        op.add_column(
            table, sa.Column("channel", sa.String(8), nullable=False, server_default="sms")
        )
        op.add_column(table, sa.Column("url", sa.String(512), nullable=True))
    _evidence_kinds(NEW_KINDS)


def downgrade() -> None:
    _evidence_kinds(OLD_KINDS)
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("url")
            batch.drop_column("channel")

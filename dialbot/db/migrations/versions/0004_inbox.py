"""Received PDUs: every PDU a modem held, committed before it was deleted.

Frozen: describes the schema as of revision 0004_inbox and does not import
the models.

Revision ID: 0004_inbox
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004_inbox"
down_revision: str | None = "0004_runs"
branch_labels: str | None = None
depends_on: str | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "received_pdus",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(120), nullable=False),
        sa.Column("sim", sa.String(21), nullable=True),
        sa.Column("port", sa.String(255), nullable=False),
        sa.Column("memory", sa.String(8), nullable=False),
        sa.Column("slot_index", sa.Integer(), nullable=False),
        sa.Column("pdu", sa.Text(), nullable=False),
        sa.Column("pdu_sha256", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("sender", sa.String(32), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("scts", sa.String(40), nullable=True),
        sa.Column("problem", sa.String(200), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", BigId, nullable=True),
    )
    op.create_index(
        "ix_received_pdus_source_slot", "received_pdus", ["source", "memory", "slot_index"]
    )
    op.create_index("ix_received_pdus_source_event", "received_pdus", ["source", "event_id"])


def downgrade() -> None:
    op.drop_index("ix_received_pdus_source_event", "received_pdus")
    op.drop_index("ix_received_pdus_source_slot", "received_pdus")
    op.drop_table("received_pdus")

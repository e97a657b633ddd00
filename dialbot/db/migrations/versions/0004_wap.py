"""Catalogue channels (spec/channels.md §1): `channel` and the WAP entry `url`.

Frozen: describes the schema as of this revision and does not import the
models. Existing services are SMS services.

Revision ID: 0004_wap
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004_wap"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

TABLES = ("services", "service_versions")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(
            table, sa.Column("channel", sa.String(8), nullable=False, server_default="sms")
        )
        op.add_column(table, sa.Column("url", sa.String(512), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("url")
            batch.drop_column("channel")

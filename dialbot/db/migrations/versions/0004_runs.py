"""Run owners: which process (host, pid, start) a run belongs to, and when it was judged.

A process that starts probing a SIM must leave the runs of live processes
alone and take over only those whose owner is gone (see
``dialbot.db.owner``); ``judged_at`` says when a run cut short (its process
died) was judged on what it saw, which is how it is judged exactly once
(``dialbot.flows.recovery``) and how reports count its findings.

Frozen: describes the schema as of revision 0004_runs and does not import the
models.

Revision ID: 0004_runs
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004_runs"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("owner_host", sa.String(255), nullable=True))
        batch.add_column(sa.Column("owner_pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("owner_started_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("judged_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_runs_owner", ["owner_host", "owner_pid"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_owner")
        batch.drop_column("judged_at")
        batch.drop_column("owner_started_at")
        batch.drop_column("owner_pid")
        batch.drop_column("owner_host")

"""Hygiene tasks: a distributed night's hygiene check of a bank, sent to its worker.

Frozen: describes the schema as of this revision and does not import the
models.

Revision ID: 0005_distfollow
Revises: 0004_ivr
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005_distfollow"
down_revision: str | None = "0004_ivr"
branch_labels: str | None = None
depends_on: str | None = None

HYGIENE_STATES = ("queued", "running", "done", "failed", "lost", "expired")


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "hygiene_tasks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("bank", sa.String(64), nullable=False),
        sa.Column("sim_ids", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("worker_id", sa.Integer(), sa.ForeignKey("fleet_workers.id"), nullable=True),
        _ts("created_at"),
        _ts("claimed_at", nullable=True),
        _ts("ended_at", nullable=True),
        sa.Column("findings", sa.Integer(), nullable=True),
        sa.Column("checked", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(_in("state", HYGIENE_STATES), name="ck_hygiene_tasks_state"),
    )


def downgrade() -> None:
    op.drop_table("hygiene_tasks")

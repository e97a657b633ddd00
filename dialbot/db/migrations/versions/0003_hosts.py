"""Probe hosts: the banks and workers registry, and dispatched probes.

Frozen: describes the schema as of revision 0003 and does not import the
models.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

DISPATCH_STATES = ("queued", "running", "done", "lost", "expired")


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "fleet_workers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("bank", sa.String(64), nullable=False),
        _ts("started_at"),
        _ts("heartbeat_at"),
        _ts("stopped_at", nullable=True),
    )
    op.create_table(
        "fleet_banks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("region", sa.String(64), nullable=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("worker_id", sa.Integer(), sa.ForeignKey("fleet_workers.id"), nullable=True),
        sa.Column("modems", sa.Integer(), nullable=False),
        sa.Column("modem_states", sa.JSON(), nullable=False),
        sa.Column("sims", sa.JSON(), nullable=False),
        _ts("registered_at"),
        _ts("heartbeat_at"),
    )
    op.create_table(
        "dispatches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("plan_id", sa.Integer(), nullable=True),
        sa.Column("service_id", sa.Integer(), sa.ForeignKey("services.id"), nullable=False),
        sa.Column("sp_code", sa.String(32), nullable=False),
        sa.Column("flow", sa.String(64), nullable=False),
        sa.Column("sim_id", sa.Integer(), sa.ForeignKey("sims.id"), nullable=False),
        sa.Column("bank", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("retry_of_id", sa.Integer(), sa.ForeignKey("dispatches.id"), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("worker_id", sa.Integer(), sa.ForeignKey("fleet_workers.id"), nullable=True),
        _ts("created_at"),
        _ts("claimed_at", nullable=True),
        _ts("heartbeat_at", nullable=True),
        _ts("ended_at", nullable=True),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("ordered", sa.Boolean(), nullable=False),
        sa.Column("sim_unusable", sa.Boolean(), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(_in("state", DISPATCH_STATES), name="ck_dispatches_state"),
    )
    op.create_index("ix_dispatches_state_heartbeat", "dispatches", ["state", "heartbeat_at"])


def downgrade() -> None:
    op.drop_index("ix_dispatches_state_heartbeat", table_name="dispatches")
    op.drop_table("dispatches")
    op.drop_table("fleet_banks")
    op.drop_table("fleet_workers")

"""Scheduler tables: night plans, their items, alert events.

Frozen: describes the schema as of revision 0002 and does not import the
models. (APScheduler's own ``apscheduler_jobs`` table is created by its
SQLAlchemyJobStore, outside alembic.)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

NIGHT_STATES = ("running", "done", "aborted")
ITEM_STATES = (
    "pending", "running", "done", "failed", "infra_failed", "interrupted", "skipped"
)  # fmt: skip


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "night_plans",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("schedule", sa.String(64), nullable=False),
        sa.Column("night", sa.String(20), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _ts("window_start"),
        _ts("window_end"),
        sa.Column("lanes", sa.Integer(), nullable=False),
        sa.Column("capacity_s", sa.Float(), nullable=False),
        sa.Column("due", sa.Integer(), nullable=False),
        sa.Column("due_quota", sa.Integer(), nullable=False),
        sa.Column("notes", sa.JSON(), nullable=False),
        _ts("created_at"),
        _ts("finished_at", nullable=True),
        sa.UniqueConstraint("schedule", "night", name="uq_night_plans_schedule_night"),
        sa.CheckConstraint(_in("state", NIGHT_STATES), name="ck_night_plans_state"),
    )
    op.create_table(
        "plan_items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("plan_id", sa.Integer(), sa.ForeignKey("night_plans.id"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), sa.ForeignKey("services.id"), nullable=False),
        sa.Column("sp_code", sa.String(32), nullable=False),
        sa.Column("flow", sa.String(64), nullable=False),
        sa.Column("sim_id", sa.Integer(), sa.ForeignKey("sims.id"), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("est_start_s", sa.Float(), nullable=False),
        sa.Column("est_duration_s", sa.Float(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=True),
        _ts("started_at", nullable=True),
        _ts("ended_at", nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.UniqueConstraint("plan_id", "service_id", name="uq_plan_items_plan_service"),
        sa.CheckConstraint(_in("state", ITEM_STATES), name="ck_plan_items_state"),
    )
    op.create_index("ix_plan_items_plan_state", "plan_items", ["plan_id", "state"])
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("dedup_key", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        _ts("created_at"),
        sa.Column("delivered", sa.JSON(), nullable=False),
        _ts("delivered_at", nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("alert_events")
    op.drop_index("ix_plan_items_plan_state", table_name="plan_items")
    op.drop_table("plan_items")
    op.drop_table("night_plans")

"""Plan items per (service, flow), and how often an item was re-run after a crash.

Coverage is counted per (service, flow): one night may run several flows of
one service (on different SIMs), so the plan's uniqueness is per
``(plan_id, service_id, flow)``. ``reruns`` counts how many times an item
was put back to ``pending`` because its probe was cut before its order went
out (issue 17), so a night can say at its end what a crash cost; ``owner``
(host:pid of the process that last claimed it) tells a dead claimer from a
live one, so a night opened twice never re-runs a probe still in flight.

Frozen: describes the schema as of this revision and does not import the
models.

Revision ID: 0004_planner
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004_planner"
down_revision: str | None = "0004_inbox"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("plan_items") as batch:
        batch.drop_constraint("uq_plan_items_plan_service", type_="unique")
        batch.create_unique_constraint(
            "uq_plan_items_plan_service_flow", ["plan_id", "service_id", "flow"]
        )
        batch.add_column(
            sa.Column("reruns", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("owner", sa.String(300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("plan_items") as batch:
        batch.drop_column("owner")
        batch.drop_column("reruns")
        batch.drop_constraint("uq_plan_items_plan_service_flow", type_="unique")
        batch.create_unique_constraint("uq_plan_items_plan_service", ["plan_id", "service_id"])

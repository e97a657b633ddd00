"""The month after an order: a cleanup obligation may be followed, and deliberately kept.

``follow_until``: the order is followed on later nights (balance, list, bill,
messages) until then; ``followed_at``: when a follow-up last judged it (the
next one judges only what came after). ``keep_until``: the subscription is
kept on purpose until then (a `keep` probe, to live through a renewal); the
obligation stays pending, and only a follow-up or a hygiene check leaves it
listed before that time — every other cleanup discharges it at once.

Frozen: describes the schema as of this revision and does not import the
models.

Revision ID: 0005_month
Revises: 0004_planner
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005_month"
down_revision: str | None = "0004_planner"
branch_labels: str | None = None
depends_on: str | None = None

COLUMNS = ("follow_until", "followed_at", "keep_until")


def upgrade() -> None:
    with op.batch_alter_table("cleanup_obligations") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cleanup_obligations") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)

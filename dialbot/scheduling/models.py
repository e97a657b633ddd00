"""Scheduler tables: each night's plan and its items, and raised alerts.

On the same declarative ``Base`` as :mod:`dialbot.db.models`; the schema is
owned by migration ``0002_scheduling``. A night's plan is written before the
first probe starts, and every item moves ``pending → running → done |
failed | infra_failed`` with a conditional update, so after a crash the
daemon knows exactly which probes may have ordered that night: an item
still ``running`` at restart whose order had not gone out goes back to
``pending`` (``reruns`` + 1) and runs again that night; one whose order
may have gone out becomes ``interrupted``, is never ordered again that
night and is re-planned on a later night (see
:mod:`dialbot.scheduling.recovery`). ``UNIQUE(plan_id, service_id, flow)``
makes "no (service, flow) twice a night" a property of the database, not
only of the code (migration ``0004_planner``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from dialbot.db.models import Base
from dialbot.db.types import utcnow


class NightState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    ABORTED = "aborted"


class ItemState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"  # probed (with or without findings)
    FAILED = "failed"  # the probe itself failed after ordering (counted as probed)
    INFRA_FAILED = "infra_failed"  # no order sent, retries used up
    INTERRUPTED = "interrupted"  # cut after its order may have gone out; re-planned later
    SKIPPED = "skipped"  # not started: window over, or its SIM out of service


FINAL_ITEM_STATES = frozenset(
    {ItemState.DONE, ItemState.FAILED, ItemState.INFRA_FAILED, ItemState.INTERRUPTED,
     ItemState.SKIPPED}
)  # fmt: skip


def _in(column: str, values: Any) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class NightPlan(Base):
    """One night of one schedule: the frame it was planned in, and its notes."""

    __tablename__ = "night_plans"
    __table_args__ = (
        UniqueConstraint("schedule", "night", name="uq_night_plans_schedule_night"),
        CheckConstraint(_in("state", list(NightState)), name="ck_night_plans_state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule: Mapped[str] = mapped_column(String(64))
    night: Mapped[str] = mapped_column(String(20))  # scheduled start, local YYYY-MM-DDTHH:MM
    state: Mapped[str] = mapped_column(String(16), default=NightState.RUNNING.value)
    window_start: Mapped[datetime] = mapped_column()
    window_end: Mapped[datetime] = mapped_column()
    lanes: Mapped[int] = mapped_column(Integer, default=0)
    capacity_s: Mapped[float] = mapped_column(Float, default=0.0)
    due: Mapped[int] = mapped_column(Integer, default=0)
    due_quota: Mapped[int] = mapped_column(Integer, default=0)
    notes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class PlanItemRow(Base):
    """One planned probe and what became of it."""

    __tablename__ = "plan_items"
    __table_args__ = (
        UniqueConstraint("plan_id", "service_id", "flow", name="uq_plan_items_plan_service_flow"),
        CheckConstraint(_in("state", list(ItemState)), name="ck_plan_items_state"),
        Index("ix_plan_items_plan_state", "plan_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("night_plans.id"))
    seq: Mapped[int] = mapped_column(Integer)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    sp_code: Mapped[str] = mapped_column(String(32))
    flow: Mapped[str] = mapped_column(String(64))
    sim_id: Mapped[int] = mapped_column(ForeignKey("sims.id"))
    reason: Mapped[str] = mapped_column(String(16))
    est_start_s: Mapped[float] = mapped_column(Float)
    est_duration_s: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16), default=ItemState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    reruns: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    owner: Mapped[str | None] = mapped_column(String(300))  # host:pid of its last claimer
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    started_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)


class AlertEvent(Base):
    """An alert, raised once per event (``dedup_key``), delivered per channel with retry."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered: Mapped[list[str]] = mapped_column(JSON, default=list)  # channels done
    delivered_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)

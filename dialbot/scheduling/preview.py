"""What a schedule's next night would plan, from the database alone (no modem opened).

``dialbot schedule list`` and ``next`` say what coverage tonight reaches
("covers 48/48 due (service, flow) pairs; period coverage 100% (48/48)")
without opening the fleet: the services, the probes so far and the SIMs
come from the database, the flows from ``probes/``. The SIMs are those the
database records as ready (their banks' regions and balances are not known
here, so every SIM counts as nationwide and funded): the preview is what
the planner would do with that fleet, and the real night may plan less.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.models import Sim
from dialbot.flows.model import Flow
from dialbot.scheduling.dispatch import NoCleanupNeeded, ProbeJob, ProbeOutcome, Runtime
from dialbot.scheduling.inputs import flow_tables
from dialbot.scheduling.planner import Plan, SimInfo
from dialbot.scheduling.schedules import Schedule
from dialbot.scheduling.service import build_plan


class _RecordedFleet:
    """The SIMs the database records as ready."""

    def __init__(self, db: sessionmaker[Session]) -> None:
        self.db = db

    def ready_sims(self) -> list[SimInfo]:
        with self.db() as session:
            rows = session.execute(
                select(Sim.id, Sim.msisdn).where(Sim.state == "ready").order_by(Sim.id)
            ).all()
        return [SimInfo(sim_id, msisdn) for sim_id, msisdn in rows]

    def modem_states(self) -> dict[str, int]:
        return {}

    def out_of_service(self) -> list[tuple[str, str]]:
        return []


class _NoDispatch:
    """A preview runs nothing."""

    def run(self, job: ProbeJob) -> ProbeOutcome:
        raise RuntimeError("a preview does not run probes")


def preview_night(
    db: sessionmaker[Session],
    schedule: Schedule,
    flows: Mapping[str, Flow],
    time_scale: float,
    now: datetime,
) -> tuple[datetime, Plan] | None:
    """(start, plan) of the schedule's next night as the planner would make it now;
    None when the schedule never fires again."""
    start = schedule.next_run(now)
    if start is None:
        return None
    billing, seconds = flow_tables(dict(flows), time_scale)
    runtime = Runtime(
        dispatcher=_NoDispatch(),
        cleanup=NoCleanupNeeded(),
        fleet=_RecordedFleet(db),
        flow_billing=billing,
        flow_seconds=seconds,
    )
    return start, build_plan(db, schedule, runtime, start, schedule.window_end_after(start))


def coverage_text(plan: Plan) -> str:
    """The preview in one line: what it covers and on how many SIMs."""
    return f"{plan.coverage_note()} ({len(plan.items)} probes on {plan.lanes} SIMs)"

"""One night of one schedule, start to finish: clean, plan (or resume), check, dispatch, check.

Used by the daemon (at each cron fire time, and at start-up to resume an
unfinished night) and by ``dialbot schedule run`` (now, in the foreground).

Like a sweep, a night checks its SIMs' hygiene (subscription list and
balance) before their first probe and after their last: a SIM found
subscribed to something nobody ordered is reported (a critical finding,
which the daemon's alerts pick up) and cleaned, and a probe's balance deltas
start from a clean, known SIM. The first check also takes every SIM with an
order still to follow (the month after, docs/month-after.md), in the plan or
not: one that keeps a subscription owes its cleanup and sits the night out,
and this look is what sees its renewal.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.obligations import sims_following, sims_with_pending
from dialbot.db.outage import survives_outage
from dialbot.db.types import utcnow
from dialbot.mask import mask_msisdn
from dialbot.scheduling.dispatch import Runtime
from dialbot.scheduling.inputs import last_sp_by_sim, load_services, sim_ids
from dialbot.scheduling.keeping import keep_last
from dialbot.scheduling.models import ItemState, NightPlan, NightState, PlanItemRow
from dialbot.scheduling.nights import (
    NightExecutor,
    NightInfo,
    Progress,
    close_expired,
    open_night,
)
from dialbot.scheduling.planner import NightSpec, Plan, plan_night
from dialbot.scheduling.recovery import CrashReport, crash_report
from dialbot.scheduling.schedules import Schedule
from dialbot.scheduling.stealing import moved_count

log = logging.getLogger("dialbot.scheduling.service")


@dataclass(frozen=True)
class NightResult:
    night: NightInfo
    counts: dict[str, int]
    finished: bool
    hygiene_findings: int = 0
    crashes: CrashReport = field(default_factory=CrashReport)
    moved: int = 0  # items moved to an idle SIM (work stealing)

    def moved_line(self) -> str:
        """The summary's line on work stealing."""
        return f"{self.moved} probes moved to idle SIMs (their own lanes were done)"


@survives_outage
def unfinished_night(
    db: sessionmaker[Session], schedule: Schedule, now: datetime
) -> NightPlan | None:
    """The schedule's night still running whose window has not closed, if any."""
    with db() as session:
        return session.scalars(
            select(NightPlan)
            .where(
                NightPlan.schedule == schedule.name,
                NightPlan.state == NightState.RUNNING.value,
                NightPlan.window_end > now,
            )
            .order_by(NightPlan.window_start.desc())
            .limit(1)
        ).first()


@survives_outage
def night_sims(db: sessionmaker[Session], plan_id: int, pending_only: bool = False) -> list[int]:
    """The SIMs of a night's plan (``pending_only``: those with a probe still to run)."""
    query = select(PlanItemRow.sim_id).where(PlanItemRow.plan_id == plan_id).distinct()
    if pending_only:
        query = query.where(PlanItemRow.state == ItemState.PENDING.value)
    with db() as session:
        return sorted(session.scalars(query))


def following_sims(db: sessionmaker[Session]) -> list[int]:
    """SIMs with an order still to follow (the month after). Looked at by the night's first
    hygiene check even when they are not in its plan: a SIM that keeps a subscription
    owes its cleanup, so it sits the night out, and only this look sees its renewal."""
    ids = sim_ids(db)
    return sorted(ids[m] for m in sims_following(db) if m in ids)


def check_hygiene(runtime: Runtime, sim_ids: list[int], when: str) -> int:
    """The runtime's hygiene check of these SIMs; returns its findings."""
    if not sim_ids:
        return 0
    found = runtime.hygiene(sim_ids)
    log.info("hygiene checked", extra={"when": when, "sims": len(sim_ids), "findings": found})
    return found


def build_plan(
    db: sessionmaker[Session], schedule: Schedule, runtime: Runtime, start: datetime, end: datetime
) -> Plan:
    """Gather the facts and let the planner decide."""
    flows = tuple(f for f in schedule.flows if f in runtime.flow_billing)
    missing = [f for f in schedule.flows if f not in runtime.flow_billing]
    last_sp = last_sp_by_sim(db)
    owing = set(sims_with_pending(db))  # cleaned before anything else: not tonight
    ready = runtime.fleet.ready_sims()
    sims = [
        replace(s, last_sp=last_sp.get(s.sim_id, s.last_sp)) for s in ready if s.msisdn not in owing
    ]
    period_start, _ = schedule.period_bounds(start)
    spec = NightSpec(
        start=start,
        end=end,
        period_start=period_start,
        nights_left=schedule.nights_left(start),
        flows=flows,
        flow_billing=runtime.flow_billing,
        flow_seconds=runtime.flow_seconds,
        per_sp_concurrency=schedule.per_sp_concurrency,
        balance_floor_fen=schedule.balance_floor_fen,
    )
    plan = plan_night(load_services(db, schedule, start), sims, spec)
    plan = keep_last(plan, {s.sim_id: s.last_sp for s in sims})
    held = [mask_msisdn(s.msisdn) for s in ready if s.msisdn in owing]
    if held:
        plan.notes.insert(0, f"SIMs still owing a cleanup, not used tonight: {', '.join(held)}")
    if missing:
        plan.notes.insert(0, f"unknown flows ignored: {', '.join(missing)}")
    return plan


def run_night(
    db: sessionmaker[Session],
    schedule: Schedule,
    runtime: Runtime,
    *,
    stop: threading.Event | None = None,
    now: datetime | None = None,
    window: timedelta | None = None,
    on_plan: Progress | None = None,
    on_item: Progress | None = None,
) -> NightResult:
    """Discharge cleanups, then resume tonight's stored plan or make a new one, then run it.

    ``window`` overrides the schedule's window end (for ``schedule run`` and tests).
    """
    remaining = runtime.cleanup.discharge_pending()
    if remaining:  # those SIMs sit the night out (build_plan); the others work
        log.warning("cleanup obligations remain", extra={"remaining": remaining})
    start = now or utcnow()
    close_expired(db, schedule.name, start)
    current = unfinished_night(db, schedule, start)
    if current is not None:
        night = open_night(db, schedule.name, current.night,
                           (current.window_start, current.window_end), Plan)  # fmt: skip
    else:
        end = start + window if window is not None else schedule.window_end_after(start)
        key = start.astimezone(schedule.timezone).strftime("%Y-%m-%dT%H:%M")
        night = open_night(db, schedule.name, key, (start, end),
                           lambda: build_plan(db, schedule, runtime, start, end))  # fmt: skip
    log.info(
        "night opened",
        extra={"schedule": schedule.name, "night": night.night, "plan_id": night.id,
               "resumed": night.resumed, "interrupted": night.interrupted,
               "rerun": night.rerun},
    )  # fmt: skip
    if on_plan is not None:
        on_plan(night.id, "opened")
    stopped = stop if stop is not None else threading.Event()
    found = 0
    if not stopped.is_set():  # a SIM whose check fails is out of service: its lane is skipped
        first = set(night_sims(db, night.id, pending_only=True)) | set(following_sims(db))
        found += check_hygiene(runtime, sorted(first), "start")
    sims = {sim.sim_id: sim for sim in runtime.fleet.ready_sims()}  # for stealing: regions
    executor = NightExecutor(db, runtime.dispatcher, retries=schedule.retries, stop=stopped,
                             on_item=on_item, follow_days=schedule.follow_days,
                             per_sp_concurrency=schedule.per_sp_concurrency,
                             sims=sims)  # fmt: skip
    counts = executor.run(night.id)
    moved = moved_count(db, night.id)
    finished = not (counts.get("pending") or counts.get("running"))
    if not stopped.is_set():  # stopped: the night resumes later and ends with this check then
        found += check_hygiene(runtime, night_sims(db, night.id), "end")
    later = schedule.nights_left(night.window_start) > 1
    crashes = crash_report(db, night.id, later)
    log.info("night ended" if finished else "night paused",
             extra={"schedule": schedule.name, "plan_id": night.id, "counts": counts,
                    "hygiene_findings": found, "rerun": crashes.rerun,
                    "replanned": crashes.replanned, "lost": crashes.lost,
                    "crashes": crashes.line(), "moved": moved})  # fmt: skip
    return NightResult(night, counts, finished, found, crashes, moved)

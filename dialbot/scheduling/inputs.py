"""The facts a plan is made of, read from the database and the flows.

Kept apart from the planner so that the planner stays pure: this module does
the queries (a handful, each over whole tables, so a catalogue of 100,000
services costs a few queries, not 100,000), the planner does the thinking.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.models import Finding, Run, RunState, Service, Sim, Sp
from dialbot.flows.model import Cancel, CancelAll, Expect, Flow, Observe
from dialbot.scheduling.models import ItemState, PlanItemRow
from dialbot.scheduling.planner import ServiceInfo
from dialbot.scheduling.schedules import Schedule

RISK_LOOKBACK = timedelta(days=30)
# Plan items that count as "probed" for coverage. An interrupted one does not: it
# may not have ordered, so it stays due (it is only barred for the rest of its night).
PROBED_ITEM_STATES = (ItemState.DONE.value, ItemState.FAILED.value)
# Seconds of radio round trips and modem work a step costs beyond its waits.
STEP_OVERHEAD_S = 5.0


def flow_seconds(flow: Flow, time_scale: float = 1.0) -> float:
    """Upper estimate of a flow's duration: every wait taken in full, plus step overhead.

    The planner must not start what cannot end before the window closes, so it
    plans with the longest a flow can take, not its average.
    """
    total = 0.0
    for step in flow.steps:
        if isinstance(step, Expect | Cancel | CancelAll):
            total += step.within
        elif isinstance(step, Observe):
            total += step.seconds
        total += STEP_OVERHEAD_S
    return total * time_scale


def flow_tables(
    flows: Mapping[str, Flow], time_scale: float = 1.0
) -> tuple[dict[str, tuple[str, ...]], dict[str, float]]:
    """(billing types per flow, estimated seconds per flow) for the planner."""
    billing = {name: tuple(flow.billing) for name, flow in flows.items()}
    seconds = {name: flow_seconds(flow, time_scale) for name, flow in flows.items()}
    return billing, seconds


def load_services(
    db: sessionmaker[Session], schedule: Schedule, now: datetime
) -> list[ServiceInfo]:
    """Every selected service with its last probe, last flow, change time and SP risk."""
    with db() as session:
        rows = session.execute(
            select(Service.id, Sp.code, Service.billing, Service.region, Service.version,
                   Service.updated_at, Service.channel).join(Sp, Service.sp_id == Sp.id)
        ).all()  # fmt: skip
        last = _last_probes(session)
        findings = dict(
            session.execute(
                select(Finding.sp_code, func.count())
                .where(Finding.observed_at >= now - RISK_LOOKBACK)
                .group_by(Finding.sp_code)
            ).all()
        )
    selection = schedule.selection
    result: list[ServiceInfo] = []
    for service_id, sp_code, billing, region, version, updated_at, channel in rows:
        if not selection.matches(sp_code, billing, region):
            continue
        probed, flow = last.get(service_id, (None, None))
        result.append(
            ServiceInfo(
                service_id=service_id,
                sp_code=sp_code,
                billing=billing,
                region=region,
                last_probed=probed,
                last_flow=flow,
                changed_at=updated_at if version > 1 else None,
                recent_findings=int(findings.get(sp_code, 0)),
                channel=channel or "sms",
            )
        )
    return result


def _last_probes(session: Session) -> dict[int, tuple[datetime, str]]:
    """Per service: when it was last probed and with which flow (runs and plan items)."""
    last: dict[int, tuple[datetime, str]] = {}
    ranked_runs = (
        select(
            Run.service_id, Run.started_at, Run.flow,
            func.row_number().over(partition_by=Run.service_id,
                                   order_by=Run.started_at.desc()).label("n"),
        )
        .where(Run.service_id.is_not(None), Run.started_at.is_not(None),
               Run.state == RunState.DONE.value)
        .subquery()
    )  # fmt: skip
    ranked_items = (
        select(
            PlanItemRow.service_id, PlanItemRow.started_at, PlanItemRow.flow,
            func.row_number().over(partition_by=PlanItemRow.service_id,
                                   order_by=PlanItemRow.started_at.desc()).label("n"),
        )
        .where(PlanItemRow.started_at.is_not(None), PlanItemRow.state.in_(PROBED_ITEM_STATES))
        .subquery()
    )  # fmt: skip
    for ranked in (ranked_runs, ranked_items):
        for service_id, started, flow in session.execute(
            select(ranked.c.service_id, ranked.c.started_at, ranked.c.flow).where(ranked.c.n == 1)
        ):
            if service_id not in last or last[service_id][0] < started:
                last[service_id] = (started, flow)
    return last


def last_sp_by_sim(db: sessionmaker[Session]) -> dict[int, str]:
    """Per SIM id: the SP of the last probe it ran (runs and plan items)."""
    result: dict[int, tuple[datetime, str]] = {}
    with db() as session:
        runs = session.execute(
            select(Run.sim_id, Run.started_at, Sp.code)
            .join(Sp, Run.sp_id == Sp.id)
            .where(Run.sim_id.is_not(None), Run.started_at.is_not(None))
        )
        items = session.execute(
            select(PlanItemRow.sim_id, PlanItemRow.started_at, PlanItemRow.sp_code).where(
                PlanItemRow.started_at.is_not(None)
            )
        )
        for sim_id, started, sp_code in [*runs, *items]:
            if sim_id not in result or result[sim_id][0] < started:
                result[sim_id] = (started, sp_code)
    return {sim_id: sp for sim_id, (_, sp) in result.items()}


def sim_ids(db: sessionmaker[Session]) -> dict[str, int]:
    """MSISDN → SIM id, for turning fleet slots into planner lanes."""
    with db() as session:
        return {msisdn: sim_id for sim_id, msisdn in session.execute(select(Sim.id, Sim.msisdn))}

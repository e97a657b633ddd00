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
from dialbot.db.outage import survives_outage
from dialbot.flows.model import Call, Cancel, CancelAll, Expect, Flow, Observe
from dialbot.scheduling.models import ItemState, PlanItemRow
from dialbot.scheduling.planner import ServiceInfo
from dialbot.scheduling.schedules import Schedule

RISK_LOOKBACK = timedelta(days=30)
# Plan items that count as "probed" for coverage. An interrupted one does not: it was
# cut after its order may have gone out (issue 17), so its (service, flow) stays due and
# is planned on a later night, on another SIM (``interrupted_on``).
PROBED_ITEM_STATES = (ItemState.DONE.value, ItemState.FAILED.value)
# Seconds of radio round trips and modem work a step costs beyond its waits.
STEP_OVERHEAD_S = 5.0
REAL_MINUTE_S = 60.0  # calls are planned with a real network's billing minute (the longest)


def flow_seconds(flow: Flow, time_scale: float = 1.0) -> float:
    """Upper estimate of a flow's duration: every wait taken in full, plus step overhead.

    The planner must not start what cannot end before the window closes, so it
    plans with the longest a flow can take, not its average.
    """
    total = 0.0
    calls = 0.0  # network time: a billing minute is never shortened by time_scale
    for step in flow.steps:
        if isinstance(step, Expect | Cancel | CancelAll):
            total += step.within
        elif isinstance(step, Observe):
            total += step.seconds
        elif isinstance(step, Call):
            calls += step.answer_within + step.hold * REAL_MINUTE_S + step.release_within
        total += STEP_OVERHEAD_S
    return total * time_scale + calls


def flow_tables(
    flows: Mapping[str, Flow], time_scale: float = 1.0
) -> tuple[dict[str, tuple[str, ...]], dict[str, float]]:
    """(billing types per flow, estimated seconds per flow) for the planner."""
    billing = {name: tuple(flow.billing) for name, flow in flows.items()}
    seconds = {name: flow_seconds(flow, time_scale) for name, flow in flows.items()}
    return billing, seconds


@survives_outage
def load_services(
    db: sessionmaker[Session], schedule: Schedule, now: datetime
) -> list[ServiceInfo]:
    """Every selected service with its last probe per flow, change time, SP risk and the
    SIMs its flows were cut on after ordering."""
    with db() as session:
        rows = session.execute(
            select(Service.id, Sp.code, Service.billing, Service.region, Service.version,
                   Service.updated_at, Service.channel).join(Sp, Service.sp_id == Sp.id)
        ).all()  # fmt: skip
        last = _last_probes(session)
        cut = _cut_after_order(session, last)
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
        if channel == "ivr":
            billing = "per_minute"  # a voice line only takes calls: only voice flows fit it
        result.append(
            ServiceInfo(
                service_id=service_id,
                sp_code=sp_code,
                billing=billing,
                region=region,
                flow_probed=last.get(service_id, {}),
                changed_at=updated_at if version > 1 else None,
                recent_findings=int(findings.get(sp_code, 0)),
                interrupted_on=cut.get(service_id, {}),
                channel=channel or "sms",
            )
        )
    return result


def _last_probes(session: Session) -> dict[int, dict[str, datetime]]:
    """Per service and flow: when that flow last probed it (judged runs and probed items)."""
    last: dict[int, dict[str, datetime]] = {}
    runs = (
        select(Run.service_id, Run.flow, func.max(Run.started_at))
        .where(Run.service_id.is_not(None), Run.started_at.is_not(None),
               Run.state == RunState.DONE.value)
        .group_by(Run.service_id, Run.flow)
    )  # fmt: skip
    items = (
        select(PlanItemRow.service_id, PlanItemRow.flow, func.max(PlanItemRow.started_at))
        .where(PlanItemRow.started_at.is_not(None), PlanItemRow.state.in_(PROBED_ITEM_STATES))
        .group_by(PlanItemRow.service_id, PlanItemRow.flow)
    )
    for query in (runs, items):
        for service_id, flow, started in session.execute(query):
            if service_id is None or started is None:
                continue
            flows = last.setdefault(service_id, {})
            if flow not in flows or flows[flow] < started:
                flows[flow] = started
    return last


def _cut_after_order(
    session: Session, last: dict[int, dict[str, datetime]]
) -> dict[int, dict[str, int]]:
    """Per service and flow: the SIM its latest probe was cut on after ordering, when no
    probe of that pair has run since (the planner puts the pair on another SIM)."""
    cut: dict[int, dict[str, tuple[datetime, int]]] = {}
    rows = session.execute(
        select(PlanItemRow.service_id, PlanItemRow.flow, PlanItemRow.sim_id,
               PlanItemRow.started_at)
        .where(PlanItemRow.state == ItemState.INTERRUPTED.value,
               PlanItemRow.started_at.is_not(None))
    )  # fmt: skip
    for service_id, flow, sim_id, started in rows:
        if started is None:
            continue
        probed = last.get(service_id, {}).get(flow)
        if probed is not None and probed >= started:
            continue
        known = cut.setdefault(service_id, {}).get(flow)
        if known is None or known[0] < started:
            cut[service_id][flow] = (started, sim_id)
    return {sid: {f: sim for f, (_, sim) in flows.items()} for sid, flows in cut.items()}


@survives_outage
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


@survives_outage
def sim_ids(db: sessionmaker[Session]) -> dict[str, int]:
    """MSISDN → SIM id, for turning fleet slots into planner lanes."""
    with db() as session:
        return {msisdn: sim_id for sim_id, msisdn in session.execute(select(Sim.id, Sim.msisdn))}

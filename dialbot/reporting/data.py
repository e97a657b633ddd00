"""Reading a period's runs, findings and evidence from the database into report dataclasses.

What counts, as docs/methodology.md says:

- a probe of an SP is a run in state ``done`` (judged) whose start falls in
  the period; runs that failed for infrastructure reasons, were aborted or
  are still going are not probes and their findings are ignored — except a
  run cut short by a dead process and judged on what it saw
  (``dialbot.flows.recovery``: ``judged_at`` set): still not a probe, but its
  findings (spam, a charge before any confirmation...) count;
- a finding counts for the SP named on the finding (``findings.sp_code``),
  in the period of the run that produced it.

Tallies are aggregated in SQL (GROUP BY), so ranking 2,000 SPs over twelve
periods reads a few thousand rows, not every run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, distinct, func, or_, select
from sqlalchemy.orm import Session, aliased

from dialbot.db.anchor import head_until
from dialbot.db.models import EvidenceEvent, Finding, Run, RunState, Service, Sp
from dialbot.mask import mask_msisdn
from dialbot.reporting.model import EvidenceItem, FindingItem, ReportData, ServiceLine, SpDetail
from dialbot.reporting.period import DEFAULT_TZ, Period
from dialbot.reporting.scoring import V1, FindingCount, Params, Ranking, SpTally, rank_period

HISTORY_PERIODS = 12
_EVIDENCE_CHUNK = 500


def judged_run() -> ColumnElement[bool]:
    """A run whose findings count: judged to the end (``done``), or cut short by a dead
    process and judged on what it saw (``judged_at`` set; never counted as a probe)."""
    return or_(Run.state == RunState.DONE.value, Run.judged_at.is_not(None))


def load_tallies(session: Session, period: Period, tz: str = DEFAULT_TZ) -> list[SpTally]:
    """The scoring input of one period: probes, services and finding counts per SP."""
    start, end = period.bounds(tz)
    svc = aliased(Service)
    sp_id = func.coalesce(Run.sp_id, svc.sp_id)
    probe_rows = session.execute(
        select(Sp.code, Sp.name, func.count(Run.id), func.count(distinct(Run.service_id)))
        .select_from(Run)
        .outerjoin(svc, svc.id == Run.service_id)
        .join(Sp, Sp.id == sp_id)
        .where(Run.state == RunState.DONE.value, Run.started_at >= start, Run.started_at < end)
        .group_by(Sp.code, Sp.name)
    ).all()
    finding_rows = session.execute(
        select(Finding.sp_code, Finding.code, Finding.severity, func.count(Finding.id))
        .join(Run, Run.id == Finding.run_id)
        .where(judged_run(), Run.started_at >= start, Run.started_at < end)
        .group_by(Finding.sp_code, Finding.code, Finding.severity)
    ).all()
    probes: dict[str, tuple[str, int, int]] = {
        code: (name, int(n), int(services)) for code, name, n, services in probe_rows
    }
    counts: dict[str, list[FindingCount]] = defaultdict(list)
    for sp_code, code, severity, n in finding_rows:
        counts[sp_code].append(FindingCount(code, severity, int(n)))
    names = _sp_names(session, set(counts) - set(probes))
    tallies: list[SpTally] = []
    for code in sorted(set(probes) | set(counts)):
        name, n, services = probes.get(code, (names.get(code, code), 0, 0))
        found = tuple(sorted(counts.get(code, []), key=lambda f: (f.code, f.severity)))
        tallies.append(SpTally(code, name, n, services, found))
    return tallies


def _sp_names(session: Session, codes: Iterable[str]) -> dict[str, str]:
    wanted = list(codes)
    if not wanted:
        return {}
    rows = session.execute(select(Sp.code, Sp.name).where(Sp.code.in_(wanted))).all()
    return {code: name for code, name in rows}


def rank(session: Session, period: Period, params: Params = V1, tz: str = DEFAULT_TZ) -> Ranking:
    """The ranking of one period, straight from the database."""
    return rank_period(period.label, load_tallies(session, period, tz), params)


def load_services(
    session: Session, period: Period, tz: str = DEFAULT_TZ
) -> dict[str, list[ServiceLine]]:
    """Per SP, the services probed in the period with their probe and finding counts."""
    start, end = period.bounds(tz)
    in_period = (Run.state == RunState.DONE.value, Run.started_at >= start, Run.started_at < end)
    rows = session.execute(
        select(Sp.code, Service.code, Service.name, func.count(Run.id))
        .select_from(Run)
        .join(Service, Service.id == Run.service_id)
        .join(Sp, Sp.id == Service.sp_id)
        .where(*in_period)
        .group_by(Sp.code, Service.code, Service.name)
    ).all()
    found = session.execute(
        select(Finding.sp_code, Finding.service_code, func.count(Finding.id))
        .join(Run, Run.id == Finding.run_id)
        .where(judged_run(), *in_period[1:])
        .group_by(Finding.sp_code, Finding.service_code)
    ).all()
    found_map = {(sp, svc): int(n) for sp, svc, n in found}
    out: dict[str, list[ServiceLine]] = defaultdict(list)
    for sp_code, code, name, n in rows:
        out[sp_code].append(ServiceLine(code, name, int(n), found_map.get((sp_code, code), 0)))
    for lines in out.values():
        lines.sort(key=lambda s: s.service_code)
    return dict(out)


def _load_evidence(session: Session, ids: Sequence[int]) -> dict[int, EvidenceItem]:
    out: dict[int, EvidenceItem] = {}
    unique = sorted(set(ids))
    for i in range(0, len(unique), _EVIDENCE_CHUNK):
        chunk = unique[i : i + _EVIDENCE_CHUNK]
        for ev in session.scalars(select(EvidenceEvent).where(EvidenceEvent.id.in_(chunk))):
            out[ev.id] = EvidenceItem(
                id=ev.id,
                at=ev.at,
                kind=ev.kind,
                peer=ev.peer or "",
                text=ev.text or "",
                sim=mask_msisdn(ev.sim) if ev.sim else "",
            )
    return out


def load_findings(
    session: Session, period: Period, tz: str = DEFAULT_TZ
) -> dict[str, list[FindingItem]]:
    """Per SP, the period's findings in time order, each with its evidence excerpts."""
    start, end = period.bounds(tz)
    rows = list(
        session.scalars(
            select(Finding)
            .join(Run, Run.id == Finding.run_id)
            .where(judged_run(), Run.started_at >= start, Run.started_at < end)
            .order_by(Finding.sp_code, Finding.observed_at, Finding.id)
        )
    )
    evidence = _load_evidence(session, [i for f in rows for i in (f.evidence or [])])
    out: dict[str, list[FindingItem]] = defaultdict(list)
    for f in rows:
        out[f.sp_code].append(
            FindingItem(
                run_id=f.run_id,
                service_code=f.service_code or "",
                code=f.code,
                severity=f.severity,
                amount_fen=f.amount_fen,
                observed_at=f.observed_at,
                sim=mask_msisdn(f.sim) if f.sim else "",
                evidence=tuple(evidence[i] for i in (f.evidence or []) if i in evidence),
            )
        )
    return dict(out)


def load_report(
    session: Session,
    period: Period,
    generated_at: datetime,
    params: Params = V1,
    tz: str = DEFAULT_TZ,
    history: int = HISTORY_PERIODS,
) -> ReportData:
    """Everything the publication of ``period`` needs, including past periods for trends."""
    past = [(p, rank(session, p, params, tz)) for p in period.history(history)]
    ranking = past[-1][1]
    services = load_services(session, period, tz)
    findings = load_findings(session, period, tz)
    details = {
        e.tally.sp_code: SpDetail(
            services=tuple(services.get(e.tally.sp_code, ())),
            findings=tuple(findings.get(e.tally.sp_code, ())),
        )
        for e in ranking.entries
    }
    return ReportData(
        period=period,
        generated_at=generated_at,
        ranking=ranking,
        history=tuple(past),
        details=details,
        tz=tz,
        evidence_head=head_until(session, period.bounds(tz)[1]),
    )

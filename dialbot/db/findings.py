"""Findings: stored by the judge, exported for regulators (spec/formats.md §5).

Storage guards the rule that matters most for fairness: findings are only
recorded for a run that is being judged — never for a run that failed for
infrastructure reasons or was aborted — and each cites existing evidence.

Exported times are in the carrier's zone (Asia/Shanghai by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import write_session
from dialbot.db.models import SEVERITIES, EvidenceEvent, Finding, Run, RunState
from dialbot.db.outage import survives_outage
from dialbot.db.types import utcnow
from dialbot.errors import DialbotError
from dialbot.mask import mask_msisdn

DEFAULT_TZ = ZoneInfo("Asia/Shanghai")
# The error of a run whose distributed worker died (dialbot.scheduling.distributed).
LOST = "worker lost mid-probe"
EXPORT_FIELDS = (
    "run_id",
    "sp_code",
    "service_code",
    "code",
    "severity",
    "amount_fen",
    "observed_at",
    "sim",
    "evidence",
)


class FindingRefused(DialbotError):
    """A finding that must not be stored (wrong run state, bad amount, unknown evidence)."""


@dataclass(frozen=True)
class NewFinding:
    """What the judge hands over for one violation."""

    code: str
    severity: str
    sp_code: str
    service_code: str | None
    amount_fen: int
    observed_at: datetime
    evidence: Sequence[int]
    sim: str | None = None
    detail: str | None = None


@survives_outage
def record_findings(
    session_factory: sessionmaker[Session],
    run_id: int,
    findings: Sequence[NewFinding],
    *,
    then: RunState | None = None,
) -> list[int]:
    """Store the findings of a run that is in state ``judging``; returns their ids.
    ``then``: move the run on (to ``done``) in the same transaction, so its verdict
    and its end are committed together."""
    with write_session(session_factory) as session:
        run = session.execute(select(Run).where(Run.id == run_id).with_for_update()).scalar_one()
        if run.state != RunState.JUDGING.value:
            raise FindingRefused(f"run {run_id} is {run.state}, not judging: no findings recorded")
        ids = _store(session, run_id, findings)
        if then is not None:
            run.move_to(then, at=utcnow())
        return ids


@survives_outage
def record_cut_findings(
    session_factory: sessionmaker[Session], run_id: int, findings: Sequence[NewFinding]
) -> list[int] | None:
    """Store the findings of a run cut short (``aborted``, or ``infra_failed`` because its
    distributed worker was lost) and judged on what it saw.

    Such a run is judged exactly once: the row is locked, and a run already
    judged (``judged_at`` set, by another process that recovered it first)
    gets nothing and None is returned. The run stays aborted (it is never
    counted as a probe of the SP); its findings count like any other.
    """
    with write_session(session_factory) as session:
        run = session.execute(select(Run).where(Run.id == run_id).with_for_update()).scalar_one()
        cut = run.state == RunState.ABORTED.value or (
            run.state == RunState.INFRA_FAILED.value and (run.error or "").startswith(LOST)
        )
        if not cut:
            raise FindingRefused(f"run {run_id} is {run.state}, not cut short: not judged as cut")
        if run.judged_at is not None:
            return None
        run.judged_at = utcnow()
        return _store(session, run_id, findings)


def _store(session: Session, run_id: int, findings: Sequence[NewFinding]) -> list[int]:
    _check_evidence_exists(session, {i for f in findings for i in f.evidence})
    ids = []
    for f in findings:
        _check_finding(f)
        row = Finding(
            run_id=run_id,
            sp_code=f.sp_code,
            service_code=f.service_code,
            code=f.code,
            severity=f.severity,
            amount_fen=f.amount_fen,
            observed_at=f.observed_at,
            sim=f.sim,
            evidence=sorted(set(f.evidence)),
            detail=f.detail,
        )
        session.add(row)
        session.flush()
        ids.append(row.id)
    return ids


def _check_finding(f: NewFinding) -> None:
    if f.severity not in SEVERITIES:
        raise FindingRefused(f"{f.code}: unknown severity {f.severity!r}")
    if isinstance(f.amount_fen, bool) or not isinstance(f.amount_fen, int) or f.amount_fen < 0:
        raise FindingRefused(f"{f.code}: amount_fen must be a non-negative integer (fen)")
    if f.observed_at.tzinfo is None or f.observed_at.utcoffset() is None:
        raise FindingRefused(f"{f.code}: observed_at must be timezone-aware")
    if not f.evidence:
        raise FindingRefused(f"{f.code}: a finding must cite evidence")


def _check_evidence_exists(session: Session, ids: set[int]) -> None:
    if not ids:
        return
    found = session.scalar(
        select(func.count()).select_from(EvidenceEvent).where(EvidenceEvent.id.in_(ids))
    )
    if found != len(ids):
        known = set(session.scalars(select(EvidenceEvent.id).where(EvidenceEvent.id.in_(ids))))
        raise FindingRefused(f"unknown evidence event(s): {sorted(ids - known)}")


def export_findings(
    session_factory: sessionmaker[Session],
    bounds: tuple[datetime, datetime] | None = None,
    tz: ZoneInfo = DEFAULT_TZ,
) -> list[dict[str, Any]]:
    """Findings as spec §5 objects (MSISDN masked, times in ``tz``), oldest first.

    ``bounds`` is a half-open [start, end) of aware datetimes, e.g. from
    ``dialbot.reporting.period.Period.bounds()``; None exports everything.
    """
    query = select(Finding).order_by(Finding.observed_at, Finding.id)
    if bounds is not None:
        start, end = bounds
        query = query.where(Finding.observed_at >= start, Finding.observed_at < end)
    with session_factory() as session:
        return [_export(f, tz) for f in session.scalars(query)]


def _export(f: Finding, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "run_id": f.run_id,
        "sp_code": f.sp_code,
        "service_code": f.service_code,
        "code": f.code,
        "severity": f.severity,
        "amount_fen": f.amount_fen,
        "observed_at": f.observed_at.astimezone(tz).isoformat(timespec="seconds"),
        "sim": mask_msisdn(f.sim),
        "evidence": [int(i) for i in f.evidence],
    }

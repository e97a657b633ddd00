"""What a publication is made of: plain dataclasses, filled by data.py, read by render.py.

Kept apart from the database models so the renderer can be tested and
benchmarked without a database, and so nothing in a template can reach a
session and run a query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dialbot.db.anchor import ChainHead
from dialbot.reporting.period import Period
from dialbot.reporting.scoring import Ranking


@dataclass(frozen=True)
class ServiceLine:
    """One service of an SP as probed in the period."""

    service_code: str
    service_name: str
    probes: int
    findings: int


@dataclass(frozen=True)
class EvidenceItem:
    """One evidence event quoted under a finding; ``sim`` is already masked."""

    id: int
    at: datetime
    kind: str
    peer: str
    text: str
    sim: str


@dataclass(frozen=True)
class FindingItem:
    """One finding with the evidence that proves it; ``sim`` is already masked."""

    run_id: int | None
    service_code: str
    code: str
    severity: str
    amount_fen: int | None
    observed_at: datetime
    sim: str
    evidence: tuple[EvidenceItem, ...] = ()


@dataclass(frozen=True)
class SpDetail:
    """Everything an SP's own page shows beyond its line in the table."""

    services: tuple[ServiceLine, ...] = ()
    findings: tuple[FindingItem, ...] = ()


@dataclass(frozen=True)
class ReportData:
    """One period's publication: the ranking, past rankings for trends, details per SP."""

    period: Period
    generated_at: datetime
    ranking: Ranking
    history: tuple[tuple[Period, Ranking], ...]  # oldest first, the current period last
    details: dict[str, SpDetail] = field(default_factory=dict)
    tz: str = "Asia/Shanghai"
    # the evidence chain's head at the end of the period: what the publication rests on,
    # stated in every format so a later rewrite of the chain is detectable (docs/evidence.md)
    evidence_head: ChainHead | None = None

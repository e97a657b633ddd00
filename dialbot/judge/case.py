"""What every rule reads (`Case`), how a finding is built, and the small helpers the
rule modules share (kept apart so that rule modules can import them without a cycle)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from dialbot.judge.charges import Attribution, Part
from dialbot.judge.classify import MsgClass
from dialbot.judge.model import Finding, ServiceInfo, Severity
from dialbot.judge.timeline import Intruder, Mark, Timeline, between, mark

SEVERITY: dict[str, Severity] = {
    "UNCONFIRMED_CHARGE": "critical",
    "UNCONFIRMED_SUBSCRIPTION": "critical",
    "UNSOLICITED_SUBSCRIPTION": "critical",
    "OVERCHARGE": "critical",
    "CHARGE_AFTER_CANCEL": "critical",
    "CANCEL_FAILED": "major",
    "DUPLICATE_CHARGE": "major",
    "PRICE_MISMATCH": "major",
    "PROMPT_INCOMPLETE": "minor",
    "MESSAGE_AFTER_CANCEL": "minor",
    "UNSOLICITED_MESSAGE": "major",
    "NO_RESPONSE": "quality",
    "CONTENT_NOT_DELIVERED": "quality",
    # The month after an order (follow runs, dialbot.judge.rules_followup):
    "RENEWAL_WITHOUT_REMINDER": "major",
    "TRIAL_CONVERTED_SILENTLY": "critical",
}


@dataclass
class Case:
    """A run analysed for the rules: timeline, intruders, money and what was due."""

    tl: Timeline
    intruders: list[Intruder]
    money: Attribution
    expected_charges: int  # how many tariff charges the probe's confirmations allow

    @property
    def service(self) -> ServiceInfo | None:
        return self.tl.service

    @property
    def probe(self) -> bool:
        return self.tl.service is not None and self.tl.order is not None


def finding(
    code: str,
    service: ServiceInfo | None,
    amount_fen: int,
    observed_at: datetime,
    evidence: Iterable[int | None],
    detail: str,
    sp_code: str | None = None,
    service_code: str | None = None,
) -> Finding:
    """A finding with its severity from the table and de-duplicated, sorted evidence."""
    return Finding(
        code=code,
        severity=SEVERITY[code],
        amount_fen=amount_fen,
        observed_at=observed_at,
        evidence=sorted({e for e in evidence if e is not None}),
        sp_code=sp_code if sp_code is not None else (service.sp_code if service else ""),
        service_code=(
            service_code if service_code is not None else (service.service_code if service else "")
        ),
        detail=detail,
    )


def part_ids(parts: Iterable[Part]) -> list[int]:
    """The evidence of these charges."""
    return [i for p in parts for i in p.charge.evidence]


def last_at(parts: list[Part]) -> datetime:
    """When the last of these charges was seen."""
    return max(p.charge.end.at for p in parts)


def yuan(fen: int) -> str:
    """Fen as the carrier writes an amount (1.50元)."""
    return f"{fen // 100}.{fen % 100:02d}元"


def active_before(case: Case, until: Mark | None) -> list[int]:
    """Event ids showing the service under probe active after the order, before `until`."""
    tl, service = case.tl, case.service
    if service is None or tl.order is None:
        return []
    order = mark(tl.order)
    ids = [
        m.event.id
        for m in tl.sp_msgs(order, until)
        if m.cls is MsgClass.WELCOME or (m.cls is MsgClass.CONTENT and "确认" not in m.event.text)
    ]
    pre_listed = any(mark(lst.event) < order for lst in tl.listed(service))
    if not pre_listed:
        ids += [lst.event.id for lst in tl.listed(service) if between(lst.event, order, until)]
    ids += [m.event.id for m, _ in tl.service_notices(service) if between(m.event, order, until)]
    return ids

"""Where the money went: charges from balance readings, attributed to a phase of the run.

Balance readings are the only proof of money leaving a SIM. Between two
consecutive readings the drop, minus the carrier's own fee for each message
the probe sent to an SP in between (`mo_sms_fee_fen`; messages to the carrier
service number are free), is money someone charged. Fees not yet billed are
carried forward, so a fee billed late never looks like an SP's charge.

Each charge is then explained, in this order: by a service found active on
the SIM that no probe ordered (an intruder: it may explain one charge of its
own price, before it was seen); otherwise by the phase of the probe it fell
in — before the order, after the order but before a valid confirmation,
while the service was legitimately active, or after the cancellation was
acknowledged. Nothing is dropped: every fen ends up in some `Part`, and the
rules turn every part that is not a legitimate charge into a finding.

When the readings leave the phase open (a reading before the confirmation and
the next after it) the SP gets the benefit of the doubt: the charge counts as
confirmed. Across the cancellation, a charge counts as legitimate only as far
as the tariff was not yet fully charged before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from dialbot.judge.classify import MsgClass, parse_balance
from dialbot.judge.classify import is_carrier as _is_carrier
from dialbot.judge.timeline import Intruder, Mark, Timeline, mark


@dataclass(frozen=True)
class Reading:
    """One balance reading (a `balance` event, or a carrier balance reply)."""

    event_id: int
    at: datetime
    balance_fen: int

    @property
    def mark(self) -> Mark:
        return (self.at, self.event_id)


@dataclass(frozen=True)
class Charge:
    """Money that left the SIM between two readings, beyond the carrier's message fees."""

    start: Reading
    end: Reading
    amount_fen: int
    fee_fen: int  # message fees deducted from the drop

    @property
    def evidence(self) -> list[int]:
        return [self.start.event_id, self.end.event_id]


class Phase(Enum):
    BEFORE_ORDER = "before_order"
    UNCONFIRMED = "unconfirmed"
    IN_SERVICE = "in_service"
    AFTER_CANCEL = "after_cancel"


@dataclass(frozen=True)
class Part:
    """Part (or all) of one charge, with the phase or intruder that explains it."""

    phase: Phase
    amount_fen: int
    charge: Charge


@dataclass
class Attribution:
    """Every fen charged in a run, explained."""

    parts: list[Part] = field(default_factory=list)
    absorbed: list[tuple[Intruder, list[Part]]] = field(default_factory=list)

    def of(self, phase: Phase) -> list[Part]:
        return [p for p in self.parts if p.phase is phase]

    def total(self, phase: Phase) -> int:
        return sum(p.amount_fen for p in self.of(phase))


def readings(tl: Timeline) -> list[Reading]:
    """Balance readings in time order: `balance` events, else the carrier's balance replies."""
    out = [
        Reading(e.id, e.at, e.balance_fen)
        for e in tl.run.events
        if e.kind == "balance" and e.balance_fen is not None
    ]
    if not out:
        for m in tl.msgs:
            if m.carrier and m.cls is MsgClass.BALANCE:
                fen = parse_balance(m.event.text, tl.run.carrier)
                if fen is not None:
                    out.append(Reading(m.event.id, m.event.at, fen))
    return sorted(out, key=lambda r: (r.at, r.event_id))


def charges(tl: Timeline) -> list[Charge]:
    """Positive charges between consecutive readings, net of the carrier's message fees."""
    run = tl.run
    fee = run.carrier.mo_sms_fee_fen
    sent = [e for e in run.events if e.kind == "sms_out" and not _is_carrier(e.peer, run.carrier)]
    out: list[Charge] = []
    pending_fees = 0
    points = readings(tl)
    for start, end in zip(points, points[1:], strict=False):
        pending_fees += fee * sum(1 for e in sent if start.mark < mark(e) < end.mark)
        drop = start.balance_fen - end.balance_fen
        used = min(max(drop, 0), pending_fees)
        pending_fees -= used
        if drop - used > 0:
            out.append(Charge(start, end, drop - used, used))
    return out


def _absorb(
    items: list[Charge], intruders: list[Intruder]
) -> tuple[dict[int, int], list[tuple[Intruder, list[Part]]]]:
    """Let each intruder explain one charge of up to its price, made before it was seen."""
    left = {i: c.amount_fen for i, c in enumerate(items)}
    absorbed: list[tuple[Intruder, list[Part]]] = []
    for intruder in intruders:
        parts: list[Part] = []
        budget = intruder.budget_fen
        candidates = [
            i for i, c in enumerate(items) if c.start.at <= intruder.first_seen and left[i] > 0
        ]
        # An exact match is the likeliest; otherwise the latest charge before it was seen.
        candidates.sort(key=lambda i: (left[i] != budget, -items[i].end.at.timestamp()))
        if candidates and budget > 0:
            i = candidates[0]
            take = min(budget, left[i])
            left[i] -= take
            parts.append(Part(Phase.BEFORE_ORDER, take, items[i]))
        absorbed.append((intruder, parts))
    return left, absorbed


def attribute(tl: Timeline, intruders: list[Intruder], expected_fen: int) -> Attribution:
    """Explain every charge of the run (see the module docstring for the order)."""
    items = charges(tl)
    left, absorbed = _absorb(items, intruders)
    result = Attribution(absorbed=absorbed)
    order = mark(tl.order) if tl.order else None
    confirm = mark(tl.first_confirm) if tl.first_confirm else None
    ack = mark(tl.ack.event) if tl.ack else None
    in_service = 0
    for i, charge in enumerate(items):
        amount = left[i]
        if amount <= 0:
            continue
        a, b = charge.start.mark, charge.end.mark
        if order is None or b < order:
            result.parts.append(Part(Phase.BEFORE_ORDER, amount, charge))
        elif ack is not None and a > ack:
            result.parts.append(Part(Phase.AFTER_CANCEL, amount, charge))
        elif confirm is None or b < confirm:
            result.parts.append(Part(Phase.UNCONFIRMED, amount, charge))
        elif ack is not None and a < ack < b:
            legit = min(amount, max(0, expected_fen - in_service))
            if legit:
                result.parts.append(Part(Phase.IN_SERVICE, legit, charge))
                in_service += legit
            if amount - legit:
                result.parts.append(Part(Phase.AFTER_CANCEL, amount - legit, charge))
        else:
            result.parts.append(Part(Phase.IN_SERVICE, amount, charge))
            in_service += amount
    return result

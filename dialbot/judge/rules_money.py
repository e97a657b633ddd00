"""The money rules: charges before a confirmation, after a cancellation, beyond the
tariff, and more charges than orders (told apart by the itemized bill where the
carrier offers one, else by the carrier's notices and the balance deltas)."""

from __future__ import annotations

from dialbot.judge.case import Case, finding, last_at, part_ids, yuan
from dialbot.judge.charges import Phase
from dialbot.judge.itemized import Split, split
from dialbot.judge.itemized import lines as detail_lines
from dialbot.judge.model import Finding, ServiceInfo
from dialbot.judge.timeline import Timeline, mark


def unconfirmed_charge(case: Case) -> list[Finding]:
    parts = case.money.of(Phase.UNCONFIRMED)
    if not parts or case.tl.order is None:
        return []
    total = sum(p.amount_fen for p in parts)
    prompts = [m.event.id for m in case.tl.prompts()]
    when = "before the confirmation" if case.tl.confirms else "although it was never confirmed"
    return [
        finding(
            "UNCONFIRMED_CHARGE",
            case.service,
            total,
            last_at(parts),
            [case.tl.order.event_id, *prompts, *part_ids(parts)],
            f"{yuan(total)} charged after the order {when}",
        )
    ]


def charge_after_cancel(case: Case) -> list[Finding]:
    parts = case.money.of(Phase.AFTER_CANCEL)
    if not parts or case.tl.ack is None:
        return []
    total = sum(p.amount_fen for p in parts)
    cancels = [c.event_id for c in case.tl.cancels]
    return [
        finding(
            "CHARGE_AFTER_CANCEL",
            case.service,
            total,
            last_at(parts),
            [*cancels, case.tl.ack.event.id, *part_ids(parts)],
            f"{yuan(total)} charged after the cancellation was acknowledged",
        )
    ]


def _excess(case: Case) -> tuple[int, int, list[int]]:
    """(overcharge, duplicate) in fen beyond what the confirmations allow, and the evidence."""
    service = case.service
    parts = case.money.of(Phase.IN_SERVICE)
    if service is None or not parts or case.tl.first_confirm is None:
        return 0, 0, []
    price, k = service.price_fen, case.expected_charges
    excess = sum(p.amount_fen for p in parts) - k * price
    if excess <= 0:
        return 0, 0, []
    bill = itemized(case.tl, service)
    if bill is not None:  # the carrier's lines tell one line too high from two lines
        confirm_ids = [c.event_id for c in case.tl.confirms if c.event_id is not None]
        # What the bill does not list yet (queried before it landed) stays beyond the tariff.
        unlisted = max(0, excess - bill.over_fen - bill.duplicate_fen)
        evidence = confirm_ids + part_ids(parts) + bill.evidence
        return bill.over_fen + unlisted, bill.duplicate_fen, evidence
    confirm_at = mark(case.tl.first_confirm)
    notices = [(m, n) for m, n in case.tl.service_notices(service) if mark(m.event) > confirm_at]
    amounts = [n.amount_fen for _, n in notices if n.amount_fen is not None]
    unit = max(amounts) if amounts else None
    if unit is not None:
        # The carrier states what one charge was: above the tariff is an overcharge,
        # whatever is left over is more charges than orders.
        over = min(excess, k * max(0, unit - price))
        rest = excess - over
    else:
        debits = len({(p.charge.start.event_id, p.charge.end.event_id) for p in parts})
        separate = debits > k and price > 0 and excess % price == 0
        over, rest = (0, excess) if separate else (excess, 0)
    step = unit or price
    duplicate = rest if step > 0 and rest % step == 0 else 0
    over += rest - duplicate
    evidence = [c.event_id for c in case.tl.confirms if c.event_id is not None]
    evidence += part_ids(parts)
    evidence += [m.event.id for m, _ in notices]
    return over, duplicate, evidence


def itemized(tl: Timeline, service: ServiceInfo) -> Split | None:
    """The itemized bill's split of the service's charges since the first confirmation."""
    items = detail_lines(tl)
    if items is None or tl.first_confirm is None:
        return None
    until = tl.ack.event.at if tl.ack else None
    return split(items, service, tl.first_confirm.at, until, len(tl.confirms) if
                 service.billing == "per_use" else 1)  # fmt: skip


def overcharge(case: Case) -> list[Finding]:
    over, _, evidence = _excess(case)
    if over <= 0 or case.service is None:
        return []
    parts = case.money.of(Phase.IN_SERVICE)
    return [
        finding(
            "OVERCHARGE",
            case.service,
            over,
            last_at(parts),
            evidence,
            f"{yuan(over)} charged beyond the declared tariff of {yuan(case.service.price_fen)}"
            f" × {case.expected_charges}",
        )
    ]


def duplicate_charge(case: Case) -> list[Finding]:
    _, duplicate, evidence = _excess(case)
    if duplicate <= 0 or case.service is None:
        return []
    parts = case.money.of(Phase.IN_SERVICE)
    return [
        finding(
            "DUPLICATE_CHARGE",
            case.service,
            duplicate,
            last_at(parts),
            evidence,
            f"{yuan(duplicate)} charged again for {case.expected_charges} confirmed order(s)",
        )
    ]

"""One rule per violation code of spec/violations.md.

Each rule reads the analysed run (`Case`) and returns at most one finding for
its code (evidence of several events merged), except where a code names
several culprits (one UNSOLICITED_* finding per offending service or SP).

Two kinds of rule, and why they differ:
- presence rules (a charge, a listing, a message seen) need only the evidence;
- absence rules (no answer, no acknowledgement, no content) also need the
  whole window to have been watched by a healthy modem: a run with a
  modem fault, or one that stopped early, cannot prove an absence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from dialbot.judge.charges import Attribution, Part, Phase
from dialbot.judge.classify import MsgClass, check_prompt, stated_price
from dialbot.judge.history import REPLIES, unwanted
from dialbot.judge.itemized import Split, split
from dialbot.judge.itemized import lines as detail_lines
from dialbot.judge.model import Action, ActionKind, Finding, PastOrder, ServiceInfo, Severity
from dialbot.judge.timeline import Intruder, Mark, Msg, Timeline, between, mark

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

_ACTIVE = (MsgClass.WELCOME, MsgClass.CONTENT)


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


def _part_ids(parts: Iterable[Part]) -> list[int]:
    return [i for p in parts for i in p.charge.evidence]


def _last(parts: list[Part]) -> datetime:
    return max(p.charge.end.at for p in parts)


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}元"


def _active_before(case: Case, until: Mark | None) -> list[int]:
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


# --- money ----------------------------------------------------------------------------------


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
            _last(parts),
            [case.tl.order.event_id, *prompts, *_part_ids(parts)],
            f"{_yuan(total)} charged after the order {when}",
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
            _last(parts),
            [*cancels, case.tl.ack.event.id, *_part_ids(parts)],
            f"{_yuan(total)} charged after the cancellation was acknowledged",
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
        evidence = confirm_ids + _part_ids(parts) + bill.evidence
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
    evidence += _part_ids(parts)
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
            _last(parts),
            evidence,
            f"{_yuan(over)} charged beyond the declared tariff of {_yuan(case.service.price_fen)}"
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
            _last(parts),
            evidence,
            f"{_yuan(duplicate)} charged again for {case.expected_charges} confirmed order(s)",
        )
    ]


# --- subscriptions ----------------------------------------------------------------------------


def unconfirmed_subscription(case: Case) -> list[Finding]:
    tl, service = case.tl, case.service
    if not case.probe or service is None or service.key in tl.run.legit or tl.order is None:
        return []
    until = mark(tl.first_confirm) if tl.first_confirm else None
    ids = _active_before(case, until)
    if not ids:
        return []
    at = max(e.at for e in tl.run.events if e.id in ids)
    when = "before it was confirmed" if tl.confirms else "although it was never confirmed"
    return [
        finding(
            "UNCONFIRMED_SUBSCRIPTION",
            service,
            0,
            at,
            [tl.order.event_id, *[m.event.id for m in tl.prompts()], *ids],
            f"{service.service_name} became active {when}",
        )
    ]


def unsolicited_subscription(case: Case) -> list[Finding]:
    tl, out = case.tl, []
    leftover = case.money.of(Phase.BEFORE_ORDER)
    pre_listed = []
    if case.probe and case.service is not None and case.service.key not in tl.run.legit:
        order = mark(tl.order) if tl.order else None
        pre_listed = [
            lst for lst in tl.listed(case.service) if order is not None and mark(lst.event) < order
        ]
    culprits: list[tuple[str, str, str, list[int], datetime, list[Part]]] = []
    for intruder, parts in case.money.absorbed:
        sp_code, service_code = intruder.key if intruder.service else ("", "")
        culprits.append(
            (
                sp_code,
                service_code,
                intruder.label,
                list(intruder.evidence),
                intruder.first_seen,
                parts,
            )
        )
    if pre_listed and case.service is not None:
        s = case.service
        ids = [lst.event.id for lst in pre_listed]
        culprits.append(
            (s.sp_code, s.service_code, s.service_name, ids, pre_listed[0].event.at, [])
        )
    if leftover:
        if len(culprits) == 1:
            culprits[0][5].extend(leftover)
        else:
            culprits.append(("", "", "an unidentified service", [], _last(leftover), leftover))
    for sp_code, service_code, label, ids, seen, parts in culprits:
        amount = sum(p.amount_fen for p in parts)
        at = max([seen, *[p.charge.end.at for p in parts]])
        detail = f"{label} found active on the SIM although no probe ordered it"
        if amount:
            detail += f"; {_yuan(amount)} charged"
        out.append(
            finding(
                "UNSOLICITED_SUBSCRIPTION",
                None,
                amount,
                at,
                [*ids, *_part_ids(parts)],
                detail,
                sp_code=sp_code,
                service_code=service_code,
            )
        )
    return out


def cancel_failed(case: Case) -> list[Finding]:
    tl, service = case.tl, case.service
    if not case.probe or service is None or not tl.cancels:
        return []
    ids: list[int] = []
    reasons: list[str] = []
    for lst in tl.listed(service):
        before = [c for c in tl.cancels if mark(c) < mark(lst.event)]
        if not before:
            continue
        due = tl.ack is not None and mark(tl.ack.event) < mark(lst.event)
        due = due or any((d := tl.observed(c)) is not None and d <= lst.event.at for c in before)
        if due:
            ids.append(lst.event.id)
            reasons.append("still listed after the cancellation")
    if not tl.faulted and _active_before(case, None) + _charged_ids(case):
        for cancel in (c for c in tl.cancels if c.kind is ActionKind.CANCEL):
            deadline = tl.observed(cancel)
            if deadline is None:
                continue
            acks = [m for m in tl.sp_msgs(mark(cancel), deadline) if m.cls is MsgClass.CANCEL_ACK]
            if not acks:
                ids.append(cancel.event_id or 0)
                reasons.append(f"no acknowledgement within {cancel.window_s:g}s")
    if not ids:
        return []
    at = max((e.at for e in tl.run.events if e.id in ids), default=tl.run.observed_until)
    cancels = [c.event_id for c in tl.cancels]
    return [
        finding(
            "CANCEL_FAILED",
            service,
            0,
            at,
            [*cancels, *ids],
            f"{service.service_name}: " + "; ".join(dict.fromkeys(reasons)),
        )
    ]


def _charged_ids(case: Case) -> list[int]:
    return _part_ids(p for p in case.money.parts if p.phase is not Phase.BEFORE_ORDER)


# --- prompts -------------------------------------------------------------------------------------


def price_mismatch(case: Case) -> list[Finding]:
    service = case.service
    if not case.probe or service is None:
        return []
    bad = [(m, p) for m in case.tl.prompts() if (p := stated_price(m.event.text)) is not None]
    bad = [(m, p) for m, p in bad if p != service.price_fen]
    if not bad:
        return []
    stated = ", ".join(dict.fromkeys(_yuan(p) for _, p in bad))
    return [
        finding(
            "PRICE_MISMATCH",
            service,
            0,
            bad[0][0].event.at,
            [m.event.id for m, _ in bad],
            f"prompt states {stated}, catalogue declares {_yuan(service.price_fen)}",
        )
    ]


def prompt_incomplete(case: Case) -> list[Finding]:
    service = case.service
    if not case.probe or service is None:
        return []
    bad: list[tuple[Msg, list[str]]] = []
    for m in case.tl.prompts():
        missing = check_prompt(m.event.text, service).omissions()
        if missing:
            bad.append((m, missing))
    if not bad:
        return []
    missing_all = list(dict.fromkeys(x for _, miss in bad for x in miss))
    return [
        finding(
            "PROMPT_INCOMPLETE",
            service,
            0,
            bad[0][0].event.at,
            [m.event.id for m, _ in bad],
            "prompt omits " + ", ".join(missing_all),
        )
    ]


# --- messages --------------------------------------------------------------------------------------


def message_after_cancel(case: Case) -> list[Finding]:
    out = [_after_cancel(order, msgs) for order, msgs in unwanted(case.tl).after_cancel.values()]
    tl = case.tl
    if not case.probe or tl.ack is None:
        return out
    late = [m for m in tl.sp_msgs(mark(tl.ack.event)) if m.cls not in REPLIES]
    if late:
        out.append(
            finding(
                "MESSAGE_AFTER_CANCEL",
                case.service,
                0,
                late[0].event.at,
                [tl.ack.event.id, *[m.event.id for m in late]],
                f"{len(late)} message(s) after the cancellation was acknowledged",
            )
        )
    return out


def _after_cancel(order: PastOrder, msgs: list[Msg]) -> Finding:
    """Messages, outside any probe, after an earlier run's cancellation was acknowledged."""
    acked = order.cancel_acked_at.isoformat(timespec="seconds") if order.cancel_acked_at else "?"
    return finding(
        "MESSAGE_AFTER_CANCEL",
        None,
        0,
        msgs[0].event.at,
        [*order.evidence, *[m.event.id for m in msgs]],
        f"{len(msgs)} message(s) after the cancellation was acknowledged ({acked})",
        sp_code=order.sp_code,
        service_code=order.service_code,
    )


def unsolicited_message(case: Case) -> list[Finding]:
    out = []
    for key, msgs in unwanted(case.tl).spam.items():
        sender = msgs[0].sender
        out.append(
            finding(
                "UNSOLICITED_MESSAGE",
                sender,
                0,
                msgs[0].event.at,
                [m.event.id for m in msgs],
                f"{len(msgs)} message(s) from {sender.sp_name if sender else key}"
                " to a SIM with no subscription with it",
                service_code=sender.service_code if sender else "",
            )
        )
    return out


# --- answers and content -------------------------------------------------------------------------


def _content_actions(case: Case) -> list[Action]:
    """The actions after which content is due: per-use confirmations, monthly uses."""
    tl, service = case.tl, case.service
    if service is None or not tl.confirms:
        return []
    if service.billing == "per_use":
        return list(tl.confirms)
    first = mark(tl.confirms[0])
    return [a for a in tl.run.actions if a.kind is ActionKind.USE and mark(a) > first]


def _undelivered(case: Case) -> list[Action]:
    tl = case.tl
    out = []
    for action in _content_actions(case):
        deadline = tl.observed(action)
        if deadline is None:
            continue
        got = [m for m in tl.sp_msgs(mark(action), deadline) if m.cls is MsgClass.CONTENT]
        if not got:
            out.append(action)
    return out


def content_not_delivered(case: Case) -> list[Finding]:
    tl, service = case.tl, case.service
    if not case.probe or service is None or tl.faulted:
        return []
    missing = _undelivered(case)
    paid = case.money.total(Phase.IN_SERVICE)
    notices = [m.event.id for m, _ in tl.service_notices(service)]
    if not missing or (paid <= 0 and not notices):
        return []
    amount = min(paid, service.price_fen * len(missing))
    at = max(tl.observed(a) or a.at for a in missing)
    return [
        finding(
            "CONTENT_NOT_DELIVERED",
            service,
            amount,
            at,
            [*(a.event_id for a in missing), *notices, *_part_ids(case.money.of(Phase.IN_SERVICE))],
            f"confirmed and charged, but no content within the window ({len(missing)} time(s))",
        )
    ]


def no_response(case: Case) -> list[Finding]:
    tl = case.tl
    if not case.probe or tl.faulted:
        return []
    suppressed = set()
    if content_not_delivered(case):
        suppressed |= {id(a) for a in _undelivered(case)}
    if any("acknowledgement" in f.detail for f in cancel_failed(case)):
        suppressed |= {id(a) for a in tl.cancels}
    asked = [
        a for a in tl.run.actions if a.kind in (ActionKind.ORDER, ActionKind.USE, ActionKind.CANCEL)
    ]
    asked += tl.confirms
    silent = []
    for action in sorted(asked, key=lambda a: a.at):
        deadline = tl.observed(action)
        if deadline is None or id(action) in suppressed:
            continue
        if not tl.sp_msgs(mark(action), deadline):
            silent.append(action)
    if not silent:
        return []
    what = ", ".join(f"{a.kind.value} ({a.window_s:g}s)" for a in silent)
    at = max(tl.observed(a) or a.at for a in silent)
    return [
        finding(
            "NO_RESPONSE",
            case.service,
            0,
            at,
            [a.event_id for a in silent],
            f"no answer to: {what}",
        )
    ]


RULES: dict[str, Callable[[Case], list[Finding]]] = {
    "UNCONFIRMED_CHARGE": unconfirmed_charge,
    "UNCONFIRMED_SUBSCRIPTION": unconfirmed_subscription,
    "UNSOLICITED_SUBSCRIPTION": unsolicited_subscription,
    "OVERCHARGE": overcharge,
    "CHARGE_AFTER_CANCEL": charge_after_cancel,
    "CANCEL_FAILED": cancel_failed,
    "DUPLICATE_CHARGE": duplicate_charge,
    "PRICE_MISMATCH": price_mismatch,
    "PROMPT_INCOMPLETE": prompt_incomplete,
    "MESSAGE_AFTER_CANCEL": message_after_cancel,
    "UNSOLICITED_MESSAGE": unsolicited_message,
    "NO_RESPONSE": no_response,
    "CONTENT_NOT_DELIVERED": content_not_delivered,
}

# The rules a cut run (RunRecord.cut: its process died or failed mid-run) is
# judged by: each needs only what was seen — a message nobody asked for, a
# charge or a subscription before any confirmation, something after an
# acknowledged cancel. Excluded: the absence rules (NO_RESPONSE,
# CONTENT_NOT_DELIVERED, CANCEL_FAILED by an unanswered or unfinished
# cancel) and the ones that weigh all the charges of a finished run against
# all its confirmations (OVERCHARGE, DUPLICATE_CHARGE, PRICE_MISMATCH,
# PROMPT_INCOMPLETE): a cut run may have stopped before the rest came.
SEEN_RULES = frozenset(
    {
        "UNCONFIRMED_CHARGE",
        "UNCONFIRMED_SUBSCRIPTION",
        "UNSOLICITED_SUBSCRIPTION",
        "CHARGE_AFTER_CANCEL",
        "MESSAGE_AFTER_CANCEL",
        "UNSOLICITED_MESSAGE",
    }
)

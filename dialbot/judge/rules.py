"""One rule per violation code of spec/violations.md.

Each rule reads the analysed run (`Case`) and returns at most one finding for
its code (evidence of several events merged), except where a code names
several culprits (one UNSOLICITED_* finding per offending service or SP). The money
rules are in `rules_money`, what they all read (`Case`, `finding`) in `case`.

Two kinds of rule, and why they differ:
- presence rules (a charge, a listing, a message seen) need only the evidence;
- absence rules (no answer, no acknowledgement, no content) also need the
  whole window to have been watched by a healthy modem: a run with a
  modem fault, or one that stopped early, cannot prove an absence.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from dialbot.judge.case import Case, active_before, finding, last_at, part_ids, yuan
from dialbot.judge.charges import Part, Phase
from dialbot.judge.classify import MsgClass, check_prompt, stated_price
from dialbot.judge.history import REPLIES, unwanted
from dialbot.judge.model import Action, ActionKind, Finding, PastOrder
from dialbot.judge.rules_money import (
    charge_after_cancel,
    duplicate_charge,
    overcharge,
    unconfirmed_charge,
)
from dialbot.judge.timeline import Msg, mark

_ACTIVE = (MsgClass.WELCOME, MsgClass.CONTENT)


# --- subscriptions ----------------------------------------------------------------------------


def unconfirmed_subscription(case: Case) -> list[Finding]:
    tl, service = case.tl, case.service
    if not case.probe or service is None or service.key in tl.run.legit or tl.order is None:
        return []
    until = mark(tl.first_confirm) if tl.first_confirm else None
    ids = active_before(case, until)
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
            culprits.append(("", "", "an unidentified service", [], last_at(leftover), leftover))
    for sp_code, service_code, label, ids, seen, parts in culprits:
        amount = sum(p.amount_fen for p in parts)
        at = max([seen, *[p.charge.end.at for p in parts]])
        detail = f"{label} found active on the SIM although no probe ordered it"
        if amount:
            detail += f"; {yuan(amount)} charged"
        out.append(
            finding(
                "UNSOLICITED_SUBSCRIPTION",
                None,
                amount,
                at,
                [*ids, *part_ids(parts)],
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
    if not tl.faulted and active_before(case, None) + _charged_ids(case):
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
    return part_ids(p for p in case.money.parts if p.phase is not Phase.BEFORE_ORDER)


# --- prompts -------------------------------------------------------------------------------------


def price_mismatch(case: Case) -> list[Finding]:
    service = case.service
    if not case.probe or service is None:
        return []
    bad = [(m, p) for m in case.tl.prompts() if (p := stated_price(m.event.text)) is not None]
    bad = [(m, p) for m, p in bad if p != service.price_fen]
    if not bad:
        return []
    stated = ", ".join(dict.fromkeys(yuan(p) for _, p in bad))
    return [
        finding(
            "PRICE_MISMATCH",
            service,
            0,
            bad[0][0].event.at,
            [m.event.id for m, _ in bad],
            f"prompt states {stated}, catalogue declares {yuan(service.price_fen)}",
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
            [*(a.event_id for a in missing), *notices, *part_ids(case.money.of(Phase.IN_SERVICE))],
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

"""The judge's MMS rules (spec/channels.md §4, §7): an MMS service judged as an SMS one, plus
what its content fetches show.

An MMS subscription is ordered, confirmed, charged and cancelled by SMS, so
every SMS rule applies as it is (charges, prompts, cancellation); its
notifications are WAP PUSH messages from the SP's access number, so
MESSAGE_AFTER_CANCEL and UNSOLICITED_MESSAGE count them like SMS. What
differs is the content: it is delivered only when fetching a notification's
Content-Location gave a non-empty message (`mms` events, recorded by the
`fetch_mms` step). So the SMS CONTENT_NOT_DELIVERED (any message counts) is
replaced here:

- `CONTENT_NOT_DELIVERED`: the subscription was charged (or the carrier
  noticed the order), and for some occasion content was due - the first
  confirmation (a monthly MMS service sends its first issue with the order;
  a per-use one its content) and each later use - no notification fetched
  a non-empty content before the next occasion, the cancellation or the end
  of the run: no notification at all, an empty one, one the MMSC refused
  (404 …) or one that could not be decoded.

A fetch that failed because the modem's stack or bearer failed never reaches
here: the run is `infra_failed` and not judged. The carrier's traffic fee
for the fetches (`data_fee_fen_per_kb` × (started KB + 1 KB per request)) is
given back before the money is attributed, so it is never an SP charge.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from dialbot.judge.case import Case, finding
from dialbot.judge.charges import Phase, attribute
from dialbot.judge.model import Action, ActionKind, Event, Finding, RunRecord
from dialbot.judge.rules import RULES
from dialbot.judge.timeline import Timeline, build, intruders, mark

KB = 1024


def judge_mms(run: RunRecord) -> list[Finding]:
    """Every finding of an MMS probe run: the SMS rules, with the MMS content rule."""
    tl = build(net_of_traffic(run))
    found = intruders(tl)
    expected = 0
    if run.service is not None and tl.confirms:
        expected = 1 if run.service.billing == "monthly" else len(tl.confirms)
    price = run.service.price_fen if run.service else 0
    case = Case(tl, found, attribute(tl, found, expected * price), expected)
    findings = [
        f for code, rule in RULES.items() if code != "CONTENT_NOT_DELIVERED" for f in rule(case)
    ]
    findings += content_not_delivered(case)
    return sorted(findings, key=lambda f: (f.observed_at, f.code))


def fetches(run: RunRecord) -> list[Event]:
    return sorted(
        (e for e in run.events if e.kind == "mms" and e.data is not None), key=lambda e: e.at
    )


def _notified_at(event: Event) -> datetime:
    raw = (event.data or {}).get("notified_at")
    return datetime.fromisoformat(raw) if isinstance(raw, str) else event.at


def net_of_traffic(run: RunRecord) -> RunRecord:
    """The run with each balance reading raised by the traffic fee its fetches may explain."""
    fee = run.carrier.data_fee_fen_per_kb
    got = [e for e in fetches(run) if isinstance((e.data or {}).get("status"), int)]
    if fee <= 0 or not got:
        return run
    events = sorted(run.events, key=lambda e: (e.at, e.id))
    balances = [e for e in events if e.kind == "balance" and e.balance_fen is not None]
    raised: dict[int, int] = {}
    given_back = 0
    for start, end in zip(balances, balances[1:], strict=False):
        inside = [e for e in got if mark(start) < mark(e) < mark(end)]
        allowance = fee * sum(-(-int((e.data or {}).get("size", 0)) // KB) + 1 for e in inside)
        drop = (start.balance_fen or 0) - (end.balance_fen or 0)
        given_back += min(allowance, max(drop, 0))
        raised[end.id] = (end.balance_fen or 0) + given_back
    adjusted = tuple(
        dataclasses.replace(e, balance_fen=raised[e.id]) if e.id in raised else e
        for e in run.events
    )
    return dataclasses.replace(run, events=adjusted)


def occasions(tl: Timeline) -> list[Action]:
    """When content was due: the first confirmation, then each later use (per-use: each
    confirmation)."""
    service = tl.service
    if service is None or not tl.confirms:
        return []
    if service.billing == "per_use":
        return list(tl.confirms)
    first = tl.confirms[0]
    uses = [a for a in tl.run.actions if a.kind is ActionKind.USE and mark(a) > mark(first)]
    return [first, *uses]


def content_not_delivered(case: Case) -> list[Finding]:
    tl, service = case.tl, case.service
    if not case.probe or service is None or tl.faulted:
        return []
    paid = case.money.total(Phase.IN_SERVICE)
    notices = [m.event.id for m, _ in tl.service_notices(service)]
    due = occasions(tl)
    if not due or (paid <= 0 and not notices):
        return []
    ends = [a.at for a in due[1:]]
    ends.append(tl.cancels[0].at if tl.cancels else tl.run.observed_until)
    got = fetches(tl.run)
    missing: list[tuple[Action, list[Event]]] = []
    for action, end in zip(due, ends, strict=True):
        mine = [e for e in got if action.at <= _notified_at(e) < end]
        if not any((e.data or {}).get("delivered") is True for e in mine):
            missing.append((action, mine))
    if not missing:
        return []
    amount = min(paid, service.price_fen * len(missing)) if paid > 0 else 0
    evidence = [a.event_id for a, _ in missing if a.event_id is not None]
    evidence += [e.id for _, mine in missing for e in mine]
    evidence += [int(str((e.data or {}).get("push_event"))) for _, mine in missing for e in mine]
    evidence += notices + [p.charge.end.event_id for p in case.money.of(Phase.IN_SERVICE)]
    seen = sum(len(mine) for _, mine in missing)
    at = max([e.at for _, mine in missing for e in mine] + [a.at for a, _ in missing])
    return [
        finding(
            "CONTENT_NOT_DELIVERED",
            service,
            amount,
            at,
            list(dict.fromkeys(evidence)),
            f"charged, but {len(missing)} MMS occasion(s) delivered nothing "
            f"({seen} notification(s) fetched empty, refused or undecodable; "
            f"{len(missing) - sum(1 for _, m in missing if m)} without any notification)",
        )
    ]

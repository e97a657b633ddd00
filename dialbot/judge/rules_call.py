"""Voice (IVR) runs: what the calls cost against what the robot measured (channels.md §5, §7).

An ivr run is a sequence of `call` events, each between two balance
readings and usually followed by the carrier's subscription list. For each
call the judge allows, per started billing minute of the longest the call
can have lasted as the robot measured it (from the earliest moment the
answer can have happened to the moment ATH was answered), the information
fee (the catalogue price of a `per_minute` line) plus the carrier's airtime
`call_fee_fen_per_min`. What the balance lost beyond that is:

- `UNCONFIRMED_SUBSCRIPTION` first, up to the listed monthly fee, when a
  subscription to the SP appeared in the list after a call in which keys
  were pressed and no confirmation SMS came (a monthly fee so charged is not
  `CALL_OVERBILLED`);
- `CALL_NOT_RELEASED` when +CLCC still listed the call after the robot hung
  up (the call, or its billing, went on): the rest is charged to it;
- `CALL_OVERBILLED` otherwise.

Nothing is judged for a call with no balance before or after it, and a call
that could not be placed never reaches the judge (an infrastructure
failure).
"""

from __future__ import annotations

import math
import re

from dialbot.judge.model import Event, Finding, ListedItem, RunRecord, ServiceInfo, Severity

CALL_SEVERITY: dict[str, Severity] = {
    "CALL_OVERBILLED": "critical",
    "CALL_NOT_RELEASED": "major",
    "UNCONFIRMED_SUBSCRIPTION": "critical",
}
#: Clock noise between the robot's readings and the network's (URC latency, scheduling).
SLACK_S = 0.25
_EPSILON = 1e-6
_CONFIRM = re.compile(r"确认|回复\s*[A-Za-z是]")


def started_minutes(seconds: float, minute_s: float) -> int:
    """Billing minutes begun by `seconds` of call (0 s: none, 60 s: one, 61 s: two)."""
    if seconds <= _EPSILON:
        return 0
    return max(1, math.ceil(seconds / minute_s - _EPSILON))


def judge_calls(run: RunRecord) -> list[Finding]:
    """Every finding the run's calls prove, in call order."""
    service = run.service
    if service is None or run.infra_failed:
        return []
    events = sorted(run.events, key=lambda e: e.id)
    calls = [i for i, e in enumerate(events) if e.kind == "call" and e.call]
    findings: list[Finding] = []
    listed: set[str] = set()
    for n, index in enumerate(calls):
        end = calls[n + 1] if n + 1 < len(calls) else len(events)
        before = _last(events[:index], "balance")
        after = _first(events[index + 1 : end], "balance")
        listing = _first(events[index + 1 : end], "subscriptions")
        findings += _one_call(run, service, events, index, before, after, listing, listed)
        if listing is not None:
            listed = _names(listing, service)
    return findings


def _one_call(
    run: RunRecord,
    service: ServiceInfo,
    events: list[Event],
    index: int,
    before: Event | None,
    after: Event | None,
    listing: Event | None,
    listed_before: set[str],
) -> list[Finding]:
    call = events[index]
    rec = call.call or {}
    out: list[Finding] = []
    minute = float(run.carrier.billing_minute_s)
    longest = rec.get("max_connected_s")
    allowed = started_minutes(float(longest) + SLACK_S, minute) if longest is not None else 0
    per_minute = (service.price_fen if service.billing == "per_minute" else 0) + (
        run.carrier.call_fee_fen_per_min
    )
    expected = allowed * per_minute
    charged = None
    if before is not None and after is not None:
        if before.balance_fen is not None and after.balance_fen is not None:
            charged = before.balance_fen - after.balance_fen
    excess = 0 if charged is None else charged - expected
    evidence = [e.id for e in (before, call, after) if e is not None]
    new = listing is not None and bool(_names(listing, service) - listed_before)
    if listing is not None and new and rec.get("dtmf"):
        new = not _confirmation_between(events, index, listing)
    if listing is not None and new and rec.get("dtmf"):
        fee = _monthly_fee(listing, service)
        taken = max(0, excess) if fee is None else min(max(0, excess), fee)
        excess -= taken
        keys = "".join(str(k.get("key", "")) for k in rec.get("dtmf", []))
        out.append(
            _finding(
                "UNCONFIRMED_SUBSCRIPTION",
                service,
                taken,
                listing,
                [*evidence, listing.id],
                f"after DTMF {keys!r} on {service.access_number} the carrier lists a "
                f"subscription to {service.sp_name} that no SMS confirmation preceded",
            )
        )
    measured = rec.get("measured_s")
    if rec.get("ended_by") == "robot" and rec.get("released_t") is None:
        out.append(
            _finding(
                "CALL_NOT_RELEASED",
                service,
                max(0, excess),
                call,
                evidence,
                f"+CLCC still listed the call {rec.get('release_polls', 0)} times after the "
                f"hang-up; charged {_fen(charged)} for {_secs(measured)} connected",
            )
        )
    elif excess > 0 and charged is not None:
        out.append(
            _finding(
                "CALL_OVERBILLED",
                service,
                excess,
                after or call,
                evidence,
                f"charged {charged} fen for a call of {_secs(measured)} (at most "
                f"{_secs(longest)}): {allowed} started minute(s) × {per_minute} fen "
                f"(information fee + airtime) = {expected} fen",
            )
        )
    return out


def _finding(
    code: str, service: ServiceInfo, amount: int, at: Event, evidence: list[int], detail: str
) -> Finding:
    return Finding(
        code=code,
        severity=CALL_SEVERITY[code],
        amount_fen=max(0, amount),
        observed_at=at.at,
        evidence=sorted(set(evidence)),
        sp_code=service.sp_code,
        service_code=service.service_code,
        detail=detail,
    )


def _first(events: list[Event], kind: str) -> Event | None:
    return next((e for e in events if e.kind == kind), None)


def _last(events: list[Event], kind: str) -> Event | None:
    return next((e for e in reversed(events) if e.kind == kind), None)


def _names(listing: Event, service: ServiceInfo) -> set[str]:
    """The listed items that belong to the SP under probe (its name or its service's)."""
    items: tuple[ListedItem, ...] = listing.items or ()
    return {
        i.service
        for i in items
        if i.service == service.service_name
        or (i.sp and (i.sp == service.sp_name or service.sp_name in i.sp))
    }


def _confirmation_between(events: list[Event], index: int, listing: Event) -> bool:
    """An incoming SMS asking to confirm an order, between the call and the list."""
    return any(
        e.kind == "sms_in" and _CONFIRM.search(e.text)
        for e in events[index + 1 :]
        if e.id < listing.id
    )


def _monthly_fee(listing: Event, service: ServiceInfo) -> int | None:
    """The listed monthly fee of the service (``开心声讯（掌上乐园），8.00元/月``), in fen."""
    match = re.search(
        re.escape(service.service_name) + r"[^；;。]*?(\d+(?:\.\d{1,2})?)元/月", listing.text
    )
    if match is None:
        return None
    yuan, _, cents = match.group(1).partition(".")
    return int(yuan) * 100 + int((cents + "00")[:2])


def _fen(value: int | None) -> str:
    return "an unknown amount" if value is None else f"{value} fen"


def _secs(value: object) -> str:
    return f"{float(value):.1f} s" if isinstance(value, int | float) else "an unknown time"

"""The judge's WAP rules (spec/channels.md §6-7): pages, redirects, balances, lists.

A WAP run's evidence is its `http` events (what led to each page: the entry
URL, a link and its text, a redirect, the carrier page's confirm/cancel),
its balance readings and the carrier's lists; its actions are the robot's
clicks (ORDER on the order link, CONFIRM / WITHHOLD on the carrier's page).

- `FORCED_REDIRECT`: a redirect chain the robot did not start by clicking
  (the entry page itself) reached the carrier's confirmation page, or money
  left the SIM while only that chain had run;
- `MISLEADING_LINK`: a link whose text does not say it orders (进入, 免费 …)
  reached the carrier's page, or money left the SIM while exploring;
- `PROMPT_INCOMPLETE`: the SP's page with the order link states no price
  (明码标价), or the carrier's page omits it;
- `UNCONFIRMED_CHARGE` / `UNCONFIRMED_SUBSCRIPTION`: money left the SIM, or
  the carrier lists the service, without the robot confirming on the
  carrier's page first;
- `OVERCHARGE`: after the confirmation, more than the tariff left the SIM.

The carrier's traffic fee is never an SP charge: between two balance
readings, `data_fee_fen_per_kb` × (started KB of each page seen + 1 KB per
request) is allowed as traffic before anything counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dialbot.judge.model import ActionKind, Event, Finding, RunRecord, ServiceInfo, Severity
from dialbot.judge.timeline import item_matches

ORDER_WORDS = re.compile(r"订购|订阅|定制|包月|开通|购买|付费|扣费|计费|资费|确认|支付")
SEVERITY: dict[str, Severity] = {
    "FORCED_REDIRECT": "major",
    "MISLEADING_LINK": "major",
    "PROMPT_INCOMPLETE": "minor",
    "UNCONFIRMED_CHARGE": "critical",
    "UNCONFIRMED_SUBSCRIPTION": "critical",
    "OVERCHARGE": "critical",
}
KB = 1024
# What a cut WAP run (RunRecord.cut) is judged by: each needs only what was seen — a
# redirect or link that reached the carrier's page, a page loaded whole without its
# price, money or a listing before any confirmation. OVERCHARGE weighs every charge
# after the confirmation against the tariff: a cut run may have stopped mid-way.
WAP_SEEN_RULES = frozenset(
    {
        "FORCED_REDIRECT",
        "MISLEADING_LINK",
        "PROMPT_INCOMPLETE",
        "UNCONFIRMED_CHARGE",
        "UNCONFIRMED_SUBSCRIPTION",
    }
)


@dataclass(frozen=True)
class Interval:
    """What happened between two balance readings, net of the traffic fee."""

    start: Event
    end: Event
    http: tuple[Event, ...]
    charged_fen: int  # beyond the traffic allowance (0 when within it)


def _http(run: RunRecord) -> list[Event]:
    return [e for e in run.events if e.kind == "http" and e.data is not None]


def _led(event: Event) -> dict[str, object]:
    led = (event.data or {}).get("led_by")
    return led if isinstance(led, dict) else {}


def _chains(run: RunRecord) -> dict[object, list[Event]]:
    chains: dict[object, list[Event]] = {}
    for event in _http(run):
        chains.setdefault(_led(event).get("chain"), []).append(event)
    return chains


def traffic_allowance(events: list[Event], fee_per_kb: int) -> int:
    """The most the carrier may take as traffic for these page loads."""
    if fee_per_kb <= 0:
        return 0
    kb = sum(-(-int((e.data or {}).get("size", 0)) // KB) + 1 for e in events)
    return fee_per_kb * kb


def intervals(run: RunRecord) -> list[Interval]:
    balances = [e for e in run.events if e.kind == "balance" and e.balance_fen is not None]
    pages = _http(run)
    out = []
    fee = run.carrier.data_fee_fen_per_kb
    for start, end in zip(balances, balances[1:], strict=False):
        inside = tuple(p for p in pages if start.at <= p.at <= end.at)
        assert start.balance_fen is not None and end.balance_fen is not None
        drop = start.balance_fen - end.balance_fen - traffic_allowance(list(inside), fee)
        out.append(Interval(start, end, inside, max(drop, 0)))
    return out


def _finding(
    code: str, service: ServiceInfo, at: object, evidence: list[int], detail: str, amount: int = 0
) -> Finding:
    return Finding(
        code=code,
        severity=SEVERITY[code],
        amount_fen=amount,
        observed_at=at,  # type: ignore[arg-type]
        evidence=sorted(set(evidence)),
        sp_code=service.sp_code,
        service_code=service.service_code,
        detail=detail,
    )


def judge_wap(run: RunRecord) -> list[Finding]:
    """Every WAP violation the run's evidence proves."""
    service = run.service
    if service is None:
        return []
    spans = intervals(run)
    findings = [
        *_forced_redirect(run, service, spans),
        *_misleading_link(run, service, spans),
        *_prompt_incomplete(run, service),
        *_unconfirmed(run, service, spans),
    ]
    return sorted(findings, key=lambda f: (f.observed_at, f.code))


def _charged_in(spans: list[Interval], events: list[Event]) -> Interval | None:
    """The interval holding these page loads, if money left the SIM in it."""
    ids = {e.id for e in events}
    return next((s for s in spans if s.charged_fen and ids & {h.id for h in s.http}), None)


def _only_roots(span: Interval, roots: set[str]) -> bool:
    return all(_led(e).get("root") in roots for e in span.http)


def _forced_redirect(run: RunRecord, service: ServiceInfo, spans: list[Interval]) -> list[Finding]:
    out = []
    for chain in _chains(run).values():
        if _led(chain[0]).get("how") != "open":
            continue
        hops = [e for e in chain if _led(e).get("how") == "redirect"]
        if not hops:
            continue
        reached = any((e.data or {}).get("carrier_page") for e in chain)
        span = _charged_in(spans, chain)
        if reached or (span is not None and _only_roots(span, {"open", "decline"})):
            evidence = [e.id for e in chain] + ([span.start.id, span.end.id] if span else [])
            detail = f"the entry page redirected {len(hops)} time(s) to {hops[-1].data and hops[-1].data.get('url')} without a click"
            out.append(_finding("FORCED_REDIRECT", service, hops[0].at, evidence, detail))
    return out


def _misleading_link(run: RunRecord, service: ServiceInfo, spans: list[Interval]) -> list[Finding]:
    out = []
    for chain in _chains(run).values():
        led = _led(chain[0])
        text = str(led.get("text", ""))
        if led.get("how") != "link" or text.strip() == service.subscribe_cmd.strip():
            continue
        if ORDER_WORDS.search(text):
            continue
        reached = any((e.data or {}).get("carrier_page") for e in chain)
        span = _charged_in(spans, chain)
        charged = span is not None and _only_roots(span, {"link", "decline"})
        if reached or charged:
            evidence = [e.id for e in chain] + ([span.start.id, span.end.id] if span else [])
            detail = f"the link {text!r} led to an order" + (" and a charge" if charged else "")
            out.append(_finding("MISLEADING_LINK", service, chain[0].at, evidence, detail))
    return out


def _prompt_incomplete(run: RunRecord, service: ServiceInfo) -> list[Finding]:
    out = []
    for event in _http(run):
        data = event.data or {}
        links = data.get("links") or []
        has_order = any(
            isinstance(x, list) and x and str(x[0]).strip() == service.subscribe_cmd.strip()
            for x in links
        )
        if data.get("carrier_page") or has_order:
            if not data.get("price_shown"):
                where = (
                    "the carrier's confirmation page"
                    if data.get("carrier_page")
                    else "the SP's order page"
                )
                detail = f"{where} does not state the price"
                out.append(_finding("PROMPT_INCOMPLETE", service, event.at, [event.id], detail))
                break
    return out


def _unconfirmed(run: RunRecord, service: ServiceInfo, spans: list[Interval]) -> list[Finding]:
    out = []
    confirms = [a for a in run.actions if a.kind is ActionKind.CONFIRM]
    first_confirm = min((a.at for a in confirms), default=None)
    charged_confirmed = 0
    for span in spans:
        if not span.charged_fen:
            continue
        evidence = [span.start.id, span.end.id, *(e.id for e in span.http)]
        if first_confirm is None or span.end.at < first_confirm:
            detail = f"{span.charged_fen} fen left the SIM without the carrier's confirmation"
            out.append(
                _finding(
                    "UNCONFIRMED_CHARGE", service, span.end.at, evidence, detail, span.charged_fen
                )
            )
        else:
            charged_confirmed += span.charged_fen
            expected = service.price_fen
            if charged_confirmed > expected:
                detail = f"{charged_confirmed} fen charged for a {expected} fen tariff"
                excess = charged_confirmed - expected
                out.append(_finding("OVERCHARGE", service, span.end.at, evidence, detail, excess))
    for event in run.events:
        if event.kind != "subscriptions" or not event.items:
            continue
        if not any(item_matches(item, service) for item in event.items):
            continue
        if first_confirm is None or event.at < first_confirm:
            detail = "the carrier lists the service although the robot never confirmed"
            out.append(_finding("UNCONFIRMED_SUBSCRIPTION", service, event.at, [event.id], detail))
            break
    return out

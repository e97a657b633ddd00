"""The month after an order: what a followed subscription costs on later nights.

A `follow` run (`RunRecord.followed`) holds the SIM's evidence since the
followed orders were placed: the carrier's reminders (from 10086901, as the
watch recorded them), balance readings and, where the carrier offers it,
itemized bills taken on later nights. Each charge of a followed service that
lands after `since` (earlier ones were judged on earlier nights) is
attributed to the order that caused it:

- after the cancellation was acknowledged → CHARGE_AFTER_CANCEL (critical);
- a renewal with no carrier reminder naming the service since the previous
  charge (or the order) → RENEWAL_WITHOUT_REMINDER (major); the first charge
  of a free trial without one → TRIAL_CONVERTED_SILENTLY (critical);
- one line above the tariff → OVERCHARGE; more lines than one in a billing
  run (lines within `BURST` of each other) → DUPLICATE_CHARGE.

Charges come from the itemized bill when the run holds one (each line is a
charge of a named service at a known second); otherwise from balance
deltas, and then only when one order is followed (a drop cannot be split
between services): a drop above the tariff is an OVERCHARGE (a duplicate
cannot be told from it without lines). An honest renewal, reminded and
billed at the tariff, gives nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from dialbot.judge.case import finding
from dialbot.judge.charges import charges
from dialbot.judge.classify import MsgClass, is_carrier
from dialbot.judge.itemized import bursts
from dialbot.judge.itemized import lines as detail_lines
from dialbot.judge.model import Finding, FollowedOrder, RunRecord
from dialbot.judge.timeline import Msg, Timeline, build

# Lines this close are one billing run (a duplicate is billed with the charge it repeats);
# lines further apart are separate charges, each judged as a renewal of its own.
BURST = timedelta(seconds=5)
_REMINDER = re.compile(r"续订|续费|到期|即将|将于|扣费提醒|计费提醒")
_ORDERED = re.compile(r"成功订购|订购成功|已订购|成功点播")

# add(code, amount_fen, observed_at, evidence, why): one more count against a code.
Add = Callable[[str, int, datetime, Iterable[int], str], None]


@dataclass(frozen=True)
class Billed:
    """One billing run of a followed service: when (at the earliest / latest), how much."""

    earliest: datetime
    latest: datetime
    amounts: tuple[int, ...]  # one per line; a single total from balance readings
    evidence: tuple[int, ...]
    itemized: bool

    @property
    def total(self) -> int:
        return sum(self.amounts)


def _billed(tl: Timeline, order: FollowedOrder, alone: bool) -> list[Billed]:
    """Every billing run of the followed service since its order, oldest first."""
    items = detail_lines(tl)
    if items is not None:
        mine = [x for x in items if x.of(order.service) and x.at >= _second(order.ordered_at)]
        return [
            Billed(
                run[0].at,
                run[-1].at,
                tuple(x.amount_fen for x in run),
                tuple(sorted({x.event_id for x in run})),
                True,
            )
            for run in bursts(mine, BURST)
        ]
    if not alone:
        return []
    # A drop while the SIM was talking to an SP (another probe, or the order itself) may be
    # that conversation's money: the benefit of the doubt goes to the followed SP.
    talks = [e.at for e in tl.run.events if e.kind == "sms_out" and not is_carrier(e.peer,
                                                                                 tl.run.carrier)]  # fmt: skip
    return [
        Billed(c.start.at, c.end.at, (c.amount_fen,), tuple(c.evidence), False)
        for c in charges(tl)
        if c.end.at > order.ordered_at and not any(c.start.at < t <= c.end.at for t in talks)
    ]


def _second(at: datetime) -> datetime:
    return at.replace(microsecond=0)


def reminders(tl: Timeline, order: FollowedOrder) -> list[Msg]:
    """The carrier's reminders naming the followed service (not its order notice)."""
    return [
        m
        for m, _ in tl.service_notices(order.service)
        if m.cls is MsgClass.ORDER_NOTICE
        and _REMINDER.search(m.event.text)
        and not _ORDERED.search(m.event.text)
    ]


def _judge_order(tl: Timeline, order: FollowedOrder, alone: bool) -> list[Finding]:
    service = order.service
    runs = _billed(tl, order, alone)
    told = reminders(tl, order)
    out: dict[str, tuple[int, datetime, list[int], list[str]]] = {}

    def add(code: str, amount: int, at: datetime, ids: Iterable[int], why: str) -> None:
        total, last, evidence, whys = out.get(code, (0, at, [], []))
        out[code] = (total + amount, max(last, at), [*evidence, *ids], [*whys, why])

    previous: Billed | None = None
    paid_before = False
    for run in runs:
        # Before `since`: the order's own charge (judged by its run) or an earlier night's.
        # A line in the very second of `since` may be either: it counts as judged already.
        new = run.latest > _second(order.since) if run.itemized else run.latest > order.since
        if new:
            _judge_run(order, run, previous, paid_before, told, add)
        previous, paid_before = run, True
    return [
        finding(code, service, amount, at, [*order.evidence, *ids], "; ".join(whys))
        for code, (amount, at, ids, whys) in out.items()
    ]


def _judge_run(
    order: FollowedOrder,
    run: Billed,
    previous: Billed | None,
    paid_before: bool,
    told: list[Msg],
    add: Add,
) -> None:
    """Attribute one billing run of the followed service (see the module docstring)."""
    price = order.service.price_fen
    when = run.latest.isoformat(timespec="seconds")
    if order.cancel_acked_at is not None and run.earliest > order.cancel_acked_at:
        add("CHARGE_AFTER_CANCEL", run.total, run.latest, run.evidence,
            f"{_yuan(run.total)} charged on {when}, after the cancellation was acknowledged "
            f"({order.cancel_acked_at.isoformat(timespec='seconds')})")  # fmt: skip
        return
    since = previous.latest if previous is not None else order.ordered_at
    reminded = [m for m in told if since < m.event.at <= run.latest]
    if not reminded:
        ids = (*run.evidence, *(previous.evidence if previous else ()))
        if order.trial and not paid_before:
            add("TRIAL_CONVERTED_SILENTLY", min(run.total, price), run.latest, ids,
                f"free trial turned paid ({_yuan(min(run.total, price))} on {when}) "
                "with no reminder from the carrier")  # fmt: skip
        else:
            add("RENEWAL_WITHOUT_REMINDER", min(run.total, price), run.latest, ids,
                f"renewed ({_yuan(min(run.total, price))} on {when}) with no reminder "
                "from the carrier since the previous charge")  # fmt: skip
    if run.itemized:
        over = sum(max(0, a - price) for a in run.amounts)
        duplicate = sum(min(a, price) for a in run.amounts[1:])
    else:
        over, duplicate = max(0, run.total - price), 0
    if over:
        add("OVERCHARGE", over, run.latest, run.evidence,
            f"{_yuan(over)} beyond the tariff of {_yuan(price)} on {when}")  # fmt: skip
    if duplicate:
        add("DUPLICATE_CHARGE", duplicate, run.latest, run.evidence,
            f"{_yuan(duplicate)} charged again on {when} ({len(run.amounts)} lines)")  # fmt: skip


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}元"


def judge_followup(run: RunRecord) -> list[Finding]:
    """Every violation the month after the followed orders shows, oldest first."""
    if run.infra_failed or not run.followed:
        return []
    tl = build(run)
    alone = len(run.followed) == 1
    found = [f for order in run.followed for f in _judge_order(tl, order, alone)]
    return sorted(found, key=lambda f: (f.observed_at, f.code))


FOLLOWUP_CODES = (
    "RENEWAL_WITHOUT_REMINDER",
    "TRIAL_CONVERTED_SILENTLY",
    "CHARGE_AFTER_CANCEL",
    "OVERCHARGE",
    "DUPLICATE_CHARGE",
)

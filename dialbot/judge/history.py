"""What a message from an SP is, given the SIM's past orders with that SP.

A message that is not part of a probe's conversation with its SP (the watch's
messages; a probe's messages from other SPs) is judged by where the SIM
stood with that SP when it arrived (`RunRecord.history`):

- an order of that SP may still be active (not yet ended, or ended only after
  the message) → no finding here: what an active subscription sends is not
  spam, and a cancellation that failed is CANCEL_FAILED's business;
- the SIM had a subscription of that SP and its cancellation was acknowledged
  before the message → MESSAGE_AFTER_CANCEL against that service (minor);
- the SIM never had a subscription with that SP (never ordered, or ordered
  and declined) → UNSOLICITED_MESSAGE, spam (major).

An SP's own reply to a cancellation (a late 成功退订, 未订购, 已订购) is an
answer, never a message after the cancellation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from dialbot.judge.classify import MsgClass
from dialbot.judge.model import PastOrder
from dialbot.judge.timeline import Msg, Timeline, mark

REPLIES = (MsgClass.CANCEL_ACK, MsgClass.NEGATIVE, MsgClass.ALREADY)


class Standing(Enum):
    NEVER = "never"  # no subscription with the SP then, none cancelled before: spam
    ACTIVE = "active"  # an order of the SP may be active then
    CANCELLED = "cancelled"  # a subscription of the SP was cancelled (acknowledged) before


@dataclass(frozen=True)
class Verdict:
    standing: Standing
    order: PastOrder | None = None  # the cancelled order, when CANCELLED


def _active(order: PastOrder, at: datetime) -> bool:
    """An order not yet ended is active; an ended one was until its acknowledgement
    (or, with none, until the list no longer showed it)."""
    if order.ended_at is None:
        return True
    end = order.cancel_acked_at or order.ended_at
    return at < end


def standing(
    history: tuple[PastOrder, ...], sp_code: str, service_code: str, at: datetime
) -> Verdict:
    """Where the SIM stood with the SP at `at`; the cancelled order of the message's own
    service is preferred, then the most recently cancelled one."""
    orders = [o for o in history if o.sp_code == sp_code and o.ordered_at <= at]
    if any(_active(o, at) for o in orders):
        return Verdict(Standing.ACTIVE)
    cancelled = [o for o in orders if o.cancel_acked_at is not None and o.cancel_acked_at <= at]
    if not cancelled:
        return Verdict(Standing.NEVER)
    best = max(cancelled, key=lambda o: (o.service_code == service_code, o.cancel_acked_at))
    return Verdict(Standing.CANCELLED, best)


@dataclass
class Unwanted:
    """Messages outside the probe's conversation that count against their SP."""

    spam: dict[str, list[Msg]] = field(default_factory=dict)  # SP code, or the sender
    after_cancel: dict[tuple[str, str], tuple[PastOrder, list[Msg]]] = field(default_factory=dict)


def unwanted(tl: Timeline) -> Unwanted:
    """Sort the run's SP messages into spam and messages after a cancellation (see above)."""
    run = tl.run
    legit_sps = {sp for sp, _ in run.legit}
    probed_sp = run.service.sp_code if run.service else None
    order = mark(tl.order) if tl.order else None
    out = Unwanted()
    for m in tl.msgs:
        if m.carrier:
            continue
        sp = m.sender.sp_code if m.sender else ""
        if sp and sp in legit_sps:
            continue
        if sp and sp == probed_sp and order is not None and mark(m.event) > order:
            continue  # the probe is talking to this SP: judged by the other rules
        if m.sender is not None:
            verdict = standing(run.history, sp, m.sender.service_code, m.event.at)
            if verdict.standing is Standing.ACTIVE:
                continue
            if verdict.order is not None:
                if m.cls not in REPLIES:
                    key = verdict.order.key
                    out.after_cancel.setdefault(key, (verdict.order, []))[1].append(m)
                continue
        out.spam.setdefault(sp or m.event.peer, []).append(m)
    return out

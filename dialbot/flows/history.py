"""A SIM's past orders with some SPs, read back from the database for the judge.

The watch must tell an SP that keeps writing after a cancellation (minor)
from one that writes to a SIM it never had a subscription with (spam,
major). What it needs is durable already, so it is derived, never kept in
memory (a restarted process must judge the same way):

- every order a probe placed left a cleanup obligation (stored before the
  order was sent): which service, from when;
- its discharge says when the carrier's list stopped showing it, and how:
  `sp_keyword` / `cancel_all` only happen to a service the list still
  showed, i.e. one the SIM did have; `not_subscribed` to one it had no more
  (cancelled by the probe itself) or never had (declined);
- the SIM's evidence says whether and when the cancellation was
  acknowledged: the SP's 成功退订 from its access number (for `sp_keyword`,
  `not_subscribed`, `manual`), the carrier's cancel-all reply (for
  `cancel_all`: an SP's earlier 成功退订 was evidently false then), or,
  lacking a message, the list that no longer showed it.

An obligation still pending is an order that may be active: the judge then
finds nothing against the SP's messages (a failed cancel is CANCEL_FAILED).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from sqlalchemy.orm import Session, sessionmaker

from dialbot.carrier import CarrierProfile
from dialbot.db.evidence import EventRow, events_of_sim
from dialbot.db.obligations import Obligation, orders_of_sim
from dialbot.flows.intake import national
from dialbot.flows.record import network_time
from dialbot.judge.classify import MsgClass, classify, is_carrier
from dialbot.judge.model import PastOrder

LISTED_GONE = ("sp_keyword", "cancel_all")  # the list showed it, then no longer did


def past_orders(
    db: sessionmaker[Session], sim: str, carrier: CarrierProfile, sp_codes: Iterable[str]
) -> tuple[PastOrder, ...]:
    """The SIM's orders with these SPs (oldest first), each with how it ended."""
    obligations = orders_of_sim(db, sim, sp_codes)
    ended = [ob for ob in obligations if ob.discharged_at is not None]
    events: list[EventRow] = []
    if ended:
        since = min(ob.created_at for ob in ended)
        events = events_of_sim(db, sim, ("sms_in", "subscriptions"), since)
    return tuple(past_order(ob, events, carrier) for ob in obligations)


def past_order(ob: Obligation, events: list[EventRow], carrier: CarrierProfile) -> PastOrder:
    """One order and its end, from the SIM's events between the order and the discharge."""
    if ob.discharged_at is None:
        return PastOrder(ob.sp_code, ob.service_code, ob.created_at)
    window = [e for e in events if ob.created_at < e.at <= ob.discharged_at]
    ack = _acknowledgement(ob, window, carrier)
    lists = [e for e in window if e.kind == "subscriptions"]
    gone = lists[-1] if lists else None  # the list that no longer showed it
    base = PastOrder(ob.sp_code, ob.service_code, ob.created_at, ended_at=ob.discharged_at)
    if ack is not None:
        proof = (ack.id,) + ((gone.id,) if gone is not None and gone.id > ack.id else ())
        return replace(base, cancel_acked_at=network_time(ack), evidence=proof)
    if ob.method in LISTED_GONE:
        proof = (gone.id,) if gone is not None else ()
        return replace(base, cancel_acked_at=ob.discharged_at, evidence=proof)
    return base  # ended without a cancellation: declined, or never active


def _acknowledgement(
    ob: Obligation, window: list[EventRow], carrier: CarrierProfile
) -> EventRow | None:
    """The last acknowledgement before the list stopped showing the service (see above)."""
    found: EventRow | None = None
    for event in window:
        if event.kind != "sms_in":
            continue
        peer = national(event.peer or "")
        cls = classify(event.text or "", peer, carrier)
        if ob.method == "cancel_all":
            if is_carrier(peer, carrier) and cls is MsgClass.CANCEL_ALL_ACK:
                found = event
        elif peer.startswith(ob.access_number) and cls is MsgClass.CANCEL_ACK:
            found = event
    return found

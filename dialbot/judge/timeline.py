"""One run read once: classified messages, the probe's key moments, listings, notices.

Every rule asks the same questions (when was the order sent, was it validly
confirmed, when was the cancellation acknowledged, which messages came from
the SP under probe), so they are answered here once and the rules stay small.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dialbot.judge.classify import (
    MsgClass,
    Notice,
    classify,
    is_carrier,
    parse_notice,
    parse_subscriptions,
)
from dialbot.judge.listing import Relation, best_match, relation, service_key
from dialbot.judge.model import Action, ActionKind, Event, ListedItem, RunRecord, ServiceInfo

# Evidence timestamps can tie (SMS time stamps have whole seconds): events are
# ordered by (time, id), the id being the position in the append-only log.
Mark = tuple[datetime, int]


def mark(item: Event | Action) -> Mark:
    """Where an event or a probe action sits in the run's order."""
    if isinstance(item, Event):
        return (item.at, item.id)
    return (item.at, item.event_id if item.event_id is not None else -1)


@dataclass(frozen=True)
class Msg:
    """A received message with its class and, when known, the catalogued service behind it."""

    event: Event
    cls: MsgClass
    carrier: bool
    sender: ServiceInfo | None  # catalogue entry whose access number the sender starts with
    probed_sp: bool  # sent from the access number of the service under probe


@dataclass(frozen=True)
class Listing:
    """A subscription list the carrier gave: when, and what was on it."""

    event: Event
    items: tuple[ListedItem, ...]


@dataclass(frozen=True)
class Intruder:
    """A service seen active (listed, or in a carrier notice) that no probe ordered here."""

    key: tuple[str, str]  # (sp_code, service_code); ("", name) when not catalogued
    service: ServiceInfo | None
    label: str  # how the carrier named it
    first_seen: datetime
    evidence: tuple[int, ...]
    budget_fen: int  # what one charge of it may explain


@dataclass
class Timeline:
    """The analysed run."""

    run: RunRecord
    msgs: list[Msg] = field(default_factory=list)
    listings: list[Listing] = field(default_factory=list)
    notices: list[tuple[Msg, Notice]] = field(default_factory=list)
    order: Action | None = None
    confirms: list[Action] = field(default_factory=list)  # valid: a prompt came before
    unprompted_confirms: list[Action] = field(default_factory=list)
    cancels: list[Action] = field(default_factory=list)
    ack: Msg | None = None  # first acknowledgement of a cancellation
    faulted: bool = False

    @property
    def service(self) -> ServiceInfo | None:
        return self.run.service

    @property
    def first_confirm(self) -> Action | None:
        return self.confirms[0] if self.confirms else None

    def sp_msgs(self, after: Mark | None = None, until: Mark | datetime | None = None) -> list[Msg]:
        """Messages from the SP under probe after `after`, up to a deadline or before a mark."""
        return [m for m in self.msgs if m.probed_sp and between(m.event, after, until)]

    def prompts(self) -> list[Msg]:
        after = mark(self.order) if self.order else None
        return [m for m in self.sp_msgs(after) if m.cls is MsgClass.PROMPT]

    def observed(self, action: Action) -> datetime | None:
        """The deadline of an action's window if the run watched all of it, else None."""
        if action.window_s is None:
            return None
        deadline = action.at + timedelta(seconds=action.window_s)
        return deadline if deadline <= self.run.observed_until else None

    def service_notices(self, service: ServiceInfo) -> list[tuple[Msg, Notice]]:
        return [(m, n) for m, n in self.notices if notice_matches(n, service)]

    def listed(self, service: ServiceInfo) -> list[Listing]:
        """Listings on which `service` appears."""
        return [lst for lst in self.listings if any(item_matches(i, service) for i in lst.items)]


def between(event: Event, after: Mark | None, until: Mark | datetime | None) -> bool:
    """Whether `event` comes after the mark `after` and up to `until`.

    `until` is a deadline (inclusive) when a datetime, an event or action (exclusive)
    when a mark.
    """
    if after is not None and mark(event) <= after:
        return False
    if isinstance(until, datetime):
        return event.at <= until
    return until is None or mark(event) < until


# --- matching names -------------------------------------------------------------------------


def _key(name: str) -> str:
    return service_key(name)


def item_matches(item: ListedItem, service: ServiceInfo) -> bool:
    """Whether a listed item is positively this service (names as billed, tolerantly: see
    `dialbot.judge.listing`); a finding never rests on a guess."""
    return relation(item, service) is Relation.MATCH


def notice_matches(notice: Notice, service: ServiceInfo) -> bool:
    item = ListedItem(service=notice.service_name, sp=notice.sp_name)
    return item_matches(item, service)


def find_by_item(item: ListedItem, catalogue: tuple[ServiceInfo, ...]) -> ServiceInfo | None:
    return best_match(item, catalogue)


def find_by_sender(peer: str, catalogue: tuple[ServiceInfo, ...]) -> ServiceInfo | None:
    """The catalogued service whose access number is the longest prefix of `peer`."""
    best: ServiceInfo | None = None
    for s in catalogue:
        if s.access_number and peer.startswith(s.access_number):
            if best is None or len(s.access_number) > len(best.access_number):
                best = s
    return best


_LINK_HOST = re.compile(r"https?://([A-Za-z0-9.-]+)")


def find_by_link(text: str, catalogue: tuple[ServiceInfo, ...]) -> ServiceInfo | None:
    """The WAP service whose site a message links to (a WAP PUSH names its SP by its href)."""
    hosts = set(_LINK_HOST.findall(text))
    if not hosts:
        return None
    return next((s for s in catalogue if s.url and _host(s.url) in hosts), None)


def _host(url: str) -> str:
    match = _LINK_HOST.match(url)
    return match.group(1) if match else ""


# --- building the timeline --------------------------------------------------------------------


def build(run: RunRecord) -> Timeline:
    """Classify every event of the run and find its key moments."""
    tl = Timeline(run=run)
    events = sorted(run.events, key=lambda e: (e.at, e.id))
    # the probed service first: on a tie (same names twice in a catalogue) it is the one seen
    catalogue = ((run.service,) if run.service else ()) + run.catalogue
    for event in events:
        if event.kind == "modem_fault":
            tl.faulted = True
        elif event.kind == "sms_in":
            tl.msgs.append(_msg(event, run, catalogue))
        elif event.kind == "subscriptions":
            items = event.items
            if items is None:
                items = parse_subscriptions(event.text, run.carrier)
            if items is not None:
                tl.listings.append(Listing(event, items))
    for msg in tl.msgs:
        if msg.cls is MsgClass.ORDER_NOTICE:
            notice = parse_notice(msg.event.text)
            if notice is not None:
                tl.notices.append((msg, notice))
        elif msg.cls is MsgClass.SUBSCRIPTION_LIST and not _has_listing_near(tl, msg.event):
            items = parse_subscriptions(msg.event.text, run.carrier)
            if items is not None:
                tl.listings.append(Listing(msg.event, items))
    tl.listings.sort(key=lambda lst: (lst.event.at, lst.event.id))
    _actions(tl)
    return tl


def _msg(event: Event, run: RunRecord, catalogue: tuple[ServiceInfo, ...]) -> Msg:
    carrier = is_carrier(event.peer, run.carrier)
    cls = classify(event.text, event.peer, run.carrier)
    sender = None
    if not carrier:
        sender = find_by_sender(event.peer, catalogue) or find_by_link(event.text, catalogue)
    probed = bool(
        not carrier
        and run.service is not None
        and run.service.access_number
        and event.peer.startswith(run.service.access_number)
    )
    return Msg(event, cls, carrier, sender, probed)


def _has_listing_near(tl: Timeline, event: Event) -> bool:
    """A `subscriptions` event already records this reply (the runner parsed it)."""
    return any(abs((lst.event.at - event.at).total_seconds()) < 1.0 for lst in tl.listings)


def _actions(tl: Timeline) -> None:
    actions = sorted(tl.run.actions, key=lambda a: a.at)
    orders = [a for a in actions if a.kind is ActionKind.ORDER]
    tl.order = orders[0] if orders else None
    for action in actions:
        if action.kind is ActionKind.CONFIRM:
            # A confirmation only counts when a prompt asked for it before it was sent.
            prompted = any(
                m.cls is MsgClass.PROMPT and mark(m.event) < mark(action) for m in tl.sp_msgs()
            )
            (tl.confirms if prompted else tl.unprompted_confirms).append(action)
        elif action.kind in (ActionKind.CANCEL, ActionKind.CANCEL_ALL):
            tl.cancels.append(action)
    if tl.cancels:
        first = mark(tl.cancels[0])
        acks = [
            m
            for m in tl.msgs
            if mark(m.event) > first
            and (
                (m.probed_sp and m.cls is MsgClass.CANCEL_ACK)
                or (m.carrier and m.cls is MsgClass.CANCEL_ALL_ACK)
            )
        ]
        tl.ack = acks[0] if acks else None


def intruders(tl: Timeline) -> list[Intruder]:
    """Services found active on the SIM that neither this probe nor any other ordered here."""
    run = tl.run
    found: dict[tuple[str, str], Intruder] = {}
    # the probed service first: on a tie (same names twice in a catalogue) it is the one seen
    catalogue = ((run.service,) if run.service else ()) + run.catalogue

    def note(item: ListedItem, event: Event, budget: int | None) -> None:
        service = find_by_item(item, catalogue)
        if run.service is not None and service is not None and service.key == run.service.key:
            return
        key = service.key if service else ("", _key(item.service))
        if key in run.legit:
            return
        price = budget if budget is not None else (service.price_fen if service else 0)
        label = f"{item.service}（{item.sp}）" if item.sp else item.service
        old = found.get(key)
        if old is None:
            found[key] = Intruder(key, service, label, event.at, (event.id,), price)
        else:
            first = min(old.first_seen, event.at)
            found[key] = Intruder(
                key, service, label, first, old.evidence + (event.id,), old.budget_fen
            )

    for msg, notice in tl.notices:
        note(ListedItem(notice.service_name, notice.sp_name), msg.event, notice.amount_fen)
    for listing in tl.listings:
        for item in listing.items:
            note(item, listing.event, None)
    return sorted(found.values(), key=lambda i: i.first_seen)

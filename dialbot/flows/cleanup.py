"""Discharging cleanup obligations: a probe never leaves a SIM subscribed.

Before a SIM does anything else (a probe, a hygiene check, after a crash and
restart) its pending obligations are discharged here, in the order the
design fixes: look at the carrier's subscription list; for what is still
listed, the SP's own cancel keyword; for what survives that (or has no
keyword), the carrier's cancel-all, and when the carrier has no working
cancel-all (today's 10086 treats `00000` like `0000`), the reply with the
list's item numbers. Only a complete list on which nothing may be the service
discharges an obligation: the carrier names services and SPs as billed, so
an item is matched tolerantly (`dialbot.judge.listing`) and one that is not
positively another service counts as still subscribed; a list with a missing
part or cut off discharges nothing. What cannot be cleaned raises
`CleanupFailed`: that SIM must not be used until it is.

Everything sent and received here is evidence too, recorded without a run
(a cleanup is housekeeping, not a probe of the SP).

The month after (`keep`): a `keep` probe leaves its monthly subscription on
purpose until the obligation's `keep_until`, to live through a renewal. Only
a cleaner made with ``keep=True`` (a follow-up night, a hygiene check, the
keep probe's own cleanup, the scheduler's recovery pass) spares it then, and
does not count it as a leak; at or after `keep_until` it is cancelled like
any other. Every other cleaning (before a probe of an SP, the last-resort
cleaning) fails closed: it cancels a kept subscription at once, which ends
the keeping early (the follow-up then watches for charges after the
cancellation instead). Sparing fails closed too: a listed item is spared only
when it is positively the kept service (`Relation.MATCH`) on a complete list,
and a kept subscription ends its keeping only when a complete list shows
nothing that may be it (`gone`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from dialbot.carrier import CarrierProfile
from dialbot.db.obligations import (
    Obligation,
    discharge,
    pending_for_sim,
    record_attempt,
)
from dialbot.errors import DialbotError
from dialbot.fleet import CarrierServices, Lease
from dialbot.flows.intake import Foreign, Intake
from dialbot.flows.record import Recorder, now
from dialbot.judge.classify import MsgClass
from dialbot.judge.listing import Relation, relation
from dialbot.judge.model import ListedItem, ServiceInfo

Catalogue = Mapping[tuple[str, str], ServiceInfo]
LIST_TRIES = 2  # an incomplete list is asked for once more before it counts


class CleanupFailed(DialbotError):
    """A SIM is still subscribed after every way of cancelling was tried."""


@dataclass(frozen=True)
class CleanupSettings:
    """Windows (already time-scaled) for the SP's acknowledgement and the carrier's replies."""

    ack_window_s: float = 60.0
    carrier_timeout_s: float = 60.0


@dataclass(frozen=True)
class Seen:
    """A subscription list as cleanup read it: what it shows, and whether it is whole."""

    items: tuple[ListedItem, ...]
    complete: bool = True
    why_incomplete: str = ""


@dataclass
class CleanupReport:
    discharged: dict[int, str] = field(default_factory=dict)  # obligation id -> method
    cancel_all_sent: bool = False
    remaining: tuple[ListedItem, ...] = ()


def still_listed(ob: Obligation, seen: Seen, catalogue: Catalogue) -> tuple[ListedItem, ...]:
    """The items that may be the obligation's service: every item that is not positively
    another one (all of them when the service is not in the catalogue)."""
    service = catalogue.get((ob.sp_code, ob.service_code))
    if service is None:
        return seen.items
    others = tuple(catalogue.values())
    return tuple(i for i in seen.items if relation(i, service, others) is not Relation.OTHER)


def gone(ob: Obligation, seen: Seen, catalogue: Catalogue) -> bool:
    """Fail closed: only a whole list on which nothing may be the service discharges it."""
    return seen.complete and not still_listed(ob, seen, catalogue)


def item_numbers(items: tuple[ListedItem, ...]) -> list[int]:
    """The numbers to send back to cancel these items (their own, else their position)."""
    return [item.number or pos for pos, item in enumerate(items, start=1)]


def explains(ob: Obligation, item: ListedItem, catalogue: Catalogue) -> bool:
    """Whether a listed item is positively the obligation's service (a guess is not enough:
    an item that may be something else is never spared for being kept)."""
    service = catalogue.get((ob.sp_code, ob.service_code))
    if service is None:
        return False
    return relation(item, service, tuple(catalogue.values())) is Relation.MATCH


def unkept(
    items: tuple[ListedItem, ...], kept: list[Obligation], catalogue: Catalogue
) -> tuple[ListedItem, ...]:
    """The listed items that no deliberately kept obligation positively explains."""
    return tuple(i for i in items if not any(explains(ob, i, catalogue) for ob in kept))


def leaks(seen: Seen, kept: list[Obligation], catalogue: Catalogue) -> bool:
    """Whether the list may show anything but the subscriptions deliberately kept: an item
    no kept obligation positively explains, or any item at all on an incomplete list (its
    missing part may hold a leak)."""
    if not seen.complete:
        return bool(seen.items)
    return bool(unkept(seen.items, kept, catalogue))


def kept_now(db: sessionmaker[Session], sim: str) -> list[Obligation]:
    """The SIM's obligations deliberately kept subscribed right now."""
    at = now()
    return [ob for ob in pending_for_sim(db, sim) if ob.kept(at)]


class Cleaner:
    """Cleans one leased SIM."""

    def __init__(
        self,
        db: sessionmaker[Session],
        lease: Lease,
        sim: str,
        carrier: CarrierProfile,
        catalogue: Catalogue,
        foreign: Foreign,
        settings: CleanupSettings | None = None,
        keep: bool = False,
    ) -> None:
        self.db = db
        self.keep = keep
        self.lease = lease
        self.sim = sim
        self.carrier = carrier
        self.catalogue = catalogue
        self.foreign = foreign
        self.settings = settings or CleanupSettings()
        self.recorder = Recorder(db, sim)
        self.services = CarrierServices(lease, carrier, self.settings.carrier_timeout_s)

    def _intake(self, access: str | None) -> Intake:
        return Intake(self.lease, self.recorder, self.carrier, access, self.foreign)

    def _leaks(self, seen: Seen, kept: list[Obligation]) -> bool:
        """Whether the list may show anything but the subscriptions deliberately kept."""
        return leaks(seen, kept, self.catalogue)

    def listing(self) -> Seen:
        """Ask the carrier for the SIM's subscriptions (recorded); asked once more when the
        list comes back incomplete (a lost part may be a one-off)."""
        seen = Seen(())
        for _ in range(LIST_TRIES):
            self._intake(None).drain()
            result = self.services.subscriptions()
            self.recorder.subscriptions(result, label="cleanup")
            seen = Seen(result.items, result.complete, result.why_incomplete)
            if seen.complete:
                break
        return seen

    def sp_keyword(self, ob: Obligation) -> None:
        """Send the SP's cancel keyword and wait for its acknowledgement (or the window)."""
        assert ob.cancel_cmd
        intake = self._intake(ob.access_number)
        intake.drain()
        at = now()
        self.lease.send_sms(ob.access_number, ob.cancel_cmd)
        self.recorder.sms_out(ob.access_number, ob.cancel_cmd, at, purpose="cancel")
        intake.wait_for(
            lambda r: not r.carrier and r.cls in (MsgClass.CANCEL_ACK, MsgClass.NEGATIVE),
            self.settings.ack_window_s,
            since=at,
        )

    def cancel_all(self) -> Seen:
        """The carrier's cancel-all; what it leaves listed is cancelled by item number."""
        intake = self._intake(None)
        intake.drain()
        at = now()
        result = self.services.cancel_all()
        self.recorder.sms_out(self.carrier.service_number, self.carrier.cancel_all, at, "cancel")
        if result.evidence.messages:
            intake.take(result.evidence.messages[0])
        left = self.listing()
        if left.items:
            numbers = "，".join(str(n) for n in item_numbers(left.items))
            at = now()
            self.lease.send_sms(self.carrier.service_number, numbers)
            self.recorder.sms_out(self.carrier.service_number, numbers, at, "cancel")
            intake.wait_for(lambda r: r.carrier, self.settings.carrier_timeout_s, since=at)
            left = self.listing()
        return left

    def _discharge_gone(
        self, pending: list[Obligation], seen: Seen, method: str, report: CleanupReport
    ) -> list[Obligation]:
        """Discharge what the list proves gone; returns what is still pending."""
        for ob in pending:
            if gone(ob, seen, self.catalogue):
                report.discharged[ob.id] = discharge(self.db, ob.id, method).method or ""
        return [ob for ob in pending if ob.id not in report.discharged]

    def run(
        self,
        known: tuple[ListedItem, ...] | None = None,
        tried_keyword: frozenset[int] = frozenset(),
        clear_all: bool = True,
    ) -> CleanupReport:
        """Discharge every pending obligation of the SIM; with clear_all, leave nothing listed.

        `known` is a complete subscription list taken just before (saves asking
        again); `tried_keyword` names obligations whose SP keyword was already sent.
        """
        report = CleanupReport()
        pending = pending_for_sim(self.db, self.sim)
        at = now()
        kept = [ob for ob in pending if self.keep and ob.kept(at)]
        pending = [ob for ob in pending if ob not in kept]
        if not pending and known is not None and not (clear_all and self._leaks(Seen(known), kept)):
            return report
        seen = Seen(known) if known is not None else self.listing()
        kept = self._discharge_gone(kept, seen, "not_subscribed", report)  # gone: keeping ends
        pending = self._discharge_gone(pending, seen, "not_subscribed", report)
        keyword = [ob for ob in pending if ob.cancel_cmd and ob.id not in tried_keyword]
        if keyword:
            for ob in keyword:
                self.sp_keyword(ob)
            seen = self.listing()
            pending = self._discharge_gone(pending, seen, "sp_keyword", report)
        if pending or (clear_all and self._leaks(seen, kept)):
            report.cancel_all_sent = True
            seen = self.cancel_all()  # the carrier's cancel-all spares nothing kept
            pending = self._discharge_gone(pending, seen, "cancel_all", report)
            kept = self._discharge_gone(kept, seen, "cancel_all", report)
        report.remaining = seen.items
        if pending or (clear_all and self._leaks(seen, kept)):
            self._fail(pending, seen)
        return report

    def _fail(self, pending: list[Obligation], seen: Seen) -> None:
        listed = ", ".join(i.raw or i.service for i in seen.items) or "nothing readable"
        reason = f"still subscribed after cancel-all: {listed}"
        if not seen.complete:
            reason = f"subscription list incomplete ({seen.why_incomplete}); listed: {listed}"
        for ob in pending:
            record_attempt(self.db, ob.id, reason)
        self.recorder.note(
            "cleanup failed",
            remaining=[i.raw or i.service for i in seen.items],
            complete=seen.complete,
        )
        raise CleanupFailed(f"SIM {self.sim}: {reason}")

"""Discharging cleanup obligations: a probe never leaves a SIM subscribed.

Before a SIM does anything else (a probe, a hygiene check, after a crash and
restart) its pending obligations are discharged here, in the order the
design fixes: look at the carrier's subscription list; for what is still
listed, the SP's own cancel keyword; for what survives that (or has no
keyword), the carrier's cancel-all, and when the carrier has no working
cancel-all (today's 10086 treats `00000` like `0000`), the reply with the
list's item numbers. Only a list that no longer shows the service discharges
an obligation. What cannot be cleaned raises `CleanupFailed`: that SIM must
not be used until it is.

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
cancellation instead).
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
from dialbot.judge.model import ListedItem, ServiceInfo
from dialbot.judge.timeline import item_matches

Catalogue = Mapping[tuple[str, str], ServiceInfo]


class CleanupFailed(DialbotError):
    """A SIM is still subscribed after every way of cancelling was tried."""


@dataclass(frozen=True)
class CleanupSettings:
    """Windows (already time-scaled) for the SP's acknowledgement and the carrier's replies."""

    ack_window_s: float = 60.0
    carrier_timeout_s: float = 60.0


@dataclass
class CleanupReport:
    discharged: dict[int, str] = field(default_factory=dict)  # obligation id -> method
    cancel_all_sent: bool = False
    remaining: tuple[ListedItem, ...] = ()


def _listed(ob: Obligation, items: tuple[ListedItem, ...], catalogue: Catalogue) -> bool:
    """Whether the list still shows the obligation's service (unknown name: assume so)."""
    service = catalogue.get((ob.sp_code, ob.service_code))
    if service is None:
        return bool(items)
    return any(item_matches(item, service) for item in items)


def unkept(
    items: tuple[ListedItem, ...], kept: list[Obligation], catalogue: Catalogue
) -> tuple[ListedItem, ...]:
    """The listed items that no deliberately kept obligation explains."""
    return tuple(i for i in items if not any(_listed(ob, (i,), catalogue) for ob in kept))


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

    def _leaks(self, items: tuple[ListedItem, ...], kept: list[Obligation]) -> bool:
        """Whether the list shows anything but the subscriptions deliberately kept."""
        return bool(unkept(items, kept, self.catalogue))

    def listing(self) -> tuple[ListedItem, ...]:
        """Ask the carrier for the SIM's subscriptions (recorded)."""
        self._intake(None).drain()
        result = self.services.subscriptions()
        self.recorder.subscriptions(result, label="cleanup")
        return tuple(ListedItem(i.service, i.sp) for i in result.items)

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

    def cancel_all(self, items: tuple[ListedItem, ...]) -> tuple[ListedItem, ...]:
        """The carrier's cancel-all; when it leaves items, cancel them by item number."""
        intake = self._intake(None)
        intake.drain()
        at = now()
        result = self.services.cancel_all()
        self.recorder.sms_out(self.carrier.service_number, self.carrier.cancel_all, at, "cancel")
        if result.evidence.messages:
            intake.take(result.evidence.messages[0])
        left = self.listing()
        if left:
            numbers = "，".join(str(n) for n in range(1, len(left) + 1))
            at = now()
            self.lease.send_sms(self.carrier.service_number, numbers)
            self.recorder.sms_out(self.carrier.service_number, numbers, at, "cancel")
            intake.wait_for(lambda r: r.carrier, self.settings.carrier_timeout_s, since=at)
            left = self.listing()
        return left

    def run(
        self,
        known: tuple[ListedItem, ...] | None = None,
        tried_keyword: frozenset[int] = frozenset(),
        clear_all: bool = True,
    ) -> CleanupReport:
        """Discharge every pending obligation of the SIM; with clear_all, leave nothing listed.

        `known` is a subscription list taken just before (saves asking again);
        `tried_keyword` names obligations whose SP keyword was already sent.
        """
        report = CleanupReport()
        pending = pending_for_sim(self.db, self.sim)
        at = now()
        kept = [ob for ob in pending if self.keep and ob.kept(at)]
        pending = [ob for ob in pending if ob not in kept]
        if not pending and known is not None and not (clear_all and self._leaks(known, kept)):
            return report
        items = known if known is not None else self.listing()
        for ob in kept:  # a kept subscription that is gone ends its keeping
            if not _listed(ob, items, self.catalogue):
                report.discharged[ob.id] = discharge(self.db, ob.id, "not_subscribed").method or ""
        kept = [ob for ob in kept if ob.id not in report.discharged]
        for ob in pending:
            if not _listed(ob, items, self.catalogue):
                report.discharged[ob.id] = discharge(self.db, ob.id, "not_subscribed").method or ""
        pending = [ob for ob in pending if ob.id not in report.discharged]
        keyword = [ob for ob in pending if ob.cancel_cmd and ob.id not in tried_keyword]
        if keyword:
            for ob in keyword:
                self.sp_keyword(ob)
            items = self.listing()
            for ob in keyword:
                if not _listed(ob, items, self.catalogue):
                    report.discharged[ob.id] = discharge(self.db, ob.id, "sp_keyword").method or ""
            pending = [ob for ob in pending if ob.id not in report.discharged]
        if pending or (clear_all and self._leaks(items, kept)):
            report.cancel_all_sent = True
            items = self.cancel_all(items)  # the carrier's cancel-all spares nothing kept
            for ob in [*pending, *kept]:
                if not _listed(ob, items, self.catalogue):
                    discharge(self.db, ob.id, "cancel_all")
                    report.discharged[ob.id] = "cancel_all"
            kept = [ob for ob in kept if ob.id not in report.discharged]
        report.remaining = items
        still = [ob for ob in pending if ob.id not in report.discharged]
        if still or (clear_all and self._leaks(items, kept)):
            reason = f"still subscribed after cancel-all: {', '.join(i.service for i in items)}"
            for ob in still:
                record_attempt(self.db, ob.id, reason)
            self.recorder.note("cleanup failed", remaining=[i.service for i in items])
            raise CleanupFailed(f"SIM {self.sim}: {reason}")
        return report

"""The watch: every message that reaches a SIM outside a probe of its sender.

Whatever arrives while a SIM is idle, or during a probe of another SP, is
recorded at once (as a `watch` run of that SIM) and judged later as such,
against the SIM's history with the sender (`dialbot.flows.history`, read
from the database, so a restarted process judges alike): an SP that writes
to a SIM that never had a subscription with it is sending spam
(UNSOLICITED_MESSAGE); one that keeps writing after the SIM's subscription
was cancelled and the cancellation acknowledged, MESSAGE_AFTER_CANCEL; while
a subscription may still be active, nothing (a failed cancel is
CANCEL_FAILED). A carrier notice of an order nobody placed is an
unsolicited subscription.

Fairness: a message from an SP the SIM dealt with moments ago (a late reply
to a probe or to a cleanup's cancel keyword) is recorded but not judged —
what an SP sends right after a cancellation is judged by the probe that
cancelled, which keeps watching for that. `grace_s` is that moment.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.carrier import CarrierProfile
from dialbot.db.evidence import EventRow
from dialbot.db.findings import record_findings
from dialbot.db.models import RunState, Sim
from dialbot.db.obligations import pending_for_sim
from dialbot.db.runs import create_run, transition
from dialbot.flows.history import past_orders
from dialbot.flows.intake import national
from dialbot.flows.record import Recorder, now, to_judge_event
from dialbot.flows.runner import to_new_finding
from dialbot.judge import judge
from dialbot.judge.classify import is_carrier, parse_notice
from dialbot.judge.model import Finding, PastOrder, RunRecord, ServiceInfo
from dialbot.judge.timeline import find_by_sender, notice_matches
from dialbot.modem import IncomingMessage

# Watch runs open in this process: a restart's clean-up of runs a dead process left
# unfinished must not take them for such (a message recovered from the receipt log can
# open one before its SIM is enrolled).
_LIVE: set[int] = set()
_LIVE_LOCK = threading.Lock()


def live_watch_runs() -> frozenset[int]:
    """Ids of the watch runs this process has open (to be judged by it, not aborted)."""
    with _LIVE_LOCK:
        return frozenset(_LIVE)


def _sim_id(db: sessionmaker[Session], msisdn: str) -> int | None:
    """The SIM's database id when it was ever enrolled (so its runs can be found again)."""
    with db() as session:
        found = session.scalar(select(Sim.id).where(Sim.msisdn == msisdn))
        return int(found) if found is not None else None


@dataclass
class _Open:
    """The open watch run of one SIM and the messages it is to judge."""

    run_id: int
    recorder: Recorder
    sim: str | None  # None: a modem whose SIM's number is unknown
    judged: list[EventRow] = field(default_factory=list)


@dataclass(frozen=True)
class WatchResult:
    run_id: int
    sim: str | None
    findings: list[Finding]
    messages: int


class Watch:
    """Thread-safe sink for (SIM, message); `judge_all()` closes and judges the open runs."""

    def __init__(
        self,
        db: sessionmaker[Session],
        carrier: CarrierProfile,
        catalogue: tuple[ServiceInfo, ...],
        grace_s: float,
    ) -> None:
        self.db = db
        self.carrier = carrier
        self.catalogue = catalogue
        self.grace = timedelta(seconds=grace_s)
        self._lock = threading.Lock()
        self._sim_ids: dict[str, int | None] = {}
        self._ports: dict[str, str] = {}
        self._open: dict[str, _Open] = {}
        self._contacts: dict[tuple[str, str], tuple[datetime, datetime]] = {}

    def register(self, msisdn: str, sim_id: int | None, port: str | None = None) -> None:
        """Which SIM (database id, when known) sits behind which port."""
        with self._lock:
            if sim_id is not None or msisdn not in self._sim_ids:
                self._sim_ids[msisdn] = sim_id
            if port:
                self._ports[port] = msisdn

    def contact(self, msisdn: str, sp_code: str, start: datetime, end: datetime) -> None:
        """The SIM dealt with this SP from start to end (a probe and its cleanup): what the
        SP sends meanwhile and up to `grace_s` after is a reply, not spam."""
        with self._lock:
            self._contacts[(msisdn, sp_code)] = (start, end)

    def put_from_port(self, message: IncomingMessage) -> None:
        """A message from a modem nobody holds (the fleet's unsolicited stream).

        A modem whose SIM's number is unknown still has its messages recorded
        and judged, in a watch run of its port; the evidence names no SIM
        (the port is in the event's data): a device path is not an MSISDN,
        and PostgreSQL would refuse it in the MSISDN columns.
        """
        with self._lock:
            msisdn = self._ports.get(message.port)
        if msisdn is None:
            self._put(f"port {message.port}", None, message)
        else:
            self.put(msisdn, message)

    def put(self, msisdn: str, message: IncomingMessage) -> None:
        """Record the message now; keep it for judging unless it is a late reply."""
        self._put(msisdn, msisdn, message)

    def _put(self, key: str, msisdn: str | None, message: IncomingMessage) -> None:
        with self._lock:
            current = self._open.get(key)
            if current is None:
                sim_id = self._sim_ids.get(msisdn) if msisdn else None
                if sim_id is None and msisdn:
                    sim_id = _sim_id(self.db, msisdn)
                info = create_run(self.db, "watch", sim_id=sim_id)
                with _LIVE_LOCK:
                    _LIVE.add(info.id)
                transition(self.db, info.id, RunState.RUNNING)
                current = _Open(info.id, Recorder(self.db, msisdn, info.id), msisdn)
                self._open[key] = current
            late = msisdn is not None and self._late_reply(msisdn, message)
            row = current.recorder.sms_in(message, watch="late_reply" if late else "judged")
            if not late and row.kind == "sms_in":  # a PDU that is no message is kept, not judged
                current.judged.append(row)

    def _late_reply(self, msisdn: str, message: IncomingMessage) -> bool:
        """From an SP the SIM dealt with moments ago (or the carrier's notice about one)."""
        sender = national(message.sender)
        service: ServiceInfo | None
        if is_carrier(sender, self.carrier):
            notice = parse_notice(message.text)
            if notice is None:
                return False
            service = next((s for s in self.catalogue if notice_matches(notice, s)), None)
        else:
            service = find_by_sender(sender, self.catalogue)
        if service is None:
            return False
        seen = self._contacts.get((msisdn, service.sp_code))
        at = message.network_at  # a reply read late is still a reply
        return seen is not None and seen[0] <= at <= seen[1] + self.grace

    def _legit(self, msisdn: str) -> frozenset[tuple[str, str]]:
        """Services the SIM may legitimately hear from: those it still has obligations for."""
        return frozenset((ob.sp_code, ob.service_code) for ob in pending_for_sim(self.db, msisdn))

    def _history(self, msisdn: str, rows: list[EventRow]) -> tuple[PastOrder, ...]:
        """The SIM's past orders with the SPs behind these messages (from the database)."""
        senders = (national(row.peer or "") for row in rows if row.kind == "sms_in")
        sps = {
            s.sp_code
            for peer in senders
            if not is_carrier(peer, self.carrier)
            and (s := find_by_sender(peer, self.catalogue)) is not None
        }
        return past_orders(self.db, msisdn, self.carrier, sps)

    def judge_all(self) -> list[WatchResult]:
        """Judge and close every open watch run (call when the SIMs are idle, e.g. sweep end)."""
        with self._lock:
            opened, self._open = self._open, {}
            results = []
            for current in opened.values():
                results.append(self._judge(current))
            return results

    def _judge(self, current: _Open) -> WatchResult:
        transition(self.db, current.run_id, RunState.JUDGING)
        record = RunRecord(
            run_id=current.run_id,
            flow="watch",
            events=tuple(to_judge_event(row) for row in current.judged),
            observed_until=now(),
            carrier=self.carrier,
            catalogue=self.catalogue,
            legit=self._legit(current.sim) if current.sim else frozenset(),
            history=self._history(current.sim, current.judged) if current.sim else (),
        )
        findings = judge(record) if current.judged else []
        new = [to_new_finding(f, current.sim) for f in findings]
        record_findings(self.db, current.run_id, new)
        transition(self.db, current.run_id, RunState.DONE)
        with _LIVE_LOCK:
            _LIVE.discard(current.run_id)
        return WatchResult(current.run_id, current.sim, findings, len(current.recorder.rows))

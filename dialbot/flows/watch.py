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

A watch run is closed and judged by `judge_all()`: periodically during a
night, and always when the sweep, probe, night or worker that owns the
watch ends — cleanly or through an error — so no watch run outlives its
process as `running`. One that does (the process was killed) is judged on
restart by `dialbot.flows.recovery`. `judge_all()` never raises for one
run: a run someone else moved meanwhile is judged as recovery would, and a
run that cannot be judged is aborted with the reason (and logged).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.carrier import CarrierProfile
from dialbot.db.evidence import EventRow
from dialbot.db.findings import record_findings
from dialbot.db.models import IllegalTransition, RunState, Sim
from dialbot.db.obligations import pending_for_sim
from dialbot.db.outage import DatabaseUnavailable, survives_outage
from dialbot.db.runs import create_run, get_run, transition
from dialbot.errors import DialbotError
from dialbot.flows.history import past_orders
from dialbot.flows.intake import national
from dialbot.flows.record import MESSAGE_KINDS, Recorder, now, to_judge_event
from dialbot.flows.runner import to_new_finding
from dialbot.judge import judge
from dialbot.judge.classify import is_carrier, parse_notice
from dialbot.judge.model import Finding, PastOrder, RunRecord, ServiceInfo
from dialbot.judge.timeline import find_by_sender, notice_matches
from dialbot.modem import IncomingMessage

log = logging.getLogger(__name__)


@survives_outage
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
        self._closed = False  # after close(): each message is recorded and judged at once

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
                transition(self.db, info.id, RunState.RUNNING)
                current = _Open(info.id, Recorder(self.db, msisdn, info.id), msisdn)
                if not self._closed:
                    self._open[key] = current
            late = msisdn is not None and self._late_reply(msisdn, message)
            row = current.recorder.sms_in(message, watch="late_reply" if late else "judged")
            if not late and row.kind in MESSAGE_KINDS:  # a PDU that is no message: kept only
                current.judged.append(row)
            closed = self._closed
        if closed:  # nobody will judge the watch again: this message's run is judged now
            self._judge_safely(current)

    def close(self) -> list[WatchResult]:
        """The owner stops (sweep, probe, night or worker end): judge and close every open
        run; a message that still arrives (the modems are closed after this) is recorded
        and judged on its own at once, so no run is left open."""
        with self._lock:
            self._closed = True
        return self.judge_all()

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
        senders = (national(row.peer or "") for row in rows if row.kind in MESSAGE_KINDS)
        sps = {
            s.sp_code
            for peer in senders
            if not is_carrier(peer, self.carrier)
            and (s := find_by_sender(peer, self.catalogue)) is not None
        }
        return past_orders(self.db, msisdn, self.carrier, sps)

    def judge_all(self) -> list[WatchResult]:
        """Judge and close every open watch run (at a sweep's, probe's or night's end, and
        periodically); a message arriving meanwhile opens a new run. Never raises for a run."""
        with self._lock:
            opened, self._open = self._open, {}
        results = [self._judge_safely(current) for current in opened.values()]
        return [r for r in results if r is not None]

    def _judge_safely(self, current: _Open) -> WatchResult | None:
        try:
            return self._judge(current)
        except DatabaseUnavailable:  # past the outage limit: recovered by the next process
            raise
        except Exception as exc:  # one run's defect must not leave it, or the others, open
            log.exception("judging watch run %s failed", current.run_id)
            self._give_up(current.run_id, f"judging failed: {exc!r}")
            return None

    def _give_up(self, run_id: int, why: str) -> None:
        """A run that could not be judged is closed (aborted, saying why), never left open."""
        try:
            if get_run(self.db, run_id).state in (RunState.RUNNING, RunState.JUDGING):
                transition(self.db, run_id, RunState.ABORTED, error=why.splitlines()[0])
        except (DialbotError, LookupError):
            log.exception("closing watch run %s failed", run_id)

    def _judge(self, current: _Open) -> WatchResult:
        try:
            transition(self.db, current.run_id, RunState.JUDGING)
        except IllegalTransition:
            return self._judged_elsewhere(current)
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
        return WatchResult(current.run_id, current.sim, findings, len(current.recorder.rows))

    def _judged_elsewhere(self, current: _Open) -> WatchResult:
        """The run was moved by another process (taken for a dead one's): judge it as a cut
        run, once, like recovery does; nothing when it was judged already."""
        from dialbot.flows.recovery import Recovery  # recovery builds on the runner, as we do

        log.warning("watch run %s was closed by another process", current.run_id)
        found: list[Finding] = []
        if get_run(self.db, current.run_id).state is RunState.ABORTED:
            judged = Recovery(self.db, self.carrier, self.catalogue).judge_cut(current.run_id)
            found = judged.findings if judged is not None else []
        return WatchResult(current.run_id, current.sim, found, len(current.recorder.rows))

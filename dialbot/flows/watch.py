"""The watch: every message that reaches a SIM outside a probe of its sender.

Whatever arrives while a SIM is idle, or during a probe of another SP, is
recorded at once (as a `watch` run of that SIM) and judged later as such: an
SP that writes to a SIM with no subscription with it is sending spam
(UNSOLICITED_MESSAGE); a carrier notice of an order nobody placed is an
unsolicited subscription.

Fairness: a message from an SP the SIM dealt with moments ago (a late reply
to a probe or to a cleanup's cancel keyword) is recorded but not judged as
spam — what an SP sends after a cancellation is judged by the probe that
cancelled, which keeps watching for that. `grace_s` is that moment.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from dialbot.carrier import CarrierProfile
from dialbot.db.evidence import EventRow
from dialbot.db.findings import record_findings
from dialbot.db.models import RunState
from dialbot.db.obligations import pending_for_sim
from dialbot.db.runs import create_run, transition
from dialbot.flows.intake import national
from dialbot.flows.record import Recorder, now, to_judge_event
from dialbot.flows.runner import to_new_finding
from dialbot.judge import judge
from dialbot.judge.classify import is_carrier, parse_notice
from dialbot.judge.model import Finding, RunRecord, ServiceInfo
from dialbot.judge.timeline import find_by_sender, notice_matches
from dialbot.modem import IncomingMessage


@dataclass
class _Open:
    """The open watch run of one SIM and the messages it is to judge."""

    run_id: int
    recorder: Recorder
    judged: list[EventRow] = field(default_factory=list)


@dataclass(frozen=True)
class WatchResult:
    run_id: int
    sim: str
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
        """A message from a modem nobody holds (the fleet's unsolicited stream)."""
        with self._lock:
            msisdn = self._ports.get(message.port)
        self.put(msisdn or message.port, message)

    def put(self, msisdn: str, message: IncomingMessage) -> None:
        """Record the message now; keep it for judging unless it is a late reply."""
        with self._lock:
            current = self._open.get(msisdn)
            if current is None:
                info = create_run(self.db, "watch", sim_id=self._sim_ids.get(msisdn))
                transition(self.db, info.id, RunState.RUNNING)
                current = _Open(info.id, Recorder(self.db, msisdn, info.id))
                self._open[msisdn] = current
            late = self._late_reply(msisdn, message)
            row = current.recorder.sms_in(message, watch="late_reply" if late else "judged")
            if not late:
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
        return seen is not None and seen[0] <= message.received_at <= seen[1] + self.grace

    def _legit(self, msisdn: str) -> frozenset[tuple[str, str]]:
        """Services the SIM may legitimately hear from: those it still has obligations for."""
        return frozenset((ob.sp_code, ob.service_code) for ob in pending_for_sim(self.db, msisdn))

    def judge_all(self) -> list[WatchResult]:
        """Judge and close every open watch run (call when the SIMs are idle, e.g. sweep end)."""
        with self._lock:
            opened, self._open = self._open, {}
            results = []
            for msisdn, current in opened.items():
                results.append(self._judge(msisdn, current))
            return results

    def _judge(self, msisdn: str, current: _Open) -> WatchResult:
        transition(self.db, current.run_id, RunState.JUDGING)
        record = RunRecord(
            run_id=current.run_id,
            flow="watch",
            events=tuple(to_judge_event(row) for row in current.judged),
            observed_until=now(),
            carrier=self.carrier,
            catalogue=self.catalogue,
            legit=self._legit(msisdn),
        )
        findings = judge(record) if current.judged else []
        record_findings(self.db, current.run_id, [to_new_finding(f, msisdn) for f in findings])
        transition(self.db, current.run_id, RunState.DONE)
        return WatchResult(current.run_id, msisdn, findings, len(current.recorder.rows))

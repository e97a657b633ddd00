"""A sweep: every catalogued service once, with the standard flows for its billing type.

One worker thread per ready modem holds that modem's lease for the whole
sweep and runs one probe at a time, so every modem is busy while there is
work (the flows mostly wait: on SPs, and on their observation windows).
Each SIM first recovers from whatever a previous process left (unfinished
runs are aborted, obligations discharged), then gets a hygiene check
(subscriptions and balance; anything nobody ordered is reported and
cleaned), then probes, then — once the whole sweep is done, so that a retry
can still use it — a final hygiene check.

A probe that fails for infrastructure reasons is retried on another modem
(never on the one it failed on, and first on a modem that has not faulted in this
sweep); a modem that faults twice, or whose SIM
cannot be cleaned, is benched for the rest of the sweep. Tasks are taken
longest first, which keeps the tail of the sweep short.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from dialbot.config import Config
from dialbot.db.catalogue import ServiceView, list_services
from dialbot.db.models import RunState
from dialbot.db.obligations import Obligation, pending_for_sim
from dialbot.db.runs import sim_id_of
from dialbot.fleet import Fleet, FleetModem, Lease, NoModemAvailable, SimState
from dialbot.flows.channels import can_probe
from dialbot.flows.model import Flow, default_flows
from dialbot.flows.recovery import CutJudged
from dialbot.flows.runner import RunOutcome, SimRef, service_info
from dialbot.flows.runtime import local_runtime as local_runtime  # the scheduler's runtime
from dialbot.flows.station import BENCH_AFTER_FAULTS, Station, sim_msisdn
from dialbot.flows.station import FleetSink as FleetSink
from dialbot.flows.station import open_fleet as open_fleet
from dialbot.flows.watch import WatchResult
from dialbot.judge.model import Finding
from dialbot.modem import LinkState

MAX_ATTEMPTS = 3
log = logging.getLogger(__name__)


@dataclass
class Task:
    """One flow for one service; `excluded` lists modems it already failed on."""

    service: ServiceView
    flow: Flow
    excluded: set[str] = field(default_factory=set)
    attempts: int = 0
    retry_of: int | None = None

    @property
    def cost(self) -> float:
        return self.flow.unavoidable_wait_s()

    @property
    def name(self) -> str:
        return f"{self.service.sp_code}/{self.service.service_code} {self.flow.name}"


@dataclass(frozen=True)
class NotProbed:
    sp_code: str
    service_code: str
    flow: str
    reason: str


class SweepListener(Protocol):
    """What a progress display hears about (called from worker threads)."""

    def planned(self, total: int) -> None: ...

    def finished(self, outcome: RunOutcome, retried: bool) -> None: ...

    def note(self, text: str) -> None: ...


class SilentListener:
    def planned(self, total: int) -> None:
        pass

    def finished(self, outcome: RunOutcome, retried: bool) -> None:
        pass

    def note(self, text: str) -> None:
        pass


@dataclass
class SweepReport:
    outcomes: list[RunOutcome] = field(default_factory=list)
    hygiene: list[RunOutcome] = field(default_factory=list)
    watch: list[WatchResult] = field(default_factory=list)
    recovered: list[CutJudged] = field(default_factory=list)  # what dead processes left
    not_probed: list[NotProbed] = field(default_factory=list)
    out_of_reach: list[NotProbed] = field(default_factory=list)
    benched: dict[str, str] = field(default_factory=dict)
    pending: list[Obligation] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def findings(self) -> list[Finding]:
        runs = [*self.outcomes, *self.hygiene]
        return (
            [f for o in runs for f in o.findings]
            + [f for w in self.watch for f in w.findings]
            + [f for r in self.recovered for f in r.findings]
        )

    @property
    def complete(self) -> bool:
        """Every service the fleet can reach was probed with all its flows."""
        return not self.not_probed


def flow_names(service: ServiceView) -> tuple[str, ...]:
    """The standard flows of a service: WAP services are browsed (`wap`), ivr lines called
    (`ivr`), MMS ones get decline + their MMS content flow, SMS ones decline + their
    billing type's flow (`default_flows`)."""
    return default_flows(service.channel, service.billing)


def plan(services: list[ServiceView], flows: dict[str, Flow]) -> list[Task]:
    """The standard flows (see flow_names) for every service, longest first."""
    tasks = [
        Task(service, flows[name])
        for service in services
        for name in flow_names(service)
        if name in flows
    ]
    return sorted(tasks, key=lambda t: -t.cost)


def reachable(service: ServiceView, region: str | None, data: str | None = "http") -> bool:
    """A nationwide bank may probe any region's services; a regional one only its own.
    WAP and MMS services only on a modem that can browse (`channels.can_probe`)."""
    if not can_probe(service.channel, data):
        return False
    return service.region is None or region is None or service.region == region


class Sweep:
    """Runs a plan over every ready modem of a fleet (see the module docstring)."""

    def __init__(
        self,
        db: sessionmaker[Session],
        config: Config,
        fleet: Fleet,
        flows: dict[str, Flow],
        services: list[ServiceView] | None = None,
        listener: SweepListener | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.db = db
        self.fleet = fleet
        self.flows = flows
        everything = list_services(db)
        self.services = services if services is not None else everything
        self.listener = listener or SilentListener()
        self.max_attempts = max_attempts
        catalogue = tuple(service_info(s) for s in everything)
        self.station = Station(db, config, fleet, catalogue)
        self.watch = self.station.watch
        self.env = self.station.env
        self.report = SweepReport()
        self._cond = threading.Condition()
        self._queue: list[Task] = []
        self._in_flight = 0
        self._live: dict[str, str | None] = {}  # modem label -> bank region
        self._data: dict[str, str | None] = {}  # modem label -> fleet `data` (http / none)
        self._faulty: set[str] = set()  # modems that had an infrastructure failure

    # -- planning -------------------------------------------------------------------------

    def ready_slots(self) -> list[FleetModem]:
        low = self.fleet.settings.low_balance_fen
        return [s for s in self.fleet.slots if s.state_with_balance(low) == SimState.READY]

    def run(self) -> SweepReport:
        """The whole sweep; its watch is judged and closed however it ends."""
        start = time.monotonic()
        try:
            self._run()
        finally:
            self.report.watch = self.station.close()
            self.report.recovered = list(self.station.recovered)
        self.report.pending = [ob for s in self.fleet.slots for ob in self._pending(s)]
        self.report.wall_s = time.monotonic() - start
        return self.report

    def _run(self) -> None:
        slots = self.ready_slots()
        self._recover_idle(slots)
        regions = {s.bank.region for s in slots}
        for task in plan(self.services, self.flows):
            if any(reachable(task.service, r) for r in regions):
                self._queue.append(task)
            else:
                self.report.out_of_reach.append(self._not_probed(task, "no modem in its region"))
        self._live = {f"{s.bank.name}:{s.entry.slot}": s.bank.region for s in slots}
        self._data = {f"{s.bank.name}:{s.entry.slot}": s.data for s in slots}
        self.listener.planned(len(self._queue))
        threads = [
            threading.Thread(target=self._worker, args=(s,), name=f"sweep {s.entry.port}")
            for s in slots
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with self._cond:
            for task in self._queue:
                self.report.not_probed.append(self._not_probed(task, "no working modem left"))
            self._queue.clear()

    def _recover_idle(self, ready: list[FleetModem]) -> None:
        """What dead processes left on SIMs this sweep will not enrol (modem not ready, SIM
        number unknown) is judged too: recovery needs the database, not the modem."""
        self.station.recover(None)
        enrolled = {id(slot) for slot in ready}
        for slot in self.fleet.slots:
            msisdn = sim_msisdn(slot)
            if id(slot) in enrolled or msisdn is None:
                continue
            sim_id = sim_id_of(self.db, msisdn)
            if sim_id is not None:
                self.station.recover(sim_id)

    def _pending(self, slot: FleetModem) -> list[Obligation]:
        msisdn = sim_msisdn(slot)
        return pending_for_sim(self.db, msisdn) if msisdn else []

    @staticmethod
    def _not_probed(task: Task, reason: str) -> NotProbed:
        s = task.service
        return NotProbed(s.sp_code, s.service_code, task.flow.name, reason)

    # -- the queue ----------------------------------------------------------------------

    def _take(self, label: str, region: str | None) -> Task | None:
        """The next task this modem may run; None when the sweep's probes are all done."""
        with self._cond:
            while True:
                for task in self._queue:
                    if label in task.excluded or not reachable(
                        task.service, region, self._data.get(label)
                    ):
                        continue
                    if task.excluded and label in self._faulty and self._sound_for(task):
                        continue  # a retry waits for a modem with a clean record
                    self._queue.remove(task)
                    self._in_flight += 1
                    task.attempts += 1
                    return task
                self._drop_impossible()
                if not self._queue and self._in_flight == 0:
                    return None
                self._cond.wait(0.5)

    def _sound_for(self, task: Task) -> bool:
        """Some live modem without faults could run the task (its retries go there first)."""
        return any(
            lbl not in self._faulty
            and lbl not in task.excluded
            and reachable(task.service, reg, self._data.get(lbl))
            for lbl, reg in self._live.items()
        )

    def _drop_impossible(self) -> None:
        """Tasks no live modem may run any more are reported, not waited for."""
        for task in list(self._queue):
            able = [
                lbl
                for lbl, region in self._live.items()
                if lbl not in task.excluded and reachable(task.service, region, self._data.get(lbl))
            ]
            if not able:
                self._queue.remove(task)
                self.report.not_probed.append(self._not_probed(task, "failed on every modem"))

    def _done(self, task: Task, outcome: RunOutcome, label: str) -> None:
        retried = False
        with self._cond:
            self._in_flight -= 1
            if outcome.state is RunState.INFRA_FAILED:
                self._faulty.add(label)
            if outcome.state is RunState.INFRA_FAILED and task.attempts < self.max_attempts:
                retried = True
                task.excluded.add(label)
                task.retry_of = outcome.run_id
                self._queue.insert(0, task)
            elif outcome.state is RunState.DONE:
                self.report.outcomes.append(outcome)
            else:
                reason = f"{outcome.state.value}: {outcome.error}"
                self.report.not_probed.append(self._not_probed(task, reason))
            self._cond.notify_all()
        self.listener.finished(outcome, retried)

    def _lost(self, task: Task, label: str, exc: Exception) -> None:
        """A probe that raised (a defect, the database gone): never left in flight, which would
        stall every other modem at the sweep's end; the modem is benched."""
        with self._cond:
            self._in_flight -= 1
            self._faulty.add(label)
            task.excluded.add(label)
            if task.attempts < self.max_attempts:
                self._queue.insert(0, task)
            else:
                self.report.not_probed.append(self._not_probed(task, f"error: {exc!r}"))
            self._cond.notify_all()
        self._bench(label, f"unexpected error: {exc!r}")

    def _last_cleanup_safely(self, lease: Lease, slot: FleetModem) -> None:
        """After a worker's defect: still try to leave its SIM unsubscribed."""
        msisdn = sim_msisdn(slot)
        if msisdn is None:
            return
        try:
            error = self.station.clean(lease, SimRef(None, msisdn))
        except Exception:
            log.exception("last cleanup of %s failed", msisdn)
            error = "unexpected error"
        if error is not None:
            self.listener.note(f"SIM {msisdn} still to clean: {error}")

    def _bench(self, label: str, reason: str) -> None:
        with self._cond:
            self._live.pop(label, None)
            self.report.benched[label] = reason
            self._cond.notify_all()
        self.listener.note(f"modem {label} benched: {reason}")

    def _wait_all_done(self) -> None:
        with self._cond:
            while self._queue or self._in_flight:
                self._cond.wait(0.5)

    # -- one modem ------------------------------------------------------------------------

    def _worker(self, slot: FleetModem) -> None:
        label = f"{slot.bank.name}:{slot.entry.slot}"
        try:
            lease = self.fleet.lease(bank=slot.bank.name, slot=slot.entry.slot)
        except NoModemAvailable as exc:
            self._bench(label, str(exc))
            return
        with lease:
            try:
                self._serve(lease, slot, label)
            except Exception as exc:  # a worker must never take the sweep down with it
                log.exception("sweep worker of modem %s failed", label)
                self._bench(label, f"unexpected error: {exc!r}")
                self._last_cleanup_safely(lease, slot)

    def _serve(self, lease: Lease, slot: FleetModem, label: str) -> None:
        sim = self.station.enrol(slot)
        if sim is None:
            self._bench(label, "the SIM's number is unknown")
            return
        healthy = self._hygiene(lease, sim, label) and self._probe(lease, sim, slot, label)
        self._wait_all_done()
        if healthy:
            self._hygiene(lease, sim, label)
        else:
            self._last_cleanup(lease, sim)

    def _probe(self, lease: Lease, sim: SimRef, slot: FleetModem, label: str) -> bool:
        """Take tasks until there are none; False when the modem had to be benched."""
        faults = 0
        while (task := self._take(label, slot.bank.region)) is not None:
            try:
                outcome = self.station.probe(lease, sim, task.flow, task.service, task.retry_of)
            except Exception as exc:  # the run could not even be recorded: give the task back
                log.exception("probe %s on modem %s failed", task.name, label)
                self._lost(task, label, exc)
                return False
            self._done(task, outcome, label)
            if outcome.state is RunState.INFRA_FAILED:
                faults += 1
                if faults >= BENCH_AFTER_FAULTS or lease.modem.state != LinkState.READY:
                    self._bench(label, f"modem faults: {outcome.error}")
                    return False
            if outcome.cleanup_error:
                self._bench(label, f"cleanup failed: {outcome.cleanup_error}")
                return False
        return True

    def _hygiene(self, lease: Lease, sim: SimRef, label: str) -> bool:
        """A hygiene check (Station.hygiene); False benches the modem."""
        check = self.station.hygiene(lease, sim, self.flows["hygiene"])
        with self._cond:
            self.report.hygiene.extend(check.runs)
        if check.error is None:
            return True
        self._bench(label, f"hygiene: {check.error}")
        return False

    def _last_cleanup(self, lease: Lease, sim: SimRef) -> None:
        """A benched modem that answers again still discharges its SIM's obligations."""
        error = self.station.clean(lease, sim)
        if error is not None:
            self.listener.note(f"SIM {sim.msisdn} still to clean: {error}")

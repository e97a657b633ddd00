"""The scheduler's runtime on this host: its banks, the flow runner, the watch.

``local_runtime(config, db)`` is what ``dialbot schedule run``, the daemon and
``dialbot worker`` use by default. One :class:`LocalFleet` is the dispatcher,
the cleanup and the fleet view at once, because all three share the opened
fleet and must agree on which SIM is busy, which is out of service and
which still owes a cleanup.

How it runs a probe is exactly how a sweep does (:class:`~dialbot.flows.station.Station`):
lease the job's SIM, discharge its pending obligations first (the runner does
that before anything else), run the flow with evidence, judge and findings,
clean. What differs is only who decides what to run: the night's plan.
Hygiene too is the sweep's: :meth:`LocalFleet.hygiene` (the runtime's
hygiene hook, called at the start and the end of a night) runs
``Station.hygiene`` on every SIM of the night at once, each SIM with orders
to follow (the month after, ``[probe] follow_days``) looked at first.

Rules that keep the night honest:

- ``ordered`` is true when the run stored a cleanup obligation (stored before
  the order is sent, so the order may have reached the SP); such a probe is
  never retried the same night.
- ``sim_unusable`` is true when the SIM cannot be cleaned, its modem is not
  ready, its hygiene check failed, or it failed twice in a row for
  infrastructure reasons; that SIM
  is then out of service until a cleanup pass (the next night's start, or a
  worker's cleanup task) finds it clean and its modem ready.
- Messages that reach a SIM outside a probe of their sender go to the watch,
  which is judged periodically, at every cleanup pass and when the runtime
  closes.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.config import Config
from dialbot.db.catalogue import ServiceView, list_services
from dialbot.db.models import CleanupObligation, RunState
from dialbot.db.obligations import pending_for_sim, sims_with_pending
from dialbot.db.outage import survives_outage
from dialbot.fleet import Fleet, FleetModem, Lease, NoModemAvailable, SimState
from dialbot.flows.loader import scheduled_flows
from dialbot.flows.model import Flow
from dialbot.flows.runner import RunOutcome, SimRef, service_info
from dialbot.flows.station import (
    BENCH_AFTER_FAULTS,
    FleetSink,
    Station,
    open_fleet,
)
from dialbot.modem import LinkState
from dialbot.scheduling.dispatch import OutcomeStatus, ProbeJob, ProbeOutcome, Runtime
from dialbot.scheduling.inputs import flow_tables
from dialbot.scheduling.planner import SimInfo

log = logging.getLogger("dialbot.flows.runtime")

# Unscaled seconds between two judgements of the watch (an SP's spam is found within this).
WATCH_EVERY_S = 600.0
STATUS: dict[RunState, OutcomeStatus] = {
    RunState.DONE: "done",
    RunState.INFRA_FAILED: "infra_failed",
}


def label_of(slot: FleetModem) -> str:
    return f"{slot.bank.name}:{slot.entry.slot}"


class LocalFleet:
    """Dispatcher, Cleanup and FleetView over this host's opened fleet."""

    def __init__(
        self, db: sessionmaker[Session], config: Config, fleet: Fleet, flows: dict[str, Flow]
    ) -> None:
        self.db = db
        self.fleet = fleet
        self.flows = flows
        self.station = Station(db, config, fleet, ())
        self._lock = threading.Lock()
        self._services: dict[int, ServiceView] = {}
        self._sims: dict[int, tuple[FleetModem, SimRef]] = {}  # SIM id -> slot, SIM
        self._busy: set[int] = set()  # SIM ids in a probe
        self._unusable: dict[str, str] = {}  # modem label -> why it is out of service
        self._faults: Counter[str] = Counter()
        self._stop = threading.Event()
        self._judge_thread: threading.Thread | None = None
        self.reload_catalogue()
        for slot in fleet.slots:
            if slot.state is SimState.RETIRED or slot.modem is None:
                continue
            sim = self.station.enrol(slot, recover=False)  # recovery waits for the cleanup pass
            if sim is not None and sim.id is not None:
                self._sims[sim.id] = (slot, sim)

    # -- the catalogue and the watch -------------------------------------------------------

    def reload_catalogue(self) -> None:
        """Read the catalogue again (a night may follow an import)."""
        services = list_services(self.db)
        with self._lock:
            self._services = {s.service_id: s for s in services}
        self.station.set_catalogue(tuple(service_info(s) for s in services))

    def _service(self, service_id: int) -> ServiceView | None:
        with self._lock:
            found = self._services.get(service_id)
        if found is None:
            self.reload_catalogue()
            with self._lock:
                found = self._services.get(service_id)
        return found

    def judge_watch(self) -> int:
        """Judge what the watch collected so far; returns how many findings it made."""
        return sum(len(r.findings) for r in self.station.watch.judge_all())

    def start_watch(self, every_s: float) -> None:
        """Judge the watch every ``every_s`` seconds on a thread of its own."""

        def loop() -> None:
            while not self._stop.wait(every_s):
                try:
                    self.judge_watch()
                except Exception:  # the database may blink; the next round tries again
                    log.exception("judging the watch failed")

        self._judge_thread = threading.Thread(target=loop, name="watch judge", daemon=True)
        self._judge_thread.start()

    # -- Dispatcher ------------------------------------------------------------------------

    def run(self, job: ProbeJob) -> ProbeOutcome:
        """Lease the job's SIM, run its flow for its service, say how it ended."""
        entry = self._sims.get(job.sim_id)
        if entry is None:
            return ProbeOutcome("infra_failed", ordered=False, sim_unusable=True,
                                error=f"SIM {job.sim_id} is not in this host's fleet")  # fmt: skip
        slot, sim = entry
        flow = self.flows.get(job.flow)
        service = self._service(job.service_id)
        if flow is None or service is None:
            what = f"flow {job.flow!r}" if flow is None else f"service {job.service_id}"
            return ProbeOutcome("failed", ordered=False, error=f"{what} is unknown here")
        lease = self._lease(slot)
        if isinstance(lease, str):
            return ProbeOutcome("infra_failed", ordered=False, error=lease, sim_unusable=True)
        with self._lock:
            self._busy.add(job.sim_id)
        try:
            with lease:
                outcome = self.station.probe(lease, sim, flow, service,
                                             follow_days=job.follow_days)  # fmt: skip
        finally:
            with self._lock:
                self._busy.discard(job.sim_id)
        return self._outcome(slot, outcome)

    def _lease(self, slot: FleetModem) -> Lease | str:
        """The slot's lease, or why the SIM cannot work now."""
        label = label_of(slot)
        with self._lock:
            reason = self._unusable.get(label)
        if reason is not None:
            return f"modem {label} is out of service: {reason}"
        state = slot.state_with_balance(self.fleet.settings.low_balance_fen)
        if state is not SimState.READY:
            return f"modem {label} is {state.value}"
        # held only by a cleanup pass, which ends within a few carrier round trips
        wait = 4 * self.station.env.carrier_timeout_s
        try:
            return self.fleet.lease(bank=slot.bank.name, slot=slot.entry.slot, timeout=wait)
        except NoModemAvailable:
            state = slot.state_with_balance(self.fleet.settings.low_balance_fen)
            return f"modem {label} could not be leased ({state.value})"

    def _outcome(self, slot: FleetModem, run: RunOutcome) -> ProbeOutcome:
        """The scheduler's view of a run; takes the modem out of service when it must."""
        label = label_of(slot)
        self._learn_balance(slot, run)
        unusable: str | None = None
        if run.cleanup_error:
            unusable = f"cleanup failed: {run.cleanup_error}"
        if run.state is RunState.INFRA_FAILED:
            self._faults[label] += 1
            if self._faults[label] >= BENCH_AFTER_FAULTS:
                unusable = unusable or f"{self._faults[label]} faults in a row: {run.error}"
            elif slot.modem is not None and slot.modem.state != LinkState.READY:
                unusable = unusable or f"modem {slot.modem.state.value}: {run.error}"
        else:
            self._faults[label] = 0
        if unusable is not None:
            with self._lock:
                self._unusable[label] = unusable
            log.warning("modem out of service", extra={"modem": label, "reason": unusable})
        return ProbeOutcome(
            STATUS.get(run.state, "failed"),
            ordered=self._ordered(run.run_id),
            run_id=run.run_id,
            error=run.error or (unusable if run.cleanup_error else None),
            sim_unusable=unusable is not None,
        )

    @survives_outage
    def _ordered(self, run_id: int) -> bool:
        """Whether the run stored an obligation, i.e. its order may have gone out."""
        with self.db() as session:
            count = session.scalar(
                select(func.count())
                .select_from(CleanupObligation)
                .where(CleanupObligation.run_id == run_id)
            )
        return bool(count)

    @staticmethod
    def _learn_balance(slot: FleetModem, run: RunOutcome) -> None:
        """The last balance the run read is the SIM's balance (for planning and leasing)."""
        event = run.last_balance_event
        data = event.data if event is not None and isinstance(event.data, dict) else {}
        if isinstance(data.get("balance_fen"), int):
            slot.balance_fen = int(data["balance_fen"])

    # -- Hygiene ---------------------------------------------------------------------------

    def hygiene(self, sim_ids: Collection[int]) -> int:
        """Check the given SIMs of this host at once (``Station.hygiene``); returns the findings.

        A SIM whose check fails is taken out of service (its state is unknown),
        so the night skips its probes. SIMs of other hosts, and SIMs that
        cannot be leased now (out of service, low balance, busy elsewhere),
        are left out and logged.
        """
        flow = self.flows.get("hygiene")
        if flow is None:
            log.warning("no hygiene flow: SIMs not checked")
            return 0
        entries = [self._sims[i] for i in sorted(set(sim_ids)) if i in self._sims]
        if not entries:
            return 0
        with ThreadPoolExecutor(max_workers=len(entries)) as pool:
            return sum(pool.map(lambda e: self._check(e[0], e[1], flow), entries))

    def _check(self, slot: FleetModem, sim: SimRef, flow: Flow) -> int:
        """One SIM's follow-up and hygiene check; returns their findings."""
        label = label_of(slot)
        lease = self._lease(slot)
        if isinstance(lease, str):
            log.info("hygiene check skipped", extra={"modem": label, "reason": lease})
            return 0
        assert sim.id is not None
        with self._lock:
            self._busy.add(sim.id)
        try:
            with lease:
                followed = self._follow(lease, sim, label)
                check = self.station.hygiene(lease, sim, flow)
        finally:
            with self._lock:
                self._busy.discard(sim.id)
        for run in check.runs:
            self._learn_balance(slot, run)
        if check.error is not None:
            with self._lock:
                self._unusable[label] = f"hygiene failed: {check.error}"
            log.warning("modem out of service", extra={"modem": label, "reason": check.error})
        if check.findings:
            codes = sorted({f.code for run in check.runs for f in run.findings})
            log.warning("hygiene findings", extra={"modem": label, "codes": codes})
        return followed + check.findings

    def _follow(self, lease: Lease, sim: SimRef, label: str) -> int:
        """The month after: a SIM with followed orders is looked at before its hygiene
        check (dialbot.flows.follow); a failed look is tried again the next night.
        Returns its findings."""
        outcome = self.station.follow(lease, sim)
        if outcome is None:
            return 0
        if outcome.error or outcome.cleanup_error:
            why = outcome.error or outcome.cleanup_error
            log.warning("follow-up incomplete", extra={"modem": label, "reason": why})
        if outcome.findings:
            codes = sorted({f.code for f in outcome.findings})
            log.warning("follow-up findings", extra={"modem": label, "codes": codes})
        return len(outcome.findings)

    # -- Cleanup ---------------------------------------------------------------------------

    def discharge_pending(self) -> int:
        """Recover every idle SIM of this host (abort what a dead process left open,
        discharge its obligations, all SIMs at once); returns the obligations left.

        SIMs in a probe are left to it (a probe discharges its own obligations).
        Obligations of SIMs on other hosts are theirs to discharge.
        """
        self.reload_catalogue()
        self.judge_watch()
        self.station.recover(None)  # runs of dead processes on modems whose SIM is unknown
        owed = set(sims_with_pending(self.db))
        entries = list(self._sims.values())
        with ThreadPoolExecutor(max_workers=max(1, len(entries))) as pool:
            errors = list(
                pool.map(lambda e: self._recover(e[0], e[1], e[1].msisdn in owed), entries)
            )
        foreign = owed - {sim.msisdn for _, sim in entries}
        if foreign:
            log.info("obligations of SIMs on other hosts left to them",
                     extra={"sims": len(foreign)})  # fmt: skip
        with self._lock:
            busy = set(self._busy)
        remaining = 0
        for (_, sim), error in zip(entries, errors, strict=True):
            if sim.id not in busy and error is not None:
                remaining += len(pending_for_sim(self.db, sim.msisdn))
        return remaining

    def _recover(self, slot: FleetModem, sim: SimRef, owes: bool) -> str | None:
        """One SIM: None when it is clean (and back in service), else why not."""
        label = label_of(slot)
        try:
            lease = self.fleet.lease(bank=slot.bank.name, slot=slot.entry.slot)
        except NoModemAvailable:
            if slot.leased:
                return None  # in a probe: that probe cleans up after itself
            state = slot.state_with_balance(self.fleet.settings.low_balance_fen)
            return f"modem {state.value}" if owes else None
        with lease:
            assert sim.id is not None
            self.station.recover(sim.id)
            # a SIM that owes is left out of tonight's plan, so what a follow-up keeps can stay
            error = self.station.clean(lease, sim, clear_all=False, keep=True) if owes else None
        with self._lock:
            if error is None:
                self._unusable.pop(label, None)
                self._faults[label] = 0
            else:
                self._unusable[label] = f"cleanup failed: {error}"
        if error is not None:
            log.warning("SIM still to clean", extra={"modem": label, "error": error})
        return error

    # -- FleetView -------------------------------------------------------------------------

    def sims(self) -> list[tuple[int, str]]:
        """(id, number) of every SIM this fleet probes with, ready or not."""
        return [(sim_id, sim.msisdn) for sim_id, (_, sim) in sorted(self._sims.items())]

    def _state(self, slot: FleetModem) -> str:
        if label_of(slot) in self._unusable:
            return "out_of_service"
        return slot.state_with_balance(self.fleet.settings.low_balance_fen).value

    def ready_sims(self) -> list[SimInfo]:
        """SIMs whose modem is ready and in service (busy ones included: they will be free)."""
        with self._lock:
            return [
                SimInfo(sim_id, sim.msisdn, slot.bank.region, slot.balance_fen, data=slot.data)
                for sim_id, (slot, sim) in sorted(self._sims.items())
                if self._state(slot) == SimState.READY.value
            ]

    def modem_states(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(self._state(slot) for slot in self.fleet.slots))

    def out_of_service(self) -> list[tuple[str, str]]:
        """Every modem that cannot work (retired ones are not expected to)."""
        with self._lock:
            states = [(label_of(s), self._state(s), s) for s in self.fleet.slots]
            return [
                (label, self._unusable.get(label, state))
                for label, state, _ in states
                if state not in (SimState.READY.value, SimState.RETIRED.value)
            ]

    # -- the end -----------------------------------------------------------------------------

    def close(self) -> None:
        """Judge the watch a last time and close the fleet; safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._judge_thread is not None:
            self._judge_thread.join()
        try:
            self.station.close()
        finally:
            self.fleet.close()


def open_local(
    config: Config,
    db: sessionmaker[Session],
    flows: dict[str, Flow],
    part: tuple[int, int] | None = None,
) -> LocalFleet:
    """This host's banks (or one ``part`` of their modems) opened, with the watch judged
    every ``WATCH_EVERY_S`` (scaled)."""
    sink = FleetSink()
    fleet = open_fleet(config, sink, db=db, part=part)
    try:
        local = LocalFleet(db, config, fleet, flows)
    except BaseException:
        fleet.close()
        raise
    sink.bind(local.station.watch)
    local.start_watch(max(1.0, WATCH_EVERY_S * config.probe.time_scale))
    return local


def local_runtime(config: Config, db: sessionmaker[Session]) -> Runtime:
    """This host's banks (``hardware/``) with the flows of ``probes/`` and the flow runner;
    in several processes when ``[fleet] processes`` asks for them (or "auto" finds more
    modems than one process drives well: :mod:`dialbot.flows.parts`)."""
    from dialbot.flows import parts  # it builds on this module

    flows = scheduled_flows(config.paths.probes)
    billing, seconds = flow_tables(flows, config.probe.time_scale)
    count = parts.part_count(config)
    if count > 1:
        split = parts.open_parts(config, db, count)
        return Runtime(dispatcher=split, cleanup=split, fleet=split, flow_billing=billing,
                       flow_seconds=seconds, close=split.close, hygiene=split.hygiene)  # fmt: skip
    local = open_local(config, db, flows)
    return Runtime(dispatcher=local, cleanup=local, fleet=local, flow_billing=billing,
                   flow_seconds=seconds, close=local.close, hygiene=local.hygiene)  # fmt: skip

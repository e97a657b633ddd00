"""A probe station: what every probe on one fleet shares, whoever decides what to probe.

A sweep (`dialbot.flows.sweep`) and the scheduler's local runtime
(`dialbot.flows.runtime`) both run probes on this host's modems; they differ
in *what* they run and *when*, never in *how*. So the how lives here, once:
opening the fleet, the watch for messages outside a probe of their sender,
the probe environment, recording a SIM before it works (aborting what a dead
process left unfinished), one probe with its contact window for the watch,
the hygiene check a SIM gets before its first probe and after its last one
(of a sweep or of a night), and the last-resort cleaning of a SIM.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.config import Config
from dialbot.db.catalogue import ServiceView
from dialbot.db.engine import write_session
from dialbot.db.models import TERMINAL_STATES, Run, RunState
from dialbot.db.obligations import pending_for_sim
from dialbot.db.received import DbPduStore
from dialbot.db.runs import upsert_sim
from dialbot.db.types import utcnow
from dialbot.errors import ModemError
from dialbot.fleet import Fleet, FleetModem, FleetSettings, Lease, load_inventories
from dialbot.flows.cleanup import Cleaner, CleanupFailed
from dialbot.flows.model import Flow
from dialbot.flows.record import now
from dialbot.flows.runner import ProbeEnv, RunOutcome, SimRef, run_flow
from dialbot.flows.watch import Watch, live_watch_runs
from dialbot.judge.model import ServiceInfo
from dialbot.modem import IncomingMessage, LinkState

LAST_CLEANUP_TRIES = 3
# Hygiene runs per check: one retry after a modem fault or a failed cleanup.
HYGIENE_TRIES = 2
# Infrastructure failures in a row after which a modem is taken out of service.
BENCH_AFTER_FAULTS = 2
# What an SP sends up to this long (unscaled seconds) after a probe of it is a reply, not spam.
WATCH_GRACE_S = 120.0


def sim_msisdn(slot: FleetModem) -> str | None:
    """The SIM's number: as the modem reports it, else as the inventory declares it."""
    ident = slot.identity
    return (ident.msisdn if ident else None) or slot.entry.msisdn


def abort_unfinished(db: sessionmaker[Session], sim_id: int) -> int:
    """Runs of this SIM left unfinished by a process that died: aborted, never judged.

    The watch runs this process has open are its own, not a dead process's."""
    open_states = [s.value for s in RunState if s not in TERMINAL_STATES]
    mine = live_watch_runs()
    with write_session(db) as session:
        runs = [
            run
            for run in session.scalars(
                select(Run).where(Run.sim_id == sim_id, Run.state.in_(open_states))
            )
            if run.id not in mine
        ]
        for run in runs:
            run.move_to(RunState.ABORTED, at=utcnow(), error="the process ended before the run")
        return len(runs)


def open_fleet(
    config: Config,
    sink: Callable[[IncomingMessage], None] | None = None,
    timeout: float = 5.0,
    db: sessionmaker[Session] | None = None,
) -> Fleet:
    """Every bank of `hardware/`, opened and checked; messages of idle modems go to sink.

    With `db`, every PDU read is committed to the receipt log before the modem
    deletes it (`dialbot.db.received`), and what a dead process read and never
    recorded is delivered again to the sink.
    """
    banks = load_inventories(config.paths.hardware)
    settings = FleetSettings(command_timeout=timeout, check_interval=30.0)
    stores = None
    if db is not None:
        stores = lambda slot: DbPduStore(db, slot.source, slot.entry.msisdn)  # noqa: E731
    fleet = Fleet(banks, config.carrier, settings, unsolicited=sink, stores=stores)
    fleet.open(timeout=timeout * 3)
    fleet.refresh(timeout=timeout * 4)
    return fleet


@dataclass(frozen=True)
class HygieneCheck:
    """The hygiene runs of one check of one SIM, and why the SIM must stop (None: it may work)."""

    runs: tuple[RunOutcome, ...]
    error: str | None

    @property
    def findings(self) -> int:
        return sum(len(run.findings) for run in self.runs)


class FleetSink:
    """The fleet's stream of messages for modems nobody holds, bound to a station's watch
    once there is one (the fleet is opened first); earlier messages are kept for it."""

    def __init__(self) -> None:
        self._watch: Watch | None = None
        self._early: list[IncomingMessage] = []
        self._lock = threading.Lock()

    def bind(self, watch: Watch) -> None:
        with self._lock:
            self._watch, early, self._early = watch, self._early, []
        for message in early:
            watch.put_from_port(message)

    def __call__(self, message: IncomingMessage) -> None:
        with self._lock:
            watch = self._watch
            if watch is None:
                self._early.append(message)
                return
        watch.put_from_port(message)


class Station:
    """The watch and probe environment of one fleet, and the per-SIM, per-probe steps."""

    def __init__(
        self,
        db: sessionmaker[Session],
        config: Config,
        fleet: Fleet,
        catalogue: tuple[ServiceInfo, ...],
    ) -> None:
        self.db = db
        self.fleet = fleet
        scale = config.probe.time_scale
        self.watch = Watch(db, config.carrier, catalogue, grace_s=scale * WATCH_GRACE_S)
        self.env = ProbeEnv(db, config.carrier, scale, catalogue, self.watch.put)
        for slot in fleet.slots:  # messages of idle modems are told apart by port
            msisdn = sim_msisdn(slot)
            if msisdn:
                self.watch.register(msisdn, None, slot.entry.port)

    def set_catalogue(self, catalogue: tuple[ServiceInfo, ...]) -> None:
        """A newer catalogue for the probes that start from now on (runs under way keep theirs)."""
        self.env = replace(self.env, catalogue=catalogue)
        self.watch.catalogue = catalogue

    def enrol(self, slot: FleetModem, recover: bool = True) -> SimRef | None:
        """Record the slot's SIM, tell the watch and (``recover``) abort the runs a dead
        process left open — only when nothing else can be running on that SIM.

        None when the SIM's number is unknown (such a SIM cannot be probed: its
        evidence and obligations are keyed by number).
        """
        msisdn = sim_msisdn(slot)
        if not msisdn:
            return None
        ident = slot.identity
        sim_id = upsert_sim(
            self.db,
            msisdn,
            imsi=ident.imsi if ident else None,
            iccid=ident.iccid if ident else None,
            bank=slot.bank.name,
            slot=slot.entry.slot,
        )
        self.watch.register(msisdn, sim_id, slot.entry.port)
        if recover:
            abort_unfinished(self.db, sim_id)
        return SimRef(sim_id, msisdn)

    def probe(
        self,
        lease: Lease,
        sim: SimRef,
        flow: Flow,
        service: ServiceView | None,
        retry_of: int | None = None,
    ) -> RunOutcome:
        """One flow, run and judged; the watch learns the SIM dealt with the service's SP."""
        start = now()
        outcome = run_flow(self.env, flow, lease, sim, service, retry_of)
        if service is not None:
            self.watch.contact(sim.msisdn, service.sp_code, start, now())
        return outcome

    def hygiene(
        self, lease: Lease, sim: SimRef, flow: Flow, tries: int = HYGIENE_TRIES
    ) -> HygieneCheck:
        """Check the SIM with the hygiene flow: its subscription list and balance.

        What nobody ordered is judged (UNSOLICITED_SUBSCRIPTION, stored like any
        finding, so the alerts see it) and cleaned with the carrier's cancel-all
        by the runner. A check that ends in a modem fault or a failed cleanup is
        tried again; when the last try fails too the SIM must stop working (its
        state is unknown), and the check says why.
        """
        runs: list[RunOutcome] = []
        for _ in range(tries):
            outcome = self.probe(lease, sim, flow, None)
            runs.append(outcome)
            if outcome.state is RunState.DONE and not outcome.cleanup_error:
                return HygieneCheck(tuple(runs), None)
        last = runs[-1]
        return HygieneCheck(tuple(runs), last.error or last.cleanup_error or last.state.value)

    def clean(self, lease: Lease, sim: SimRef, clear_all: bool = True) -> str | None:
        """Discharge the SIM's pending obligations (retried after modem faults).

        Returns why the SIM is still to clean, or None when it is clean. With
        ``clear_all`` nothing may stay listed (the carrier's cancel-all goes out
        for what nobody ordered, too).
        """
        if not pending_for_sim(self.db, sim.msisdn):
            return None
        wait = self.env.carrier_timeout_s
        if lease.modem.state != LinkState.READY and not lease.modem.wait_state(
            LinkState.READY, wait
        ):
            return f"modem {lease.modem.state.value}"
        cleaner = Cleaner(
            self.db,
            lease,
            sim.msisdn,
            self.env.carrier,
            self.env.catalogue_map(),
            lambda m: self.watch.put(sim.msisdn, m),
            self.env.cleanup_settings(),
        )
        for attempt in range(LAST_CLEANUP_TRIES):
            try:
                cleaner.run(clear_all=clear_all)
                return None
            except (CleanupFailed, ModemError) as exc:
                error = str(exc).splitlines()[0]
                if attempt == LAST_CLEANUP_TRIES - 1:
                    return error
                if not lease.modem.wait_state(LinkState.READY, wait):
                    return error
        raise AssertionError("unreachable")

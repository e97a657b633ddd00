"""A probe station: what every probe on one fleet shares, whoever decides what to probe.

A sweep (`dialbot.flows.sweep`) and the scheduler's local runtime
(`dialbot.flows.runtime`) both run probes on this host's modems; they differ
in *what* they run and *when*, never in *how*. So the how lives here, once:
opening the fleet, the watch for messages outside a probe of their sender,
the probe environment, recording a SIM before it works (taking over and
judging what a dead process left unfinished: `dialbot.flows.recovery`, never
a live process's runs), one probe with its contact window for the watch,
the hygiene check a SIM gets before its first probe and after its last one
(of a sweep or of a night), and the last-resort cleaning of a SIM.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session, sessionmaker

from dialbot.config import Config
from dialbot.db.catalogue import ServiceView
from dialbot.db.models import RunState
from dialbot.db.obligations import pending_for_sim
from dialbot.db.owner import RunBeat
from dialbot.db.received import DbPduStore
from dialbot.db.runs import upsert_sim
from dialbot.errors import ModemError
from dialbot.fleet import Fleet, FleetModem, FleetSettings, Lease, load_inventories, partition
from dialbot.flows.cleanup import Cleaner, CleanupFailed
from dialbot.flows.follow import FollowOutcome, follow_night
from dialbot.flows.model import Flow
from dialbot.flows.record import now
from dialbot.flows.recovery import CutJudged, Recovery
from dialbot.flows.runner import ProbeEnv, RunOutcome, SimRef, run_flow
from dialbot.flows.watch import Watch, WatchResult
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


def fleet_settings(config: Config, timeout: float | None = None) -> FleetSettings:
    """The driver's timings: `[modem]` of dialbot.toml, ``timeout`` (a command's
    --timeout) over its command_timeout, built-in defaults for the rest."""
    m = config.modem
    given = {
        "command_timeout": timeout if timeout is not None else m.command_timeout,
        "send_timeout": m.send_timeout,
        "ussd_timeout": m.ussd_timeout,
        "concat_timeout": m.concat_timeout,
        "check_interval": m.check_interval if m.check_interval is not None else 30.0,
        "backoff_initial": m.backoff_initial,
        "backoff_max": m.backoff_max,
        "quarantine_after": m.quarantine_after,
    }
    return FleetSettings(**{k: v for k, v in given.items() if v is not None})  # type: ignore[arg-type]


def open_fleet(
    config: Config,
    sink: Callable[[IncomingMessage], None] | None = None,
    timeout: float | None = None,
    db: sessionmaker[Session] | None = None,
    part: tuple[int, int] | None = None,
) -> Fleet:
    """Every bank of `hardware/`, opened and checked; messages of idle modems go to sink.
    With `part` (index, count), only that part of the modems (`dialbot.flows.parts`).

    With `db`, every PDU read is committed to the receipt log before the modem
    deletes it (`dialbot.db.received`), and what a dead process read and never
    recorded is delivered again to the sink.
    """
    banks = load_inventories(config.paths.hardware)
    if part is not None:
        banks = partition(banks, *part)
    settings = fleet_settings(config, timeout)
    timeout = settings.command_timeout
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
        self.env = ProbeEnv(
            db,
            config.carrier,
            scale,
            catalogue,
            self.watch.put,
            follow_days=config.probe.follow_days,
        )
        self.recovered: list[CutJudged] = []  # what dead processes left, judged here
        self._recovered_lock = threading.Lock()
        self._beat = RunBeat(db).start()
        for slot in fleet.slots:  # messages of idle modems are told apart by port
            msisdn = sim_msisdn(slot)
            if msisdn:
                self.watch.register(msisdn, None, slot.entry.port)

    def set_catalogue(self, catalogue: tuple[ServiceInfo, ...]) -> None:
        """A newer catalogue for the probes that start from now on (runs under way keep theirs)."""
        self.env = replace(self.env, catalogue=catalogue)
        self.watch.catalogue = catalogue

    def recover(self, sim_id: int | None) -> list[CutJudged]:
        """Take over the SIM's runs of dead processes and judge them as cut runs
        (`dialbot.flows.recovery`); the runs of live processes are left alone."""
        judged = Recovery(self.db, self.env.carrier, self.env.catalogue).recover(sim_id)
        with self._recovered_lock:
            self.recovered.extend(judged)
        return judged

    def close(self) -> list[WatchResult]:
        """The end of the station's work: the watch judged and closed, the runs' heartbeat
        stopped. Safe to call twice."""
        try:
            return self.watch.close()
        finally:
            self._beat.stop()

    def enrol(self, slot: FleetModem, recover: bool = True) -> SimRef | None:
        """Record the slot's SIM, tell the watch and (``recover``) take over and judge the
        runs dead processes left on it (`recover`).

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
            self.recover(sim_id)
        return SimRef(sim_id, msisdn)

    def probe(
        self,
        lease: Lease,
        sim: SimRef,
        flow: Flow,
        service: ServiceView | None,
        retry_of: int | None = None,
        follow_days: float | None = None,
    ) -> RunOutcome:
        """One flow, run and judged; the watch learns the SIM dealt with the service's SP.

        ``follow_days`` (a schedule's) replaces ``[probe] follow_days`` for the order this
        probe places (None: the station's)."""
        start = now()
        env = self.env if follow_days is None else replace(self.env, follow_days=follow_days)
        outcome = run_flow(env, flow, lease, sim, service, retry_of)
        if service is not None:
            self.watch.contact(sim.msisdn, service.sp_code, start, now())
        return outcome

    def follow(self, lease: Lease, sim: SimRef) -> FollowOutcome | None:
        """The month after: one later-night look at the SIM's followed orders (None: none)."""
        return follow_night(self.env, lease, sim)

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

    def clean(
        self, lease: Lease, sim: SimRef, clear_all: bool = True, keep: bool = False
    ) -> str | None:
        """Discharge the SIM's pending obligations (retried after modem faults).

        Returns why the SIM is still to clean, or None when it is clean. With
        ``clear_all`` nothing may stay listed (the carrier's cancel-all goes out
        for what nobody ordered, too). With ``keep`` a subscription kept for a
        follow-up survives until its horizon (dialbot.flows.follow); without, it
        is cancelled at once (fail closed).
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
            keep=keep,
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

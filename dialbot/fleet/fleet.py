"""The fleet: every modem of every bank, opened concurrently, checked, leased.

Each modem's driver runs on its own thread, so a dead or hung modem costs
the others nothing: `open` and `refresh` wait on a shared deadline and
report whatever has not answered by then as an error.
"""

from __future__ import annotations

import enum
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dialbot.carrier import CarrierProfile
from dialbot.errors import DialbotError
from dialbot.fleet.inventory import Bank, ModemEntry
from dialbot.fleet.lease import Lease
from dialbot.modem import Health, Identity, IncomingMessage, LinkState, Modem, ModemSettings
from dialbot.modem.store import PduStore

StoreFactory = Callable[["FleetModem"], PduStore]
# How long a thread may keep the interpreter before one that waits gets it (CPython's
# default is 5 ms). A fleet is hundreds of threads that mostly wait on a port and then
# do a little work; one woken by an answer otherwise waits up to 5 ms behind a thread
# recording evidence or judging, once per AT exchange, and a bank's exchanges add up
# (bench/night_bench.py: 0.5 ms took a mixed night from ~1.35 to ~1.25 times its
# unavoidable waits, and the process's CPU down by a tenth; 0.1 ms switched too often).
SWITCH_INTERVAL_S = 0.0005


class SimState(enum.Enum):
    READY = "ready"
    LOW_BALANCE = "low_balance"
    NO_SIM = "no_sim"
    NO_NETWORK = "no_network"
    OFFLINE = "offline"  # link failed, being retried (quarantined after repeated failures)
    QUARANTINED = "quarantined"
    RETIRED = "retired"


class NoModemAvailable(DialbotError):
    """No ready, unleased modem matches the requirements."""


@dataclass(frozen=True)
class FleetSettings:
    command_timeout: float = 5.0
    send_timeout: float = 30.0
    ussd_timeout: float = 15.0
    concat_timeout: float = 120.0
    low_balance_fen: int = 100
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    quarantine_after: int = 3
    check_interval: float = 10.0


@dataclass
class FleetModem:
    """One slot: inventory entry, driver, and what was last learned about its SIM."""

    @property
    def source(self) -> str:
        """The modem's name in the receipt log: its bank and slot (ports repeat across hosts)."""
        return f"{self.bank.name}/{self.entry.slot}"

    bank: Bank
    entry: ModemEntry
    modem: Modem | None = None
    health: Health | None = None
    identity: Identity | None = None
    balance_fen: int | None = None
    error: str | None = None
    data: str | None = None  # "http" when the modem can browse (WAP/MMS probes), else "none"
    leased: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def state(self) -> SimState:
        if self.entry.retired:
            return SimState.RETIRED
        if self.modem is None:
            return SimState.OFFLINE
        if self.modem.state == LinkState.QUARANTINED:
            return SimState.QUARANTINED
        if self.modem.state != LinkState.READY or self.health is None:
            return SimState.OFFLINE
        if not self.health.sim_ready:
            return SimState.NO_SIM
        if not self.health.registered:
            return SimState.NO_NETWORK
        return SimState.READY

    def state_with_balance(self, low_balance_fen: int) -> SimState:
        state = self.state
        if state == SimState.READY and self.balance_fen is not None:
            if self.balance_fen < low_balance_fen:
                return SimState.LOW_BALANCE
        return state


class Fleet:
    """All modems of the given banks. A context manager; close() is safe twice."""

    def __init__(
        self,
        banks: Iterable[Bank],
        carrier: CarrierProfile | None = None,
        settings: FleetSettings | None = None,
        unsolicited: Callable[[IncomingMessage], None] | None = None,
        stores: StoreFactory | None = None,
    ) -> None:
        """`stores` gives each modem its receipt log (durable: `dialbot.db.received`);
        without it receipts are kept in memory only."""
        self.carrier = carrier or CarrierProfile()
        self._stores = stores
        self.settings = settings or FleetSettings()
        self.unsolicited: queue.Queue[IncomingMessage] = queue.Queue()
        self._sink = unsolicited or self.unsolicited.put
        self.slots = [FleetModem(bank, entry) for bank in banks for entry in bank.modems]
        self._lease_lock = threading.Lock()

    def _settings_for(self, entry: ModemEntry) -> ModemSettings:
        s = self.settings
        return ModemSettings(
            port=entry.port,
            baud=entry.baud,
            pin=entry.pin,
            command_timeout=s.command_timeout,
            send_timeout=s.send_timeout,
            ussd_timeout=s.ussd_timeout,
            concat_timeout=s.concat_timeout,
            backoff_initial=s.backoff_initial,
            backoff_max=s.backoff_max,
            quarantine_after=s.quarantine_after,
            check_interval=s.check_interval,
        )

    def open(self, timeout: float | None = None) -> None:
        """Start every (non-retired) modem at once; wait up to timeout for first attempts."""
        if sys.getswitchinterval() > SWITCH_INTERVAL_S:
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        for slot in self.slots:
            if slot.entry.retired or slot.modem is not None:
                continue
            store = self._stores(slot) if self._stores is not None else None
            slot.modem = Modem(self._settings_for(slot.entry), unsolicited=self._sink, store=store)
            slot.modem.start()
        deadline = time.monotonic() + (timeout or self.settings.command_timeout * 4)
        for slot in self.slots:
            if slot.modem is not None:
                slot.modem.wait_settled(max(0.0, deadline - time.monotonic()))

    def refresh(self, timeout: float | None = None, identity: bool = True) -> None:
        """Health (and identity) of every connected modem, concurrently, within timeout."""
        self.run_each(lambda slot: self._check(slot, identity), timeout)

    def run_each(self, fn: Callable[[FleetModem], None], timeout: float | None = None) -> None:
        """Run fn for every live slot on its own thread; give up on those past the deadline."""
        budget = timeout or self.settings.command_timeout * 6
        threads: list[tuple[FleetModem, threading.Thread]] = []
        for slot in self.slots:
            if slot.modem is None:
                continue
            thread = threading.Thread(target=self._guard, args=(fn, slot), daemon=True)
            thread.start()
            threads.append((slot, thread))
        deadline = time.monotonic() + budget
        for slot, thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                slot.error = f"no result within {budget:g}s"

    @staticmethod
    def _guard(fn: Callable[[FleetModem], None], slot: FleetModem) -> None:
        try:
            fn(slot)
        except DialbotError as exc:
            slot.error = str(exc).splitlines()[0]

    def _check(self, slot: FleetModem, identity: bool) -> None:
        modem = slot.modem
        assert modem is not None
        if modem.state != LinkState.READY:
            slot.error = modem.last_error or f"modem {modem.state.value}"
            slot.health = None
            return
        slot.health = modem.health()
        if identity:
            slot.identity = modem.identity(slot.entry.msisdn)
            slot.data = self._data(slot, modem)
        slot.error = None

    @staticmethod
    def _data(slot: FleetModem, modem: Modem) -> str:
        """Whether the modem browses: declared `none` wins, otherwise asked by command."""
        if slot.entry.data == "none":
            return "none"
        return "http" if modem.data_backend() != "none" else "none"

    def lease(
        self,
        region: str | None = None,
        bank: str | None = None,
        timeout: float = 0.0,
        slot: int | None = None,
        data: bool = False,
    ) -> Lease:
        """A ready, unleased modem matching region, bank (and slot), waiting up to timeout.

        `data`: only a modem that can browse (WAP and MMS probes).
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._lease_lock:
                for candidate in self.slots:
                    if self._matches(candidate, region, bank, slot) and (
                        not data or candidate.data == "http"
                    ):
                        candidate.leased = True
                        return Lease(candidate, self._released)
            if time.monotonic() >= deadline:
                need = " that can browse" if data else ""
                raise NoModemAvailable(
                    f"no ready modem{need} free for region={region or 'any'} bank={bank or 'any'}"
                )
            time.sleep(0.05)

    def _matches(
        self, candidate: FleetModem, region: str | None, bank: str | None, slot: int | None
    ) -> bool:
        if candidate.leased:
            return False
        if candidate.state_with_balance(self.settings.low_balance_fen) != SimState.READY:
            return False
        if bank is not None and candidate.bank.name != bank:
            return False
        if slot is not None and candidate.entry.slot != slot:
            return False
        # a nationwide bank (no region) may probe any region's services
        return region is None or candidate.bank.region in (None, region)

    def _released(self, lease: Lease) -> None:
        for message in lease.take_all():
            self._sink(message)
        with self._lease_lock:
            lease.slot.leased = False

    def close(self) -> None:
        """Close every modem concurrently (a hung one does not hold up the rest)."""
        threads = [
            threading.Thread(target=slot.modem.close, daemon=True)
            for slot in self.slots
            if slot.modem is not None
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(self.settings.command_timeout + 5)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Fleet", "FleetModem", "FleetSettings", "NoModemAvailable", "SimState"]

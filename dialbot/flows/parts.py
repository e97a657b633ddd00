"""The local runtime in several processes: each drives a part of this host's modems.

One Python process drives every modem of a host on threads, and one
interpreter lock serialises them: with 64 busy modems a compressed night
spent ~90 % of a core in the robot, and every modem's next AT exchange
waited behind threads recording evidence or judging (bench/night_bench.py).
``[fleet] processes`` (``dialbot.toml``; "auto" by default: one process per
:data:`MODEMS_PER_PROCESS` modems, at most one per CPU) splits the modems
into contiguous parts (:func:`dialbot.fleet.inventory.partition`), each
opened by a :class:`~dialbot.flows.runtime.LocalFleet` in a child process
of its own, exactly as one process would open all of them.

The scheduler stays in the parent: its lanes, the board, the plan. What
crosses the process boundary is what crosses the runtime's protocols anyway
(a :class:`ProbeJob` in, a :class:`ProbeOutcome` out, SIM lists, counts),
through :mod:`multiprocessing.managers`: each lane thread gets its own
connection and the child serves each on a thread of its own, so probes run
as concurrently as they do in one process. The database is shared as it is
between any two dialbot processes (runs are owned by the child that opens
them, ``dialbot.db.owner``).

Failure is a crash, handled as one:

- the parent dies (even ``kill -9``): each child sees its parent's sentinel
  and exits at once, as if it had been killed with it; what it left open is
  recovered by the next process like any crash's;
- a child dies: its probes end ``infra_failed`` and count as ordered (its
  SIMs are out of service for the rest of the night; what they owe stays
  pending for the next cleanup pass, fail closed).
"""

from __future__ import annotations

import logging
import logging.handlers
import math
import multiprocessing
import multiprocessing.connection
import os
import threading
from collections import Counter
from collections.abc import Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.managers import BaseManager, BaseProxy
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from dialbot.config import Config
from dialbot.db.engine import open_database
from dialbot.db.obligations import pending_for_sim
from dialbot.db.outage import DatabaseUnavailable
from dialbot.errors import DialbotError
from dialbot.fleet import load_inventories
from dialbot.flows.loader import scheduled_flows
from dialbot.flows.runtime import LocalFleet, open_local
from dialbot.scheduling.dispatch import ProbeJob, ProbeOutcome
from dialbot.scheduling.planner import SimInfo

log = logging.getLogger("dialbot.flows.parts")

# Modems one process drives before "auto" starts another (64 modems of a compressed
# night kept one process ~90 % busy; two processes of 32 left each half a core).
MODEMS_PER_PROCESS = 32
EXIT_ORPHANED = 70  # a child whose parent died exits with this status
_EXPOSED = ("run", "hygiene", "discharge_pending", "ready_sims", "modem_states",
            "out_of_service", "judge_watch", "sims", "close")  # fmt: skip
# A child that has gone: what the parent's end of its connection raises.
_GONE = (EOFError, OSError)
T = TypeVar("T")


def cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def part_count(config: Config) -> int:
    """How many processes drive this host's modems: ``[fleet] processes``, or for
    "auto" one per :data:`MODEMS_PER_PROCESS` modems in service, at most one per CPU;
    never more than there are modems."""
    modems = sum(
        1 for bank in load_inventories(config.paths.hardware) for m in bank.modems if not m.retired
    )
    wanted = config.fleet_processes
    if wanted is None:
        wanted = min(cpus(), math.ceil(modems / MODEMS_PER_PROCESS))
    return max(1, min(wanted, modems))


# -- the child --------------------------------------------------------------------------------


def _child_init(records: Any, levels: dict[str, int]) -> None:
    """The child's first act: die with the parent, log through the parent."""
    parent = multiprocessing.parent_process()
    if parent is not None:

        def orphaned() -> None:
            multiprocessing.connection.wait([parent.sentinel])
            os._exit(EXIT_ORPHANED)  # the parent is gone: stop as it did, mid-step

        threading.Thread(target=orphaned, name="parent watch", daemon=True).start()
    handler = logging.handlers.QueueHandler(records)
    for name, level in levels.items():
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False


def _open_part(config: Config, index: int, count: int) -> LocalFleet:
    """Open part ``index`` of ``count`` of the modems (the manager's factory, in the child)."""
    db = open_database(config.database_url, outage_limit_s=config.database_outage_limit_s)
    flows = scheduled_flows(config.paths.probes)
    return open_local(config, db, flows, part=(index, count))


class PartManager(BaseManager):
    """A child process serving one :class:`LocalFleet` to the parent's threads."""


PartManager.register("LocalFleet", callable=_open_part, exposed=_EXPOSED)


# -- the parent -------------------------------------------------------------------------------


class _Relay(logging.Handler):
    """Hands a child's log record to the parent's logger of the same name (its handlers:
    dialbot.log, the console), so one log holds every process's lines (with their pid)."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


@dataclass
class Part:
    """One child: its manager, its fleet's proxy, its SIMs, and whether it is gone."""

    index: int
    manager: PartManager
    fleet: BaseProxy
    sims: dict[int, str]  # SIM id -> number
    gone: str | None = None


class Parts:
    """Dispatcher, Cleanup, FleetView and hygiene over the children's fleets."""

    def __init__(self, db: sessionmaker[Session], parts: list[Part], listener: Any) -> None:
        self.db = db
        self.parts = parts
        self._listener = listener
        self._owner = {sim_id: part for part in parts for sim_id in part.sims}
        self._closed = False
        self._lock = threading.Lock()

    # -- calls into a child --------------------------------------------------------------------

    def _call(self, part: Part, method: str, *args: Any) -> Any:
        """``method`` of the part's fleet; a child that is gone raises :class:`PartGone`."""
        if part.gone is not None:
            raise PartGone(part.gone)
        try:
            return getattr(part.fleet, method)(*args)
        except _GONE as exc:
            why = f"fleet process {part.index + 1} ended ({type(exc).__name__}: {exc})"
            with self._lock:
                if part.gone is None:
                    part.gone = why
                    log.error("fleet process gone", extra={"part": part.index + 1, "why": why})
            raise PartGone(why) from exc

    def _each(self, method: str, *args: Any, default: T) -> list[T]:
        """``method`` on every live part at once; ``default`` for the parts that are gone."""

        def one(part: Part) -> T:
            try:
                return self._call(part, method, *args)
            except PartGone:
                return default

        with ThreadPoolExecutor(max_workers=len(self.parts)) as pool:
            return list(pool.map(one, self.parts))

    # -- Dispatcher ------------------------------------------------------------------------------

    def run(self, job: ProbeJob) -> ProbeOutcome:
        """The job's SIM's process runs it (a child that dies mid-probe: ordered, fail closed)."""
        part = self._owner.get(job.sim_id)
        if part is None:
            return ProbeOutcome("infra_failed", ordered=False, sim_unusable=True,
                                error=f"SIM {job.sim_id} is not in this host's fleet")  # fmt: skip
        try:
            outcome: ProbeOutcome = self._call(part, "run", job)
        except DatabaseUnavailable:
            raise
        except PartGone as exc:
            return ProbeOutcome("infra_failed", ordered=True, sim_unusable=True, error=str(exc))
        return outcome

    def hygiene(self, sim_ids: Collection[int]) -> int:
        """Each part checks its own SIMs among ``sim_ids``, all parts at once."""
        wanted = sorted(set(sim_ids))
        return sum(self._each("hygiene", wanted, default=0))

    # -- Cleanup ---------------------------------------------------------------------------------

    def discharge_pending(self) -> int:
        """Every part recovers its idle SIMs; a part that is gone owes all its SIMs owe."""
        left = self._each("discharge_pending", default=-1)
        total = 0
        for part, count in zip(self.parts, left, strict=True):
            if count >= 0 and part.gone is None:
                total += count
            else:
                total += sum(len(pending_for_sim(self.db, n)) for n in part.sims.values())
        return total

    def judge_watch(self) -> int:
        return sum(self._each("judge_watch", default=0))

    # -- FleetView -------------------------------------------------------------------------------

    def sims(self) -> list[tuple[int, str]]:
        return sorted(item for part in self.parts for item in part.sims.items())

    def ready_sims(self) -> list[SimInfo]:
        ready: list[list[SimInfo]] = self._each("ready_sims", default=[])
        return sorted((s for found in ready for s in found), key=lambda s: s.sim_id)

    def modem_states(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for part, states in zip(self.parts, self._each("modem_states", default={}), strict=True):
            if part.gone is not None:
                states = {"out_of_service": len(part.sims)}
            total.update(states)
        return dict(total)

    def out_of_service(self) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for part, rows in zip(self.parts, self._each("out_of_service", default=[]), strict=True):
            if part.gone is not None:
                rows = [(f"SIM {sim_id}", part.gone) for sim_id in sorted(part.sims)]
            found.extend(rows)
        return found

    # -- the end ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Each part judges its watch and closes its fleet, then its process ends; safe twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._each("close", default=None)
        finally:
            for part in self.parts:
                part.manager.shutdown()
            self._listener.stop()


class PartGone(DialbotError):
    """A fleet process has ended: its SIMs are out of service."""


def _start(config: Config, index: int, count: int, records: Any, levels: dict[str, int]) -> Part:
    manager = PartManager(ctx=multiprocessing.get_context("spawn"))
    manager.start(_child_init, (records, levels))
    try:
        fleet = manager.LocalFleet(config, index, count)  # type: ignore[attr-defined]
        sims = dict(fleet.sims())
    except BaseException:
        manager.shutdown()
        raise
    log.info("fleet process started",
             extra={"part": index + 1, "of": count, "sims": len(sims)})  # fmt: skip
    return Part(index, manager, fleet, sims)


def _levels(names: Iterable[str]) -> dict[str, int]:
    """The parent's effective log level of each logger (the children log at the same)."""
    return {name: logging.getLogger(name).getEffectiveLevel() for name in names}


def open_parts(config: Config, db: sessionmaker[Session], count: int) -> Parts:
    """``count`` children, each with its part of this host's modems opened (all at once)."""
    records: Any = multiprocessing.get_context("spawn").Queue()
    listener = logging.handlers.QueueListener(records, _Relay())
    listener.start()
    levels = _levels(("dialbot", "sqlalchemy"))
    started: list[Part] = []
    errors: list[BaseException] = []

    def start(index: int) -> None:
        try:
            part = _start(config, index, count, records, levels)
        except BaseException as exc:  # reported below, after every part has been tried
            errors.append(exc)
            return
        started.append(part)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        for part in started:
            part.manager.shutdown()
        listener.stop()
        raise errors[0]
    return Parts(db, sorted(started, key=lambda p: p.index), listener)

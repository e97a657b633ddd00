"""A probe host's worker: one bank, its queue, its heartbeat, its tasks.

``dialbot worker --bank NAME`` builds a :class:`BankWorker` and runs a
Celery worker on the bank's queue with a thread pool of one thread per
modem (the modems live in this process; a probe mostly waits). Start-up is
ordered so that nothing a dead predecessor left behind is touched twice:

1. wait until the bank's previous worker is gone (its heartbeat stale), so
   two workers never drive one bank;
2. register, resolve the dispatches the predecessor was running when it
   died, and discharge every pending cleanup obligation of the bank's SIMs
   — before the first probe is taken;
3. beat (worker, bank with its ready SIMs, running dispatches and runs).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.outage import DatabaseUnavailable, survives_outage
from dialbot.db.types import utcnow
from dialbot.errors import DialbotError
from dialbot.scheduling.celery_app import (
    CLEANUP_TASK,
    HYGIENE_TASK,
    PROBE_TASK,
    BrokerSettings,
    queue_name,
)
from dialbot.scheduling.dispatch import ProbeJob, ProbeOutcome, Runtime
from dialbot.scheduling.distributed import (
    claim,
    finish,
    ordered_since,
    resolve_stale_of_bank,
)
from dialbot.scheduling.hosts import FleetBank, beat, register_worker, stop_worker, worker_alive
from dialbot.scheduling.remote_hygiene import run_hygiene_task

if TYPE_CHECKING:  # celery is needed to send or serve probes, not to import dialbot
    from celery import Celery

log = logging.getLogger("dialbot.scheduling.worker")
SNAPSHOT_EVERY = 10  # beats between refreshes of the ready-SIM list


class BankBusy(DialbotError):
    """Another live worker already serves this bank."""


@survives_outage
def wait_for_predecessor(db: sessionmaker[Session], bank: str, settings: BrokerSettings) -> None:
    """Return once no other live worker serves the bank; BankBusy if one stays alive.

    Called before this process opens the bank's ports, so that two workers
    never drive the same modems.
    """
    stale_after = timedelta(seconds=settings.stale_after_s)
    deadline = time.monotonic() + settings.stale_after_s * 2
    while True:
        with db() as session:
            previous = session.scalar(select(FleetBank.worker_id).where(FleetBank.name == bank))
        if previous is None or not worker_alive(db, previous, stale_after):
            return
        if time.monotonic() > deadline:
            raise BankBusy(f"bank {bank} is served by live worker {previous}")
        time.sleep(min(1.0, settings.heartbeat_s))


@dataclass
class BankWorker:
    """Everything the tasks of one worker process share."""

    db: sessionmaker[Session]
    runtime: Runtime
    bank: str
    region: str | None
    modems: int
    settings: BrokerSettings
    host: str = field(default_factory=socket.gethostname)
    worker_id: int = 0
    # Why the worker stopped itself (the database stayed away too long); None otherwise.
    fatal: DatabaseUnavailable | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _beater: threading.Thread | None = None

    @property
    def stale_after(self) -> timedelta:
        return timedelta(seconds=self.settings.stale_after_s)

    def start(self) -> None:
        """Steps 1–3 of the module docstring; raises BankBusy if the bank stays served."""
        wait_for_predecessor(self.db, self.bank, self.settings)
        self.worker_id = register_worker(self.db, host=self.host, pid=os.getpid(),
                                         bank=self.bank, region=self.region,
                                         modems=self.modems)  # fmt: skip
        lost = resolve_stale_of_bank(self.db, self.bank, self.stale_after)
        left = self.runtime.cleanup.discharge_pending()
        log.info("worker registered", extra={"bank": self.bank, "worker_id": self.worker_id,
                                             "lost": lost, "cleanup_left": left})  # fmt: skip
        self.heartbeat(snapshot=True)
        self._beater = threading.Thread(target=self._beat_loop, name="heartbeat", daemon=True)
        self._beater.start()

    def stop(self) -> None:
        """Stop beating and mark the worker gone; safe to call twice."""
        self._stop.set()
        if self._beater is not None:
            self._beater.join(timeout=self.settings.heartbeat_s * 2)
        if self.worker_id and self.fatal is None:
            stop_worker(self.db, self.worker_id)

    def heartbeat(self, snapshot: bool = False) -> None:
        sims = states = None
        if snapshot:
            fleet = self.runtime.fleet
            sims = [
                {
                    "sim_id": s.sim_id,
                    "msisdn": s.msisdn,
                    "balance_fen": s.balance_fen,
                    "data": s.data,
                }
                for s in fleet.ready_sims()
            ]
            states = dict(fleet.modem_states())
        beat(self.db, self.worker_id, self.bank, sims=sims, modem_states=states)

    def _beat_loop(self) -> None:
        count = 0
        while not self._stop.wait(self.settings.heartbeat_s):
            count += 1
            try:
                self.heartbeat(snapshot=count % SNAPSHOT_EVERY == 0)
            except DatabaseUnavailable as exc:  # past [database] outage_limit_s: stop
                self.fatal = exc
                log.error("stopping: %s", exc, extra={"bank": self.bank})
                os.kill(os.getpid(), signal.SIGTERM)  # Celery's warm shutdown
                return
            except Exception:  # anything else: the next beat tries again
                log.exception("heartbeat failed", extra={"bank": self.bank})

    # -- the tasks -----------------------------------------------------------------------

    def run_dispatch(self, dispatch_id: int, follow_days: float | None = None) -> str:
        """The probe task: claim, run with the local runtime, store the outcome.

        ``follow_days``: the controller's schedule's horizon for the probe's order (None:
        this host's ``[probe] follow_days``)."""
        row = claim(self.db, dispatch_id, self.worker_id)
        if row is None:
            log.info("dispatch not queued any more: not run again",
                     extra={"dispatch_id": dispatch_id})  # fmt: skip
            return "skipped"
        job = ProbeJob(row.item_id or 0, row.plan_id or 0, row.service_id, row.sp_code,
                       row.flow, row.sim_id, row.attempt, follow_days)  # fmt: skip
        try:
            outcome = self.runtime.dispatcher.run(job)
        except DatabaseUnavailable:
            raise  # nothing can be recorded; the heartbeat stops the worker
        except Exception as exc:  # the probe broke: infrastructure, ordered if it got that far
            log.exception("probe raised", extra={"dispatch_id": dispatch_id})
            with self.db() as session:
                ordered = ordered_since(session, row.sim_id, row.claimed_at or utcnow())
            outcome = ProbeOutcome("infra_failed", ordered=ordered, error=repr(exc))
        if not finish(self.db, dispatch_id, self.worker_id, outcome):
            log.warning("dispatch was resolved as lost before it ended",
                        extra={"dispatch_id": dispatch_id})  # fmt: skip
        return outcome.status

    def run_cleanup(self) -> int:
        """The cleanup task: discharge this bank's pending obligations."""
        return self.runtime.cleanup.discharge_pending()

    def run_hygiene(self, task_id: int) -> int:
        """The hygiene task: claim, check the task's SIMs of this bank with the local
        runtime's hook (follow-ups, then the hygiene flow), store the findings."""
        return run_hygiene_task(self.db, self.runtime.hygiene, task_id, self.worker_id)


def register_tasks(app: Celery, worker: BankWorker) -> None:
    """Bind the probe, cleanup and hygiene tasks of ``app`` to this worker."""

    @app.task(name=PROBE_TASK, acks_late=True)
    def probe(dispatch_id: int, follow_days: float | None = None) -> str:
        days = None if follow_days is None else float(follow_days)
        return worker.run_dispatch(int(dispatch_id), days)

    @app.task(name=CLEANUP_TASK, acks_late=True)
    def cleanup() -> int:
        return worker.run_cleanup()

    @app.task(name=HYGIENE_TASK, acks_late=True)
    def hygiene(task_id: int) -> int:
        return worker.run_hygiene(int(task_id))


def start_celery(app: Celery, worker: BankWorker, loglevel: str = "INFO") -> None:
    """Consume only the bank's queue, one probe per modem at a time (blocks)."""
    celery_worker = app.Worker(
        hostname=f"{worker.bank}@{worker.host}",
        queues=[queue_name(worker.bank)],
        concurrency=max(1, worker.modems),
        pool="threads",
        prefetch_multiplier=1,
        loglevel=loglevel,
        without_gossip=True,
        without_mingle=True,
        quiet=True,
    )
    celery_worker.start()

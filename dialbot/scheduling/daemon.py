"""`dialbot daemon`: the schedules, run unattended.

APScheduler 3 fires each schedule's cron trigger; its jobs live in dialbot's
own database (SQLAlchemyJobStore), so fire times and misfires survive
restarts. At start-up, before anything else, the daemon discharges every
pending cleanup obligation, closes nights whose window passed while it was
down, and resumes a night still inside its window (see
:mod:`dialbot.scheduling.nights` for why nothing is ordered twice). A
housekeeping job raises and delivers alerts. SIGTERM (or SIGINT) stops it
cleanly: no new probe starts, the running ones finish, the scheduler and
the metrics endpoint shut down, and the process exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime, timedelta
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import engine_of
from dialbot.db.outage import DatabaseUnavailable
from dialbot.db.types import utcnow
from dialbot.scheduling.alerts import AlertSender, AlertSettings, modem_alerts, scan_findings
from dialbot.scheduling.dispatch import Runtime
from dialbot.scheduling.metrics import DialbotCollector, MetricsServer
from dialbot.scheduling.nights import close_expired
from dialbot.scheduling.schedules import Schedule
from dialbot.scheduling.service import run_night, unfinished_night

log = logging.getLogger("dialbot.daemon")
JOB_PREFIX = "schedule:"
ALERT_LOOKBACK = timedelta(days=7)
_active: Daemon | None = None


def run_night_job(name: str) -> None:
    """The job APScheduler stores (by reference): run ``name``'s night in the live daemon."""
    daemon = _active
    if daemon is None:
        log.error("night fired with no daemon running", extra={"schedule": name})
        return
    daemon.run_schedule(name)


class Daemon:
    """Scheduler, housekeeping and metrics around one runtime; ``shutdown`` is safe twice."""

    def __init__(
        self,
        db: sessionmaker[Session],
        schedules: list[Schedule],
        runtime: Runtime,
        *,
        alerts: AlertSettings | None = None,
        metrics_port: int | None = None,
        metrics_addr: str = "127.0.0.1",
        housekeeping_s: float = 30.0,
    ) -> None:
        self.db = db
        self.schedules = {s.name: s for s in schedules}
        self.runtime = runtime
        self.alerts = AlertSender(db, alerts or AlertSettings())
        self.metrics_port = metrics_port
        self.metrics_addr = metrics_addr
        self.housekeeping_s = housekeeping_s
        self.stop = threading.Event()
        self.fatal: DatabaseUnavailable | None = None  # why the daemon stopped itself
        self.metrics: MetricsServer | None = None
        self.scheduler: BackgroundScheduler | None = None
        self._locks = {name: threading.Lock() for name in self.schedules}
        self._down = False

    def start(self) -> None:
        """Clean, recover, then start firing schedules."""
        global _active
        _active = self
        remaining = self.runtime.cleanup.discharge_pending()
        log.info("daemon starting", extra={"schedules": sorted(self.schedules),
                                           "obligations_left": remaining})  # fmt: skip
        now = utcnow()
        for name in self.schedules:
            close_expired(self.db, name, now)
        if self.metrics_port is not None:
            collector = DialbotCollector(self.db, self.runtime.fleet.modem_states)
            self.metrics = MetricsServer(collector, self.metrics_port, self.metrics_addr)
            log.info("metrics served", extra={"port": self.metrics.port})
        self.scheduler = self._make_scheduler()
        self.scheduler.start(paused=True)
        self._sync_jobs()
        self.scheduler.add_job(self.housekeeping, "interval", seconds=self.housekeeping_s,
                               id="housekeeping", jobstore="memory", next_run_time=now,
                               coalesce=True, max_instances=1)  # fmt: skip
        for schedule in self.schedules.values():
            if unfinished_night(self.db, schedule, now) is not None:
                log.info("resuming night", extra={"schedule": schedule.name})
                self.scheduler.add_job(run_night_job, args=[schedule.name], jobstore="memory",
                                       id=f"resume:{schedule.name}", next_run_time=now)  # fmt: skip
        self.scheduler.resume()

    def _make_scheduler(self) -> BackgroundScheduler:
        store = SQLAlchemyJobStore(engine=engine_of(self.db))
        return BackgroundScheduler(
            jobstores={"default": store, "memory": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(max(4, 2 * len(self.schedules) + 2))},
            timezone="Asia/Shanghai",
        )

    def _sync_jobs(self) -> None:
        """Make the stored jobs match the schedule files (add, update, drop)."""
        assert self.scheduler is not None
        for job in self.scheduler.get_jobs(jobstore="default"):
            if job.id.startswith(JOB_PREFIX) and job.id[len(JOB_PREFIX) :] not in self.schedules:
                job.remove()
        for schedule in self.schedules.values():
            start = utcnow()
            grace = (schedule.window_end_after(start) - start).total_seconds()
            self.scheduler.add_job(
                "dialbot.scheduling.daemon:run_night_job",
                trigger=schedule.trigger(),
                args=[schedule.name],
                id=JOB_PREFIX + schedule.name,
                name=schedule.name,
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=max(60, int(grace)),
            )

    def next_runs(self) -> dict[str, datetime | None]:
        assert self.scheduler is not None
        return {
            job.id[len(JOB_PREFIX) :]: job.next_run_time
            for job in self.scheduler.get_jobs(jobstore="default")
            if job.id.startswith(JOB_PREFIX)
        }

    def run_schedule(self, name: str) -> None:
        """One night of ``name`` (never two of the same schedule at once)."""
        schedule = self.schedules.get(name)
        if schedule is None:
            log.warning("stored job names an unknown schedule", extra={"schedule": name})
            return
        with self._locks[name]:
            if self.stop.is_set():
                return
            try:
                run_night(self.db, schedule, self.runtime, stop=self.stop)
            except DatabaseUnavailable as exc:
                self._give_up(exc)
            except Exception:
                log.exception("night failed", extra={"schedule": name})

    def housekeeping(self) -> None:
        """Raise alerts for what happened since, and deliver the ones due."""
        try:
            scan_findings(self.db, utcnow() - ALERT_LOOKBACK)
            modem_alerts(self.db, self.runtime.fleet.out_of_service())
            self.alerts.deliver_due()
        except DatabaseUnavailable as exc:
            self._give_up(exc)
        except Exception:
            log.exception("housekeeping failed")

    def _give_up(self, exc: DatabaseUnavailable) -> None:
        """The database stayed away past its limit: stop the daemon (the CLI exits 3)."""
        self.fatal = exc
        log.error("stopping: %s", exc)
        self.stop.set()

    def serve(self) -> None:
        """Start, then block until SIGTERM/SIGINT; then shut down cleanly."""
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

        def _stop(signum: int, _frame: FrameType | None) -> None:
            log.info("signal received, stopping", extra={"signal": signal.Signals(signum).name})
            self.stop.set()

        for sig in previous:
            signal.signal(sig, _stop)
        try:
            self.start()
            while not self.stop.wait(1.0):
                pass
        finally:
            self.shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def shutdown(self) -> None:
        """Stop starting probes, let running ones end, stop the scheduler and endpoint."""
        global _active
        if self._down:
            return
        self._down = True
        self.stop.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if self.metrics is not None:
            self.metrics.close()
        self.runtime.close()
        if _active is self:
            _active = None
        log.info("daemon stopped")

    def __enter__(self) -> Daemon:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

"""Probes over Celery: the controller's dispatcher and the worker's task.

The controller (daemon or ``dialbot schedule run --runtime
dialbot.scheduling.distributed:runtime``) plans as usual; for each probe
the :class:`DistributedDispatcher` stores a *dispatch* row, sends its id
to the queue of the bank holding the planned SIM, and waits for the outcome
in the database. The worker task (:func:`run_dispatch`) claims the row
before it touches a modem, runs the probe with its host's local runtime and
writes the outcome back.

Exactly once, whatever dies:

- a message delivered twice (broker redelivery, acks late) finds its row
  claimed or final and is dropped: nothing orders twice;
- a worker killed mid-probe stops beating; whoever notices first (the
  controller waiting on it, or the bank's next worker at start-up) resolves
  the dispatch under a row lock: its runs become ``infra_failed`` (never
  counted against the SP), and it is *ordered* when the SIM got a cleanup
  obligation since the claim (obligations are stored before the order);
- an ordered lost probe is not ordered again that night; the bank's next
  worker discharges its obligation before the SIM does anything else;
- a lost probe that had not ordered, or one no worker took in time, is
  sent again to another SIM on a live bank of a suitable region.

The rule (re-run what never ordered, re-plan the rest) and its evidence
(obligations since the claim) are :mod:`dialbot.scheduling.recovery`'s,
shared with the local runtime's resumed nights.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from dialbot.config import Config
from dialbot.db.engine import write_session
from dialbot.db.models import TERMINAL_STATES, CleanupObligation, Run, RunState, Service, Sim
from dialbot.db.outage import heartbeat_cutoff, survives_outage
from dialbot.db.types import utcnow
from dialbot.flows.loader import scheduled_flows
from dialbot.scheduling.celery_app import (
    CLEANUP_TASK,
    PROBE_TASK,
    BrokerSettings,
    broker_settings,
    make_app,
    queue_name,
)
from dialbot.scheduling.dispatch import OutcomeStatus, ProbeJob, ProbeOutcome, Runtime
from dialbot.scheduling.hosts import FINAL_DISPATCH_STATES, Dispatch, FleetBank, live_banks
from dialbot.scheduling.inputs import flow_tables
from dialbot.scheduling.planner import SimInfo
from dialbot.scheduling.recovery import Recovery, decide, order_went_out
from dialbot.scheduling.remote_hygiene import DistributedHygiene

if TYPE_CHECKING:  # celery is needed to send or serve probes, not to import dialbot
    from celery import Celery

log = logging.getLogger("dialbot.scheduling.distributed")
MAX_HOPS = 3  # a probe is sent to at most this many SIMs before it is given up


# -- the dispatch row: create, claim, finish, resolve ----------------------------------


@survives_outage
def create_dispatch(
    db: sessionmaker[Session], job: ProbeJob, sim_id: int, bank: str, retry_of: int | None
) -> int:
    """Store the dispatch before its message is sent, so a worker always finds its row."""
    with write_session(db) as session:
        row = Dispatch(
            item_id=job.item_id, plan_id=job.plan_id, service_id=job.service_id,
            sp_code=job.sp_code, flow=job.flow, sim_id=sim_id, bank=bank, attempt=job.attempt,
            retry_of_id=retry_of, state="queued", ordered=False, sim_unusable=False,
        )  # fmt: skip
        session.add(row)
        session.flush()
        return row.id


@survives_outage
def get_dispatch(db: sessionmaker[Session], dispatch_id: int) -> Dispatch:
    with db() as session:
        row = session.get(Dispatch, dispatch_id)
        if row is None:
            raise LookupError(f"no dispatch {dispatch_id}")
        return row


@survives_outage
def claim(db: sessionmaker[Session], dispatch_id: int, worker_id: int) -> Dispatch | None:
    """Take a queued dispatch for this worker; None when it is not queued any more."""
    now = utcnow()
    with write_session(db) as session:
        result = session.execute(
            update(Dispatch)
            .where(Dispatch.id == dispatch_id, Dispatch.state == "queued")
            .values(state="running", worker_id=worker_id, claimed_at=now, heartbeat_at=now)
        )
        if int(result.rowcount) != 1:  # type: ignore[attr-defined]
            return None
        return session.get(Dispatch, dispatch_id)


@survives_outage
def finish(
    db: sessionmaker[Session], dispatch_id: int, worker_id: int, outcome: ProbeOutcome
) -> bool:
    """Store the outcome; False when the dispatch was resolved as lost meanwhile."""
    with write_session(db) as session:
        result = session.execute(
            update(Dispatch)
            .where(
                Dispatch.id == dispatch_id,
                Dispatch.state == "running",
                Dispatch.worker_id == worker_id,
            )
            .values(
                state="done",
                status=outcome.status,
                ordered=outcome.ordered,
                sim_unusable=outcome.sim_unusable,
                run_id=outcome.run_id,
                error=outcome.error,
                ended_at=utcnow(),
            )  # fmt: skip
        )
        return int(result.rowcount) == 1  # type: ignore[attr-defined]


def ordered_since(session: Session, sim_id: int, since: datetime) -> bool:
    """Whether the SIM got a cleanup obligation since ``since`` (so an order may be out);
    the shared evidence of :mod:`dialbot.scheduling.recovery`."""
    return order_went_out(session, [sim_id], since)


@survives_outage
def resolve_lost(db: sessionmaker[Session], dispatch_id: int, stale_after: timedelta) -> bool:
    """A running dispatch whose heartbeat is stale: its worker died. Resolve it once.

    Its unfinished runs become infra_failed; it is ``ordered`` when its SIM
    got an obligation since the claim. Returns False when it was not stale
    (or someone resolved it first).
    """
    now = utcnow()
    cutoff = heartbeat_cutoff(db, stale_after, now)
    with write_session(db) as session:
        row = session.execute(
            select(Dispatch).where(Dispatch.id == dispatch_id).with_for_update()
        ).scalar_one()
        claimed = row.claimed_at
        if row.state != "running" or row.heartbeat_at is None or claimed is None:
            return False
        if row.heartbeat_at >= cutoff:
            return False
        runs = list(
            session.scalars(
                select(Run)
                .where(
                    Run.sim_id == row.sim_id,
                    Run.service_id == row.service_id,
                    Run.created_at >= claimed,
                )
                .order_by(Run.id)
            )
        )
        for run in runs:
            if RunState(run.state) not in TERMINAL_STATES:
                run.move_to(RunState.INFRA_FAILED, at=now, error="worker lost mid-probe")
        row.ordered = ordered_since(session, row.sim_id, claimed)
        row.state, row.status, row.ended_at = "lost", "infra_failed", now
        row.run_id = runs[-1].id if runs else None
        row.error = "worker lost mid-probe (heartbeat stale)"
        log.warning("dispatch lost", extra={"dispatch_id": row.id, "bank": row.bank,
                                            "ordered": row.ordered})  # fmt: skip
        return True


@survives_outage
def resolve_stale_of_bank(db: sessionmaker[Session], bank: str, stale_after: timedelta) -> int:
    """At a worker's start: resolve every stale dispatch its bank's previous worker left."""
    cutoff = heartbeat_cutoff(db, stale_after, utcnow())
    with db() as session:
        ids = list(
            session.scalars(
                select(Dispatch.id).where(
                    Dispatch.bank == bank, Dispatch.state == "running",
                    Dispatch.heartbeat_at < cutoff,
                )
            )
        )  # fmt: skip
    return sum(resolve_lost(db, i, stale_after) for i in ids)


@survives_outage
def expire(db: sessionmaker[Session], dispatch_id: int, reason: str) -> bool:
    """Give up a dispatch no worker took; a late delivery then finds it final."""
    with write_session(db) as session:
        result = session.execute(
            update(Dispatch)
            .where(Dispatch.id == dispatch_id, Dispatch.state == "queued")
            .values(
                state="expired",
                status="infra_failed",
                ordered=False,
                error=reason,
                ended_at=utcnow(),
            )  # fmt: skip
        )
        return int(result.rowcount) == 1  # type: ignore[attr-defined]


def outcome_of(row: Dispatch) -> ProbeOutcome:
    status: OutcomeStatus = "infra_failed"
    if row.status == "done":
        status = "done"
    elif row.status == "failed":
        status = "failed"
    return ProbeOutcome(status, ordered=row.ordered, run_id=row.run_id, error=row.error,
                        sim_unusable=row.sim_unusable)  # fmt: skip


# -- the controller side -----------------------------------------------------------------


class DistributedDispatcher:
    """Sends each probe to the queue of the bank holding its SIM; waits in the database."""

    def __init__(
        self, db: sessionmaker[Session], app: Celery, settings: BrokerSettings, poll_s: float = 0.2
    ) -> None:
        self.db = db
        self.app = app
        self.settings = settings
        self.poll_s = poll_s
        self.stale_after = timedelta(seconds=settings.stale_after_s)

    def run(self, job: ProbeJob) -> ProbeOutcome:
        tried: set[int] = set()
        sim_id: int | None = job.sim_id
        retry_of: int | None = None
        outcome = ProbeOutcome("infra_failed", ordered=False, error="no SIM to run it on")
        for _ in range(MAX_HOPS):
            if sim_id is None:
                break
            bank = self._bank_of(sim_id)
            if bank is None:
                outcome = ProbeOutcome("infra_failed", False, error=f"SIM {sim_id} on no bank")
            else:
                dispatch_id = create_dispatch(self.db, job, sim_id, bank, retry_of)
                # the schedule's horizon travels with the message (None: the worker's own)
                extra: dict[str, Any] = {}
                if job.follow_days is not None:
                    extra["kwargs"] = {"follow_days": job.follow_days}
                self.app.send_task(PROBE_TASK, args=[dispatch_id], queue=queue_name(bank),
                                   **extra)  # fmt: skip
                log.info("probe dispatched", extra={"dispatch_id": dispatch_id, "bank": bank,
                                                    "item_id": job.item_id})  # fmt: skip
                outcome, given_up = self._wait(dispatch_id)
                if not given_up or decide(outcome.ordered) is Recovery.REPLAN:
                    return outcome
                retry_of = dispatch_id
            tried.add(sim_id)
            sim_id = self._another_sim(job.service_id, tried)
        return outcome

    @survives_outage
    def _bank_of(self, sim_id: int) -> str | None:
        with self.db() as session:
            return session.scalar(select(Sim.bank).where(Sim.id == sim_id))

    def _wait(self, dispatch_id: int) -> tuple[ProbeOutcome, bool]:
        """(outcome, given up) — given up: lost with its worker, or taken by no worker."""
        claim_timeout = timedelta(seconds=self.settings.claim_timeout_s)
        while True:
            row = get_dispatch(self.db, dispatch_id)
            if row.state in FINAL_DISPATCH_STATES:
                return outcome_of(row), row.state != "done"
            now = utcnow()
            # Both clocks restart after a database outage: nobody could claim or beat.
            if row.state == "queued" and row.created_at < heartbeat_cutoff(
                self.db, claim_timeout, now
            ):
                expire(self.db, dispatch_id, f"no worker of bank {row.bank} took it in time")
                continue
            if row.state == "running" and row.heartbeat_at is not None:
                if row.heartbeat_at < heartbeat_cutoff(self.db, self.stale_after, now):
                    resolve_lost(self.db, dispatch_id, self.stale_after)
                    continue
            time.sleep(self.poll_s)

    @survives_outage
    def _another_sim(self, service_id: int, tried: set[int]) -> int | None:
        """A ready SIM, not tried yet, on a live bank of the service's region (idle first)."""
        with self.db() as session:
            region = session.scalar(select(Service.region).where(Service.id == service_id))
            busy = set(
                session.scalars(
                    select(Dispatch.sim_id).where(Dispatch.state.in_(["queued", "running"]))
                )
            )
        candidates = [
            int(sim["sim_id"])
            for bank in live_banks(self.db, self.stale_after)
            if region is None or bank.region is None or bank.region == region
            for sim in bank.sims
            if int(sim["sim_id"]) not in tried
        ]
        candidates.sort(key=lambda s: s in busy)
        return candidates[0] if candidates else None


class DistributedCleanup:
    """Asks every live bank's worker to discharge its SIMs' pending obligations, and waits."""

    def __init__(
        self, db: sessionmaker[Session], app: Celery, settings: BrokerSettings, poll_s: float = 0.2
    ) -> None:
        self.db = db
        self.app = app
        self.settings = settings
        self.poll_s = poll_s

    def discharge_pending(self) -> int:
        banks = live_banks(self.db, timedelta(seconds=self.settings.stale_after_s))
        for bank in banks:
            self.app.send_task(CLEANUP_TASK, queue=queue_name(bank.name))
        names = [b.name for b in banks]
        deadline = time.monotonic() + self.settings.claim_timeout_s
        while (left := self._pending(names)) and time.monotonic() < deadline:
            time.sleep(self.poll_s)
        return left

    @survives_outage
    def _pending(self, banks: list[str]) -> int:
        """Obligations the workers still have to discharge: a subscription a `keep` probe
        keeps until its horizon is not one of them (docs/month-after.md)."""
        now = utcnow()
        with self.db() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(CleanupObligation)
                    .join(Sim, Sim.msisdn == CleanupObligation.sim)
                    .where(
                        CleanupObligation.discharged_at.is_(None),
                        Sim.bank.in_(banks),
                        or_(
                            CleanupObligation.keep_until.is_(None),
                            CleanupObligation.keep_until <= now,
                        ),
                    )
                )
                or 0
            )


@dataclass
class RegistryFleet:
    """The fleet as the live banks last reported it (the controller sees no modem)."""

    db: sessionmaker[Session]
    stale_after: timedelta

    def ready_sims(self) -> list[SimInfo]:
        return [
            SimInfo(
                int(s["sim_id"]),
                str(s["msisdn"]),
                bank.region,
                s.get("balance_fen"),
                data=s.get("data"),
            )
            for bank in live_banks(self.db, self.stale_after)
            for s in bank.sims
        ]

    def modem_states(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for bank in live_banks(self.db, self.stale_after):
            for state, count in (bank.modem_states or {}).items():
                totals[state] = totals.get(state, 0) + int(count)
        return totals

    @survives_outage
    def out_of_service(self) -> list[tuple[str, str]]:
        live = {b.name for b in live_banks(self.db, self.stale_after)}
        with self.db() as session:
            names = list(session.scalars(select(FleetBank.name).order_by(FleetBank.name)))
        return [(f"bank {name}", "worker lost") for name in names if name not in live]


def runtime(config: Config, db: sessionmaker[Session]) -> Runtime:
    """The controller's runtime: ``--runtime dialbot.scheduling.distributed:runtime``."""
    settings = broker_settings(config)
    app = make_app(settings)
    billing, seconds = flow_tables(scheduled_flows(config.paths.probes), config.probe.time_scale)
    return Runtime(
        dispatcher=DistributedDispatcher(db, app, settings),
        cleanup=DistributedCleanup(db, app, settings),
        fleet=RegistryFleet(db, timedelta(seconds=settings.stale_after_s)),
        flow_billing=billing,
        flow_seconds=seconds,
        close=app.close,
        # a SIM's modem is held by its bank's worker: the check is a worker task per bank
        hygiene=DistributedHygiene(db, app, settings),
    )

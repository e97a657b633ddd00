"""A distributed night's hygiene check: one worker task per bank, outcomes in the database.

The local runtime checks a night's SIMs itself (``LocalFleet.hygiene``: the
month-after follow-up, then the hygiene flow). In the distributed runtime the
controller sees no modem, so :class:`DistributedHygiene` (the controller
runtime's hygiene hook) groups the SIMs by bank and sends each live bank's
worker one *hygiene task* (:func:`run_hygiene_task`) on the bank's queue, like
a probe; the worker runs its own local runtime's hook on those SIMs — the same
code that decides locally, not a copy — and writes the number of findings back.

Bookkeeping follows the probe's dispatch rows (:mod:`dialbot.scheduling.distributed`):

- the row is stored before its message is sent; the worker claims it
  (``queued → running``) before it touches a modem, so a message delivered
  twice, or late (after the controller gave it up: ``expired``), runs nothing;
- a claimed task whose worker stops beating is resolved ``lost``; its bank's
  next worker finds the redelivered message claimed and drops it;
- the modems stay serialised by the worker's leases: a hygiene check and a
  probe on one modem never overlap, whatever arrives late.

Fail safe: a SIM is *checked* only when its hygiene flow ran to its end on the
worker (a run in the database, not the worker's word). A SIM whose bank has no
live worker, whose bank's task expired, was lost, failed or outlived the
deadline, or that its worker could not check (busy, out of service), is not; it is named
(masked) in a warning, and nothing is counted for it. A bank's failure is not
fatal to the night.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from dialbot.db.engine import write_session
from dialbot.db.models import Base, Run, RunState, Sim
from dialbot.db.outage import DatabaseUnavailable, heartbeat_cutoff, survives_outage
from dialbot.db.types import utcnow
from dialbot.mask import mask_msisdn
from dialbot.scheduling.celery_app import HYGIENE_TASK, BrokerSettings, queue_name
from dialbot.scheduling.hosts import live_banks, worker_alive

if TYPE_CHECKING:  # celery is needed to send or serve tasks, not to import dialbot
    from celery import Celery

    from dialbot.scheduling.dispatch import HygieneHook

log = logging.getLogger("dialbot.scheduling.remote_hygiene")
HYGIENE_STATES = ("queued", "running", "done", "failed", "lost", "expired")
FINAL_HYGIENE_STATES = frozenset({"done", "failed", "lost", "expired"})


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class HygieneTask(Base):
    """One bank's hygiene check of a night's SIMs: the idempotency key of its Celery task."""

    __tablename__ = "hygiene_tasks"
    __table_args__ = (CheckConstraint(_in("state", HYGIENE_STATES), name="ck_hygiene_tasks_state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bank: Mapped[str] = mapped_column(String(64))
    sim_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("fleet_workers.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    findings: Mapped[int | None] = mapped_column(Integer)
    # the SIMs whose hygiene flow ran to its end (the others were not checked)
    checked: Mapped[list[int] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


# -- the row: create, claim, finish, give up ----------------------------------------------


@survives_outage
def create_task(db: sessionmaker[Session], bank: str, sim_ids: list[int]) -> int:
    """Store the task before its message is sent, so a worker always finds its row."""
    with write_session(db) as session:
        row = HygieneTask(bank=bank, sim_ids=sorted(sim_ids), state="queued")
        session.add(row)
        session.flush()
        return row.id


@survives_outage
def get_task(db: sessionmaker[Session], task_id: int) -> HygieneTask:
    with db() as session:
        row = session.get(HygieneTask, task_id)
        if row is None:
            raise LookupError(f"no hygiene task {task_id}")
        return row


@survives_outage
def claim_task(db: sessionmaker[Session], task_id: int, worker_id: int) -> HygieneTask | None:
    """Take a queued task for this worker; None when it is not queued any more."""
    with write_session(db) as session:
        result = session.execute(
            update(HygieneTask)
            .where(HygieneTask.id == task_id, HygieneTask.state == "queued")
            .values(state="running", worker_id=worker_id, claimed_at=utcnow())
        )
        if int(result.rowcount) != 1:  # type: ignore[attr-defined]
            return None
        return session.get(HygieneTask, task_id)


@survives_outage
def end_task(
    db: sessionmaker[Session],
    task_id: int,
    worker_id: int,
    findings: int | None,
    error: str | None,
    checked: list[int] | None = None,
) -> bool:
    """Store how the check ended (``failed`` with an error); False if it was resolved lost."""
    with write_session(db) as session:
        result = session.execute(
            update(HygieneTask)
            .where(
                HygieneTask.id == task_id,
                HygieneTask.state == "running",
                HygieneTask.worker_id == worker_id,
            )
            .values(
                state="done" if error is None else "failed",
                findings=findings,
                checked=checked,
                error=error,
                ended_at=utcnow(),
            )  # fmt: skip
        )
        return int(result.rowcount) == 1  # type: ignore[attr-defined]


@survives_outage
def give_up(db: sessionmaker[Session], task_id: int, state: str, reason: str) -> bool:
    """``expired`` (queued: nobody took it) or ``lost`` (running: its worker died), once."""
    was = "queued" if state == "expired" else "running"
    with write_session(db) as session:
        result = session.execute(
            update(HygieneTask)
            .where(HygieneTask.id == task_id, HygieneTask.state == was)
            .values(state=state, error=reason, ended_at=utcnow())
        )
        return int(result.rowcount) == 1  # type: ignore[attr-defined]


def run_hygiene_task(
    db: sessionmaker[Session], hygiene: HygieneHook, task_id: int, worker_id: int
) -> int:
    """The worker's side: claim, run this host's hygiene hook on the task's SIMs, store.

    Returns the findings (0 when the task was not queued any more: not run again)."""
    row = claim_task(db, task_id, worker_id)
    if row is None:
        log.info("hygiene task not queued any more: not run", extra={"task_id": task_id})
        return 0
    try:
        found = hygiene([int(i) for i in row.sim_ids])
    except DatabaseUnavailable:
        raise  # nothing can be recorded; the heartbeat stops the worker
    except Exception as exc:
        log.exception("hygiene task raised", extra={"task_id": task_id})
        end_task(db, task_id, worker_id, None, repr(exc))
        return 0
    checked = checked_since(db, [int(i) for i in row.sim_ids], row.claimed_at or utcnow())
    if not end_task(db, task_id, worker_id, found, None, checked):
        log.warning("hygiene task was resolved before it ended", extra={"task_id": task_id})
    return found


@survives_outage
def checked_since(db: sessionmaker[Session], sim_ids: list[int], since: datetime) -> list[int]:
    """The SIMs whose hygiene flow ran to its end since ``since``: the evidence that a SIM
    was checked (a SIM the hook skipped — busy, out of service — or whose check failed
    has no such run)."""
    with db() as session:
        rows = session.scalars(
            select(Run.sim_id).where(
                Run.flow == "hygiene",
                Run.state == RunState.DONE.value,
                Run.sim_id.in_(sim_ids),
                Run.created_at >= since,
            )
        )
        return sorted({int(i) for i in rows if i is not None})


# -- the controller's side ------------------------------------------------------------------


@dataclass
class HygieneRound:
    """What one call of the hook did: findings, and the SIMs checked and not checked."""

    findings: int = 0
    checked: list[int] = field(default_factory=list)
    unchecked: dict[int, str] = field(default_factory=dict)  # SIM id -> why not


class DistributedHygiene:
    """The controller's hygiene hook: one task per live bank, waited for with a deadline."""

    def __init__(
        self,
        db: sessionmaker[Session],
        app: Celery,
        settings: BrokerSettings,
        poll_s: float = 0.2,
        deadline_s: float | None = None,
    ) -> None:
        self.db = db
        self.app = app
        self.settings = settings
        self.poll_s = poll_s
        self.stale_after = timedelta(seconds=settings.stale_after_s)
        # a check of a bank's SIMs at once: a few carrier round trips per SIM, in parallel
        self.deadline_s = deadline_s if deadline_s is not None else settings.hygiene_timeout_s
        self.last = HygieneRound()

    def __call__(self, sim_ids: Collection[int]) -> int:
        self.last = self.check(sim_ids)
        return self.last.findings

    def check(self, sim_ids: Collection[int]) -> HygieneRound:
        result = HygieneRound()
        banks_of, msisdns = self._banks_of(sorted(set(sim_ids)))
        live = {b.name for b in live_banks(self.db, self.stale_after)}
        groups: dict[str, list[int]] = {}
        for sim_id, bank in banks_of.items():
            if bank is not None and bank in live:
                groups.setdefault(bank, []).append(sim_id)
            else:
                result.unchecked[sim_id] = f"bank {bank} has no live worker"
        tasks: dict[int, str] = {}
        for bank, ids in sorted(groups.items()):
            task_id = create_task(self.db, bank, ids)
            self.app.send_task(HYGIENE_TASK, args=[task_id], queue=queue_name(bank))
            tasks[task_id] = bank
            log.info("hygiene dispatched", extra={"task_id": task_id, "bank": bank,
                                                  "sims": len(ids)})  # fmt: skip
        for task_id, row in self._wait(tasks).items():
            ids = groups[tasks[task_id]]
            if row.state == "done":
                result.findings += int(row.findings or 0)
                checked = set(row.checked or [])
                result.checked.extend(i for i in ids if i in checked)
                why = f"bank {row.bank}: not checked by its worker (busy, out of service, failed)"
                result.unchecked.update({i: why for i in ids if i not in checked})
            else:
                why = f"bank {row.bank}: hygiene task {row.state}: {row.error}"
                result.unchecked.update(dict.fromkeys(ids, why))
                log.warning("hygiene task of a bank did not end", extra={
                    "task_id": task_id, "bank": row.bank, "state": row.state,
                    "error": row.error})  # fmt: skip
        if result.unchecked:
            named = ", ".join(
                f"{mask_msisdn(msisdns.get(i, '?'))} ({why})"
                for i, why in sorted(result.unchecked.items())
            )
            log.warning("SIMs not checked for hygiene: %s", named,
                        extra={"sims": len(result.unchecked)})  # fmt: skip
        return result

    @survives_outage
    def _banks_of(self, sim_ids: list[int]) -> tuple[dict[int, str | None], dict[int, str]]:
        with self.db() as session:
            rows = session.execute(
                select(Sim.id, Sim.bank, Sim.msisdn).where(Sim.id.in_(sim_ids))
            ).all()
        known = {int(i): (bank, msisdn) for i, bank, msisdn in rows}
        banks = {i: known[i][0] if i in known else None for i in sim_ids}
        return banks, {i: m for i, (_, m) in known.items()}

    def _wait(self, tasks: dict[int, str]) -> dict[int, HygieneTask]:
        """Every task's final row (or its last row, still running, past the deadline)."""
        claim_timeout = timedelta(seconds=self.settings.claim_timeout_s)
        deadline = time.monotonic() + self.deadline_s
        done: dict[int, HygieneTask] = {}
        while len(done) < len(tasks):
            for task_id in [t for t in tasks if t not in done]:
                row = get_task(self.db, task_id)
                if row.state in FINAL_HYGIENE_STATES:
                    done[task_id] = row
                elif row.state == "queued" and row.created_at < heartbeat_cutoff(
                    self.db, claim_timeout, utcnow()
                ):
                    give_up(self.db, task_id, "expired",
                            f"no worker of bank {row.bank} took it in time")  # fmt: skip
                elif row.state == "running" and not self._alive(row.worker_id):
                    give_up(self.db, task_id, "lost", "worker lost mid-check (heartbeat stale)")
            if len(done) < len(tasks):
                if time.monotonic() > deadline:
                    for task_id in tasks:
                        if task_id not in done:
                            row = get_task(self.db, task_id)
                            row.error = row.error or f"not ended within {self.deadline_s:g} s"
                            done[task_id] = row
                    break
                time.sleep(self.poll_s)
        return done

    def _alive(self, worker_id: int | None) -> bool:
        return worker_id is not None and worker_alive(self.db, worker_id, self.stale_after)

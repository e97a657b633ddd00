"""The probe hosts' registry: banks, the workers serving them, and heartbeats.

Every ``dialbot worker --bank NAME`` registers its bank (region, host, SIMs
ready on it) and then stamps a heartbeat every few seconds — the worker's
row, its bank's row, the dispatches it is running and their runs, in one
transaction. The controller reads this registry instead of talking to the
hosts: a bank whose heartbeat is fresh is planned for, one whose heartbeat
went stale is out of service, and a dispatch whose heartbeat went stale
belonged to a worker killed mid-probe (see :mod:`dialbot.scheduling.distributed`).

The schema is owned by migration ``0003_hosts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from dialbot.db.engine import write_session
from dialbot.db.models import Base, Run, RunState
from dialbot.db.outage import heartbeat_cutoff, survives_outage
from dialbot.db.types import utcnow

DISPATCH_STATES = ("queued", "running", "done", "lost", "expired")
# A dispatch in one of these states has its outcome: nobody may run it again.
FINAL_DISPATCH_STATES = frozenset({"done", "lost", "expired"})


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class FleetBank(Base):
    """A modem bank as its worker last reported it."""

    __tablename__ = "fleet_banks"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    region: Mapped[str | None] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("fleet_workers.id"))
    modems: Mapped[int] = mapped_column(Integer, default=0)
    modem_states: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    # [{"sim_id", "msisdn", "balance_fen", "data"}] of the SIMs ready on the bank
    sims: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)


class FleetWorker(Base):
    """One run of ``dialbot worker`` (a process on a host), alive while it beats."""

    __tablename__ = "fleet_workers"

    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    bank: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column()


class Dispatch(Base):
    """One probe sent to a bank's queue: the idempotency key of the Celery task.

    The task carries only this row's id. A worker *claims* it (``queued →
    running``) with a conditional update before it touches a modem, so a
    redelivered message finds it claimed or final and never orders again.
    """

    __tablename__ = "dispatches"
    __table_args__ = (
        CheckConstraint(_in("state", DISPATCH_STATES), name="ck_dispatches_state"),
        Index("ix_dispatches_state_heartbeat", "state", "heartbeat_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int | None] = mapped_column(Integer)
    plan_id: Mapped[int | None] = mapped_column(Integer)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    sp_code: Mapped[str] = mapped_column(String(32))
    flow: Mapped[str] = mapped_column(String(64))
    sim_id: Mapped[int] = mapped_column(ForeignKey("sims.id"))
    bank: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    retry_of_id: Mapped[int | None] = mapped_column(ForeignKey("dispatches.id"))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("fleet_workers.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    status: Mapped[str | None] = mapped_column(String(16))
    ordered: Mapped[bool] = mapped_column(Boolean, default=False)
    sim_unusable: Mapped[bool] = mapped_column(Boolean, default=False)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    error: Mapped[str | None] = mapped_column(Text)


@dataclass(frozen=True)
class BankStatus:
    """One row of ``dialbot fleet status --all-hosts``."""

    host: str
    bank: str
    region: str | None
    modems: int
    ready_sims: int
    modem_states: dict[str, int]
    worker_pid: int | None
    heartbeat_at: datetime
    alive: bool


@survives_outage
def register_worker(
    db: sessionmaker[Session], *, host: str, pid: int, bank: str, region: str | None, modems: int
) -> int:
    """Record a starting worker and (re)claim its bank; returns the worker id."""
    now = utcnow()
    with write_session(db) as session:
        worker = FleetWorker(host=host, pid=pid, bank=bank, started_at=now, heartbeat_at=now)
        session.add(worker)
        session.flush()
        row = session.scalars(select(FleetBank).where(FleetBank.name == bank)).one_or_none()
        if row is None:
            row = FleetBank(name=bank, registered_at=now, modem_states={}, sims=[])
            session.add(row)
        row.region, row.host, row.worker_id, row.modems = region, host, worker.id, modems
        row.heartbeat_at = now
        return worker.id


@survives_outage
def beat(
    db: sessionmaker[Session],
    worker_id: int,
    bank: str,
    *,
    sims: list[dict[str, Any]] | None = None,
    modem_states: dict[str, int] | None = None,
    at: datetime | None = None,
) -> None:
    """One heartbeat: the worker, its bank (and what is ready on it), its dispatches and runs."""
    now = at or utcnow()
    with write_session(db) as session:
        session.execute(update(FleetWorker).where(FleetWorker.id == worker_id)
                        .values(heartbeat_at=now))  # fmt: skip
        values: dict[str, Any] = {"heartbeat_at": now}
        if sims is not None:
            values["sims"] = sims
        if modem_states is not None:
            values["modem_states"] = modem_states
        session.execute(
            update(FleetBank)
            .where(FleetBank.name == bank, FleetBank.worker_id == worker_id)
            .values(**values)
        )
        mine = select(Dispatch.sim_id).where(
            Dispatch.worker_id == worker_id, Dispatch.state == "running"
        )
        session.execute(
            update(Dispatch)
            .where(Dispatch.worker_id == worker_id, Dispatch.state == "running")
            .values(heartbeat_at=now)
        )
        session.execute(
            update(Run)
            .where(
                Run.state.in_([RunState.RUNNING.value, RunState.JUDGING.value]),
                Run.sim_id.in_(mine),
            )
            .values(heartbeat_at=now)
        )


@survives_outage
def stop_worker(db: sessionmaker[Session], worker_id: int) -> None:
    """A clean shutdown: the worker is gone now, not after the stale timeout."""
    with write_session(db) as session:
        session.execute(
            update(FleetWorker).where(FleetWorker.id == worker_id).values(stopped_at=utcnow())
        )


@survives_outage
def worker_alive(
    db: sessionmaker[Session],
    worker_id: int,
    stale_after: timedelta,
    *,
    now: datetime | None = None,
) -> bool:
    """Whether a worker still beats (and has not stopped)."""
    with db() as session:
        row = session.get(FleetWorker, worker_id)
    if row is None or row.stopped_at is not None:
        return False
    return row.heartbeat_at >= heartbeat_cutoff(db, stale_after, now or utcnow())


@survives_outage
def live_banks(
    db: sessionmaker[Session], stale_after: timedelta, *, now: datetime | None = None
) -> list[FleetBank]:
    """Banks whose worker beats: the ones the controller may plan and dispatch for."""
    cutoff = heartbeat_cutoff(db, stale_after, now or utcnow())
    with db() as session:
        rows = session.execute(
            select(FleetBank, FleetWorker.stopped_at)
            .join(FleetWorker, FleetBank.worker_id == FleetWorker.id)
            .where(FleetBank.heartbeat_at >= cutoff)
            .order_by(FleetBank.name)
        ).all()
    return [bank for bank, stopped in rows if stopped is None]


@survives_outage
def fleet_status_rows(
    db: sessionmaker[Session], stale_after: timedelta, *, now: datetime | None = None
) -> list[BankStatus]:
    """Every bank of every host, with the host and last heartbeat (for ``fleet status``)."""
    cutoff = (now or utcnow()) - stale_after
    with db() as session:
        rows = session.execute(
            select(FleetBank, FleetWorker)
            .outerjoin(FleetWorker, FleetBank.worker_id == FleetWorker.id)
            .order_by(FleetBank.host, FleetBank.name)
        ).all()
    return [
        BankStatus(
            host=bank.host,
            bank=bank.name,
            region=bank.region,
            modems=bank.modems,
            ready_sims=len(bank.sims or []),
            modem_states=dict(bank.modem_states or {}),
            worker_pid=worker.pid if worker is not None else None,
            heartbeat_at=bank.heartbeat_at,
            alive=(
                worker is not None and worker.stopped_at is None and bank.heartbeat_at >= cutoff
            ),
        )
        for bank, worker in rows
    ]


HOST_COLUMNS = ("host", "bank", "region", "modems", "ready_sims", "modem_states", "worker_pid",
                "heartbeat_at", "alive")  # fmt: skip


def status_dicts(rows: list[BankStatus], tz: str = "Asia/Shanghai") -> list[dict[str, Any]]:
    """The rows as plain values (heartbeat in the carrier's zone) for tables and JSON."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    return [
        {
            "host": r.host,
            "bank": r.bank,
            "region": r.region,
            "modems": r.modems,
            "ready_sims": r.ready_sims,
            "modem_states": ", ".join(f"{k} {v}" for k, v in sorted(r.modem_states.items())),
            "worker_pid": r.worker_pid,
            "heartbeat_at": r.heartbeat_at.astimezone(zone).isoformat(timespec="seconds"),
            "alive": r.alive,
        }  # fmt: skip
        for r in rows
    ]

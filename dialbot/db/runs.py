"""Runs: one execution of a flow, moved through its state machine.

planned → running → judging → done, with infra_failed and aborted reachable
from every non-final state (see ``TRANSITIONS`` in models). A retry is a new
run with ``attempt + 1`` and ``retry_of_id`` pointing at the failed one, so a
finished run and its evidence are never reopened. A running run stamps
``heartbeat_at``; a run whose heartbeat is too old belongs to a dead worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import write_connection, write_session
from dialbot.db.models import Run, RunState, Service, Sim
from dialbot.db.outage import survives_outage
from dialbot.db.owner import Owner, this_process
from dialbot.db.types import utcnow


@dataclass(frozen=True)
class RunInfo:
    """A snapshot of a run row."""

    id: int
    flow: str
    state: RunState
    sp_id: int | None
    service_id: int | None
    service_version_id: int | None
    sim_id: int | None
    modem: str | None
    attempt: int
    retry_of_id: int | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    heartbeat_at: datetime | None
    error: str | None
    owner: Owner | None = None
    judged_at: datetime | None = None


def _snapshot(run: Run) -> RunInfo:
    owner = None
    if run.owner_host is not None and run.owner_pid is not None:
        owner = Owner(run.owner_host, run.owner_pid, run.owner_started_at)
    return RunInfo(
        run.id, run.flow, RunState(run.state), run.sp_id, run.service_id,
        run.service_version_id, run.sim_id, run.modem, run.attempt, run.retry_of_id,
        run.created_at, run.started_at, run.ended_at, run.heartbeat_at, run.error,
        owner, run.judged_at,
    )  # fmt: skip


@survives_outage
def create_run(
    session_factory: sessionmaker[Session],
    flow: str,
    *,
    service_id: int | None = None,
    sim_id: int | None = None,
    retry_of: int | None = None,
    owner: Owner | None = None,
    running_on: str | None = None,
) -> RunInfo:
    """Plan a run (and with ``running_on``, a modem's label, start it there at once: one
    write instead of two, each of which every other writer of a SQLite database waits on). For a service run, the SP and the catalogue version probed
    are pinned now, so later catalogue changes never rewrite what it was judged
    against. A retry (``retry_of``) records which run it repeats and counts
    its attempt. The run belongs to ``owner`` (default: this process), and
    only once that owner is gone may another process take it over."""
    me = owner or this_process()
    run = Run(flow=flow, service_id=service_id, sim_id=sim_id, attempt=1,
              owner_host=me.host, owner_pid=me.pid, owner_started_at=me.started_at)  # fmt: skip
    # what it pins is read first: the write lock is held only for the insert
    with session_factory() as session:
        if service_id is not None:
            service = session.get(Service, service_id)
            if service is None:
                raise LookupError(f"no service {service_id}")
            run.sp_id = service.sp_id
            run.service_version_id = service.versions[-1].id if service.versions else None
        if retry_of is not None:
            earlier = session.get(Run, retry_of)
            if earlier is None:
                raise LookupError(f"no run {retry_of}")
            run.retry_of_id = earlier.id
            run.attempt = earlier.attempt + 1
    if running_on is not None:
        run.move_to(RunState.RUNNING, at=utcnow())
        run.modem = running_on
    with write_session(session_factory) as session:
        session.add(run)
        session.flush()
        return _snapshot(run)


@survives_outage
def transition(
    session_factory: sessionmaker[Session],
    run_id: int,
    to: RunState,
    *,
    error: str | None = None,
    modem: str | None = None,
    sim_id: int | None = None,
    at: datetime | None = None,
) -> RunInfo:
    """Move a run to ``to``; raises IllegalTransition when the move is not allowed.

    The move is checked on the run as read, and written only if its state is still
    the one read (so two workers cannot both start the same run): the check is
    not made while every other writer waits for the lock. When the state changed
    in between, the move is checked again with the row locked (SQLite: write lock
    at BEGIN; PostgreSQL: FOR UPDATE).
    """
    moved = _transition_if_unchanged(session_factory, run_id, to, error, modem, sim_id, at)
    if moved is not None:
        return moved
    with write_session(session_factory) as session:
        run = session.execute(select(Run).where(Run.id == run_id).with_for_update()).scalar_one()
        run.move_to(to, at=at or utcnow(), error=error)
        if modem is not None:
            run.modem = modem
        if sim_id is not None:
            run.sim_id = sim_id
        session.flush()
        return _snapshot(run)


_MOVED = ("state", "started_at", "heartbeat_at", "ended_at", "error", "modem", "sim_id")


def _transition_if_unchanged(
    session_factory: sessionmaker[Session],
    run_id: int,
    to: RunState,
    error: str | None,
    modem: str | None,
    sim_id: int | None,
    at: datetime | None,
) -> RunInfo | None:
    """`transition` checked on the run as read and written if its state is unchanged;
    None when it changed meanwhile."""
    with session_factory() as session:
        run = session.execute(select(Run).where(Run.id == run_id)).scalar_one()
        session.expunge(run)
    old = run.state
    before = {name: getattr(run, name) for name in _MOVED}
    run.move_to(to, at=at or utcnow(), error=error)  # raises IllegalTransition
    if modem is not None:
        run.modem = modem
    if sim_id is not None:
        run.sim_id = sim_id
    with write_connection(session_factory) as conn:
        result = conn.execute(
            update(Run)
            .where(Run.id == run_id, Run.state == old)
            .values(
                {n: getattr(run, n) for n in _MOVED if n == "state" or getattr(run, n) != before[n]}
            )
        )
        if int(result.rowcount) != 1:
            return None
    return _snapshot(run)


@survives_outage
def heartbeat(
    session_factory: sessionmaker[Session], run_id: int, *, at: datetime | None = None
) -> None:
    """Stamp a running run as alive."""
    with write_session(session_factory) as session:
        run = session.get(Run, run_id)
        if run is None:
            raise LookupError(f"no run {run_id}")
        run.heartbeat_at = at or utcnow()


@survives_outage
def get_run(session_factory: sessionmaker[Session], run_id: int) -> RunInfo:
    with session_factory() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise LookupError(f"no run {run_id}")
        return _snapshot(run)


@survives_outage
def stale_runs(
    session_factory: sessionmaker[Session], older_than: timedelta, *, now: datetime | None = None
) -> list[RunInfo]:
    """Running or judging runs whose heartbeat is older than ``older_than``."""
    cutoff = (now or utcnow()) - older_than
    with session_factory() as session:
        runs = session.scalars(
            select(Run)
            .where(
                Run.state.in_([RunState.RUNNING.value, RunState.JUDGING.value]),
                Run.heartbeat_at < cutoff,
            )
            .order_by(Run.id)
        )
        return [_snapshot(r) for r in runs]


@survives_outage
def upsert_sim(
    session_factory: sessionmaker[Session],
    msisdn: str,
    *,
    imsi: str | None = None,
    iccid: str | None = None,
    bank: str | None = None,
    slot: int | None = None,
    state: str | None = None,
) -> int:
    """Record a SIM (by MSISDN) and where it sits; returns its id for runs.

    A SIM moved into an occupied bank slot displaces the SIM recorded there.
    """
    with write_session(session_factory) as session:
        if bank is not None and slot is not None:
            session.execute(
                update(Sim)
                .where(Sim.bank == bank, Sim.slot == slot, Sim.msisdn != msisdn)
                .values(bank=None, slot=None)
            )
        sim = session.scalars(select(Sim).where(Sim.msisdn == msisdn)).one_or_none()
        if sim is None:
            sim = Sim(msisdn=msisdn, state=state or "unknown")
            session.add(sim)
        for key, value in (("imsi", imsi), ("iccid", iccid), ("bank", bank), ("slot", slot)):
            if value is not None:
                setattr(sim, key, value)
        if state is not None:
            sim.state = state
        session.flush()
        return sim.id


def sim_id_of(session_factory: sessionmaker[Session], msisdn: str) -> int | None:
    """The recorded SIM's id (None: never recorded)."""
    with session_factory() as session:
        return session.scalar(select(Sim.id).where(Sim.msisdn == msisdn))

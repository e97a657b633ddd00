"""Cleanup obligations: the durable promise that a probe leaves no SIM subscribed.

The runner stores an obligation (and it is committed) *before* it sends an
order. Whatever happens next — the SP ignores the cancel keyword, the modem
dies, the process is killed — the obligation stays pending until it is
discharged, and a SIM with pending obligations must be cleaned (SP keyword,
then the carrier's cancel-all) before it does anything else, also after a
restart. Discharging is idempotent, so a redelivered task cannot undo it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import write_connection, write_session
from dialbot.db.models import CleanupObligation
from dialbot.db.outage import survives_outage
from dialbot.db.types import utcnow

# How an obligation was discharged: the SP's own cancel keyword worked, the
# carrier's cancel-all did, the subscription list showed nothing to cancel,
# or a person resolved it.
DISCHARGE_METHODS = ("sp_keyword", "cancel_all", "not_subscribed", "manual")


@dataclass(frozen=True)
class Obligation:
    """A snapshot of one obligation row."""

    id: int
    sim: str
    sp_code: str
    service_code: str
    access_number: str
    cancel_cmd: str | None
    run_id: int | None
    created_at: datetime
    discharged_at: datetime | None
    method: str | None
    attempts: int
    last_error: str | None
    follow_until: datetime | None = None
    followed_at: datetime | None = None
    keep_until: datetime | None = None

    @property
    def pending(self) -> bool:
        return self.discharged_at is None

    def kept(self, at: datetime) -> bool:
        """Deliberately kept subscribed at `at` (a `keep` probe's horizon not yet reached)."""
        return self.pending and self.keep_until is not None and at < self.keep_until

    def followed(self) -> bool:
        """Still to be followed: never judged after its horizon yet."""
        return self.follow_until is not None and (
            self.followed_at is None or self.followed_at < self.follow_until
        )


def _snapshot(row: CleanupObligation) -> Obligation:
    return Obligation(
        row.id, row.sim, row.sp_code, row.service_code, row.access_number, row.cancel_cmd,
        row.run_id, row.created_at, row.discharged_at, row.method, row.attempts, row.last_error,
        row.follow_until, row.followed_at, row.keep_until,
    )  # fmt: skip


@survives_outage
def create_obligation(
    session_factory: sessionmaker[Session],
    *,
    sim: str,
    sp_code: str,
    service_code: str,
    access_number: str,
    cancel_cmd: str | None,
    run_id: int | None = None,
    follow_until: datetime | None = None,
    keep_until: datetime | None = None,
) -> Obligation:
    """Store (and commit) an obligation; call it before the order is sent.

    `follow_until`: follow the order on later nights until then; `keep_until`:
    keep the subscription on purpose until then (see `kept`)."""
    # A WAP service without an SMS side has no access number: the carrier's list cancels it.
    if (access_number or cancel_cmd) and (
        not access_number.isdigit() or not access_number.isascii()
    ):
        raise ValueError(f"access number {access_number!r} is not digits only")
    with write_session(session_factory) as session:
        row = CleanupObligation(
            sim=sim,
            sp_code=sp_code,
            service_code=service_code,
            access_number=access_number,
            cancel_cmd=cancel_cmd,
            run_id=run_id,
            attempts=0,
            follow_until=follow_until,
            keep_until=keep_until if keep_until is None or follow_until is None
            else min(keep_until, follow_until),
        )  # fmt: skip
        session.add(row)
        session.flush()
        return _snapshot(row)


@survives_outage
def pending_for_sim(session_factory: sessionmaker[Session], sim: str) -> list[Obligation]:
    """The SIM's undischarged obligations, oldest first."""
    with session_factory() as session:
        rows = session.scalars(
            select(CleanupObligation)
            .where(CleanupObligation.sim == sim, CleanupObligation.discharged_at.is_(None))
            .order_by(CleanupObligation.id)
        )
        return [_snapshot(r) for r in rows]


@survives_outage
def orders_of_sim(
    session_factory: sessionmaker[Session], sim: str, sp_codes: Iterable[str]
) -> list[Obligation]:
    """Every obligation of the SIM with these SPs, discharged or not, oldest first: each is
    one order a probe placed, and its discharge says when the list stopped showing it."""
    codes = sorted(set(sp_codes))
    if not codes:
        return []
    with session_factory() as session:
        rows = session.scalars(
            select(CleanupObligation)
            .where(CleanupObligation.sim == sim, CleanupObligation.sp_code.in_(codes))
            .order_by(CleanupObligation.id)
        )
        return [_snapshot(r) for r in rows]


@survives_outage
def followed_of_sim(session_factory: sessionmaker[Session], sim: str) -> list[Obligation]:
    """The SIM's orders still to be followed (the month after), oldest first."""
    with session_factory() as session:
        rows = session.scalars(
            select(CleanupObligation)
            .where(CleanupObligation.sim == sim, CleanupObligation.follow_until.is_not(None))
            .order_by(CleanupObligation.id)
        )
        return [ob for ob in map(_snapshot, rows) if ob.followed()]


@survives_outage
def sims_following(session_factory: sessionmaker[Session]) -> list[str]:
    """Every SIM with an order still to follow (to check on a later night)."""
    with session_factory() as session:
        rows = session.scalars(
            select(CleanupObligation).where(CleanupObligation.follow_until.is_not(None))
        )
        return sorted({ob.sim for ob in map(_snapshot, rows) if ob.followed()})


@survives_outage
def mark_followed(
    session_factory: sessionmaker[Session], obligation_ids: Iterable[int], at: datetime
) -> None:
    """A follow-up judged these orders up to `at`."""
    ids = list(obligation_ids)
    if not ids:
        return
    with write_session(session_factory) as session:
        session.execute(
            update(CleanupObligation).where(CleanupObligation.id.in_(ids)).values(followed_at=at)
        )


@survives_outage
def sims_with_pending(session_factory: sessionmaker[Session]) -> list[str]:
    """Every SIM that must be cleaned before it is used again (e.g. at start-up)."""
    with session_factory() as session:
        return list(
            session.scalars(
                select(CleanupObligation.sim)
                .where(CleanupObligation.discharged_at.is_(None))
                .distinct()
                .order_by(CleanupObligation.sim)
            )
        )


@survives_outage
def get_obligation(session_factory: sessionmaker[Session], obligation_id: int) -> Obligation:
    with session_factory() as session:
        row = session.get(CleanupObligation, obligation_id)
        if row is None:
            raise LookupError(f"no cleanup obligation {obligation_id}")
        return _snapshot(row)


@survives_outage
def record_attempt(
    session_factory: sessionmaker[Session], obligation_id: int, error: str | None = None
) -> Obligation:
    """Count one cleanup attempt (and why it failed, when it did)."""
    with write_session(session_factory) as session:
        row = session.get(CleanupObligation, obligation_id)
        if row is None:
            raise LookupError(f"no cleanup obligation {obligation_id}")
        row.attempts += 1
        if error is not None:
            row.last_error = error
        session.flush()
        return _snapshot(row)


@survives_outage
def discharge(
    session_factory: sessionmaker[Session],
    obligation_id: int,
    method: str,
    *,
    at: datetime | None = None,
) -> Obligation:
    """Mark an obligation fulfilled; a second call leaves the first record intact."""
    _check_method(method)
    with write_connection(session_factory) as conn:
        conn.execute(
            update(CleanupObligation)
            .where(CleanupObligation.id == obligation_id, CleanupObligation.discharged_at.is_(None))
            .values(discharged_at=at or utcnow(), method=method)
        )
    with session_factory() as session:  # read after the write lock is let go
        row = session.get(CleanupObligation, obligation_id)
        if row is None:
            raise LookupError(f"no cleanup obligation {obligation_id}")
        return _snapshot(row)


@survives_outage
def discharge_all_for_sim(
    session_factory: sessionmaker[Session], sim: str, method: str, *, at: datetime | None = None
) -> int:
    """Discharge every pending obligation of a SIM (after a cancel-all); returns how many."""
    _check_method(method)
    with write_session(session_factory) as session:
        result = session.execute(
            update(CleanupObligation)
            .where(CleanupObligation.sim == sim, CleanupObligation.discharged_at.is_(None))
            .values(discharged_at=at or utcnow(), method=method)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def _check_method(method: str) -> None:
    if method not in DISCHARGE_METHODS:
        raise ValueError(f"unknown discharge method {method!r} (one of {DISCHARGE_METHODS})")

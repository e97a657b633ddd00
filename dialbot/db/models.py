"""The tables, as SQLAlchemy 2.0 typed models.

The schema itself is owned by the alembic migrations in ``migrations/``;
these classes must match them (a test compares the two).

Money is integer fen; every timestamp is aware (stored as UTC). MSISDNs are
stored in full here and masked on the way out (:mod:`dialbot.mask`).
"""

from __future__ import annotations

import importlib
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from dialbot.db.types import AwareDateTime, BigId, utcnow
from dialbot.errors import DialbotError

BILLING_TYPES = ("monthly", "per_use", "per_minute")
CHANNELS = ("sms", "wap", "mms", "ivr")  # spec/channels.md §1
EVENT_KINDS = (
    "sms_out",
    "sms_in",
    "balance",
    "subscriptions",
    "ussd",
    "modem_fault",
    "note",
    # spec/channels.md §8
    "http",
    "wap_push",
    "mms",
    "call",
)
SEVERITIES = ("critical", "major", "minor", "quality")
GENESIS_HASH = "0" * 64
# Every module that declares tables on ``Base``: alembic autogenerate and the
# schema test must see them all. Add yours here.
MODEL_MODULES = (
    "dialbot.db.models",
    "dialbot.scheduling.models",
    "dialbot.scheduling.hosts",
    "dialbot.scheduling.remote_hygiene",
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    type_annotation_map = {datetime: AwareDateTime}


def load_all_models() -> type[Base]:
    """Import every model module (lazily, to avoid import cycles); returns Base."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base


class Sp(Base):
    """A service provider, by its enterprise code; name and hotline as last imported."""

    __tablename__ = "sps"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    hotline: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    services: Mapped[list[Service]] = relationship(back_populates="sp")


class Service(Base):
    """The current catalogue entry of a service; earlier versions in ServiceVersion."""

    __tablename__ = "services"
    __table_args__ = (
        UniqueConstraint("sp_id", "code", name="uq_services_sp_code"),
        CheckConstraint(_in("billing", BILLING_TYPES), name="ck_services_billing"),
        CheckConstraint("price_fen >= 0", name="ck_services_price"),
        CheckConstraint(_in("channel", CHANNELS), name="ck_services_channel"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sp_id: Mapped[int] = mapped_column(ForeignKey("sps.id"))
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    access_number: Mapped[str] = mapped_column(String(21))
    billing: Mapped[str] = mapped_column(String(16))
    price_fen: Mapped[int] = mapped_column(Integer)
    subscribe_cmd: Mapped[str] = mapped_column(String(70))
    cancel_cmd: Mapped[str | None] = mapped_column(String(70))
    use_cmd: Mapped[str | None] = mapped_column(String(70))
    region: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(8), default="sms", server_default="sms")
    url: Mapped[str | None] = mapped_column(String(512))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    sp: Mapped[Sp] = relationship(back_populates="services")
    versions: Mapped[list[ServiceVersion]] = relationship(
        back_populates="service", order_by="ServiceVersion.version"
    )


class ServiceVersion(Base):
    """A snapshot of a catalogue entry as imported: what a probe was judged against."""

    __tablename__ = "service_versions"
    __table_args__ = (UniqueConstraint("service_id", "version", name="uq_service_versions"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    version: Mapped[int] = mapped_column(Integer)
    sp_name: Mapped[str] = mapped_column(String(200))
    sp_hotline: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    access_number: Mapped[str] = mapped_column(String(21))
    billing: Mapped[str] = mapped_column(String(16))
    price_fen: Mapped[int] = mapped_column(Integer)
    subscribe_cmd: Mapped[str] = mapped_column(String(70))
    cancel_cmd: Mapped[str | None] = mapped_column(String(70))
    use_cmd: Mapped[str | None] = mapped_column(String(70))
    region: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(8), default="sms", server_default="sms")
    url: Mapped[str | None] = mapped_column(String(512))
    source: Mapped[str | None] = mapped_column(String(255))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)

    service: Mapped[Service] = relationship(back_populates="versions")


class Sim(Base):
    """A test SIM and where it sits; ``state`` is owned by the fleet."""

    __tablename__ = "sims"
    __table_args__ = (UniqueConstraint("bank", "slot", name="uq_sims_bank_slot"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    msisdn: Mapped[str] = mapped_column(String(21), unique=True)
    imsi: Mapped[str | None] = mapped_column(String(16))
    iccid: Mapped[str | None] = mapped_column(String(22), unique=True)
    bank: Mapped[str | None] = mapped_column(String(64))
    slot: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(24), default="unknown")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RunState(StrEnum):
    PLANNED = "planned"
    RUNNING = "running"
    JUDGING = "judging"
    DONE = "done"
    INFRA_FAILED = "infra_failed"
    ABORTED = "aborted"


# The only moves a run may make. A retry is a new run (attempt + 1, retry_of),
# so a finished run is never reopened and its evidence stays its own.
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.PLANNED: frozenset({RunState.RUNNING, RunState.INFRA_FAILED, RunState.ABORTED}),
    RunState.RUNNING: frozenset({RunState.JUDGING, RunState.INFRA_FAILED, RunState.ABORTED}),
    RunState.JUDGING: frozenset({RunState.DONE, RunState.INFRA_FAILED, RunState.ABORTED}),
    RunState.DONE: frozenset(),
    RunState.INFRA_FAILED: frozenset(),
    RunState.ABORTED: frozenset(),
}
TERMINAL_STATES = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


class IllegalTransition(DialbotError):
    """A run was asked to move to a state its current state does not lead to."""

    def __init__(self, run_id: int | None, old: str | None, new: str) -> None:
        self.run_id, self.old, self.new = run_id, old, new
        super().__init__(f"run {run_id}: illegal transition {old} -> {new}")


class Run(Base):
    """One execution of one flow (for one service, on one SIM), with a state machine."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(_in("state", tuple(s.value for s in RunState)), name="ck_runs_state"),
        Index("ix_runs_state_heartbeat", "state", "heartbeat_at"),
        Index("ix_runs_owner", "owner_host", "owner_pid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    flow: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=RunState.PLANNED.value)
    sp_id: Mapped[int | None] = mapped_column(ForeignKey("sps.id"))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id"), index=True)
    service_version_id: Mapped[int | None] = mapped_column(ForeignKey("service_versions.id"))
    sim_id: Mapped[int | None] = mapped_column(ForeignKey("sims.id"))
    modem: Mapped[str | None] = mapped_column(String(80))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    retry_of_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)
    # the process that runs it (dialbot.db.owner): only a dead owner's runs are taken over
    owner_host: Mapped[str | None] = mapped_column(String(255))
    owner_pid: Mapped[int | None] = mapped_column(Integer)
    owner_started_at: Mapped[datetime | None] = mapped_column()
    # when a run cut short (dead process, lost worker, defect) was judged on what it saw:
    # it is judged once, and its findings count although it is no probe
    judged_at: Mapped[datetime | None] = mapped_column()

    sp: Mapped[Sp | None] = relationship()
    service: Mapped[Service | None] = relationship()
    service_version: Mapped[ServiceVersion | None] = relationship()
    sim: Mapped[Sim | None] = relationship()

    def __init__(self, **kwargs: Any) -> None:
        """A new run starts planned, so the first transition is checked too."""
        kwargs.setdefault("state", RunState.PLANNED.value)
        super().__init__(**kwargs)

    @validates("state")
    def _check_state(self, _key: str, value: str) -> str:
        """Every assignment to ``state`` goes through the transition table."""
        new = RunState(value)
        old = self.state
        if old is None:
            if new is not RunState.PLANNED:
                raise IllegalTransition(self.id, None, new.value)
        elif new not in TRANSITIONS[RunState(old)]:
            raise IllegalTransition(self.id, old, new.value)
        return new.value

    def move_to(self, new: RunState, *, at: datetime, error: str | None = None) -> None:
        """Change state and stamp the matching times (start, heartbeat, end)."""
        self.state = new.value
        if new is RunState.RUNNING:
            self.started_at = at
            self.heartbeat_at = at
        if new in TERMINAL_STATES:
            self.ended_at = at
        if error is not None:
            self.error = error


class EvidenceEvent(Base):
    """One thing the probe saw or did, verbatim; rows are never changed or deleted.

    ``id`` is the position in the hash chain (assigned under the chain lock),
    ``hash`` covers every other column and ``prev_hash``.
    """

    __tablename__ = "evidence_events"
    __table_args__ = (
        CheckConstraint(_in("kind", EVENT_KINDS), name="ck_evidence_kind"),
        Index("ix_evidence_sim_at", "sim", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), index=True)
    sim: Mapped[str | None] = mapped_column(String(21))
    at: Mapped[datetime] = mapped_column()
    kind: Mapped[str] = mapped_column(String(16))
    peer: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[str | None] = mapped_column(Text)
    data: Mapped[Any | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class ReceivedPdu(Base):
    """A PDU as read from a modem's storage, committed before the modem deleted it.

    The receipt log of `dialbot.db.received`: ``event_id`` names the evidence
    event that records it (set in that event's transaction). A row with no event after a
    restart was read by a process that died first: it is delivered again.
    """

    __tablename__ = "received_pdus"
    __table_args__ = (
        Index("ix_received_pdus_source_slot", "source", "memory", "slot_index"),
        Index("ix_received_pdus_source_event", "source", "event_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(120))  # the modem: "bank/slot" or its port
    sim: Mapped[str | None] = mapped_column(String(21))
    port: Mapped[str] = mapped_column(String(255))
    memory: Mapped[str] = mapped_column(String(8))
    slot_index: Mapped[int] = mapped_column(Integer)
    pdu: Mapped[str] = mapped_column(Text)
    pdu_sha256: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(24))
    sender: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str | None] = mapped_column(Text)
    scts: Mapped[str | None] = mapped_column(String(40))  # ISO 8601 with the network's offset
    problem: Mapped[str | None] = mapped_column(String(200))
    read_at: Mapped[datetime] = mapped_column()
    event_id: Mapped[int | None] = mapped_column(BigId)


class EvidenceHead(Base):
    """The single row naming the chain's last event: the append lock and the
    guard against silently cutting events off the end."""

    __tablename__ = "evidence_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_id: Mapped[int] = mapped_column(BigId, default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default=GENESIS_HASH)


class Finding(Base):
    """A violation the judge found in a run (spec/violations.md, spec §5)."""

    __tablename__ = "findings"
    __table_args__ = (
        CheckConstraint(_in("severity", SEVERITIES), name="ck_findings_severity"),
        CheckConstraint("amount_fen >= 0", name="ck_findings_amount"),
        Index("ix_findings_observed_at", "observed_at"),
        Index("ix_findings_sp_code", "sp_code"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    sp_code: Mapped[str] = mapped_column(String(32))
    service_code: Mapped[str | None] = mapped_column(String(32))
    code: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(16))
    amount_fen: Mapped[int] = mapped_column(Integer, default=0)
    observed_at: Mapped[datetime] = mapped_column()
    sim: Mapped[str | None] = mapped_column(String(21))
    evidence: Mapped[list[int]] = mapped_column(JSON, default=list)
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CleanupObligation(Base):
    """A promise, stored before an order is sent, to leave the SIM unsubscribed."""

    __tablename__ = "cleanup_obligations"
    __table_args__ = (Index("ix_obligations_sim_pending", "sim", "discharged_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sim: Mapped[str] = mapped_column(String(21))
    sp_code: Mapped[str] = mapped_column(String(32))
    service_code: Mapped[str] = mapped_column(String(32))
    access_number: Mapped[str] = mapped_column(String(21))
    cancel_cmd: Mapped[str | None] = mapped_column(String(70))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    discharged_at: Mapped[datetime | None] = mapped_column()
    method: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The month after (migration 0005_month): followed until, last followed, kept until.
    follow_until: Mapped[datetime | None] = mapped_column()
    followed_at: Mapped[datetime | None] = mapped_column()
    keep_until: Mapped[datetime | None] = mapped_column()

"""The evidence log: append-only, every event hash-chained to the one before.

Why a chain: a finding is only as good as the proof behind it. Each event's
hash covers its own content and the previous event's hash, so changing,
removing or reordering any stored event breaks the chain from that point on,
and :func:`verify_chain` names the first event where it breaks.

Appends are serialised so the chain stays linear with many writers: the
single ``evidence_head`` row is the lock (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: ``LOCK TABLE`` and ``SELECT … FOR UPDATE`` on it) and also records the last event,
so cutting events off the end is detected too. Event ids are assigned under
that lock and are the positions in the chain (1, 2, 3 …).

Text is stored verbatim, with one exception forced by PostgreSQL: NUL and
unpaired UTF-16 surrogates cannot be stored as text and become U+FFFD; the
raw form (PDU hex) keeps the original bytes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, insert, select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import BEFORE_OPTION, COMMIT_OPTION, engine_of, write_connection
from dialbot.db.models import (
    EVENT_KINDS,
    GENESIS_HASH,
    EvidenceEvent,
    EvidenceHead,
    ReceivedPdu,
)
from dialbot.db.outage import survives_outage
from dialbot.db.types import utcnow

HASH_VERSION = 1
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_EVENTS: Table = EvidenceEvent.__table__  # type: ignore[assignment]
_HEAD: Table = EvidenceHead.__table__  # type: ignore[assignment]
# PostgreSQL: the chain lock is taken by LOCK TABLE before the head row is read. A
# writer waiting in LOCK holds no snapshot; one waiting in SELECT … FOR UPDATE does,
# and while dozens wait, the head row's old versions cannot be pruned: the one-row
# table grows by a page every few hundred appends and every append reads through it.
# EXCLUSIVE mode: plain reads (verification, reports) go on. FOR UPDATE stays, so a
# process of an older version (row lock only) still waits its turn.
_LOCK_FIRST = {BEFORE_OPTION: "LOCK TABLE evidence_head IN EXCLUSIVE MODE"}
_RECEIVED: Table = ReceivedPdu.__table__  # type: ignore[assignment]
_HEAD_LOCKED = select(_HEAD.c.last_id, _HEAD.c.last_hash).where(_HEAD.c.id == 1).with_for_update()
_SQLITE_HEAD = "SELECT last_id, last_hash FROM evidence_head WHERE id = 1"
_SQLITE_MOVE_HEAD = "UPDATE evidence_head SET last_id = ?, last_hash = ? WHERE id = 1"


@dataclass(frozen=True)
class NewEvent:
    """What a caller wants recorded; ``at`` defaults to the time of the append."""

    kind: str
    sim: str | None = None
    run_id: int | None = None
    at: datetime | None = None
    peer: str | None = None
    text: str | None = None
    raw: str | None = None
    data: Any = None
    receipts: tuple[int, ...] = ()  # received PDUs this event records (not hashed: see below)


@dataclass(frozen=True)
class EventRow:
    """A stored event: immutable, safe to hand to other threads."""

    id: int
    run_id: int | None
    sim: str | None
    at: datetime
    kind: str
    peer: str | None
    text: str | None
    raw: str | None
    data: Any
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify_chain`; ``first_bad_id`` and ``reason`` when broken."""

    ok: bool
    checked: int
    head_id: int
    head_hash: str
    first_bad_id: int | None = None
    reason: str | None = None


def _storable(text: str | None) -> str | None:
    return None if text is None else _UNSTORABLE.sub("\ufffd", text)


def _storable_data(value: Any) -> Any:
    """Normalise JSON data to what a JSON column gives back (lists, str keys)."""
    if value is None:
        return None
    try:
        encoded = json.dumps(value, ensure_ascii=True, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"evidence data is not plain JSON: {exc}") from exc
    return _clean_strings(json.loads(encoded))


def _clean_strings(value: Any) -> Any:
    if isinstance(value, str):
        return _storable(value)
    if isinstance(value, list):
        return [_clean_strings(v) for v in value]
    if isinstance(value, dict):
        return {_storable(k): _clean_strings(v) for k, v in value.items()}
    return value


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _hashed_fields(event_id: int, prev_hash: str, ev: NewEvent | EventRow) -> dict[str, Any]:
    assert ev.at is not None
    return {
        "v": HASH_VERSION,
        "id": event_id,
        "run_id": ev.run_id,
        "sim": ev.sim,
        "at": _iso(ev.at),
        "kind": ev.kind,
        "peer": ev.peer,
        "text": ev.text,
        "raw": ev.raw,
        "data": ev.data,
        "prev_hash": prev_hash,
    }


def event_hash(event_id: int, prev_hash: str, ev: NewEvent | EventRow) -> str:
    """sha256 over a canonical JSON serialisation (sorted keys, ASCII, no spaces)."""
    doc = _hashed_fields(event_id, prev_hash, ev)
    canonical = json.dumps(doc, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _prepare(ev: NewEvent) -> NewEvent:
    """Validate and normalise an event so that what is hashed is what is stored."""
    if ev.kind not in EVENT_KINDS:
        raise ValueError(f"unknown evidence kind {ev.kind!r} (one of {', '.join(EVENT_KINDS)})")
    at = utcnow() if ev.at is None else ev.at
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("evidence time must be timezone-aware")
    return NewEvent(
        kind=ev.kind,
        sim=_storable(ev.sim),
        run_id=ev.run_id,
        at=at.astimezone(UTC),
        peer=_storable(ev.peer),
        text=_storable(ev.text),
        raw=_storable(ev.raw),
        data=_storable_data(ev.data),
        receipts=tuple(ev.receipts),
    )


@survives_outage
def append_events(
    session_factory: sessionmaker[Session], events: Sequence[NewEvent]
) -> list[EventRow]:
    """Append events in order, in one transaction, under the chain lock."""
    prepared = [_prepare(ev) for ev in events]
    if not prepared:
        return []
    if engine_of(session_factory).dialect.name == "sqlite":
        return _append_sqlite(session_factory, prepared)
    rows: list[EventRow] = []
    with write_connection(session_factory) as conn:
        last_id, last_hash = conn.execute(_HEAD_LOCKED, execution_options=_LOCK_FIRST).one()
        for ev in prepared:
            last_id += 1
            digest = event_hash(last_id, last_hash, ev)
            assert ev.at is not None
            rows.append(
                EventRow(
                    last_id,
                    ev.run_id,
                    ev.sim,
                    ev.at,
                    ev.kind,
                    ev.peer,
                    ev.text,
                    ev.raw,
                    ev.data,
                    last_hash,
                    digest,
                )  # fmt: skip
            )
            last_hash = digest
        _write(conn, prepared, rows)
    return rows


def _canonical(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class _Staged:
    """An event made ready for the chain before the lock is taken: its hashed document
    around the two values only the chain's head gives (its id and the previous hash),
    and its column values already converted for the driver."""

    event: NewEvent
    before_id: str
    before_prev: str
    after_prev: str
    values: tuple[Any, ...]  # in column order; None where id, prev_hash and hash go

    def digest(self, event_id: int, prev_hash: str) -> str:
        """`event_hash` of the event at ``event_id`` after ``prev_hash`` (the same bytes)."""
        document = (self.before_id + str(event_id) + self.before_prev + _canonical(prev_hash)
                    + self.after_prev)  # fmt: skip
        return hashlib.sha256(document.encode("ascii")).hexdigest()


_CHAIN_COLUMNS = ("id", "prev_hash", "hash")


def _stage(ev: NewEvent, dialect: Any) -> _Staged:
    fields = _hashed_fields(0, "", ev)
    pieces = {key: f"{_canonical(key)}:{_canonical(value)}" for key, value in fields.items()}
    keys = sorted(pieces)  # the canonical document's order (sort_keys)
    at_id, at_prev = keys.index("id"), keys.index("prev_hash")
    assert at_id < at_prev
    before_id = "{" + "".join(pieces[k] + "," for k in keys[:at_id]) + _canonical("id") + ":"
    middle = "".join("," + pieces[k] for k in keys[at_id + 1 : at_prev])
    before_prev = middle + "," + _canonical("prev_hash") + ":"
    after_prev = "".join("," + pieces[k] for k in keys[at_prev + 1 :]) + "}"
    _, binds = _sqlite_insert(dialect)
    values = tuple(None if c in _CHAIN_COLUMNS else bind(getattr(ev, c)) for c, bind in binds)
    return _Staged(ev, before_id, before_prev, after_prev, values)


_SQLITE_CLAIM = "UPDATE received_pdus SET event_id = ? WHERE id = ? AND event_id IS NULL"


def _append_sqlite(
    session_factory: sessionmaker[Session], events: list[NewEvent]
) -> list[EventRow]:
    """`append_events` on SQLite: everything that does not need the chain's head is done
    before its lock is taken (each writer of every process waits while it is held), and
    the statements go to the driver directly."""
    dialect = engine_of(session_factory).dialect
    staged = [_stage(ev, dialect) for ev in events]
    sql, binds = _sqlite_insert(dialect)
    slots = [n for n, (c, _) in enumerate(binds) if c in _CHAIN_COLUMNS]
    rows: list[EventRow] = []
    params: list[tuple[Any, ...]] = []
    with write_connection(session_factory) as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        last_id, last_hash = driver.execute(_SQLITE_HEAD).fetchone()
        for one in staged:
            last_id += 1
            digest = one.digest(last_id, last_hash)
            ev = one.event
            assert ev.at is not None
            rows.append(EventRow(last_id, ev.run_id, ev.sim, ev.at, ev.kind, ev.peer, ev.text,
                                 ev.raw, ev.data, last_hash, digest))  # fmt: skip
            chain = {"id": last_id, "prev_hash": last_hash, "hash": digest}
            values = list(one.values)
            for n in slots:
                values[n] = chain[binds[n][0]]
            params.append(tuple(values))
            last_hash = digest
        driver.executemany(sql, params)
        claims = [(row.id, r) for one, row in zip(staged, rows, strict=True)
                  for r in one.event.receipts]  # fmt: skip
        if claims:
            driver.executemany(_SQLITE_CLAIM, claims)
        driver.execute(_SQLITE_MOVE_HEAD, (rows[-1].id, rows[-1].hash))
    return rows


def _write(conn: Connection, events: list[NewEvent], rows: list[EventRow]) -> None:
    """Insert the events, claim their receipts and move the chain head (PostgreSQL;
    SQLite's is `_append_sqlite`).

    Everything here runs under the chain lock, so every append waits for it. The three writes are one statement (`_pg_write`), sent with the
    ``COMMIT`` (`COMMIT_OPTION`): one round trip instead of four, and its text
    depends only on the number of receipts, so SQLAlchemy compiles nothing per
    append and the server may keep its plan. The events travel as one JSON
    document (cheaper to build than a parameter per value, and it is built while
    every other writer waits).
    """
    owner = {r: row.id for ev, row in zip(events, rows, strict=True) for r in ev.receipts}
    document = [{**_row_values(row), "at": _iso(row.at)} for row in rows]
    params = {
        "events": json.dumps(document, ensure_ascii=False),
        "last_id": rows[-1].id,
        "last_hash": rows[-1].hash,
    }
    for k, (receipt, event_id) in enumerate(owner.items()):
        params[f"r{k}"], params[f"e{k}"] = receipt, event_id
    conn.exec_driver_sql(_pg_write(len(owner)), params, execution_options={COMMIT_OPTION: True})


_SQLITE_INSERT: tuple[str, list[tuple[str, Any]]] | None = None


def _sqlite_insert(dialect: Any) -> tuple[str, list[tuple[str, Any]]]:
    """The INSERT's text for SQLite and each column's bind processor, made once: sent as
    driver SQL, no statement is compiled or cache-keyed per append, and the values are
    converted exactly as the column types convert them (aware times, JSON)."""
    global _SQLITE_INSERT
    if _SQLITE_INSERT is None:
        sql = str(insert(_EVENTS).compile(dialect=dialect))
        binds = [(c.key, c.type.bind_processor(dialect) or _same) for c in _EVENTS.columns]
        _SQLITE_INSERT = (sql, binds)
    return _SQLITE_INSERT


def _same(value: Any) -> Any:
    return value


_PG_COLUMNS = ", ".join(_EVENTS.columns.keys())
_PG_APPENDED = f"""appended AS (
    INSERT INTO evidence_events ({_PG_COLUMNS})
    SELECT {_PG_COLUMNS} FROM json_populate_recordset(NULL::evidence_events, %(events)s::json))"""
_PG_HEAD = "UPDATE evidence_head SET last_id = %(last_id)s, last_hash = %(last_hash)s WHERE id = 1"


@functools.cache
def _pg_write(receipts: int) -> str:
    """`_write`'s statement on PostgreSQL for an append that claims this many receipts.

    One claim per receipt, by primary key: the only plan for it is the index,
    whatever the statistics were when the server cached the statement's plan (a
    plan for a list of ids made while the receipt log was nearly empty scans the
    whole log, and the log only grows).
    """
    claims = [
        f"""claim{k} AS (UPDATE received_pdus SET event_id = %(e{k})s::bigint
    WHERE id = %(r{k})s::bigint AND event_id IS NULL)"""
        for k in range(receipts)
    ]
    return "WITH " + ",\n".join([_PG_APPENDED, *claims]) + "\n" + _PG_HEAD


def append_event(
    session_factory: sessionmaker[Session],
    kind: str,
    *,
    sim: str | None = None,
    run_id: int | None = None,
    at: datetime | None = None,
    peer: str | None = None,
    text: str | None = None,
    raw: str | None = None,
    data: Any = None,
    receipts: tuple[int, ...] = (),
) -> EventRow:
    """Append one event and return it as stored (with its id and hash)."""
    ev = NewEvent(kind, sim, run_id, at, peer, text, raw, data, receipts)
    return append_events(session_factory, [ev])[0]


def _row_values(row: EventRow) -> dict[str, Any]:
    return {c: getattr(row, c) for c in _EVENTS.columns.keys()}


def _to_row(mapping: Any) -> EventRow:
    return EventRow(**{c: mapping[c] for c in _EVENTS.columns.keys()})


@survives_outage
def events_for_run(session_factory: sessionmaker[Session], run_id: int) -> list[EventRow]:
    """Every event of a run, in chain order: what the judge reads."""
    with session_factory() as session:
        result = session.execute(
            select(_EVENTS).where(_EVENTS.c.run_id == run_id).order_by(_EVENTS.c.id)
        )
        return [_to_row(m) for m in result.mappings()]


@survives_outage
def events_of_sim(
    session_factory: sessionmaker[Session], sim: str, kinds: Iterable[str], since: datetime
) -> list[EventRow]:
    """A SIM's events of these kinds from `since` on (any run, or none), in chain order."""
    with session_factory() as session:
        result = session.execute(
            select(_EVENTS)
            .where(
                _EVENTS.c.sim == sim,
                _EVENTS.c.kind.in_(sorted(set(kinds))),
                _EVENTS.c.at >= since,
            )
            .order_by(_EVENTS.c.id)
        )
        return [_to_row(m) for m in result.mappings()]


@survives_outage
def events_by_id(session_factory: sessionmaker[Session], ids: Iterable[int]) -> list[EventRow]:
    """The events a finding cites, in chain order."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    with session_factory() as session:
        result = session.execute(
            select(_EVENTS).where(_EVENTS.c.id.in_(wanted)).order_by(_EVENTS.c.id)
        )
        return [_to_row(m) for m in result.mappings()]


def verify_chain(session_factory: sessionmaker[Session], *, batch: int = 2000) -> VerifyResult:
    """Recompute every hash in chain order; stop at the first broken event.

    Reads one consistent snapshot (PostgreSQL: REPEATABLE READ; SQLite: one
    read transaction), so appends running meanwhile do not disturb it.
    """
    with session_factory() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        head = session.execute(select(EvidenceHead).where(EvidenceHead.id == 1)).scalar_one()
        prev_id, prev_hash, checked = 0, GENESIS_HASH, 0
        while True:
            page = session.execute(
                select(_EVENTS).where(_EVENTS.c.id > prev_id).order_by(_EVENTS.c.id).limit(batch)
            ).mappings()
            rows = [_to_row(m) for m in page]
            for row in rows:
                problem = _check_link(row, prev_id, prev_hash, head.last_id)
                if problem:
                    return _broken(checked, head, row.id, problem)
                prev_id, prev_hash, checked = row.id, row.hash, checked + 1
            if len(rows) < batch:
                break
        if prev_id != head.last_id:
            missing = f"events {prev_id + 1}..{head.last_id} are missing from the end"
            return _broken(checked, head, prev_id + 1, missing)
        if prev_hash != head.last_hash:
            return _broken(checked, head, prev_id, "the chain head does not match the last event")
        return VerifyResult(True, checked, head.last_id, head.last_hash)


def _check_link(row: EventRow, prev_id: int, prev_hash: str, head_id: int) -> str | None:
    """Why ``row`` does not follow the event before it, or None when it does."""
    if row.id != prev_id + 1:
        if row.id == prev_id + 2:
            return f"event {prev_id + 1} before it is missing"
        return f"events {prev_id + 1}..{row.id - 1} before it are missing"
    if row.id > head_id:
        return f"it lies beyond the chain head (event {head_id}): appended outside dialbot"
    if row.prev_hash != prev_hash:
        before = f"event {prev_id}" if prev_id else "the start of the chain"
        return f"its prev_hash does not match the hash of {before}"
    if event_hash(row.id, row.prev_hash, row) != row.hash:
        return "its content does not match its hash (the event was altered)"
    return None


def _broken(checked: int, head: EvidenceHead, event_id: int, reason: str) -> VerifyResult:
    return VerifyResult(False, checked, head.last_id, head.last_hash, event_id, reason)

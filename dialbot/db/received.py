"""The receipt log: each PDU a modem held, committed before ``AT+CMGD`` deletes it.

`DbPduStore` is the driver's durable `PduStore` for one modem. A PDU is
told apart by its modem (`source`: bank and slot), its storage slot and
the SHA-256 of its bytes (which cover the sender and the network's time
stamp): read again before its deletion (a failed delete, a process killed
between storing and deleting) it is the same receipt, not a new message,
and that survives a restart. Once this process deleted it, an identical
PDU in that slot is a new message (an SP that sends a text twice is
evidence twice); across a restart only a byte-identical PDU (same SCTS
second) in the same slot would be taken for a re-read.

Whoever records a message as evidence names its receipts
(`NewEvent.receipts`); `append_events` sets their ``event_id`` in the same
transaction, so a receipt is either recorded or left over, never both:
`left_over` is what a dead process read and never recorded.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from typing import Any

from sqlalchemy import Table, exists, insert, literal, select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import engine_of, write_connection, write_session
from dialbot.db.models import ReceivedPdu
from dialbot.db.outage import survives_outage
from dialbot.db.types import utcnow
from dialbot.modem.inbox import StoredPdu, read_pdu
from dialbot.modem.store import Receipt

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # PostgreSQL text cannot hold these


def _clean(text: str | None, limit: int | None = None) -> str | None:
    if text is None:
        return None
    cleaned = _UNSTORABLE.sub("\ufffd", text)
    return cleaned[:limit] if limit else cleaned


class DbPduStore:
    """One modem's receipts in the database (see the module docstring).

    Which PDUs are still on the modem is known in memory (this process read
    and has not yet deleted them); a PDU that an earlier process stored is
    recognised in the database by its slot and bytes. One statement per PDU
    (an insert unless an earlier process stored it), one transaction per
    listing: the database work of a message is mostly its evidence event.
    """

    def __init__(self, db: sessionmaker[Session], source: str, sim: str | None = None) -> None:
        self.db = db
        self.source = source
        self.sim = sim
        self.started = utcnow()
        self._undeleted: dict[tuple[str, int, str], int] = {}
        self._checked: set[str] = set()  # memories whose start-up contents were stored
        self._lock = threading.Lock()

    @survives_outage
    def store(self, item: StoredPdu) -> Receipt:
        return self.store_many([item])[0]

    @survives_outage
    def store_many(self, items: list[StoredPdu]) -> list[Receipt]:
        """Commit the PDUs of one listing together (none, if it fails)."""
        with self._lock:
            known = [self._undeleted.get(_key(item)) for item in items]
        out = [Receipt(k, False) if k is not None else None for k in known]
        todo = [(i, item) for i, item in enumerate(items) if out[i] is None]
        if todo:
            with self._lock:
                fresh = [item for _, item in todo if item.memory in self._checked]
            if len(fresh) == len(todo):  # the common case: one statement for all
                for (i, _item), new_id in zip(todo, self._insert_new(fresh), strict=True):
                    out[i] = Receipt(new_id, True)
            else:
                with write_session(self.db) as session:
                    for i, item in todo:
                        out[i] = self._insert(session, item)
        receipts = [r for r in out if r is not None]
        with self._lock:
            for item, receipt in zip(items, receipts, strict=True):
                self._undeleted[_key(item)] = receipt.id
            self._checked.update(item.memory for item in items)
        return receipts

    def _insert_new(self, items: list[StoredPdu]) -> list[int]:
        """Insert PDUs that arrived after this process first listed their memory: an
        earlier process cannot have stored them (it would have been listed then).

        One statement, its own transaction. On PostgreSQL it runs in autocommit (it
        is committed, durably, when it returns: no BEGIN and COMMIT round trips) and
        its text is fixed (column arrays, not a row of parameters per PDU: nothing
        to compile or parse again per listing size: the rows travel as one JSON
        document); the ids come from the sequence
        in the order of the rows, as SQLAlchemy's ordered RETURNING also relies on.
        """
        rows = [self._values(item) for item in items]
        engine = engine_of(self.db)
        if engine.dialect.name != "postgresql":
            # SQLite: the values converted before the write lock is taken, the driver's
            # statement under it (each writer of every process waits while it is held)
            sql, binds = _sqlite_insert(engine.dialect)
            params = [tuple(bind(row[c]) for c, bind in binds) for row in rows]
            ids: list[int] = []
            with write_connection(self.db) as conn:
                driver = conn.connection.driver_connection
                assert driver is not None
                for values in params:
                    ids.append(int(driver.execute(sql, values).lastrowid))
            return ids
        for row in rows:
            at = row["read_at"]
            if at.tzinfo is None or at.utcoffset() is None:
                raise ValueError(f"naive read time {at.isoformat()} (dialbot stores aware times)")
            row["read_at"] = at.isoformat()
        listing = json.dumps(rows, ensure_ascii=False)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            stored = conn.exec_driver_sql(_PG_INSERT, {"listing": listing}).scalars().all()
        return sorted(int(i) for i in stored)

    def _insert(self, session: Session, item: StoredPdu) -> Receipt:
        """Insert unless an earlier process stored this PDU in this slot (read again
        after a crash between its store and its delete)."""
        earlier = select(ReceivedPdu.id).where(
            ReceivedPdu.source == self.source,
            ReceivedPdu.memory == item.memory,
            ReceivedPdu.slot_index == item.index,
            ReceivedPdu.pdu_sha256 == item.sha256,
            ReceivedPdu.read_at < self.started,
        )
        values = self._values(item)
        columns = ReceivedPdu.__table__.c
        row = select(*(literal(v, type_=columns[k].type) for k, v in values.items()))
        new_id = session.execute(
            insert(ReceivedPdu)
            .from_select(list(values), row.where(~exists(earlier)))
            .returning(ReceivedPdu.id)
        ).scalar()
        if new_id is not None:
            return Receipt(int(new_id), True)
        return Receipt(int(session.execute(earlier.limit(1)).scalar_one()), False)

    def _values(self, item: StoredPdu) -> dict[str, Any]:
        return {
            "source": self.source,
            "sim": self.sim,
            "port": item.port,
            "memory": item.memory,
            "slot_index": item.index,
            "pdu": _clean(item.pdu) or "",
            "pdu_sha256": item.sha256,
            "kind": item.kind[:24],
            "sender": _clean(item.sender, 32),
            "text": _clean(item.text),
            "scts": item.scts.isoformat() if item.scts else None,
            "problem": _clean(item.problem, 200),
            "read_at": item.read_at,
        }

    def deleted(self, receipt: int) -> None:
        """The modem deleted it: an identical PDU in that slot is a new message now."""
        with self._lock:
            self._undeleted = {k: v for k, v in self._undeleted.items() if v != receipt}

    def listed(self, memory: str) -> None:
        """An empty first listing counts: a PDU arriving there later cannot be one an
        earlier process stored (a byte-identical reply — same text, same SCTS second —
        to the previous process's query would otherwise be taken for a re-read)."""
        with self._lock:
            self._checked.add(memory)

    @survives_outage
    def left_over(self) -> list[tuple[int, StoredPdu]]:
        with self.db() as session:
            rows = session.scalars(
                select(ReceivedPdu)
                .where(ReceivedPdu.source == self.source, ReceivedPdu.event_id.is_(None))
                .order_by(ReceivedPdu.id)
            ).all()
            return [(int(r.id), to_stored(r)) for r in rows]


_RECEIVED: Table = ReceivedPdu.__table__  # type: ignore[assignment]


@functools.cache
def _sqlite_insert(dialect: Any) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """The receipt INSERT's text for SQLite's driver and each column's bind processor
    (the column types' own conversions: aware times)."""
    names = ("source", "sim", "port", "memory", "slot_index", "pdu", "pdu_sha256", "kind",
             "sender", "text", "scts", "problem", "read_at")  # fmt: skip
    columns = [_RECEIVED.c[name] for name in names]
    binds = tuple((c.key, c.type.bind_processor(dialect) or _same) for c in columns)
    sql = f"INSERT INTO received_pdus ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    return sql, binds


def _same(value: Any) -> Any:
    return value


_COLUMNS = ", ".join(c for c in _RECEIVED.columns.keys() if c not in ("id", "event_id"))
_PG_INSERT = f"""INSERT INTO received_pdus ({_COLUMNS})
SELECT {_COLUMNS}
FROM json_populate_recordset(NULL::received_pdus, %(listing)s::json) WITH ORDINALITY AS listing
ORDER BY listing.ordinality
RETURNING id"""


def _key(item: StoredPdu) -> tuple[str, int, str]:
    return (item.memory, item.index, item.sha256)


def to_stored(row: ReceivedPdu) -> StoredPdu:
    """A stored receipt as the driver read it (decoded again: the raw PDU is the truth)."""
    return read_pdu(row.port, row.memory, row.slot_index, row.pdu, row.read_at)


@survives_outage
def unrecorded(db: sessionmaker[Session], source: str | None = None) -> list[ReceivedPdu]:
    """Receipts no evidence event records (all modems, or one): for checks and tests."""
    with db() as session:
        query = select(ReceivedPdu).where(ReceivedPdu.event_id.is_(None))
        if source is not None:
            query = query.where(ReceivedPdu.source == source)
        return list(session.scalars(query.order_by(ReceivedPdu.id)).all())

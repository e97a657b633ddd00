"""The receipt log: each PDU a modem held, committed before ``AT+CMGD`` deletes it.

`DbPduStore` is the driver's durable `PduStore` for one modem. A PDU is
told apart by its modem (`source`: bank and slot), its storage slot and
the SHA-256 of its bytes (which cover the sender and the network's time
stamp): read again before its deletion was confirmed (a failed delete, a
process killed between storing and deleting) it is the same receipt, not
a new message, and that survives a restart. Once deleted, an identical
PDU in that slot is a new message (an SP that sends a text twice is
evidence twice).

Whoever records a message as evidence names its receipts
(`NewEvent.receipts`); `append_events` sets their ``event_id`` in the same
transaction, so a receipt is either recorded or left over, never both:
`left_over` is what a dead process read and never recorded.
"""

from __future__ import annotations

import re
import threading

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import write_session
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
    """One modem's receipts in the database (see the module docstring)."""

    def __init__(self, db: sessionmaker[Session], source: str, sim: str | None = None) -> None:
        self.db = db
        self.source = source
        self.sim = sim
        self._deleted: list[int] = []
        self._lock = threading.Lock()

    @survives_outage
    def store(self, item: StoredPdu) -> Receipt:
        digest = item.sha256
        with self._lock:
            deleted, self._deleted = self._deleted, []
        with write_session(self.db) as session:
            if deleted:  # marked here, not in a transaction of their own (see `deleted`)
                session.execute(
                    update(ReceivedPdu)
                    .where(ReceivedPdu.id.in_(deleted), ReceivedPdu.deleted_at.is_(None))
                    .values(deleted_at=utcnow())
                )
            known = session.scalar(
                select(ReceivedPdu.id).where(
                    ReceivedPdu.source == self.source,
                    ReceivedPdu.memory == item.memory,
                    ReceivedPdu.slot_index == item.index,
                    ReceivedPdu.pdu_sha256 == digest,
                    ReceivedPdu.deleted_at.is_(None),
                )
            )
            if known is not None:
                return Receipt(int(known), False)
            row = ReceivedPdu(
                source=self.source,
                sim=self.sim,
                port=item.port,
                memory=item.memory,
                slot_index=item.index,
                pdu=_clean(item.pdu) or "",
                pdu_sha256=digest,
                kind=item.kind[:24],
                sender=_clean(item.sender, 32),
                text=_clean(item.text),
                scts=item.scts.isoformat() if item.scts else None,
                problem=_clean(item.problem, 200),
                read_at=item.read_at,
            )
            session.add(row)
            session.flush()
            return Receipt(int(row.id), True)

    def deleted(self, receipt: int) -> None:
        """Noted now, written with the next `store` (before its duplicate check): a sweep
        then costs one write per PDU, and a modem thread holds its lock for less. A mark
        lost in a crash only matters to a byte-identical PDU (same SCTS second) in the same
        slot after the restart."""
        with self._lock:
            self._deleted.append(receipt)

    @survives_outage
    def left_over(self) -> list[tuple[int, StoredPdu]]:
        with self.db() as session:
            rows = session.scalars(
                select(ReceivedPdu)
                .where(ReceivedPdu.source == self.source, ReceivedPdu.event_id.is_(None))
                .order_by(ReceivedPdu.id)
            ).all()
            return [(int(r.id), to_stored(r)) for r in rows]


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

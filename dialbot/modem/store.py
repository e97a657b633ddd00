"""Where the driver commits each PDU it reads, before deleting it from the modem.

The seam between the modem layer and the database: the driver calls
`PduStore.store` for every PDU it reads and sends ``AT+CMGD`` only after it
returned (so after the commit); when it raises, the PDU stays on the modem
and is read again by the next sweep. `store` says whether the PDU is new:
a PDU read again because its delete failed, or because the process died
between storing and deleting, is stored (and delivered) once. `left_over`
gives what an earlier process stored but never recorded as evidence (it
died first), to be delivered again after a restart.

`MemoryStore` keeps nothing across processes: for tools and tests without a
database. `dialbot.db.received.DbPduStore` is the durable one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from dialbot.modem.inbox import StoredPdu


@dataclass(frozen=True)
class Receipt:
    """The store's id of a PDU, and whether this read was its first (deliver it) or not."""

    id: int
    new: bool


class PduStore(Protocol):
    """A modem's durable receipt log (one per modem: its SIM, its storage)."""

    def store(self, item: StoredPdu) -> Receipt:
        """Commit the PDU (not new: stored before and not yet deleted from the modem, i.e.
        read twice). Raises when it could not be committed."""
        ...

    def store_many(self, items: list[StoredPdu]) -> list[Receipt]:
        """`store` for the PDUs of one listing, committed together (or not at all)."""
        ...

    def deleted(self, receipt: int) -> None:
        """The PDU was deleted from the modem: an identical PDU later is a new message."""
        ...

    def listed(self, memory: str) -> None:
        """This process has listed `memory` (perhaps empty): whatever arrives there from
        now on is new, never a re-read of what an earlier process stored."""
        ...

    def left_over(self) -> list[tuple[int, StoredPdu]]:
        """PDUs stored by an earlier process and never recorded as evidence."""
        ...


class MemoryStore:
    """Receipts in memory only: the read-twice guard of one process, nothing durable."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0
        self._undeleted: dict[tuple[str, int, str], int] = {}

    def store(self, item: StoredPdu) -> Receipt:
        key = (item.memory, item.index, item.sha256)
        with self._lock:
            if key in self._undeleted:
                return Receipt(self._undeleted[key], False)
            self._next += 1
            self._undeleted[key] = self._next
            return Receipt(self._next, True)

    def store_many(self, items: list[StoredPdu]) -> list[Receipt]:
        return [self.store(item) for item in items]

    def deleted(self, receipt: int) -> None:
        with self._lock:
            self._undeleted = {k: v for k, v in self._undeleted.items() if v != receipt}

    def listed(self, memory: str) -> None:
        pass  # nothing survives this process: no earlier process to tell apart

    def left_over(self) -> list[tuple[int, StoredPdu]]:
        return []

"""A lease: one holder works one modem at a time and receives its messages.

While a lease is held every message the modem receives lands in the lease's
inbox (exactly once); a holder takes the ones it waits for and leaves the
rest. On release whatever is left goes to the fleet's unsolicited stream,
so nothing received is ever dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from dialbot.modem import IncomingMessage

if TYPE_CHECKING:
    from dialbot.fleet.fleet import FleetModem

Predicate = Callable[[IncomingMessage], bool]


class Lease:
    """Exclusive use of one fleet modem; a context manager (release is safe twice)."""

    def __init__(self, slot: FleetModem, on_release: Callable[[Lease], None]) -> None:
        self.slot = slot
        self._inbox: list[IncomingMessage] = []
        self._cond = threading.Condition()
        self._on_release = on_release
        self._released = False
        assert slot.modem is not None
        self.modem = slot.modem
        self.modem.set_sink(self._put)

    def _put(self, message: IncomingMessage) -> None:
        with self._cond:
            self._inbox.append(message)
            self._cond.notify_all()

    def send_sms(self, number: str, text: str) -> None:
        """Send a message from this SIM (input checked before anything is written)."""
        self.modem.send_sms(number, text)

    def ussd(self, code: str) -> str:
        return self.modem.ussd(code)

    def wait_message(self, predicate: Predicate, timeout: float) -> IncomingMessage | None:
        """Take the first message that matches, waiting up to timeout; others stay."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index, message in enumerate(self._inbox):
                    if predicate(message):
                        return self._inbox.pop(index)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def take_all(self) -> list[IncomingMessage]:
        """Every message received and not yet taken."""
        with self._cond:
            taken, self._inbox = self._inbox, []
            return taken

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self.modem.set_sink(None)
        self._on_release(self)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

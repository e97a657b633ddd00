"""A ring buffer of the last AT exchanges of one modem.

When a modem fails, what it said just before is the only evidence of why;
every ModemError the driver raises carries a snapshot of this buffer.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from datetime import datetime


class AtTrace:
    """Thread-safe bounded log of lines written (``>``) and read (``<``).

    Entries are kept raw (time, mark, text) and formatted only by
    `snapshot`: a trace is read when something failed, but written for every
    line of every exchange (a dozen per HTTP request), so the formatting
    belongs on the rare side.
    """

    def __init__(self, size: int = 64) -> None:
        self._lines: deque[tuple[float, str, str]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def _add(self, mark: str, text: str) -> None:
        entry = (time.time(), mark, text)
        with self._lock:
            self._lines.append(entry)

    def tx(self, text: str) -> None:
        """Something written to the modem."""
        self._add(">", text)

    def rx(self, text: str) -> None:
        """A line read from the modem."""
        self._add("<", text)

    def note(self, text: str) -> None:
        """A driver event (timeout, garbage dropped, reconnect)."""
        self._add("!", text)

    def snapshot(self) -> list[str]:
        """A copy of the buffer, oldest first, for an error or a report."""
        with self._lock:
            entries = list(self._lines)
        return [
            f"{datetime.fromtimestamp(at).strftime('%H:%M:%S.%f')[:-3]} {mark} {text!r}"
            for at, mark, text in entries
        ]

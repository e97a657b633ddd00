"""The network's clock on the bank's asyncio loop (`contracts.Scheduler`).

Time-based behaviour in the simulator never sleeps: it asks this clock for
the time and for callbacks, so everything stays on the loop thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

CARRIER_ZONE = ZoneInfo("Asia/Shanghai")


class LoopScheduler:
    """`Scheduler` backed by an asyncio event loop; must be used on that loop's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, zone: tzinfo = CARRIER_ZONE) -> None:
        self._loop = loop
        self._zone = zone
        self._start = loop.time()

    def now(self) -> datetime:
        """Wall-clock time in the carrier's zone (SCTS timestamps carry it)."""
        return datetime.now(self._zone)

    def elapsed(self) -> float:
        """Seconds since the bank started (faults count from here)."""
        return self._loop.time() - self._start

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> None:
        """Run fn on the loop thread after delay_s seconds (0: as soon as possible)."""
        if delay_s <= 0:
            self._loop.call_soon(fn)
        else:
            self._loop.call_later(delay_s, fn)

"""The network's clock on the bank's asyncio loop (`contracts.Scheduler`).

Time-based behaviour in the simulator never sleeps: it asks this clock for
the time and for callbacks, so everything stays on the loop thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
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


@dataclass(frozen=True)
class CalendarSettings:
    """The world's `calendar` table: how fast simulated days pass, where they start.

    `time_scale` is real seconds per simulated second (1e-5: a 30-day month in
    ~26 s), so a test can live through a month of renewals; `start` is the
    simulated date at the network's start (None: the wall clock then);
    `reminder_days` is how long before a renewal the carrier reminds.
    """

    time_scale: float = 1.0
    start: datetime | None = None
    reminder_days: float = 3.0


class Calendar:
    """Simulated dates over the network clock's elapsed seconds.

    Monthly services renew on the 1st of each (simulated) month, 00:00 in the
    carrier's zone, as China Mobile bills 包月; free trials end `trial_days`
    simulated days after the order. Everything the network schedules is in
    real seconds (`delay_until`); the ledger keeps the wall clock.
    """

    def __init__(self, settings: CalendarSettings, clock_now: datetime, elapsed: float) -> None:
        self.settings = settings
        start = settings.start or clock_now
        # The simulated date at elapsed 0 (the network may be created after its clock).
        self._origin = start - timedelta(seconds=elapsed / settings.time_scale)

    def sim_s(self, real_s: float) -> float:
        """Simulated seconds that `real_s` real seconds stand for."""
        return real_s / self.settings.time_scale

    def real_s(self, sim_s: float) -> float:
        """Real seconds a span of `sim_s` simulated seconds lasts."""
        return sim_s * self.settings.time_scale

    def date_at(self, elapsed: float) -> datetime:
        """The simulated date at the network's `elapsed` seconds."""
        return self._origin + timedelta(seconds=self.sim_s(elapsed))

    def elapsed_at(self, when: datetime) -> float:
        """The network's elapsed seconds at simulated date `when`."""
        return self.real_s((when - self._origin).total_seconds())

    @staticmethod
    def next_month(after: datetime) -> datetime:
        """The first month boundary (the 1st, 00:00, same zone) strictly after `after`."""
        year, month = (after.year + 1, 1) if after.month == 12 else (after.year, after.month + 1)
        return after.replace(year=year, month=month, day=1, hour=0, minute=0, second=0,
                             microsecond=0)  # fmt: skip

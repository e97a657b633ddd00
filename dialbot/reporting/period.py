"""Reporting periods: a calendar month (``YYYY-MM``) or quarter (``YYYY-Qn``).

A period is a half-open interval of local time in the carrier's zone, so a
probe started at 23:59 on the last day of a month in Beijing counts in that
month even though it is still the previous day in UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from dialbot.errors import InputError

DEFAULT_TZ = "Asia/Shanghai"
_PATTERN = re.compile(r"^(?P<year>\d{4})-(?:(?P<month>\d{2})|Q(?P<quarter>[1-4]))$")


@dataclass(frozen=True, order=True)
class Period:
    """One reporting period; ``kind`` is ``month`` or ``quarter``."""

    year: int
    kind: str
    index: int  # month 1-12, or quarter 1-4

    @property
    def label(self) -> str:
        """The period as written on the command line and in exports."""
        if self.kind == "month":
            return f"{self.year:04d}-{self.index:02d}"
        return f"{self.year:04d}-Q{self.index}"

    @property
    def label_zh(self) -> str:
        """The period as a Chinese reader writes it."""
        if self.kind == "month":
            return f"{self.year}年{self.index}月"
        return f"{self.year}年第{self.index}季度"

    def _first_month(self) -> int:
        return self.index if self.kind == "month" else 3 * (self.index - 1) + 1

    def _months(self) -> int:
        return 1 if self.kind == "month" else 3

    def bounds(self, tz: str = DEFAULT_TZ) -> tuple[datetime, datetime]:
        """Start (inclusive) and end (exclusive) of the period in zone ``tz``."""
        zone = ZoneInfo(tz)
        first = self._first_month()
        start = datetime(self.year, first, 1, tzinfo=zone)
        month_after = first + self._months()
        year_after = self.year + (month_after - 1) // 12
        end = datetime(year_after, (month_after - 1) % 12 + 1, 1, tzinfo=zone)
        return start, end

    def previous(self) -> Period:
        """The period of the same kind just before this one."""
        size = 12 if self.kind == "month" else 4
        if self.index > 1:
            return Period(self.year, self.kind, self.index - 1)
        return Period(self.year - 1, self.kind, size)

    def history(self, count: int) -> list[Period]:
        """The ``count`` periods ending with this one, oldest first."""
        out = [self]
        while len(out) < count:
            out.append(out[-1].previous())
        return list(reversed(out))


def parse_period(text: str) -> Period:
    """Parse ``YYYY-MM`` or ``YYYY-Qn``; a bad value names itself and the two accepted forms."""
    match = _PATTERN.match(text.strip())
    if match is None:
        raise InputError("--period", text, "expected YYYY-MM (month) or YYYY-Qn (quarter)")
    year = int(match["year"])
    if match["month"] is not None:
        month = int(match["month"])
        if not 1 <= month <= 12:
            raise InputError("--period", text, "month must be 01..12")
        return Period(year, "month", month)
    return Period(year, "quarter", int(match["quarter"]))


def period_of(moment: datetime, kind: str = "month", tz: str = DEFAULT_TZ) -> Period:
    """The period of the given kind that contains ``moment`` (aware) in zone ``tz``."""
    local = moment.astimezone(ZoneInfo(tz))
    if kind == "month":
        return Period(local.year, "month", local.month)
    if kind == "quarter":
        return Period(local.year, "quarter", (local.month - 1) // 3 + 1)
    raise ValueError(f"period kind must be month or quarter, not {kind!r}")

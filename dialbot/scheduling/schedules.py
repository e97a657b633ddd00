"""`schedules/*.toml`: when to probe, what, for how long, and how hard.

A schedule is a QA engineer's promise in a file: "every selected service at
least once per <period>, probed between <cron fire time> and <window end>".
The cron expression is parsed by APScheduler's own CronTrigger (never by
hand), so `dialbot schedule list` and the daemon agree on every fire time.
Every mistake names the file, the key and the reason.

Example (see schedules/nightly.toml)::

    name = "nightly"
    cron = "0 1 * * *"          # crontab: minute hour day month day-of-week
    timezone = "Asia/Shanghai"  # default
    window_end = "05:30"        # no order is started after this
    flows = ["decline", "monthly", "per_use"]   # add "ivr" for the 声讯 voice lines
    coverage = "month"          # day | week | month | quarter
    per_sp_concurrency = 2
    retries = 1                 # infrastructure failures before any order was sent
    balance_floor_fen = 500     # SIMs below it are left out tonight (and named)
    follow_days = 35            # the month after: follow this schedule's orders 35 days
                                # (default: [probe] follow_days); "keep" in flows keeps a
                                # monthly subscription that long (docs/month-after.md)

    [selection]                 # omit, or all = true, for the whole catalogue
    sp_codes = ["901234"]
    billing = ["monthly"]
    regions = ["GD"]
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from dialbot.errors import ConfigError

DEFAULT_TZ = "Asia/Shanghai"
PERIODS = ("day", "week", "month", "quarter")
BILLING_TYPES = ("monthly", "per_use", "per_minute")
KEYS = {
    "name",
    "cron",
    "timezone",
    "window_end",
    "flows",
    "coverage",
    "per_sp_concurrency",
    "retries",
    "balance_floor_fen",
    "follow_days",
    "selection",
}
KEEP_FLOW = "keep"  # keeps a monthly subscription until the follow-up's horizon
SELECTION_KEYS = {"all", "sp_codes", "billing", "regions"}


@dataclass(frozen=True)
class Selection:
    """Which catalogue services a schedule covers; empty tuples mean "any"."""

    sp_codes: tuple[str, ...] = ()
    billing: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()

    @property
    def everything(self) -> bool:
        return not (self.sp_codes or self.billing or self.regions)

    def matches(self, sp_code: str, billing: str, region: str | None) -> bool:
        """True when the service belongs to this selection (a nationwide service
        has no region and is selected only when no region filter is set)."""
        if self.sp_codes and sp_code not in self.sp_codes:
            return False
        if self.billing and billing not in self.billing:
            return False
        return not self.regions or region in self.regions


@dataclass(frozen=True)
class Schedule:
    """One validated schedule file."""

    name: str
    cron: str
    timezone: ZoneInfo
    window_end: time
    flows: tuple[str, ...]
    coverage: str = "month"
    selection: Selection = Selection()
    per_sp_concurrency: int = 1
    retries: int = 0
    balance_floor_fen: int = 0
    # The month after: days to follow the orders this schedule's probes place (and to keep
    # what its `keep` probes order); None: the probe host's `[probe] follow_days`.
    follow_days: float | None = None
    source: str = "<schedule>"

    def trigger(self) -> CronTrigger:
        return CronTrigger.from_crontab(self.cron, timezone=self.timezone)

    def next_run(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after`` (aware)."""
        fire: datetime | None = self.trigger().get_next_fire_time(
            None, after + timedelta(seconds=1)
        )
        return fire

    def window_end_after(self, start: datetime) -> datetime:
        """When the window that opens at ``start`` closes: the next ``window_end``
        wall-clock time after it, in the schedule's zone (so 23:00 → 05:30 works)."""
        local = start.astimezone(self.timezone)
        end = datetime.combine(local.date(), self.window_end, tzinfo=self.timezone)
        if end <= local:
            end = datetime.combine(
                local.date() + timedelta(days=1), self.window_end, tzinfo=self.timezone
            )
        return end

    def night_key(self, start: datetime) -> str:
        """The night a start time belongs to: the local date the window opened on."""
        return start.astimezone(self.timezone).date().isoformat()

    def period_bounds(self, at: datetime) -> tuple[datetime, datetime]:
        """The coverage period containing ``at``: [start, end) in the schedule's zone."""
        return period_bounds(self.coverage, at, self.timezone)

    def nights_left(self, start: datetime) -> int:
        """Fire times from ``start`` (included) to the end of its period: tonight
        counts, so the result is at least 1."""
        _, end = self.period_bounds(start)
        trigger = self.trigger()
        count, fire = 1, trigger.get_next_fire_time(None, start + timedelta(seconds=1))
        while fire is not None and fire < end and count < 400:
            count += 1
            fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        return count


def period_bounds(coverage: str, at: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Calendar period (day, ISO week, month, quarter) containing ``at``, in zone ``tz``."""
    local = at.astimezone(tz).date()
    if coverage == "day":
        first, after = local, local + timedelta(days=1)
    elif coverage == "week":
        first = local - timedelta(days=local.weekday())
        after = first + timedelta(days=7)
    elif coverage == "month":
        first = local.replace(day=1)
        after = _add_months(first, 1)
    elif coverage == "quarter":
        first = date(local.year, 3 * ((local.month - 1) // 3) + 1, 1)
        after = _add_months(first, 3)
    else:
        raise ValueError(f"unknown coverage period {coverage!r}")
    return (datetime.combine(first, time(), tzinfo=tz), datetime.combine(after, time(), tzinfo=tz))


def _add_months(day: date, months: int) -> date:
    index = day.month - 1 + months
    return date(day.year + index // 12, index % 12 + 1, 1)


def load_schedules(folder: Path) -> list[Schedule]:
    """Every `*.toml` in ``folder`` (sorted); names must be unique. No folder: none."""
    if not folder.is_dir():
        return []
    schedules: list[Schedule] = []
    seen: dict[str, str] = {}
    for path in sorted(folder.glob("*.toml")):
        schedule = load_schedule(path)
        if schedule.name in seen:
            raise ConfigError(
                str(path), "name", f"{schedule.name!r} is also the name in {seen[schedule.name]}"
            )
        seen[schedule.name] = str(path)
        schedules.append(schedule)
    return schedules


def find_schedule(schedules: list[Schedule], name: str) -> Schedule:
    for schedule in schedules:
        if schedule.name == name:
            return schedule
    known = ", ".join(s.name for s in schedules) or "none"
    raise LookupError(f"no schedule named {name!r} (known: {known})")


def load_schedule(path: Path) -> Schedule:
    """Read and validate one schedule file."""
    file = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError as exc:
        raise ConfigError(file, "", "file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(file, "", f"cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "", f"not valid TOML: {exc}") from exc
    return parse_schedule(data, file)


def parse_schedule(data: dict[str, Any], file: str) -> Schedule:
    """Validate the parsed TOML of one schedule."""
    for key in data:
        if key not in KEYS:
            raise ConfigError(file, key, f"unknown key (known: {', '.join(sorted(KEYS))})")
    name = _text(data, "name", file, required=True)
    tz = _timezone(data, file)
    cron = _text(data, "cron", file, required=True)
    try:
        CronTrigger.from_crontab(cron, timezone=tz)
    except ValueError as exc:
        raise ConfigError(file, "cron", f"not a valid cron expression {cron!r}: {exc}") from exc
    coverage = _text(data, "coverage", file) or "month"
    if coverage not in PERIODS:
        raise ConfigError(file, "coverage", f"must be one of {', '.join(PERIODS)}")
    flows = _names(data, "flows", file, required=True)
    follow_days = _days(data, "follow_days", file)
    if follow_days == 0 and KEEP_FLOW in flows:
        raise ConfigError(
            file,
            "follow_days",
            'must be above 0 when flows lists "keep" (it keeps an order until this horizon)',
        )
    return Schedule(
        name=name,
        cron=cron,
        timezone=tz,
        window_end=_clock(data, "window_end", file),
        flows=flows,
        coverage=coverage,
        selection=_selection(data.get("selection", {}), file),
        per_sp_concurrency=_int(data, "per_sp_concurrency", file, default=1, minimum=1),
        retries=_int(data, "retries", file, default=0, minimum=0),
        balance_floor_fen=_int(data, "balance_floor_fen", file, default=0, minimum=0),
        follow_days=follow_days,
        source=file,
    )


def _text(data: dict[str, Any], key: str, file: str, required: bool = False) -> str:
    value = data.get(key)
    if value is None:
        if required:
            raise ConfigError(file, key, "is required")
        return ""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(file, key, "must be a non-empty string")
    return value.strip()


def _timezone(data: dict[str, Any], file: str) -> ZoneInfo:
    name = _text(data, "timezone", file) or DEFAULT_TZ
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(file, "timezone", f"unknown time zone {name!r}") from exc


def _clock(data: dict[str, Any], key: str, file: str) -> time:
    value = data.get(key)
    if isinstance(value, time):  # TOML local time: window_end = 05:30:00
        return value
    text = _text(data, key, file, required=True)
    try:
        return time.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(file, key, f"must be a time of day like 05:30, not {text!r}") from exc


def _int(data: dict[str, Any], key: str, file: str, *, default: int, minimum: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(file, key, "must be an integer")
    if value < minimum:
        raise ConfigError(file, key, f"must be at least {minimum}")
    return value


def _days(data: dict[str, Any], key: str, file: str) -> float | None:
    """A number of days, 0 or more (fractions allowed); None when the key is absent."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(file, key, f"must be a number of days, not {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(file, key, f"must be a number of days of 0 or more, not {value!r}")
    return float(value)


def _names(
    data: dict[str, Any], key: str, file: str, required: bool = False, where: str = ""
) -> tuple[str, ...]:
    where = where or key
    value = data.get(key)
    if value is None:
        if required:
            raise ConfigError(file, where, "is required")
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(file, where, "must be a list of non-empty strings")
    if required and not value:
        raise ConfigError(file, where, "must name at least one")
    if len(set(value)) != len(value):
        raise ConfigError(file, where, "lists the same name twice")
    return tuple(v.strip() for v in value)


def _selection(table: Any, file: str) -> Selection:
    if not isinstance(table, dict):
        raise ConfigError(file, "selection", "must be a table")
    for key in table:
        if key not in SELECTION_KEYS:
            raise ConfigError(file, f"selection.{key}", "unknown key")
    everything = table.get("all", False)
    if not isinstance(everything, bool):
        raise ConfigError(file, "selection.all", "must be true or false")
    filters = {
        k: _names(table, k, file, where=f"selection.{k}")
        for k in ("sp_codes", "billing", "regions")
    }
    if everything and any(filters.values()):
        raise ConfigError(file, "selection.all", "all = true cannot be combined with filters")
    for billing in filters["billing"]:
        if billing not in BILLING_TYPES:
            raise ConfigError(
                file, "selection.billing", f"{billing!r} is not one of {', '.join(BILLING_TYPES)}"
            )
    return Selection(filters["sp_codes"], filters["billing"], filters["regions"])

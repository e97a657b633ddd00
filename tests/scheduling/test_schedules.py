"""Schedule files: the example validates, and every mistake names file, key and reason."""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dialbot.errors import ConfigError
from dialbot.scheduling.schedules import (
    find_schedule,
    load_schedule,
    load_schedules,
    period_bounds,
)

ROOT = Path(__file__).resolve().parents[2]
SH = ZoneInfo("Asia/Shanghai")
GOOD = """
name = "n"
cron = "0 23 * * *"
window_end = "05:30"
flows = ["decline"]
"""


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_example_validates() -> None:
    schedule = load_schedule(ROOT / "schedules" / "nightly.toml")
    assert schedule.name == "nightly"
    assert schedule.timezone == SH
    assert schedule.window_end == time(5, 30)
    assert schedule.selection.everything
    assert schedule.flows == ("decline", "monthly", "per_use")


def test_defaults_and_window_across_midnight(tmp_path: Path) -> None:
    schedule = load_schedule(write(tmp_path, GOOD))
    assert (schedule.timezone, schedule.coverage, schedule.per_sp_concurrency) == (SH, "month", 1)
    start = datetime(2026, 11, 30, 23, 0, tzinfo=SH)
    assert schedule.window_end_after(start) == datetime(2026, 12, 1, 5, 30, tzinfo=SH)
    assert schedule.next_run(start) == datetime(2026, 12, 1, 23, 0, tzinfo=SH)
    assert schedule.nights_left(start) == 1  # the period's last night
    assert schedule.nights_left(datetime(2026, 11, 1, 23, 0, tzinfo=SH)) == 30


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('cron = "0 1 * *"\nname="n"\nwindow_end="05:00"\nflows=["a"]', "cron", "cron"),
        ('cron = "61 1 * * *"\nname="n"\nwindow_end="05:00"\nflows=["a"]', "cron", "cron"),
        ('cron = "0 1 * * *"\nwindow_end="05:00"\nflows=["a"]', "name", "required"),
        (GOOD + 'timezone = "Mars/Olympus"', "timezone", "unknown time zone"),
        (GOOD.replace('"05:30"', '"25:00"'), "window_end", "time of day"),
        (GOOD.replace('["decline"]', "[]"), "flows", "at least one"),
        (GOOD + 'coverage = "year"', "coverage", "one of"),
        (GOOD + "per_sp_concurrency = 0", "per_sp_concurrency", "at least 1"),
        (GOOD + 'retries = "2"', "retries", "integer"),
        (GOOD + "colour = 1", "colour", "unknown key"),
        (GOOD + '[selection]\nbilling = ["yearly"]', "selection.billing", "not one of"),
        (GOOD + '[selection]\nall = true\nsp_codes = ["1"]', "selection.all", "cannot"),
        (GOOD + "[selection]\nsp_codes = [1]", "selection.sp_codes", "list"),
        ("name = [", "", "not valid TOML"),
        (GOOD + 'follow_days = "35"', "follow_days", "number of days"),
        (GOOD + "follow_days = true", "follow_days", "number of days"),
        (GOOD + "follow_days = -1", "follow_days", "0 or more"),
        (GOOD + "follow_days = nan", "follow_days", "0 or more"),
        (GOOD.replace('["decline"]', '["keep"]') + "follow_days = 0", "follow_days", '"keep"'),
    ],
)
def test_bad_schedule_names_file_key_reason(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_schedule(path)
    assert err.value.file == str(path)
    assert err.value.where == key
    assert reason in err.value.reason


def test_duplicate_names_and_lookup(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.toml")
    assert [s.name for s in load_schedules(tmp_path)] == ["n"]
    with pytest.raises(LookupError, match="no schedule named 'x'"):
        find_schedule(load_schedules(tmp_path), "x")
    write(tmp_path, GOOD, "b.toml")
    with pytest.raises(ConfigError, match="also the name"):
        load_schedules(tmp_path)


def test_selection_filters(tmp_path: Path) -> None:
    text = GOOD + '[selection]\nsp_codes = ["9001"]\nbilling = ["monthly"]\nregions = ["GD"]'
    sel = load_schedule(write(tmp_path, text)).selection
    assert sel.matches("9001", "monthly", "GD")
    assert not sel.matches("9002", "monthly", "GD")
    assert not sel.matches("9001", "per_use", "GD")
    assert not sel.matches("9001", "monthly", None)


@pytest.mark.parametrize(
    ("coverage", "first", "after"),
    [
        ("day", datetime(2026, 2, 14, tzinfo=SH), datetime(2026, 2, 15, tzinfo=SH)),
        ("week", datetime(2026, 2, 9, tzinfo=SH), datetime(2026, 2, 16, tzinfo=SH)),
        ("month", datetime(2026, 2, 1, tzinfo=SH), datetime(2026, 3, 1, tzinfo=SH)),
        ("quarter", datetime(2026, 1, 1, tzinfo=SH), datetime(2026, 4, 1, tzinfo=SH)),
    ],
)
def test_periods_in_carrier_zone(coverage: str, first: datetime, after: datetime) -> None:
    # 17:00 UTC on the 13th is already the 14th in Beijing
    at = datetime(2026, 2, 13, 17, 0, tzinfo=ZoneInfo("UTC"))
    assert period_bounds(coverage, at, SH) == (first, after)


def test_follow_days_is_the_schedules_horizon(tmp_path: Path) -> None:
    """Absent: None (the probe host's [probe] follow_days); days may be fractions; 0 is
    allowed (follow nothing) unless the schedule keeps subscriptions."""
    assert load_schedule(write(tmp_path, GOOD)).follow_days is None
    keep = GOOD.replace('["decline"]', '["decline", "keep"]')
    assert load_schedule(write(tmp_path, keep + "follow_days = 35")).follow_days == 35.0
    assert load_schedule(write(tmp_path, keep + "follow_days = 0.5")).follow_days == 0.5
    assert load_schedule(write(tmp_path, keep)).follow_days is None
    assert load_schedule(write(tmp_path, GOOD + "follow_days = 0")).follow_days == 0.0

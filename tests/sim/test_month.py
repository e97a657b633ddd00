"""The month after an order: renewals, trials, reminders and the itemized bill.

Virtual time (ManualScheduler) over a calendar at time_scale 1e-3 (a simulated
day lasts 86.4 s), starting 2026-01-28 12:00: the first month boundary
(Feb 1 00:00) is 3.5 days away, its reminder (3 days ahead) half a day away.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dialbot.carrier import CarrierProfile
from dialbot.errors import WorldError
from dialbot.sim.worldfile import load_world

from .support import Rig, one_service_world, rig, write_world

DAY = 86.4  # real seconds per simulated day at time_scale 1e-3
REMINDERS = "10086901"
CALENDAR = {"time_scale": 0.001, "start": "2026-01-28T12:00:00+08:00"}


def month_world(behaviour: dict | None = None, **service: object) -> dict:
    world = one_service_world(behaviour, calendar=dict(CALENDAR))
    world["sps"][0]["services"][0].update(service)
    world["carrier"] = {"detail_query": "CXXD"}
    return world


def ordered(tmp_path: Path, world: dict) -> Rig:
    r = rig(tmp_path, world)
    r.send("DG")
    r.send("Y")
    return r


def reasons(r: Rig) -> list[str]:
    return [e["reason"] for e in r.ledger()]


def reminders(r: Rig) -> list[str]:
    return [t for t in r.phones[0].texts(REMINDERS) if "订购提醒" not in t]


def test_honest_renewal_is_reminded_then_charged_each_month(tmp_path: Path) -> None:
    r = ordered(tmp_path, month_world())
    assert reasons(r) == ["subscribe"]
    r.clock.advance(0.6 * DAY)  # past Jan 29 00:00: the reminder, no charge yet
    assert len(reminders(r)) == 1 and "扣费提醒" in reminders(r)[0]
    assert "星河笑话" in reminders(r)[0] and reasons(r) == ["subscribe"]
    r.clock.advance(3 * DAY)  # past Feb 1
    assert reasons(r) == ["subscribe", "renewal"]
    assert r.network.balance_fen(r.phones[0].msisdn) == 10000 - 2 * 500
    r.clock.advance(28 * DAY)  # past Mar 1: a second reminder and renewal
    assert reasons(r) == ["subscribe", "renewal", "renewal"]
    assert len(reminders(r)) == 2


def test_renewal_without_reminder(tmp_path: Path) -> None:
    r = ordered(tmp_path, month_world({"renews_without_reminder": True}))
    r.clock.advance(4 * DAY)
    assert reasons(r) == ["subscribe", "renewal"]
    assert reminders(r) == []


def test_late_charge_lands_after_the_boundary(tmp_path: Path) -> None:
    r = ordered(tmp_path, month_world({"late_charge_s": 2 * 86400}))
    r.clock.advance(4 * DAY)  # Feb 1 12:00: due but not yet billed
    assert reasons(r) == ["subscribe"]
    r.clock.advance(2 * DAY)
    assert reasons(r) == ["subscribe", "renewal"]


def test_free_trial_reminds_then_converts(tmp_path: Path) -> None:
    r = ordered(tmp_path, month_world(trial_days=7))
    assert reasons(r) == []  # free at the order
    notice = r.phones[0].texts(REMINDERS)[0]
    assert "免费体验7天" in notice
    r.clock.advance(3.5 * DAY)  # Feb 1 passes without a charge: the trial runs on
    assert reasons(r) == []
    r.clock.advance(1 * DAY)  # Feb 1 12:00 is three days before the trial ends
    assert len(reminders(r)) == 1 and "计费提醒" in reminders(r)[0]
    r.clock.advance(3 * DAY)
    assert reasons(r) == ["trial_conversion"]
    r.clock.advance(25 * DAY)  # Mar 1: monthly from then on
    assert reasons(r) == ["trial_conversion", "renewal"]


def test_trial_converting_silently(tmp_path: Path) -> None:
    r = ordered(tmp_path, month_world({"trial_converts_silently": True}, trial_days=7))
    r.clock.advance(8 * DAY)
    assert reasons(r) == ["trial_conversion"]
    assert reminders(r) == []


def test_a_cancelled_subscription_neither_renews_nor_is_reminded(tmp_path: Path) -> None:
    r = ordered(tmp_path, month_world())
    r.send("TD")
    r.clock.advance(40 * DAY)
    assert reasons(r) == ["subscribe"] and reminders(r) == []


def test_itemized_bill_lists_each_charge(tmp_path: Path) -> None:
    r = ordered(tmp_path, month_world({"double_charge": True}))
    r.clock.advance(4 * DAY)
    r.send("CXXD", to="10086")
    reply = r.phones[0].texts("10086")[-1]
    profile = CarrierProfile(detail_query="CXXD")
    assert re.search(profile.detail_reply, reply)
    lines = [m.groupdict() for m in re.finditer(profile.detail_item, reply)]
    assert [(x["sp"], x["service"], x["yuan"]) for x in lines] == [
        ("星河科技", "星河笑话", "5.00")
    ] * 4
    assert lines[0]["at"] == "2026-11-24 01:00:01"  # the wall clock of the ledger


def test_detail_query_unknown_when_the_profile_has_none(tmp_path: Path) -> None:
    world = month_world()
    del world["carrier"]
    r = rig(tmp_path, world)
    r.send("CXXD", to="10086")
    assert "无法识别" in r.phones[0].texts("10086")[-1]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"calendar": {"time_scale": 0}}, "calendar.time_scale"),
        ({"calendar": {"start": "2026-01-28T12:00:00"}}, "calendar.start"),
        ({"calendar": {"month": 3}}, "calendar.month"),
    ],
)
def test_calendar_mistakes_are_refused(tmp_path: Path, change: dict, where: str) -> None:
    world = one_service_world(**change)
    with pytest.raises(WorldError, match=re.escape(where)):
        load_world(write_world(tmp_path, world))


def test_trial_only_for_monthly(tmp_path: Path) -> None:
    world = one_service_world(billing="per_use")
    world["sps"][0]["services"][0]["trial_days"] = 7
    with pytest.raises(WorldError, match="trial_days"):
        load_world(write_world(tmp_path, world))

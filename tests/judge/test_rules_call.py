"""The voice rules on hand-written runs: started minutes from the robot's measurement."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dialbot.carrier import CarrierProfile
from dialbot.judge import judge
from dialbot.judge.model import Event, ListedItem, RunRecord, ServiceInfo
from dialbot.judge.rules_call import started_minutes

T0 = datetime(2026, 11, 29, 1, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
IVR = ServiceInfo(
    sp_code="901020",
    sp_name="掌上乐园",
    service_code="ZSIVR",
    service_name="开心声讯",
    access_number="125900001",
    billing="per_minute",
    price_fen=100,
    subscribe_cmd="",
    use_cmd="2",
    channel="ivr",
)
CARRIER = CarrierProfile(call_fee_fen_per_min=20)
PER_MIN = 120


class Run:
    """Builds a run's events in order: balances, calls, lists."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, kind: str, **kw: Any) -> Event:
        n = len(self.events) + 1
        event = Event(id=n, at=T0 + timedelta(seconds=10 * n), kind=kind, **kw)  # type: ignore[arg-type]
        self.events.append(event)
        return event

    def balance(self, fen: int) -> Event:
        return self.add("balance", balance_fen=fen)

    def call(
        self, seconds: float, keys: str = "2", released: bool = True, gap: float = 0.2
    ) -> Event:
        record = {
            "number": "125900001",
            "measured_s": seconds,
            "max_connected_s": seconds + gap,
            "dtmf": [{"t": 2.0, "key": k} for k in keys],
            "ended_by": "robot",
            "released_t": 99.0 if released else None,
            "release_polls": 1 if released else 8,
        }
        return self.add("call", peer="125900001", call=record)

    def listing(self, *names: str, text: str = "") -> Event:
        items = tuple(ListedItem(n, "掌上乐园") for n in names)
        return self.add("subscriptions", items=items, text=text)

    def sms(self, text: str) -> Event:
        return self.add("sms_in", peer="10086", text=text)

    def judge(self, carrier: CarrierProfile = CARRIER) -> list[tuple[str, int]]:
        record = RunRecord(
            run_id=1,
            flow="ivr",
            events=tuple(self.events),
            observed_until=T0 + timedelta(hours=1),
            service=IVR,
            carrier=carrier,
        )
        return [(f.code, f.amount_fen) for f in judge(record)]


@pytest.mark.parametrize(
    ("seconds", "billed_minutes", "found"),
    [
        (59, 1, []),
        (60, 1, []),
        (59.8, 1, []),  # the network saw up to 60.0 s
        (61, 2, []),
        (59, 2, [("CALL_OVERBILLED", PER_MIN)]),
        (61, 3, [("CALL_OVERBILLED", PER_MIN)]),
        (30, 4, [("CALL_OVERBILLED", 3 * PER_MIN)]),
    ],
)
def test_minute_boundaries(seconds: float, billed_minutes: int, found: list) -> None:
    run = Run()
    run.balance(10000)
    run.call(seconds, gap=0.0 if seconds != 59.8 else 0.2)
    run.balance(10000 - billed_minutes * PER_MIN)
    assert run.judge() == found


def test_started_minutes() -> None:
    assert [started_minutes(s, 60) for s in (0, 59, 60, 60.0000001, 61)] == [0, 1, 1, 1, 2]


def test_small_billing_minute_from_the_profile() -> None:
    run = Run()
    run.balance(1000)
    run.call(5.5, gap=0.2)  # at most 5.7 s of a 6 s minute
    run.balance(1000 - 2 * PER_MIN)
    carrier = CarrierProfile(call_fee_fen_per_min=20, billing_minute_s=6)
    assert run.judge(carrier) == [("CALL_OVERBILLED", PER_MIN)]


def test_not_released_takes_the_excess() -> None:
    run = Run()
    run.balance(10000)
    run.call(40, released=False)
    run.balance(10000 - 3 * PER_MIN)
    assert run.judge() == [("CALL_NOT_RELEASED", 2 * PER_MIN)]


def test_not_released_without_extra_charge_is_still_found() -> None:
    run = Run()
    run.balance(10000)
    run.call(40, released=False)
    run.balance(10000 - PER_MIN)
    assert run.judge() == [("CALL_NOT_RELEASED", 0)]


def test_key_subscription_is_not_overbilling() -> None:
    run = Run()
    run.balance(10000)
    run.call(40)
    run.balance(10000 - PER_MIN - 500)
    run.listing("开心声讯", text="您已订购以下业务：1、开心声讯（掌上乐园），5.00元/月。")
    run.call(70)
    run.balance(10000 - PER_MIN - 500 - 2 * PER_MIN)
    run.listing("开心声讯", text="您已订购以下业务：1、开心声讯（掌上乐园），5.00元/月。")
    assert run.judge() == [("UNCONFIRMED_SUBSCRIPTION", 500)]


def test_key_subscription_and_overbilling_together() -> None:
    run = Run()
    run.balance(10000)
    run.call(40)
    run.balance(10000 - 2 * PER_MIN - 500)
    run.listing("开心声讯", text="您已订购以下业务：1、开心声讯（掌上乐园），5.00元/月。")
    assert sorted(run.judge()) == [("CALL_OVERBILLED", PER_MIN), ("UNCONFIRMED_SUBSCRIPTION", 500)]


def test_confirmed_subscription_is_no_finding() -> None:
    run = Run()
    run.balance(10000)
    run.call(40)
    run.sms("您将订购开心声讯，5元/月，回复Y确认")
    run.balance(10000 - PER_MIN)
    run.listing("开心声讯")
    assert run.judge() == []


def test_subscription_without_key_press_is_not_this_rule() -> None:
    run = Run()
    run.balance(10000)
    run.call(40, keys="")
    run.balance(10000 - PER_MIN)
    run.listing("开心声讯")
    assert run.judge() == []


def test_no_balance_after_judges_nothing_about_money() -> None:
    run = Run()
    run.balance(10000)
    run.call(40)
    assert run.judge() == []

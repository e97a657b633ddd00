"""The WAP rules on hand-written runs: pages, balances, lists, clicks."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dialbot.carrier import CarrierProfile
from dialbot.judge import judge
from dialbot.judge.model import Action, ActionKind, Event, ListedItem, RunRecord, ServiceInfo

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
SERVICE = ServiceInfo(
    "902001", "掌上乐园", "W1", "掌上笑话", "", "monthly", 500, "订购",
    channel="wap", url="http://wap.a.example/j",
)  # fmt: skip


class Run:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.actions: list[Action] = []

    def at(self) -> datetime:
        return T0 + timedelta(seconds=len(self.events))

    def balance(self, fen: int) -> Event:
        event = Event(len(self.events) + 1, self.at(), "balance", balance_fen=fen)
        self.events.append(event)
        return event

    def page(self, how: str, chain: int, size: int = 600, **data: Any) -> Event:
        led = {
            "how": how,
            "root": data.pop("root", how),
            "text": data.pop("text", ""),
            "chain": chain,
        }
        info = {"url": "http://wap.a.example/j", "size": size, "led_by": led, "links": [], **data}
        event = Event(len(self.events) + 1, self.at(), "http", peer="200", data=info)
        self.events.append(event)
        return event

    def click(self, kind: ActionKind, event: Event) -> None:
        self.actions.append(Action(kind, event.at, event.id))

    def listed(self, *names: str) -> None:
        items = tuple(ListedItem(n, "掌上乐园") for n in names)
        self.events.append(Event(len(self.events) + 1, self.at(), "subscriptions", items=items))

    def judge(self, fee: int = 0) -> set[str]:
        record = RunRecord(
            run_id=1,
            flow="wap",
            events=tuple(self.events),
            observed_until=self.at(),
            service=SERVICE,
            actions=tuple(self.actions),
            carrier=CarrierProfile(data_fee_fen_per_kb=fee),
        )
        return {f.code for f in judge(record)}


def honest(run: Run, charge: int) -> None:
    run.balance(10000)
    run.page("open", 1, links=[["订购", "http://wap.a.example/j/order"]], price_shown=True)
    run.balance(10000)
    order = run.page("link", 2, text="订购")
    run.click(ActionKind.ORDER, order)
    run.page("redirect", 2, root="link", carrier_page=True, price_shown=True)
    confirm = run.page("confirm", 3, text="确认订购")
    run.click(ActionKind.CONFIRM, confirm)
    run.balance(10000 - charge)
    run.listed("掌上笑话")


def test_honest_order_through_the_carrier_page_is_clean() -> None:
    run = Run()
    honest(run, 500)
    assert run.judge() == set()


def test_more_than_the_tariff_after_confirming_is_an_overcharge() -> None:
    run = Run()
    honest(run, 1000)
    assert run.judge() == {"OVERCHARGE"}


def test_traffic_fee_is_never_an_sp_charge() -> None:
    run = Run()
    run.balance(10000)
    run.page("open", 1, size=1500, price_shown=True)
    run.balance(10000 - 3 * 3)  # 2 started KB + 1 KB for the request, at 3 fen/KB
    assert run.judge(fee=3) == set()
    run.balance(10000 - 3 * 3 - 1)  # one fen beyond: nothing browsed in between to explain it
    assert run.judge(fee=3) == {"UNCONFIRMED_CHARGE"}


def test_charge_on_visit_is_unconfirmed() -> None:
    run = Run()
    run.balance(10000)
    run.page("open", 1, price_shown=True)
    run.balance(9500)
    run.listed("掌上笑话")
    assert run.judge() == {"UNCONFIRMED_CHARGE", "UNCONFIRMED_SUBSCRIPTION"}


def test_redirect_from_the_entry_page_to_the_carrier_page_is_forced() -> None:
    run = Run()
    run.balance(10000)
    run.page("open", 1)
    run.page("redirect", 1, root="open")
    run.page("redirect", 1, root="open", carrier_page=True, price_shown=True)
    decline = run.page("decline", 2, text="取消")
    run.click(ActionKind.WITHHOLD, decline)
    run.balance(10000)
    assert run.judge() == {"FORCED_REDIRECT"}


def test_misleading_link_but_not_an_honest_order_word() -> None:
    run = Run()
    run.balance(10000)
    run.page("link", 1, text="免费")
    run.page("redirect", 1, root="link", carrier_page=True, price_shown=True)
    run.page("link", 2, text="包月订购")
    run.page("redirect", 2, root="link", carrier_page=True, price_shown=True)
    run.balance(10000)
    assert run.judge() == {"MISLEADING_LINK"}


def test_order_page_without_price() -> None:
    run = Run()
    run.page("open", 1, links=[["订购", "http://wap.a.example/j/order"]], price_shown=False)
    assert run.judge() == {"PROMPT_INCOMPLETE"}


def test_unsolicited_push_is_attributed_by_its_link() -> None:
    push = Event(
        1, T0, "sms_in", peer="10657902001", text="免费笑话，点击进入 http://wap.a.example/j"
    )
    record = RunRecord(
        run_id=1,
        flow="watch",
        events=(push,),
        observed_until=T0 + timedelta(minutes=5),
        catalogue=(SERVICE,),
    )
    findings = judge(record)
    assert [(f.code, f.sp_code, f.service_code) for f in findings] == [
        ("UNSOLICITED_MESSAGE", "902001", "W1")
    ]

"""The month after an order (follow runs) and the itemized bill (detail query).

Texts are literal copies of what the simulator's carrier writes
(dialbot/sim/phrasing.py and carrier.py), never imported from it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from dialbot.carrier import CarrierProfile
from dialbot.judge import SEVERITY, FollowedOrder, judge
from dialbot.judge.model import Event, RunRecord

from .scenarios import CATALOGUE, T0, XHXH, XHXZ, Knobs, per_use

DAY = timedelta(days=1)
RENEWAL_REMINDER = (
    "扣费提醒：您订购的由星河科技提供的星河笑话业务，将于下月1日续订，"
    "5元/月（由中国移动代收费）。如需退订请拨打10086。"
)
TRIAL_REMINDER = (
    "计费提醒：您订购的由星河科技提供的星河笑话业务，免费体验期即将结束，"
    "到期后按5元/月收费（由中国移动代收费）。如不需要请及时退订。"
)
ORDER_NOTICE = (
    "订购提醒：您已成功订购由星河科技提供的星河笑话，5元/月（由中国移动代收费），"
    "如有疑问请拨打10086。"
)


def detail(charges: list[tuple[datetime, int]], service: str = "星河笑话") -> str:
    """The carrier's itemized bill over these (time, fen) charges."""
    lines = "；".join(
        f"{i}、{at:%Y-%m-%d %H:%M:%S}，星河科技，{service}，{fen // 100}.{fen % 100:02d}元"
        for i, (at, fen) in enumerate(charges, start=1)
    )
    return f"尊敬的客户，您近期的增值业务消费明细：{lines}。【中国移动】"


class Night:
    """The SIM's events since the order, as a follow run sees them."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, at: datetime, kind: str, peer: str = "", text: str = "", **kw: object) -> int:
        event = Event(id=len(self.events) + 1, at=at, kind=kind, peer=peer, text=text, **kw)  # type: ignore[arg-type]
        self.events.append(event)
        return event.id

    def reminder(self, at: datetime, text: str = RENEWAL_REMINDER) -> int:
        return self.add(at, "sms_in", "10086901", text)

    def bill(self, at: datetime, charges: list[tuple[datetime, int]]) -> int:
        return self.add(at, "sms_in", "10086", detail(charges))

    def balance(self, at: datetime, fen: int) -> int:
        return self.add(
            at, "balance", "10086", f"余额为{fen // 100}.{fen % 100:02d}元", balance_fen=fen
        )

    def record(self, *followed: FollowedOrder, until: datetime) -> RunRecord:
        return RunRecord(
            run_id=9,
            flow="follow",
            events=tuple(sorted(self.events, key=lambda e: (e.at, e.id))),
            observed_until=until,
            carrier=CarrierProfile(detail_query="CXXD"),
            catalogue=CATALOGUE,
            followed=followed,
        )


ORDERED = FollowedOrder(XHXH, ordered_at=T0, since=T0 + timedelta(minutes=5), evidence=(1,))
BOUNDARY = T0 + 7 * DAY  # the month boundary the renewal waits for


def found(run: RunRecord) -> set[tuple[str, int]]:
    return {(f.code, f.amount_fen) for f in judge(run)}


def test_honest_renewal_with_reminder_gives_nothing() -> None:
    n = Night()
    n.add(T0 + timedelta(seconds=2), "sms_in", "10086901", ORDER_NOTICE)
    n.reminder(BOUNDARY - 3 * DAY)
    n.bill(BOUNDARY + DAY, [(T0, 500), (BOUNDARY, 500)])
    assert judge(n.record(ORDERED, until=BOUNDARY + DAY)) == []


def test_renewal_without_reminder_is_major_with_the_bill_as_evidence() -> None:
    n = Night()
    n.add(T0 + timedelta(seconds=2), "sms_in", "10086901", ORDER_NOTICE)  # not a reminder
    bill = n.bill(BOUNDARY + DAY, [(T0, 500), (BOUNDARY, 500)])
    [f] = judge(n.record(ORDERED, until=BOUNDARY + DAY))
    assert (f.code, f.severity, f.amount_fen) == ("RENEWAL_WITHOUT_REMINDER", "major", 500)
    assert bill in f.evidence and 1 in f.evidence and f.observed_at == BOUNDARY


def test_the_reminder_must_come_after_the_previous_charge() -> None:
    n = Night()
    n.reminder(BOUNDARY - 3 * DAY)
    second = BOUNDARY + 30 * DAY
    n.bill(second + DAY, [(T0, 500), (BOUNDARY, 500), (second, 500)])
    run = n.record(replace(ORDERED, since=BOUNDARY + DAY), until=second + DAY)
    assert found(run) == {("RENEWAL_WITHOUT_REMINDER", 500)}  # only the second renewal


def test_trial_converted_silently_is_critical() -> None:
    trial = replace(ORDERED, trial=True)
    n = Night()
    n.bill(BOUNDARY + DAY, [(BOUNDARY, 500)])
    [f] = judge(n.record(trial, until=BOUNDARY + DAY))
    assert (f.code, f.severity, f.amount_fen) == ("TRIAL_CONVERTED_SILENTLY", "critical", 500)
    n.reminder(BOUNDARY - 3 * DAY, TRIAL_REMINDER)
    assert judge(n.record(trial, until=BOUNDARY + DAY)) == []


def test_charge_after_cancel_on_a_later_night() -> None:
    cancelled = replace(ORDERED, cancel_acked_at=T0 + timedelta(minutes=3), evidence=(1, 2))
    n = Night()
    bill = n.bill(BOUNDARY + DAY, [(T0, 500), (BOUNDARY, 500)])
    [f] = judge(n.record(cancelled, until=BOUNDARY + DAY))
    assert (f.code, f.amount_fen) == ("CHARGE_AFTER_CANCEL", 500)
    assert {1, 2, bill} <= set(f.evidence)


def test_itemized_duplicate_and_overcharge_are_told_apart_on_a_later_night() -> None:
    n = Night()
    n.reminder(BOUNDARY - 3 * DAY)
    n.bill(BOUNDARY + DAY, [(T0, 500), (BOUNDARY, 500), (BOUNDARY, 500)])
    assert found(n.record(ORDERED, until=BOUNDARY + DAY)) == {("DUPLICATE_CHARGE", 500)}
    n = Night()
    n.reminder(BOUNDARY - 3 * DAY)
    n.bill(BOUNDARY + DAY, [(T0, 500), (BOUNDARY, 1000)])
    assert found(n.record(ORDERED, until=BOUNDARY + DAY)) == {("OVERCHARGE", 500)}


def test_balance_fallback_attributes_a_drop_to_the_only_followed_order() -> None:
    n = Night()
    n.balance(T0 - timedelta(seconds=5), 10000)
    n.balance(T0 + timedelta(minutes=1), 9500)  # the order's own charge: judged by its run
    n.reminder(BOUNDARY - 3 * DAY)
    n.balance(BOUNDARY + DAY, 9000)
    assert judge(n.record(ORDERED, until=BOUNDARY + DAY)) == []
    n.balance(BOUNDARY + 31 * DAY, 8000)  # next month: no reminder, twice the tariff
    run = n.record(replace(ORDERED, since=BOUNDARY + DAY), until=BOUNDARY + 31 * DAY)
    assert found(run) == {("RENEWAL_WITHOUT_REMINDER", 500), ("OVERCHARGE", 500)}


def test_charges_judged_on_an_earlier_night_are_not_judged_again() -> None:
    n = Night()
    n.bill(BOUNDARY + DAY, [(T0, 500), (BOUNDARY, 500)])
    later = replace(ORDERED, since=BOUNDARY + DAY + timedelta(minutes=1))
    assert judge(n.record(later, until=BOUNDARY + 2 * DAY)) == []


def test_new_codes_are_in_the_taxonomy() -> None:
    assert SEVERITY["RENEWAL_WITHOUT_REMINDER"] == "major"
    assert SEVERITY["TRIAL_CONVERTED_SILENTLY"] == "critical"


# --- the probe's own run: the bill tells a duplicate from an overcharge ------------------------


def with_bill(run: RunRecord, charges: list[tuple[datetime, int]], service: str) -> RunRecord:
    last = max(e.at for e in run.events) + timedelta(seconds=2)
    reply = Event(id=999, at=last, kind="sms_in", peer="10086", text=detail(charges, service))
    return replace(run, events=(*run.events, reply), observed_until=last + timedelta(seconds=1))


def test_order_run_duplicate_told_from_overcharge_by_the_bill() -> None:
    b = per_use(Knobs(double_charge=True, notices=False))
    run = b.record()
    assert found(run) == {("OVERCHARGE", 100)}  # one balance drop: cannot tell
    assert found(with_bill(run, b.ledger, XHXZ.service_name)) == {("DUPLICATE_CHARGE", 100)}
    b = per_use(Knobs(charged_fen=200, notices=False))
    run = with_bill(b.record(), b.ledger, XHXZ.service_name)
    assert found(run) == {("OVERCHARGE", 100)}
    assert 999 in judge(run)[0].evidence

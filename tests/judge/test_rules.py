"""Each rule: a run that must produce its finding, and a near-identical honest one that must not."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from dialbot.judge import SEVERITY, judge
from dialbot.judge.model import Event, ListedItem, RunRecord

from .scenarios import HNYY, T0, XHXH, Builder, Knobs, decline, monthly, per_use

FLOWS = {"monthly": monthly, "per_use": per_use, "decline": decline}

# (code, flow, knobs, expected amount in fen)
DISHONEST = [
    ("UNCONFIRMED_CHARGE", "decline", Knobs(charges_without_confirm=True), 500),
    ("UNCONFIRMED_CHARGE", "decline", Knobs(confirm_prompt=False), 500),
    ("UNCONFIRMED_CHARGE", "monthly", Knobs(confirm_prompt=False), 500),
    ("UNCONFIRMED_SUBSCRIPTION", "decline", Knobs(confirm_prompt=False), 0),
    ("UNCONFIRMED_SUBSCRIPTION", "monthly", Knobs(confirm_prompt=False, notices=False), 0),
    ("OVERCHARGE", "monthly", Knobs(charged_fen=1000), 500),
    ("OVERCHARGE", "monthly", Knobs(charged_fen=1000, notices=False), 500),
    ("OVERCHARGE", "per_use", Knobs(charged_fen=150, style=2), 50),
    ("CHARGE_AFTER_CANCEL", "monthly", Knobs(charge_after_cancel=True), 500),
    ("CANCEL_FAILED", "monthly", Knobs(cancel_works=False), 0),
    ("DUPLICATE_CHARGE", "per_use", Knobs(double_charge=True), 100),
    ("DUPLICATE_CHARGE", "monthly", Knobs(double_charge=True), 500),
    ("PRICE_MISMATCH", "monthly", Knobs(prompt_price_fen=200), 0),
    ("PRICE_MISMATCH", "decline", Knobs(prompt_price_fen=200, style=3), 0),
    ("PROMPT_INCOMPLETE", "monthly", Knobs(prompt_omits=("price", "hotline")), 0),
    ("PROMPT_INCOMPLETE", "decline", Knobs(prompt_omits=("sp_name",), style=3), 0),
    ("MESSAGE_AFTER_CANCEL", "monthly", Knobs(messages_after_cancel=2), 0),
    ("NO_RESPONSE", "monthly", Knobs(responds=False), 0),
    ("NO_RESPONSE", "per_use", Knobs(responds=False), 0),
    ("CONTENT_NOT_DELIVERED", "monthly", Knobs(delivers_content=False), 500),
    ("CONTENT_NOT_DELIVERED", "per_use", Knobs(delivers_content=False), 100),
]


@pytest.mark.parametrize(("code", "flow", "knobs", "amount"), DISHONEST)
def test_dishonest_is_found_and_honest_twin_is_not(
    code: str, flow: str, knobs: Knobs, amount: int
) -> None:
    run = FLOWS[flow](knobs).record()
    found = [f for f in judge(run) if f.code == code]
    assert len(found) == 1, judge(run)
    f = found[0]
    assert f.amount_fen == amount
    assert f.severity == SEVERITY[code]
    assert (f.sp_code, f.service_code) == (run.service.sp_code, run.service.service_code)  # type: ignore[union-attr]
    ids = {e.id for e in run.events}
    assert f.evidence and set(f.evidence) <= ids
    assert f.observed_at.tzinfo is not None
    twin = FLOWS[flow](Knobs(style=knobs.style)).record()
    assert judge(twin) == []


def test_exact_codes_of_single_misbehaviours() -> None:
    """A misbehaviour yields its own code, not a pile of neighbours."""
    only = {
        ("monthly", Knobs(charged_fen=1000)): {"OVERCHARGE"},
        ("per_use", Knobs(double_charge=True)): {"DUPLICATE_CHARGE"},
        ("monthly", Knobs(charge_after_cancel=True)): {"CHARGE_AFTER_CANCEL"},
        ("monthly", Knobs(cancel_works=False)): {"CANCEL_FAILED"},
        ("monthly", Knobs(messages_after_cancel=1)): {"MESSAGE_AFTER_CANCEL"},
        ("monthly", Knobs(delivers_content=False)): {"CONTENT_NOT_DELIVERED"},
        ("per_use", Knobs(delivers_content=False)): {"CONTENT_NOT_DELIVERED"},
        ("monthly", Knobs(prompt_price_fen=200)): {"PRICE_MISMATCH"},
        ("decline", Knobs(charges_without_confirm=True)): {"UNCONFIRMED_CHARGE"},
        ("per_use", Knobs(responds=False)): {"NO_RESPONSE"},
    }
    for (flow, knobs), want in only.items():
        assert {f.code for f in judge(FLOWS[flow](knobs).record())} == want, (flow, knobs)


def test_combined_misbehaviour_each_found_with_its_amount() -> None:
    knobs = Knobs(
        charged_fen=750,
        charge_after_cancel=True,
        messages_after_cancel=1,
        prompt_omits=("hotline",),
    )
    got = {f.code: f.amount_fen for f in judge(monthly(knobs).record())}
    assert got == {
        "OVERCHARGE": 250,
        "CHARGE_AFTER_CANCEL": 750,
        "MESSAGE_AFTER_CANCEL": 0,
        "PROMPT_INCOMPLETE": 0,
    }


def test_infrastructure_failure_yields_nothing() -> None:
    b = monthly(Knobs(charged_fen=1000, responds=True))
    b.infra_failed = True
    assert judge(b.record()) == []


def test_modem_fault_suppresses_absence_findings_only() -> None:
    b = monthly(Knobs(responds=False))
    b._add(T0 + timedelta(seconds=30), kind="modem_fault", text="+CME ERROR: 10")
    assert judge(b.record()) == []
    b = monthly(Knobs(charged_fen=1000))
    b._add(T0 + timedelta(seconds=30), kind="modem_fault", text="+CME ERROR: 10")
    assert {f.code for f in judge(b.record())} == {"OVERCHARGE"}


def test_a_window_not_watched_to_its_end_proves_no_absence() -> None:
    run = per_use(Knobs(responds=False)).record()
    order = run.actions[0]
    cut = replace(run, observed_until=order.at + timedelta(seconds=30))
    assert judge(cut) == []
    assert {f.code for f in judge(run)} == {"NO_RESPONSE"}


def test_late_answer_is_no_response_and_timely_one_is_not() -> None:
    for latency, want in ((59.0, set()), (61.0, {"NO_RESPONSE"})):
        b = Builder(XHXH, Knobs(latency_s=latency), "decline")
        b.balance()
        b.order()
        b.wait(90)
        b.listing()
        b.balance()
        assert {f.code for f in judge(b.record())} == want


def test_carrier_message_fees_are_not_charges() -> None:
    assert judge(monthly(Knobs(mo_fee_fen=10)).record()) == []
    assert judge(per_use(Knobs(mo_fee_fen=10, style=1)).record()) == []
    found = judge(monthly(Knobs(mo_fee_fen=10, charged_fen=600)).record())
    assert [(f.code, f.amount_fen) for f in found] == [("OVERCHARGE", 100)]


def test_fee_billed_late_is_carried_forward() -> None:
    b = monthly(Knobs(mo_fee_fen=10))
    # Every message fee billed a minute late: readings lag, the totals do not.
    b.ledger = [(t + timedelta(seconds=60) if f == 10 else t, f) for t, f in b.ledger]
    b.wait(70)
    b.balance()
    assert judge(b.record()) == []


def test_balance_from_carrier_replies_when_no_balance_events() -> None:
    run = monthly(Knobs(charged_fen=1000)).record()
    events = tuple(
        Event(e.id, e.at, "sms_in", "10086", e.text) if e.kind == "balance" else e
        for e in run.events
    )
    got = judge(replace(run, events=events))
    assert [(f.code, f.amount_fen) for f in got] == [("OVERCHARGE", 500)]
    honest = monthly().record()
    events = tuple(
        Event(e.id, e.at, "sms_in", "10086", e.text) if e.kind == "balance" else e
        for e in honest.events
    )
    assert judge(replace(honest, events=events)) == []


def test_confirmation_without_a_prompt_does_not_count() -> None:
    """A runner that answered Y to a welcome did not make the subscription confirmed."""
    b = Builder(XHXH, Knobs(confirm_prompt=False), "monthly")
    b.balance()
    b.order()
    b.confirm(None)
    b.wait(20)
    b.balance()
    assert {"UNCONFIRMED_SUBSCRIPTION", "UNCONFIRMED_CHARGE"} <= {f.code for f in judge(b.record())}


def test_duplicate_needs_two_visible_charges_else_overcharge() -> None:
    """Without notices a doubled amount between two readings proves only an overcharge;
    a reading between the two charges proves the duplicate."""
    b = per_use(Knobs(double_charge=True, notices=False))
    assert {(f.code, f.amount_fen) for f in judge(b.record())} == {("OVERCHARGE", 100)}
    b = Builder(b.service, Knobs(double_charge=True, notices=False), "per_use")
    b.balance()
    b.order()
    b.confirm(60.0)
    b.ledger[-1] = (b.ledger[-1][0] + timedelta(seconds=30), b.ledger[-1][1])
    b.wait(10)
    b.balance()
    b.wait(50)
    b.balance()
    assert {(f.code, f.amount_fen) for f in judge(b.record())} == {("DUPLICATE_CHARGE", 100)}


def test_two_confirmed_uses_may_be_charged_twice() -> None:
    b = Builder(per_use().service, Knobs(), "per_use")
    b.balance()
    for _ in range(2):
        b.order()
        b.confirm(60.0)
        b.wait(5)
    b.balance()
    assert judge(b.record()) == []
    b.ledger.append((b.now, 100))
    b.balance()
    assert [(f.code, f.amount_fen) for f in judge(b.record())] == [("DUPLICATE_CHARGE", 100)]


def test_cancel_without_ack_fails_only_when_the_service_was_active() -> None:
    b = monthly(Knobs())
    run = b.record()
    ack = next(e for e in run.events if "成功退订" in e.text)
    silent = replace(run, events=tuple(e for e in run.events if e.id != ack.id))
    assert {f.code for f in judge(silent)} == {"CANCEL_FAILED"}
    # Never active (declined): a silent cancel is only a missing answer.
    d = decline(Knobs())
    d.cancel()
    d.wait(61)
    run = d.record()
    reply = [e for e in run.events if "尚未订购" in e.text]
    quiet = replace(run, events=tuple(e for e in run.events if e not in reply))
    assert {f.code for f in judge(quiet)} == {"NO_RESPONSE"}
    assert judge(run) == []


# --- subscriptions and messages nobody ordered ---------------------------------------------


def _hygiene(items: tuple[ListedItem, ...], drop: int = 0, **kw: object) -> RunRecord:
    events = [
        Event(1, T0, "balance", "10086", "", balance_fen=10000),
        Event(2, T0 + timedelta(seconds=5), "subscriptions", "10086", "", items=items),
        Event(3, T0 + timedelta(seconds=10), "balance", "10086", "", balance_fen=10000 - drop),
    ]
    return RunRecord(
        run_id=9,
        flow="hygiene",
        events=tuple(events),
        observed_until=T0 + timedelta(seconds=11),
        catalogue=(XHXH, HNYY),
        **kw,  # type: ignore[arg-type]
    )


def test_hygiene_finds_unsolicited_subscription() -> None:
    found = judge(_hygiene((ListedItem("海纳音乐", "海纳传媒"),), drop=600))
    assert [(f.code, f.sp_code, f.service_code, f.amount_fen) for f in found] == [
        ("UNSOLICITED_SUBSCRIPTION", "901009", "HNYY", 600)
    ]
    assert found[0].evidence == [1, 2, 3]
    assert judge(_hygiene(())) == []
    assert judge(_hygiene((ListedItem("海纳音乐", "海纳传媒"),), legit=frozenset({HNYY.key}))) == []


def test_hygiene_reports_what_it_cannot_attribute() -> None:
    found = judge(_hygiene((), drop=300))
    assert [(f.code, f.sp_code, f.amount_fen) for f in found] == [
        ("UNSOLICITED_SUBSCRIPTION", "", 300)
    ]
    found = judge(_hygiene((ListedItem("神秘业务", "无名公司"),)))
    assert [(f.code, f.sp_code) for f in found] == [("UNSOLICITED_SUBSCRIPTION", "")]
    assert "神秘业务" in found[0].detail


def test_silent_subscription_during_an_honest_probe_is_not_blamed_on_it() -> None:
    b = monthly(Knobs())
    b.ledger.append((b.now - timedelta(seconds=30), 600))  # 海纳音乐 bills the SIM mid-run...
    run = b.record()
    listing = next(e for e in run.events if e.kind == "subscriptions")
    seen = replace(listing, items=(ListedItem("海纳音乐", "海纳传媒"),))  # ...and the list shows it
    run2 = replace(run, events=tuple(seen if e.id == listing.id else e for e in run.events))
    found = judge(run2)
    assert [(f.code, f.sp_code, f.amount_fen) for f in found] == [
        ("UNSOLICITED_SUBSCRIPTION", "901009", 600)
    ]
    # Unexplained by any list, the money is still reported, never ignored.
    assert sum(f.amount_fen for f in judge(run)) == 600


def test_carrier_notice_names_the_intruder() -> None:
    b = decline(Knobs())
    b.ledger.append((b.now - timedelta(seconds=50), 600))
    b.sms_in(
        "订购提醒：您已成功订购由海纳传媒提供的海纳音乐，6元/月（由中国移动代收费），如有疑问请拨打10086。",
        peer="10086901",
        delay=-49,
    )
    found = judge(b.record())
    assert [(f.code, f.sp_code, f.amount_fen) for f in found] == [
        ("UNSOLICITED_SUBSCRIPTION", "901009", 600)
    ]


def _watch(peer: str, text: str, **kw: object) -> RunRecord:
    return RunRecord(
        run_id=5,
        flow="watch",
        events=(Event(7, T0, "sms_in", peer, text),),
        observed_until=T0 + timedelta(seconds=1),
        catalogue=(XHXH, HNYY),
        **kw,  # type: ignore[arg-type]
    )


def test_watch_finds_spam() -> None:
    spam = "【海纳传媒】限时优惠！海纳视频首月免费，回复SP立即体验。"
    found = judge(_watch("1065800902", spam))
    assert [(f.code, f.sp_code, f.evidence) for f in found] == [
        ("UNSOLICITED_MESSAGE", "901009", [7])
    ]
    assert (
        judge(_watch("106580090201", spam))[0].sp_code == "901009"
    )  # extension of the access number
    assert judge(_watch("1065800902", spam, legit=frozenset({HNYY.key}))) == []
    assert judge(_watch("10086901", "尊敬的客户，流量提醒……")) == []
    unknown = judge(_watch("10690000", "恭喜中奖"))
    assert [(f.code, f.sp_code) for f in unknown] == [("UNSOLICITED_MESSAGE", "")]


def test_pre_existing_subscription_is_unsolicited_unless_a_probe_left_it() -> None:
    b = Builder(XHXH, Knobs(), "monthly")
    b.subscribed = True
    b.listing()
    b.subscribed = False
    b.balance()
    b.order()
    b.confirm(None)
    b.wait(20)
    b.balance()
    run = b.record()
    assert "UNSOLICITED_SUBSCRIPTION" in {f.code for f in judge(run)}
    assert judge(replace(run, legit=frozenset({XHXH.key}))) == []


def test_severities_cover_every_code() -> None:
    from dialbot.judge.rules import RULES
    from dialbot.judge.rules_followup import FOLLOWUP_CODES

    assert set(RULES) | set(FOLLOWUP_CODES) == set(SEVERITY)
    assert len(SEVERITY) == 15

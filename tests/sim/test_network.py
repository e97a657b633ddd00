"""Every SP behaviour knob of spec §4 and the network's routing, against the ledger."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dialbot.sim.network import Network
from dialbot.sim.phrasing import chinese_money
from dialbot.sim.worldfile import demo_world_path, load_world

from .support import FakeHandset, ManualScheduler, Rig, one_service_world, rig

SP = "1065800101"


def charges(r: Rig, slot: int = 1) -> list[tuple[int, str]]:
    return [(e["amount_fen"], e["reason"]) for e in r.ledger(slot)]


def sp_texts(r: Rig, slot: int = 1) -> list[str]:
    return r.phones[slot - 1].texts(SP)


def subscribed(r: Rig, slot: int = 1) -> list[str]:
    return [s["service_code"] for s in r.truth(slot)["subscriptions"]]


def order_and_confirm(r: Rig, slot: int = 1) -> None:
    r.send("DG", slot=slot)
    r.send("Y", slot=slot)


# --- honest flows ---------------------------------------------------------------------


def test_honest_monthly_flow(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world())
    r.send("DG")
    (prompt,) = sp_texts(r)
    for part in ("星河科技", "星河笑话", "5元", "4008001001", "回复Y确认"):
        assert part in prompt
    assert r.ledger() == [] and subscribed(r) == []
    r.send("Y")
    assert charges(r) == [(500, "subscribe")]
    assert "成功订购" in sp_texts(r)[-1]
    assert subscribed(r) == ["XHXH"]
    assert r.truth()["subscriptions"][0]["how"] == "confirmed"
    r.send("XH")
    assert "第1期" in sp_texts(r)[-1]
    r.send("DG")
    assert "无需重复订购" in sp_texts(r)[-1]
    r.send("TD")
    assert "成功退订" in sp_texts(r)[-1]
    assert subscribed(r) == []
    count = len(sp_texts(r))
    r.clock.advance(3600)
    assert charges(r) == [(500, "subscribe")] and len(sp_texts(r)) == count
    r.send("XH")
    assert "尚未订购" in sp_texts(r)[-1]


def test_declining_or_ignoring_the_prompt_costs_nothing(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world())
    r.send("DG")
    r.send("N")
    r.send("Y")  # the order was declined: this Y confirms nothing, it gets the help text
    assert r.ledger() == [] and subscribed(r) == []
    assert "指令有误" in sp_texts(r)[-1] and "DG" in sp_texts(r)[-1]


def test_prompt_expires_after_24_hours(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world())
    r.send("DG")
    r.clock.advance(24 * 3600 + 1)
    r.send("Y")
    assert r.ledger() == [] and subscribed(r) == []


def test_honest_per_use_flow(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world(billing="per_use"))
    r.send("DG")
    assert "5元/条" in sp_texts(r)[-1] and r.ledger() == []
    r.send("Y")
    assert charges(r) == [(500, "per_use")]
    assert "第1期" in sp_texts(r)[-1]
    assert subscribed(r) == []
    r.send("XH")  # the use keyword orders one more use, confirmed the same way
    r.send("Y")
    assert charges(r) == [(500, "per_use"), (500, "per_use")]
    assert "第2期" in sp_texts(r)[-1]
    assert "点播提醒" in r.phones[0].texts("10086901")[-1]


def _three_sp_world(tmp_path: Path) -> Rig:
    """SPs at positions 0, 1, 2 get the Y, 是 and one-time-password styles."""
    world = one_service_world(billing="per_use")
    base = world["sps"][0]
    for n in (2, 3):
        svc = dict(base["services"][0], access=f"106580010{n}")
        world["sps"].append(dict(base, code=f"90100{n}", name=f"第{n}家", services=[svc]))
    return rig(tmp_path, world)


def test_confirmation_tokens_vary_by_sp(tmp_path: Path) -> None:
    r = _three_sp_world(tmp_path)
    r.send("DG", to="1065800102")
    prompt = r.phones[0].texts("1065800102")[-1]
    assert '回复"是"确认订购' in prompt
    r.send("Y", to="1065800102")
    assert r.ledger() == []
    r.send("DG", to="1065800102")
    r.send("是", to="1065800102")
    assert charges(r) == [(500, "per_use")]

    r.send("DG", to="1065800103")
    prompt = r.phones[0].texts("1065800103")[-1]
    match = re.search(r"本次密码(\d{4})，输入密码确认点播", prompt)
    assert match, prompt
    r.send("Y", to="1065800103")  # not the password: declined
    assert len(r.ledger()) == 1
    r.send("DG", to="1065800103")
    otp = re.search(r"本次密码(\d{4})", r.phones[0].texts("1065800103")[-1])
    assert otp
    r.send(otp.group(1), to="1065800103")
    assert [e["sp_code"] for e in r.ledger()] == ["901002", "901003"]


# --- dishonest knobs ------------------------------------------------------------------


def test_confirm_prompt_false_activates_at_once(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world({"confirm_prompt": False}))
    r.send("DG")
    assert charges(r) == [(500, "subscribe")]
    assert r.truth()["subscriptions"][0]["how"] == "unconfirmed"
    assert all("确认" not in t for t in sp_texts(r))
    assert "成功订购" in sp_texts(r)[0]


def test_charges_without_confirm(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world({"charges_without_confirm": True}))
    r.send("DG")
    assert charges(r) == [(500, "unconfirmed_charge")]
    assert subscribed(r) == []
    r.send("N")  # declined, yet the money is gone
    assert charges(r) == [(500, "unconfirmed_charge")] and subscribed(r) == []
    order_and_confirm(r, slot=2)
    assert charges(r, 2) == [(500, "unconfirmed_charge")]  # confirming does not bill again
    assert subscribed(r, 2) == ["XHXH"]


def test_prompt_price_differs_from_tariff(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world({"prompt_price_fen": 200}))
    r.send("DG")
    assert "资费2元/月" in sp_texts(r)[0] and "5元" not in sp_texts(r)[0]
    r.send("Y")
    assert charges(r) == [(500, "subscribe")]


@pytest.mark.parametrize(
    ("omit", "gone"), [("price", "资费5元/月"), ("sp_name", "星河科技"), ("hotline", "4008001001")]
)
def test_prompt_omits(tmp_path: Path, omit: str, gone: str) -> None:
    r = rig(tmp_path, one_service_world({"prompt_omits": [omit]}))
    r.send("DG")
    prompt = sp_texts(r)[0]
    assert gone not in prompt
    assert "星河笑话" in prompt and "回复Y确认" in prompt


def test_charge_factor(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world({"charge_factor": 1.5}))
    order_and_confirm(r)
    assert charges(r) == [(750, "subscribe")]


def test_double_charge(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world({"double_charge": True}))
    order_and_confirm(r)
    assert charges(r) == [(500, "subscribe"), (500, "duplicate")]
    assert r.truth()["balance_fen"] == 9000


def test_cancel_does_not_work(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world({"cancel_works": False}))
    order_and_confirm(r)
    r.send("TD")
    assert "成功退订" in sp_texts(r)[-1]
    assert subscribed(r) == ["XHXH"]
    r.send("0000", to="10086")
    assert "星河笑话（星河科技）" in r.phones[0].texts("10086")[-1]


def test_charge_after_cancel_after_its_delay(tmp_path: Path) -> None:
    r = rig(
        tmp_path,
        one_service_world({"charge_after_cancel": True, "charge_after_cancel_delay_ms": 3000}),
    )
    order_and_confirm(r)
    r.send("TD", wait=2.9)
    assert subscribed(r) == [] and charges(r) == [(500, "subscribe")]
    r.clock.advance(0.2)
    assert charges(r) == [(500, "subscribe"), (500, "after_cancel")]


def test_charge_after_carrier_cancel_all(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world({"charge_after_cancel": True}))
    order_and_confirm(r)
    r.send("00000", to="10086")
    assert charges(r)[-1] == (500, "after_cancel")


def test_messages_after_cancel(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world({"messages_after_cancel": 2}))
    order_and_confirm(r)
    r.send("TD", wait=0.1)
    before = len(sp_texts(r))
    assert "成功退订" in sp_texts(r)[-1]
    r.clock.advance(10)
    after = sp_texts(r)[before:]
    assert len(after) == 2 and all("期" in t for t in after)


def test_spam_per_night_reaches_only_sims_without_subscription(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world({"spam_per_night": 3}, night_s=100))
    r.send("DG", slot=2, wait=0)
    r.send("Y", slot=2, wait=0.5)
    start = len(sp_texts(r, 2))
    r.clock.advance(299.0)  # three nights
    spam = [t for t in sp_texts(r) if "优惠" in t or "立即体验" in t]
    assert len(spam) == 9
    assert sp_texts(r, 2)[start:] == []
    assert r.ledger() == []


def test_unsolicited_subscribe(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world({"unsolicited_subscribe": 1.0}, night_s=50))
    r.clock.advance(50)
    for slot in (1, 2):
        assert charges(r, slot) == [(500, "unsolicited")]
        assert r.truth(slot)["subscriptions"][0]["how"] == "unsolicited"
        assert sp_texts(r, slot) == []  # silent
    r.clock.advance(500)  # already subscribed SIMs are not charged again
    assert charges(r, 1) == [(500, "unsolicited")]


def test_unsolicited_rate_zero_never_subscribes(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world({"spam_per_night": 1}, night_s=10))
    r.clock.advance(1000)
    assert r.ledger() == [] and subscribed(r) == []


def test_responds_zero_is_silent_and_free(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world({"responds": 0.0}))
    for text in ("DG", "Y", "XH", "TD", "junk"):
        r.send(text)
    assert sp_texts(r) == [] and r.ledger() == []


def test_responds_half_answers_some_requests(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world({"responds": 0.5}, seed=3))
    for _ in range(40):
        r.send("DG")
        r.send("N")
    prompts = len(sp_texts(r))
    assert 8 <= prompts <= 32


def test_delivers_content_false(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world({"delivers_content": False}))
    order_and_confirm(r)
    count = len(sp_texts(r))
    r.send("XH")
    assert len(sp_texts(r)) == count
    per_use = rig(tmp_path, one_service_world({"delivers_content": False}, billing="per_use"))
    order_and_confirm(per_use)
    assert charges(per_use) == [(500, "per_use")]
    assert len(sp_texts(per_use)) == 1  # the prompt only


def test_latency(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world({"latency_ms": [300, 400]}))
    r.send("DG", wait=0.29)
    assert sp_texts(r) == []
    r.clock.advance(0.12)
    assert len(sp_texts(r)) == 1
    sent = r.phones[0].inbox[0].sent_at
    assert sent == r.network.clock.start + (sent - r.network.clock.start)  # timezone-aware
    assert sent.utcoffset() is not None


# --- routing and delivery -------------------------------------------------------------


def test_unknown_keyword_gets_sp_help(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world())
    r.send("WHAT")
    assert "指令有误" in sp_texts(r)[0] and "DG" in sp_texts(r)[0]
    assert r.ledger() == []


def test_keywords_are_case_insensitive(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world())
    r.send(" dg ")
    r.send("y")
    assert charges(r) == [(500, "subscribe")]


def test_messages_from_one_sender_keep_their_order(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world({"latency_ms": [0, 200], "messages_after_cancel": 3}))
    order_and_confirm(r)
    for _ in range(10):
        r.send("XH", wait=0)
    r.clock.advance(5)
    issues = [int(m) for t in sp_texts(r) for m in re.findall(r"第(\d+)期", t)]
    assert issues == sorted(issues) and len(issues) == 10


def test_sim_to_sim_and_store_and_forward(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world())
    a, b = r.phones
    r.network.detach(b.msisdn)
    r.network.submit_sms(a.msisdn, "+86" + b.msisdn, "你好")
    r.clock.advance(1)
    assert b.inbox == []
    assert r.truth(2)["undelivered"] == [{"kind": "sms", "sender": a.msisdn, "text": "你好"}]
    fresh = FakeHandset(b.msisdn)
    r.network.attach(fresh)
    assert fresh.texts() == ["你好"]
    assert fresh.inbox[0].sender == a.msisdn


def test_dial(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world())
    a, b = r.phones
    assert r.network.dial(a.msisdn, "10086").answered
    assert r.network.dial(a.msisdn, b.msisdn).answered
    assert not r.network.dial(a.msisdn, "13900000000").answered


def test_ground_truth_records_everything_and_is_json(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world())
    order_and_confirm(r)
    truth = r.network.ground_truth()
    text = json.dumps(truth, ensure_ascii=False)
    me = truth["sims"][r.phones[0].msisdn]
    assert [(m["dir"], m["peer"]) for m in me["messages"]][:2] == [("mo", SP), ("mt", SP)]
    assert me["balance_fen"] == 9500 and "星河笑话" in text
    assert truth["bank"] == "test-bank"


def _token(texts: list[str]) -> str:
    """What a probe would answer to the last prompt: the password, 是, or Y."""
    last = texts[-1] if texts else ""
    otp = re.search(r"本次密码(\d{4})", last)
    return otp.group(1) if otp else ("是" if '"是"' in last else "Y")


def _run_demo_script(seed_world: Path) -> dict:
    clock = ManualScheduler()
    network = Network(load_world(seed_world), clock)
    phones = [FakeHandset(c.msisdn) for c in network.world.sims]
    for phone in phones:
        network.attach(phone)
    for sp in network.world.sps:
        for i, svc in enumerate(sp.services):
            phone = phones[i % len(phones)]
            me = phone.msisdn
            network.submit_sms(me, svc.access, svc.subscribe)
            clock.advance(1)
            network.submit_sms(me, svc.access, _token(phone.texts(svc.access)))
            clock.advance(1)
            if svc.cancel:
                network.submit_sms(me, svc.access, svc.cancel)
                clock.advance(1)
    clock.advance(200)
    return network.ground_truth()


def test_demo_world_runs_deterministically() -> None:
    first = _run_demo_script(demo_world_path())
    second = _run_demo_script(demo_world_path())
    assert first == second
    reasons = {e["reason"] for sim in first["sims"].values() for e in sim["ledger"]}
    assert {"subscribe", "per_use", "duplicate", "after_cancel", "unconfirmed_charge"} <= reasons
    for sim in first["sims"].values():
        assert sim["balance_fen"] == 10000 - sum(e["amount_fen"] for e in sim["ledger"])


def test_demo_sps_use_every_price_notation_of_the_spec() -> None:
    clock = ManualScheduler()
    network = Network(load_world(demo_world_path()), clock)
    phone = FakeHandset(network.world.sims[0].msisdn)
    network.attach(phone)
    for sp in network.world.sps:
        for svc in sp.services:
            for _ in range(4):  # past the SP that answers only half the time
                network.submit_sms(phone.msisdn, svc.access, svc.subscribe)
                clock.advance(1)
                network.submit_sms(phone.msisdn, svc.access, "N")
                clock.advance(1)
    text = "\n".join(phone.texts())
    notations = [
        r"资费\d+元/月",
        r"信息费\d+\.\d\d元/月",
        r"每月\d+元",
        r"[一二三四五六七八九十]+元每月",
        r"\d+元/条",
        r"0\.1元/次",
        r'回复"是"确认',
        r"本次密码\d{4}，输入密码确认点播",
        r"回复Y确认",
    ]
    for pattern in notations:
        assert re.search(pattern, text), pattern


@pytest.mark.parametrize(
    ("fen", "words"),
    [
        (500, "五元"),
        (1000, "十元"),
        (1500, "十五元"),
        (150, "一元五角"),
        (10, "一角"),
        (20500, "二百零五元"),
    ],
)
def test_chinese_money(fen: int, words: str) -> None:
    assert chinese_money(fen) == words

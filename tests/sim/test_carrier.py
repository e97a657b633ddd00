"""The carrier's service number, USSD and ledger answer exactly as spec §3 says."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dialbot.carrier import CarrierProfile

from .support import Rig, one_service_world, rig

CARRIER = "10086"


def two_sp_world(**keys: object) -> dict:
    """The two services of the spec's example list: 星河笑话 5.00 and 天气早知道 3.00."""
    world = one_service_world(**keys)
    world["sps"].append(
        {
            "code": "901002",
            "name": "云端信息",
            "hotline": "4008001002",
            "services": [
                {
                    "code": "YDTQ",
                    "name": "天气早知道",
                    "access": "1065800201",
                    "billing": "monthly",
                    "price_fen": 300,
                    "subscribe": "TQ",
                    "cancel": "QXTQ",
                    "behaviour": {"confirm_prompt": False, "latency_ms": [10, 10]},
                }
            ],
        }
    )
    return world


def subscribe_both(r: Rig, slot: int = 1) -> None:
    r.send("DG", slot=slot)
    r.send("Y", slot=slot)
    r.send("TQ", to="1065800201", slot=slot)


def last_from(r: Rig, sender: str, slot: int = 1) -> str:
    return r.phones[slot - 1].texts(sender)[-1]


def test_balance_reply_is_exact(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world())
    r.send("CXYE", to=CARRIER)
    assert last_from(r, CARRIER) == "尊敬的客户，您的账户余额为100.00元。【中国移动】"
    r.send("cxye ", to=CARRIER)  # case and blanks do not matter
    assert len(r.phones[0].texts(CARRIER)) == 2


def test_balance_follows_the_ledger_including_negative(tmp_path: Path) -> None:
    world = one_service_world()
    world["bank"]["slots"] = {1: {"balance_fen": 1234}, 2: {"balance_fen": 100}}
    r = rig(tmp_path, world)
    r.send("CXYE", to=CARRIER)
    assert last_from(r, CARRIER) == "尊敬的客户，您的账户余额为12.34元。【中国移动】"
    r.send("DG", slot=2)
    r.send("Y", slot=2)
    r.send("CXYE", to=CARRIER, slot=2)
    assert last_from(r, CARRIER, 2) == "尊敬的客户，您的账户余额为-4.00元。【中国移动】"
    assert r.truth(2)["balance_fen"] == 100 - sum(e["amount_fen"] for e in r.ledger(2)) == -400


def test_subscription_list_exact_with_items_and_none(tmp_path: Path) -> None:
    r = rig(tmp_path, two_sp_world())
    r.send("0000", to=CARRIER)
    assert last_from(r, CARRIER) == "尊敬的客户，您目前没有订购任何增值业务。【中国移动】"
    subscribe_both(r)
    r.send("0000", to=CARRIER)
    assert last_from(r, CARRIER) == (
        "尊敬的客户，您已订购以下业务：1、星河笑话（星河科技），5.00元/月；"
        "2、天气早知道（云端信息），3.00元/月。回复序号可退订。【中国移动】"
    )


def test_cancel_all_exact_and_ends_every_subscription(tmp_path: Path) -> None:
    r = rig(tmp_path, two_sp_world())
    subscribe_both(r)
    assert len(r.truth()["subscriptions"]) == 2
    r.send("00000", to=CARRIER)
    assert last_from(r, CARRIER) == "尊敬的客户，您已成功退订全部增值业务。【中国移动】"
    assert r.truth()["subscriptions"] == []
    r.send("0000", to=CARRIER)
    assert "没有订购" in last_from(r, CARRIER)
    r.send("00000", to=CARRIER)  # nothing to cancel: same reply
    assert last_from(r, CARRIER) == "尊敬的客户，您已成功退订全部增值业务。【中国移动】"


def test_cancel_all_overrides_a_broken_sp_cancel(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world({"cancel_works": False}))
    r.send("DG")
    r.send("Y")
    r.send("TD")
    assert "成功退订" in r.phones[0].texts("1065800101")[-1]
    assert [s["service_code"] for s in r.truth()["subscriptions"]] == ["XHXH"]
    r.send("00000", to=CARRIER)
    assert r.truth()["subscriptions"] == []


def test_cancel_by_item_number_after_a_list(tmp_path: Path) -> None:
    r = rig(tmp_path, two_sp_world())
    subscribe_both(r)
    r.send("2", to=CARRIER)  # no list yet: not understood
    assert "无法识别" in last_from(r, CARRIER)
    assert len(r.truth()["subscriptions"]) == 2
    r.send("0000", to=CARRIER)
    r.send("2", to=CARRIER)
    assert last_from(r, CARRIER) == "尊敬的客户，您已成功退订天气早知道（云端信息）。【中国移动】"
    assert [s["service_code"] for s in r.truth()["subscriptions"]] == ["XHXH"]
    r.send("7", to=CARRIER)
    assert "序号7不存在" in last_from(r, CARRIER)
    r.clock.advance(2 * 3600 + 1)  # the list goes stale after two hours
    r.send("1", to=CARRIER)
    assert "无法识别" in last_from(r, CARRIER)


def test_unknown_text_gets_help_naming_the_commands(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world())
    r.send("HELLO", to=CARRIER)
    reply = last_from(r, CARRIER)
    assert "CXYE" in reply and "0000" in reply and "00000" in reply
    assert r.ledger() == []


def test_ussd_balance(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world())
    me = r.phones[0].msisdn
    assert r.network.ussd(me, "*125#") == "尊敬的客户，您的账户余额为100.00元。【中国移动】"
    assert r.network.ussd(me, "*999#") is None
    kinds = [(m["dir"], m["kind"]) for m in r.truth()["messages"]]
    assert kinds == [("mo", "ussd"), ("mt", "ussd"), ("mo", "ussd")]


def test_profile_overrides_are_honoured(tmp_path: Path) -> None:
    world = one_service_world(
        carrier={"service_number": "10010", "balance_query": "ussd:*100#", "cancel_all": "TD0000"}
    )
    r = rig(tmp_path, world)
    me = r.phones[0].msisdn
    assert "余额为100.00元" in (r.network.ussd(me, "*100#") or "")
    r.send("CXYE", to="10010")  # balance is asked by USSD in this profile
    assert "*100#" in r.phones[0].texts("10010")[-1]
    r.send("DG")
    r.send("Y")
    r.send("TD0000", to="10010")
    assert r.phones[0].texts("10010")[-1] == "尊敬的客户，您已成功退订全部增值业务。【中国移动】"
    assert r.truth()["subscriptions"] == []


def test_mo_fee_charged_per_message_to_an_sp_only(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world(carrier={"mo_sms_fee_fen": 10}))
    r.send("CXYE", to=CARRIER)
    r.send("DG")
    r.send("Y")
    r.send("whatever")
    fees = [e for e in r.ledger() if e["reason"] == "mo_sms_fee"]
    assert [e["amount_fen"] for e in fees] == [10, 10, 10]
    assert fees[0]["sp_code"] == "901001" and fees[0]["service_code"] == "XHXH"
    assert r.truth()["balance_fen"] == 10000 - 30 - 500


def test_order_notice_from_the_billing_number(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world())
    r.send("DG")
    r.send("Y")
    notices = r.phones[0].texts("10086901")
    assert notices == [
        "订购提醒：您已成功订购由星河科技提供的星河笑话，5元/月（由中国移动代收费），如有疑问请拨打10086。"
    ]
    quiet = rig(tmp_path, one_service_world(order_notices=False))
    quiet.send("DG")
    quiet.send("Y")
    assert quiet.phones[0].texts("10086901") == []


def test_ledger_entries_carry_time_amount_reason_sp_and_service(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world())
    r.send("DG")
    r.send("Y")
    (entry,) = r.ledger()
    assert set(entry) == {"at", "amount_fen", "reason", "sp_code", "service_code"}
    assert entry["amount_fen"] == 500 and entry["reason"] == "subscribe"
    assert entry["sp_code"] == "901001" and entry["service_code"] == "XHXH"
    assert entry["at"].startswith("2026-11-24T01:00:0") and entry["at"].endswith("+08:00")
    json.dumps(r.network.ground_truth(), ensure_ascii=False)


def test_replies_match_the_profile_regexes_the_robot_uses(tmp_path: Path) -> None:
    profile = CarrierProfile()
    r = rig(tmp_path, two_sp_world())
    r.send("CXYE", to=CARRIER)
    match = re.search(profile.balance_reply, last_from(r, CARRIER))
    assert match and match.group("yuan") == "100.00"
    r.send("0000", to=CARRIER)
    assert re.search(profile.subscriptions_none, last_from(r, CARRIER))
    subscribe_both(r)
    r.send("0000", to=CARRIER)
    items = [
        (m.group("service"), m.group("sp"))
        for m in re.finditer(profile.subscriptions_item, last_from(r, CARRIER))
    ]
    assert [item for item in items if item[1] in ("星河科技", "云端信息")] == [
        ("星河笑话", "星河科技"),
        ("天气早知道", "云端信息"),
    ]

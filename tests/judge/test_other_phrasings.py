"""The judge on texts nobody here wrote the way the simulator does (dialbot/sim/phrasing.py):
other wording and punctuation, full-width digits, Chinese numerals, 元/角/分, 两块, company
names as registered, English and mixed text, carrier replies in other words.

Honest texts must never become a finding; a misbehaviour must still be found when the SP
or carrier words it differently.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from dialbot.carrier import CarrierProfile
from dialbot.judge import judge
from dialbot.judge.classify import (
    MsgClass,
    check_prompt,
    classify,
    classify_sp,
    confirm_token,
    parse_balance,
    parse_money,
    parse_notice,
    stated_price,
)
from dialbot.judge.model import Event, RunRecord, ServiceInfo

from .scenarios import CATALOGUE, T0, XHXH, Knobs, monthly

C = CarrierProfile()
JOKES = ServiceInfo(
    "900001", "北京某某信息技术有限公司", "ZSXH", "掌上笑话", "10661234", "monthly", 1200, "DG",
    sp_hotline="400-800-1234", cancel_cmd="TD",
)  # fmt: skip

PROMPTS = [
    # (text, price in fen, token)
    (
        "尊敬的用户：您好！您即将订制由北京某某信息技术有限公司提供的“掌上笑话”，信息费１２元／月"
        "（不含通信费），确认订制请回复“是”，不订制请忽略。客服400-800-1234",
        1200,
        "是",
    ),
    ("【某某】亲，掌上笑话包月服务12元每月，回Y开通，不回不开通。咨询4008001234", 1200, "Y"),
    (
        "温馨提示：您将定制掌上笑话业务，资费标准：拾贰元/月，由某某公司提供。如确认定制，请在24小时内"
        "回复数字1。客服电话：4008001234。",
        1200,
        "1",
    ),
    (
        "某某提醒您：点播掌上笑话需支付1元2角，回复验证码８８３２完成点播，服务热线400 800 1234",
        120,
        "8832",
    ),
    (
        "Dear customer, you are subscribing to 掌上笑话 (by 某某 Co., Ltd.), RMB12/month. "
        "Reply YES to confirm. Hotline 4008001234",
        1200,
        "YES",
    ),
    ("您好，掌上笑话两块一个月，回复Y确认。客服4008001234【某某】", 200, "Y"),
    ("掌上笑话：每月仅需十二元！如需订购请回复Ｙ。某某科技 400-800-1234", 1200, "Y"),
    ("您正在订购掌上笑话，资费0.5元每条，发送“确认”完成订购。某某 4008001234", 50, "确认"),
]


@pytest.mark.parametrize(("text", "fen", "token"), PROMPTS)
def test_prompts_worded_otherwise(text: str, fen: int, token: str) -> None:
    assert classify_sp(text) is MsgClass.PROMPT
    assert stated_price(text) == fen
    assert confirm_token(text) == token
    check = check_prompt(text, JOKES)
    assert check.omissions() == [] and check.names_sp


def test_a_prompt_naming_only_the_service_does_not_name_the_sp() -> None:
    """`星河笑话` contains the brand of `星河科技`; it does not name the SP."""
    text = "您正在订购星河笑话业务，资费5元/月。回复Y确认订购。客服电话4008001001。"
    assert check_prompt(text, XHXH).omissions() == ["sp_name"]


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("资费１２元／月", 1200),
        ("五元每月", 500),
        ("两块钱一个月", 200),
        ("两块五一个月", 250),
        ("一元五角", 150),
        ("3元2角5分", 325),
        ("8角", 80),
        ("5毛/条", 50),
        ("RMB12/month", 1200),
        ("¥0.10每条", 10),
        ("拾元整", 1000),
        ("十二块", 1200),
    ],
)
def test_money_in_other_notations(text: str, fen: int) -> None:
    assert parse_money(text) == fen


@pytest.mark.parametrize(
    ("text", "cls"),
    [
        ("【某某】您好，掌上笑话业务已退订成功，欢迎再次使用。", MsgClass.CANCEL_ACK),
        ("您已成功取消掌上笑话包月服务。", MsgClass.CANCEL_ACK),
        ("掌上笑话退订已受理，次月起不再收费。", MsgClass.CANCEL_ACK),
        ("You have unsubscribed from 掌上笑话 successfully.", MsgClass.CANCEL_ACK),
        ("恭喜您，掌上笑话开通成功！每月12元，发送TD退订。", MsgClass.WELCOME),
        ("感谢订制掌上笑话！本服务12元/月，退订回TD", MsgClass.WELCOME),
        ("Subscription successful: 掌上笑话, RMB12/month. Send TD to cancel.", MsgClass.WELCOME),
        ("对不起，您发送的指令不正确，请核对后重新发送。", MsgClass.NEGATIVE),
        ("抱歉，您还没有订购该业务，无需退订。", MsgClass.NEGATIVE),
        ("您已经是掌上笑话的会员，不用重复订制。", MsgClass.ALREADY),
        ("今日笑话：老师问小明……", MsgClass.CONTENT),
    ],
)
def test_sp_replies_worded_otherwise(text: str, cls: MsgClass) -> None:
    assert classify_sp(text) is cls


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("尊敬的客户，您的账户余额为１２．３４元。", 1234),
        ("您好！截至11月24日10时，您的话费余额：12.34元，本月已用话费5.66元。", 1234),
        ("您当前余额为-1.50元，已欠费，请及时充值。", -150),
        ("账户可用余额12元3角4分。", 1234),
    ],
)
def test_balances_worded_otherwise(text: str, fen: int) -> None:
    assert parse_balance(text, C) == fen
    assert classify(text, "10086", C) is MsgClass.BALANCE


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        (
            "【订购提醒】尊敬的客户，您已订购北京某某信息技术有限公司的掌上笑话业务，资费12元/月，"
            "由中国移动代收费。",
            1200,
        ),
        ("计费提醒：您于11月24日点播了“掌上笑话”（北京某某信息技术有限公司），信息费1.00元。", 100),
    ],
)
def test_carrier_notices_worded_otherwise(text: str, fen: int) -> None:
    assert classify(text, "10086901", C) is MsgClass.ORDER_NOTICE
    notice = parse_notice(text)
    assert notice is not None
    assert (notice.sp_name, notice.service_name, notice.amount_fen) == (
        "北京某某信息技术有限公司",
        "掌上笑话",
        fen,
    )


# --- whole runs ------------------------------------------------------------------------------

# XHXH is 星河笑话 by 星河科技, 5元/月, reply Y, cancel TD, hotline 4008001001.
REWORDED = {
    "prompt": "星河科技温馨提示：您即将开通“星河笑话”包月业务，信息费：伍元／月。如同意开通，"
    "请回复Ｙ；不回复不开通。客服热线４００８００１００１",
    "welcome": "恭喜！星河笑话已开通，五元每月，回复TD可随时退订。",
    "ack": "[星河科技有限公司] 星河笑话退订已受理，次月起不再收费。",
    "notice": "【订购提醒】尊敬的客户，您已订购北京星河科技有限公司的星河笑话业务，资费5元/月，"
    "由中国移动代收费。",
}
LIST_AFTER = (
    "您好！您订购的业务如下：\n1. 星河笑话(包月) 北京星河科技有限公司 5元/月\n回复序号退订。"
)
NONE_AFTER = "您好，您当前暂无订购任何增值业务。"


def reworded(run: RunRecord, cancel_listed: bool) -> RunRecord:
    """The same run, every SP and carrier text replaced by another wording, lists as text."""
    events = []
    for e in run.events:
        if e.kind == "sms_in":
            if "您正在" in e.text:
                e = replace(e, text=REWORDED["prompt"])
            elif "成功订购" in e.text and e.peer.startswith("10086"):
                e = replace(e, text=REWORDED["notice"])
            elif "成功订购" in e.text:
                e = replace(e, text=REWORDED["welcome"])
            elif "成功退订" in e.text:
                e = replace(e, text=REWORDED["ack"])
        elif e.kind == "subscriptions":
            e = replace(e, items=None, text=LIST_AFTER if cancel_listed else NONE_AFTER)
        events.append(e)
    return replace(run, events=tuple(events))


def test_an_honest_run_worded_otherwise_yields_nothing() -> None:
    run = monthly(Knobs(notices=True)).record()
    other = reworded(run, cancel_listed=False)
    assert other.events != run.events
    assert judge(other) == []


def test_a_cancel_that_did_not_work_is_found_when_the_list_bills_the_company_name() -> None:
    run = monthly(Knobs(cancel_works=False)).record()
    assert "CANCEL_FAILED" in {f.code for f in judge(run)}
    other = reworded(run, cancel_listed=True)
    assert "CANCEL_FAILED" in {f.code for f in judge(other)}


def test_a_misstated_price_in_chinese_numerals_is_found() -> None:
    run = monthly(Knobs()).record()
    cheap = REWORDED["prompt"].replace("伍元", "叁元")
    other = reworded(run, cancel_listed=False)
    events = tuple(
        replace(e, text=cheap) if e.text == REWORDED["prompt"] else e for e in other.events
    )
    found = {f.code for f in judge(replace(other, events=events))}
    assert "PRICE_MISMATCH" in found


def test_a_carrier_list_naming_the_probed_service_as_billed_is_not_an_intruder() -> None:
    """A hygiene-style listing of the probed service under its company name and a billing tag:
    it is the service itself, not a subscription nobody ordered."""
    run = monthly(Knobs()).record()
    first = run.events[0]
    listing = Event(
        first.id - 1, first.at, "subscriptions", "10086", LIST_AFTER.replace("1. ", "1、")
    )
    other = replace(run, events=(listing, *run.events))
    assert "UNSOLICITED_SUBSCRIPTION" in {f.code for f in judge(other)}  # listed before the order
    assert all(f.sp_code == XHXH.sp_code for f in judge(other))


# --- real texts (../shared/corpus/deliver-pdus.jsonl: captures from real networks) -----------


def test_real_operator_texts_are_read_without_a_finding(corpus: Path) -> None:
    """Real operator messages (German, Italian, Chinese, ASCII tests) reach a SIM unasked: the
    judge reads each without error, takes none for a prompt or an acknowledgement, and a watch
    run holding them accuses no catalogued SP (their senders are no SP's access number)."""
    rows = [json.loads(line) for line in (corpus / "deliver-pdus.jsonl").open(encoding="utf-8")]
    assert len(rows) >= 10
    events = []
    for n, row in enumerate(rows):
        cls = classify(row["text"], row["sender"], C)
        assert cls not in (MsgClass.PROMPT, MsgClass.CANCEL_ACK, MsgClass.WELCOME), row["text"]
        stated_price(row["text"])  # never raises on foreign notations (3,45 €, 59 Ct)
        at = T0 + timedelta(seconds=n)
        events.append(Event(n + 1, at, "sms_in", row["sender"].lstrip("+"), row["text"]))
    watch = RunRecord(
        run_id=7,
        flow="watch",
        events=tuple(events),
        observed_until=T0 + timedelta(hours=1),
        catalogue=CATALOGUE,
    )
    found = judge(watch)
    assert found and {f.code for f in found} == {"UNSOLICITED_MESSAGE"}
    assert all(f.sp_code == "" for f in found)  # noted against the sender, no SP accused

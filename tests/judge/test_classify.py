"""Message classification, price and token extraction on real-world phrasings."""

from __future__ import annotations

import pytest

from dialbot.carrier import CarrierProfile
from dialbot.judge.classify import (
    MsgClass,
    check_prompt,
    classify,
    classify_sp,
    cn_int,
    confirm_token,
    parse_balance,
    parse_money,
    parse_notice,
    parse_subscriptions,
    reply_for,
    stated_price,
)
from dialbot.judge.model import ListedItem

from .scenarios import XHXH, XHXZ

CARRIER = CarrierProfile()


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("资费5元/月", 500),
        ("信息费5.00元/月", 500),
        ("每月5元", 500),
        ("1元/条", 100),
        ("0.1元/次", 10),
        ("五元每月", 500),
        ("伍元", 500),
        ("两元", 200),
        ("十元", 1000),
        ("十二元", 1200),
        ("二十元", 2000),
        ("一百零五元", 10500),
        ("一元五角", 150),
        ("1元5角", 150),
        ("三元五角二分", 352),
        ("一块五", 150),
        ("5角", 50),
        ("五毛", 50),
        ("50分", 50),
        ("一角", 10),
        ("０．１元／次", 10),
        ("５元", 500),
        ("￥5.00", 500),
        ("RMB 2元", 200),
        ("五点五元", 550),
        ("资费：陆元/月", 600),
        ("贰拾元", 2000),
    ],
)
def test_money(text: str, fen: int) -> None:
    assert parse_money(text) == fen


@pytest.mark.parametrize(
    "text",
    ["十分感谢", "散步十分钟", "百分之百", "五角星", "回复1确认", "客服电话4008001001", "24小时"],
)
def test_not_money(text: str) -> None:
    assert parse_money(text) is None


def test_no_fraction_of_fen() -> None:
    assert parse_money("0.125元") is None


def test_chinese_integers() -> None:
    assert [cn_int(t) for t in ("零", "十", "十五", "二百零五", "一千", "两千零一十")] == [
        0,
        10,
        15,
        205,
        1000,
        2010,
    ]


def test_stated_price_prefers_the_tariff_over_carrier_fees() -> None:
    assert stated_price("信息费5元/月（不含通信费0.1元/条），回复Y确认") == 500
    assert stated_price("通信费0.1元/条由运营商收取，本业务每月3元") == 300
    assert stated_price("原价10元，现仅需每月5元") == 500
    assert stated_price("回复Y确认订购，客服4008001001") is None


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("回复Y确认订购", "Y"),
        ("回复 y 确认", "y"),
        ('请在24小时内回复"是"确认订购，回复其他内容或不回复，则不订购', "是"),
        ("请在24小时内回复“是”确认订购，回复其他内容或不回复，则不订购", "是"),
        ("请回复「是」确认", "是"),
        ("本次密码1234，输入密码确认点播", "1234"),
        ("您的验证码为 667788 ，回复验证码即可完成订购", "667788"),
        ("回复1确认", "1"),
        ("回复１确认订购", "1"),
        ("确认请回复Y。", "Y"),
        ("如需订购请回复是", "是"),
        ("同意订购请回复OK，", "OK"),
        ("发送Y确认", "Y"),
    ],
)
def test_confirm_token(text: str, token: str) -> None:
    assert confirm_token(text) == token


@pytest.mark.parametrize(
    "text",
    [
        "如需退订请回复TD。",
        "发送XH获取内容，发送TD退订。",
        "您尚未订购星河笑话，发送DG即可订购。",
        "回复0000查询订购",
        "限时优惠！海纳视频首月免费，回复SP立即体验。",
        "回复其他内容或不回复，则不订购",
    ],
)
def test_no_confirm_token(text: str) -> None:
    assert confirm_token(text) is None


def test_reply_falls_back_to_the_carrier_profile() -> None:
    assert reply_for("您正在订购星河笑话，请确认。", CarrierProfile(confirm_reply="是")) == "是"
    assert reply_for("回复Y确认订购", CarrierProfile(confirm_reply="是")) == "Y"


# Literal variants of the simulator's SP phrasing (dialbot/sim/phrasing.py) and real-world ones.
SP_MESSAGES = [
    (
        "【星河科技】您正在订购星河笑话业务，资费5元/月。回复Y确认订购，不回复则不订购。客服电话4008001001。",
        MsgClass.PROMPT,
    ),
    (
        '[云端信息]您正在订购天气早知道业务，信息费3.00元/月。请在24小时内回复"是"确认订购，回复其他内容或不回复，则不订购。咨询请拨4008001002。',
        MsgClass.PROMPT,
    ),
    (
        "【乐游互动】您正在点播乐游答题业务，2元/次。本次密码0417，输入密码确认点播。客服：4008001003。",
        MsgClass.PROMPT,
    ),
    (
        "悦读文化：您正在订购悦读诗词业务（由悦读文化提供），三元每月。回复Y确认订购，不回复则不订购。客服热线4008001004。",
        MsgClass.PROMPT,
    ),
    (
        "尊敬的用户，您申请订购星河笑话，信息费：5元/月，由星河科技提供，确认订购请回复Y，客服4008001001",
        MsgClass.PROMPT,
    ),
    (
        "【星河科技】您已成功订购星河笑话，资费5元/月。发送XH获取内容，发送TD退订。客服电话4008001001",
        MsgClass.WELCOME,
    ),
    ("欢迎使用星河笑话！每天为您送上开心一刻，退订请回复TD。", MsgClass.WELCOME),
    ("[星河科技]您已订购星河笑话，无需重复订购。", MsgClass.ALREADY),
    (
        "【星河科技】星河笑话第1期：小明问爸爸：为什么月亮跟着我走？爸爸说：因为它也想回家。",
        MsgClass.CONTENT,
    ),
    ("【天天健康】健康小贴士第3期：健康提示：饭后散步十分钟，有助消化。", MsgClass.CONTENT),
    ("【星河科技】您已成功退订星河笑话业务，感谢您的使用。", MsgClass.CANCEL_ACK),
    ("您的星河笑话业务已退订，欢迎再次使用！", MsgClass.CANCEL_ACK),
    ("取消成功！您将不再收到星河笑话。", MsgClass.CANCEL_ACK),
    ("【星河科技】您尚未订购星河笑话，发送DG即可订购。", MsgClass.NEGATIVE),
    ("【星河科技】您未确认，星河笑话未订购。", MsgClass.NEGATIVE),
    ("【星河科技】指令有误。星河笑话回复DG；星河星座回复XZ。客服电话4008001001", MsgClass.NEGATIVE),
    ("【海纳传媒】限时优惠！海纳视频首月免费，回复SP立即体验。", MsgClass.CONTENT),
]


@pytest.mark.parametrize(("text", "cls"), SP_MESSAGES)
def test_sp_classes(text: str, cls: MsgClass) -> None:
    assert classify_sp(text) is cls
    assert classify(text, "1065800101", CARRIER) is cls


# spec/formats.md §3, verbatim.
BALANCE = "尊敬的客户，您的账户余额为12.34元。【中国移动】"
LIST = "尊敬的客户，您已订购以下业务：1、星河笑话（星河科技），5.00元/月；2、天气早知道（云端信息），3.00元/月。回复序号可退订。【中国移动】"
NONE = "尊敬的客户，您目前没有订购任何增值业务。【中国移动】"
CANCEL_ALL = "尊敬的客户，您已成功退订全部增值业务。【中国移动】"
NOTICE = "订购提醒：您已成功订购由星河科技提供的星河笑话，10元/月（由中国移动代收费）…"
HONEST_PROMPT = '请在24小时内回复"是"确认订购，回复其他内容或不回复，则不订购'
OTP_PROMPT = "本次密码1234，输入密码确认点播"


def test_formats_examples_verbatim() -> None:
    assert classify(BALANCE, "10086", CARRIER) is MsgClass.BALANCE
    assert parse_balance(BALANCE, CARRIER) == 1234
    assert classify(LIST, "10086977", CARRIER) is MsgClass.SUBSCRIPTION_LIST
    assert parse_subscriptions(LIST, CARRIER) == (
        ListedItem("星河笑话", "星河科技"),
        ListedItem("天气早知道", "云端信息"),
    )
    assert classify(NONE, "10086", CARRIER) is MsgClass.SUBSCRIPTION_LIST
    assert parse_subscriptions(NONE, CARRIER) == ()
    assert classify(CANCEL_ALL, "10086", CARRIER) is MsgClass.CANCEL_ALL_ACK
    assert parse_subscriptions(CANCEL_ALL, CARRIER) is None
    assert classify(NOTICE, "10086901", CARRIER) is MsgClass.ORDER_NOTICE
    notice = parse_notice(NOTICE)
    assert notice is not None and (notice.sp_name, notice.service_name, notice.amount_fen) == (
        "星河科技",
        "星河笑话",
        1000,
    )
    assert classify_sp(HONEST_PROMPT) is MsgClass.PROMPT and confirm_token(HONEST_PROMPT) == "是"
    assert classify_sp(OTP_PROMPT) is MsgClass.PROMPT and confirm_token(OTP_PROMPT) == "1234"
    for example in ("资费5元/月", "信息费5.00元/月", "每月5元", "五元每月"):
        assert stated_price(example) == 500
    assert stated_price("1元/条") == 100 and stated_price("0.1元/次") == 10


def test_carrier_help_and_item_cancel_are_not_misread() -> None:
    help_text = "尊敬的客户，您发送的指令无法识别。查询余额请发送CXYE，查询已订购业务请发送0000，退订全部业务请发送00000。【中国移动】"
    assert classify(help_text, "10086", CARRIER) is MsgClass.CARRIER_OTHER
    done = "尊敬的客户，您已成功退订星河笑话（星河科技）。【中国移动】"
    assert classify(done, "10086", CARRIER) is MsgClass.CANCEL_ALL_ACK
    assert parse_subscriptions(done, CARRIER) is None


def test_custom_balance_regex_and_negative_balance() -> None:
    profile = CarrierProfile(balance_reply=r"可用余额(?P<yuan>-?\d+(?:\.\d{1,2})?)元")
    assert parse_balance("您的可用余额-3.50元", profile) == -350
    assert parse_balance("您的可用余额３.５元", profile) == 350


def test_prompt_check_names_everything() -> None:
    full = "【星河科技】您正在订购星河笑话业务，资费5元/月。回复Y确认订购。客服电话400-800-1001。"
    check = check_prompt(full, XHXH)
    assert check.omissions() == [] and check.price_fen == 500
    bare = "您正在订购笑话业务。回复Y确认订购。"
    assert check_prompt(bare, XHXH).omissions() == ["price", "sp_name", "service_name", "hotline"]
    spaced = (
        "【星河 科技有限公司】您正在点播星河星座，１元／条，回复Ｙ确认，客服４００８００１００１"
    )
    assert check_prompt(spaced, XHXZ).omissions() == []


def test_no_catalogued_hotline_is_not_held_against_the_prompt() -> None:
    from dataclasses import replace

    no_hotline = replace(XHXH, sp_hotline="")
    assert (
        check_prompt(
            "【星河科技】您正在订购星河笑话业务，资费5元/月。回复Y确认订购。", no_hotline
        ).omissions()
        == []
    )

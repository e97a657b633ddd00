"""Subscription lists as carriers bill them: read tolerantly, matched in three ways, trusted
only when whole. None of these texts is how the simulator (dialbot/sim/carrier.py) words
a list."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dialbot.carrier import CarrierProfile
from dialbot.fleet.services import read_list
from dialbot.judge.listing import Relation, best_match, parse_list, relation, sp_core
from dialbot.judge.model import ListedItem, ServiceInfo
from dialbot.modem import IncomingMessage

C = CarrierProfile()
JOKES = ServiceInfo("900001", "某某", "ZSXH", "掌上笑话", "10661234", "monthly", 500, "DG")
WEATHER = ServiceInfo("900002", "星河科技", "XHTQ", "天气早知道", "10662222", "monthly", 300, "TQ")
NEWS = ServiceInfo(
    "900003", "ABC Media Co., Ltd.", "NEWS", "Daily News", "10663333", "monthly", 200, "NW"
)
CAT = (JOKES, WEATHER, NEWS)

PHRASINGS = {
    "newlines, no brackets": (
        "您好！您订购的业务如下：\n1. 掌上笑话(包月) 北京某某信息技术有限公司 5元/月\n"
        "2. 天气早知道 星河科技有限公司 3元/月\n回复序号退订。"
    ),
    "labelled fields, full-width": (
        "您当前已订购以下业务（共2项）：（1）掌上笑话业务，提供商：北京某某信息技术有限公司，"
        "资费：５元／月；（2）天气早知道，服务商：星河科技，３元／月"
    ),
    "circled numbers, dashes": (
        "尊敬的客户，您已订购以下业务：①掌上笑话－北京某某信息技术有限公司－五元每月 "
        "②天气早知道（星河科技）"
    ),
    "access number only": (
        "您已订购以下业务：1、每日精选（北京某某信息技术有限公司），服务代码10661234；"
        "2、天气早知道（星河科技）。【中国移动】"
    ),
}


@pytest.mark.parametrize("name", sorted(PHRASINGS))
def test_lists_phrased_otherwise_are_read_whole_and_matched(name: str) -> None:
    parsed = parse_list(PHRASINGS[name], C)
    assert parsed is not None and parsed.complete, parsed
    assert [i.number for i in parsed.items] == [1, 2]
    first, second = parsed.items
    assert relation(first, JOKES, CAT) is Relation.MATCH
    assert relation(second, WEATHER, CAT) is Relation.MATCH
    assert relation(second, JOKES, CAT) is Relation.OTHER
    assert best_match(first, CAT) == JOKES and best_match(second, CAT) == WEATHER


def test_item_labels_and_price() -> None:
    parsed = parse_list(PHRASINGS["labelled fields, full-width"], C)
    assert parsed is not None
    jokes = parsed.items[0]
    assert (jokes.service, jokes.sp, jokes.price_fen) == (
        "掌上笑话业务",
        "北京某某信息技术有限公司",
        500,
    )


def test_company_names_reduce_to_the_catalogue_name() -> None:
    assert sp_core("北京某某信息技术有限公司") == "某某"
    assert sp_core("星河科技有限公司") == "星河"
    assert sp_core("ABC Media Co., Ltd.") == "abc"


def test_english_list() -> None:
    parsed = parse_list("您已订购以下业务：1. Daily News (ABC Media Co., Ltd.) RMB2/month", C)
    assert parsed is not None and parsed.complete
    assert relation(parsed.items[0], NEWS, CAT) is Relation.MATCH
    assert parsed.items[0].price_fen == 200


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("(1/2)您已订购以下业务：1、天气早知道（星河科技），3元/月；", "page"),
        ("您已订购以下业务：1、天气早知道（星河科技）；3、手机报（某某）。", "numbers"),
        ("您已订购以下业务（共3项）：1、天气早知道（星河科技）；2、手机报（某某）。", "says 共3项"),
        ("您已订购以下业务：1、天气早知道（星河科技），3元/月；2、掌上笑话（北京某某…", "cut off"),
        ("您已订购以下业务：", "no item"),
    ],
)
def test_lists_that_say_they_are_not_whole(text: str, why: str) -> None:
    parsed = parse_list(text, C)
    assert parsed is not None and not parsed.complete
    assert why in parsed.why_incomplete


def test_a_multipart_list_with_a_missing_part_is_incomplete() -> None:
    """The text of the parts that came reads like a whole list; the message says it is not."""
    at = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    text = "您已订购以下业务：1、天气早知道（星河科技），3元/月。"
    message = IncomingMessage("10086", text, at, at, "pty", parts=3, complete=False)
    parsed = read_list(message, C)
    assert not parsed.complete and "missing part" in parsed.why_incomplete
    assert read_list(IncomingMessage("10086", text, at, at, "pty"), C).complete


def test_none_phrased_otherwise() -> None:
    for text in ("您好，您当前暂无订购任何增值业务。", "尊敬的客户：您未订购任何业务。"):
        parsed = parse_list(text, C)
        assert parsed is not None and parsed.items == () and parsed.complete


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (ListedItem("掌上笑话(包月)", "北京某某信息技术有限公司"), Relation.MATCH),
        (ListedItem("掌上笑话", "另一家公司"), Relation.UNSURE),  # same name, other biller
        (ListedItem("手机报", "上海某某传媒有限公司"), Relation.UNSURE),  # same company core
        (ListedItem("神秘业务", "无名公司", price_fen=500), Relation.UNSURE),  # same price
        (ListedItem("神秘业务", "无名公司", price_fen=800), Relation.OTHER),
        (ListedItem("神秘业务"), Relation.UNSURE),  # nothing to tell it apart
        (ListedItem("天气早知道", "星河科技"), Relation.OTHER),  # another catalogued one
        (ListedItem("每日精选", "", access="10661234"), Relation.MATCH),
    ],
)
def test_relation_fails_closed(item: ListedItem, expected: Relation) -> None:
    assert relation(item, JOKES, CAT) is expected


def test_an_operators_own_item_regex_names_the_items() -> None:
    carrier = CarrierProfile(subscriptions_item=r"(?P<service>[^|]+)\|(?P<sp>[^|;]+)")
    parsed = parse_list("您已订购以下业务：1. 掌上笑话|某某文化;2. 天气早知道|星河科技", carrier)
    assert parsed is not None and parsed.complete
    assert [(i.service, i.sp) for i in parsed.items] == [
        ("掌上笑话", "某某文化"),
        ("天气早知道", "星河科技"),
    ]


def test_numbers_that_are_not_access_numbers() -> None:
    """The carrier's own number and a mobile number in an item are not the SP's access number,
    so they cannot make an item 'positively another service'."""
    parsed = parse_list("您已订购以下业务：1、神秘业务，咨询10086或13912345678", C)
    assert parsed is not None
    (item,) = parsed.items
    assert item.access == ""
    assert relation(item, JOKES, CAT) is Relation.UNSURE

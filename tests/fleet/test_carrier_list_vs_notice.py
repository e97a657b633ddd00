"""The carrier's order notice is never taken for the answer to `0000` or `00000`.

On the real network (and in the simulator) the carrier sends an order notice
(`订购提醒：您已成功订购由{SP}提供的{业务}，10元/月（由中国移动代收费）…`) from a
number under 10086 right after an order; the item regex alone would read it
as a list with the item ("10元/月", "由中国移动代收费"). Here the notice arrives
just before each reply, over a real pty modem.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fakemodem import FakeModem

from dialbot.carrier import CarrierProfile
from dialbot.errors import ConfigError
from dialbot.fleet import CarrierServices, Fleet, FleetSettings, load_inventories
from dialbot.sim.carrier import Account
from dialbot.sim.carrier import Carrier as SimCarrier
from dialbot.sim.phrasing import order_notice
from dialbot.sim.world import Behaviour, Service, Sp

# spec/formats.md §3, verbatim
LIST_REPLY = (
    "尊敬的客户，您已订购以下业务：1、星河笑话（星河科技），5.00元/月；"
    "2、天气早知道（云端信息），3.00元/月。回复序号可退订。【中国移动】"
)
NONE_REPLY = "尊敬的客户，您目前没有订购任何增值业务。【中国移动】"
CANCEL_ALL_REPLY = "尊敬的客户，您已成功退订全部增值业务。【中国移动】"
NOTICE = (
    "订购提醒：您已成功订购由星河科技提供的星河笑话，10元/月（由中国移动代收费），"
    "如有疑问请拨打10086。"
)
FAST = FleetSettings(command_timeout=0.5, backoff_initial=0.1, backoff_max=0.5, check_interval=60)


@pytest.fixture
def fake() -> Iterator[FakeModem]:
    peer = FakeModem()
    yield peer
    peer.close()


@pytest.fixture
def fleet(tmp_path: Path, fake: FakeModem) -> Iterator[Fleet]:
    (tmp_path / "bj.toml").write_text(
        f'[bank]\nname = "bj-01"\n\n[[modem]]\nslot = 1\nport = "{fake.port}"\n',
        encoding="utf-8",
    )
    with Fleet(load_inventories(tmp_path), CarrierProfile(), FAST) as fleet_:
        fleet_.open(timeout=5)
        fleet_.refresh(timeout=5)
        yield fleet_


def notice_first(fake: FakeModem, replies: dict[str, str]) -> list[str]:
    """Answer each command, but let the order notice (10086901) arrive just before."""
    sent: list[str] = []

    def on_submit(destination: str, text: str) -> None:
        sent.append(text)
        fake.deliver("10086901", NOTICE, reference=50 + len(sent))
        fake.deliver("10086977", replies[text], reference=len(sent))

    fake.on_submit = on_submit
    return sent


def test_notice_before_the_list_is_not_the_list(fleet: Fleet, fake: FakeModem) -> None:
    sent = notice_first(fake, {"0000": LIST_REPLY, "00000": CANCEL_ALL_REPLY})
    with fleet.lease(bank="bj-01", slot=1) as lease:
        services = CarrierServices(lease, fleet.carrier, reply_timeout=5)
        listing = services.subscriptions()
        assert listing.evidence.reply_text == LIST_REPLY
        assert [(i.service, i.sp) for i in listing.items] == [
            ("星河笑话", "星河科技"),
            ("天气早知道", "云端信息"),
        ]
        cancel = services.cancel_all()
        assert cancel.evidence.reply_text == CANCEL_ALL_REPLY
        assert cancel.acknowledged and cancel.remaining == ()
    assert sent == ["0000", "00000"]
    kept = []
    while not fleet.unsolicited.empty():
        kept.append(fleet.unsolicited.get_nowait().text)
    assert kept == [NOTICE, NOTICE]  # the notices are kept (as evidence), not swallowed


def test_notice_before_the_none_reply(fleet: Fleet, fake: FakeModem) -> None:
    notice_first(fake, {"0000": NONE_REPLY})
    with fleet.lease(bank="bj-01", slot=1) as lease:
        listing = CarrierServices(lease, fleet.carrier, reply_timeout=5).subscriptions()
    assert listing.items == () and listing.evidence.reply_text == NONE_REPLY


def test_cancel_all_answered_with_the_list_reports_what_remains(
    fleet: Fleet, fake: FakeModem
) -> None:
    """Today's 10086 treats 00000 like 0000: the list it sends is what is still subscribed."""
    notice_first(fake, {"00000": LIST_REPLY})
    with fleet.lease(bank="bj-01", slot=1) as lease:
        cancel = CarrierServices(lease, fleet.carrier, reply_timeout=5).cancel_all()
    assert not cancel.acknowledged
    assert [(i.service, i.sp) for i in cancel.remaining] == [
        ("星河笑话", "星河科技"),
        ("天气早知道", "云端信息"),
    ]


def test_default_profile_tells_the_documented_texts_apart() -> None:
    profile = CarrierProfile()
    assert re.search(profile.subscriptions_reply, LIST_REPLY)
    assert re.search(profile.notices, NOTICE)
    for reply in (LIST_REPLY, NONE_REPLY, CANCEL_ALL_REPLY):
        assert not re.search(profile.notices, reply)
    for other in (NOTICE, NONE_REPLY, CANCEL_ALL_REPLY):
        assert not re.search(profile.subscriptions_reply, other)


def test_new_keys_are_checked_as_regexes() -> None:
    custom = CarrierProfile.from_mapping(
        {"subscriptions_reply": "订购的业务有", "notices": "温馨提示"}, "dialbot.toml"
    )
    assert (custom.subscriptions_reply, custom.notices) == ("订购的业务有", "温馨提示")
    for key in ("subscriptions_reply", "notices"):
        with pytest.raises(ConfigError, match=f"carrier.{key}"):
            CarrierProfile.from_mapping({key: "(unclosed"}, "dialbot.toml")


def test_the_simulators_texts_are_told_apart() -> None:
    """The simulator's documented replies and its notices, read with the default profile."""
    profile = CarrierProfile()
    for billing in ("monthly", "per_use"):
        service = Service("XHXH", "星河笑话", "1065800101", billing, 500, "DG", None, None, None,
                          Behaviour())  # fmt: skip
        text = order_notice(Sp("901001", "星河科技", None, (service,)), service, 500)
        assert re.search(profile.notices, text)
        assert not re.search(profile.subscriptions_reply, text)
    carrier = SimCarrier(profile, FixedClock(), lambda *_: None, lambda *_: None)
    account = Account("13800000001", 1, 10000)
    for reply in (carrier.list_text(account), carrier.cancel_all(account)):
        assert not re.search(profile.notices, reply)
    assert re.search(profile.subscriptions_none, carrier.list_text(account))
    assert not re.search(profile.subscriptions_reply, carrier.help_text())


class FixedClock:
    """The simulator's scheduler, stopped: the carrier's texts need no time to pass."""

    def now(self) -> datetime:
        return datetime(2026, 11, 24, 1, 0, tzinfo=UTC)

    def elapsed(self) -> float:
        return 0.0

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> None:
        raise AssertionError("nothing is scheduled while composing a reply")

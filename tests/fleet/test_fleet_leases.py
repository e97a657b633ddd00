"""Fleet over scripted pty modems: states, leases, the carrier's services."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakemodem import FakeModem

from dialbot.carrier import CarrierProfile
from dialbot.errors import UnsafeInputError
from dialbot.fleet import (
    CarrierServices,
    Fleet,
    FleetSettings,
    NoModemAvailable,
    SimState,
    load_inventories,
)

LIST_REPLY = (
    "尊敬的客户，您已订购以下业务：1、星河笑话（星河科技），5.00元/月；"
    "2、天气早知道（云端信息），3.00元/月。回复序号可退订。【中国移动】"
)
FAST = FleetSettings(command_timeout=0.5, backoff_initial=0.1, backoff_max=0.5, check_interval=60)


@pytest.fixture
def fakes() -> Iterator[list[FakeModem]]:
    peers = [FakeModem(cnum=None), FakeModem(), FakeModem(), FakeModem()]
    peers[1].sim_present = False
    peers[2].hung = True
    yield peers
    for peer in peers:
        peer.close()


def inventory(tmp_path: Path, fakes: list[FakeModem]) -> Path:
    lines = ['[bank]\nname = "bj-01"\nregion = "北京"\n']
    for n, fake in enumerate(fakes, start=1):
        lines.append(f'[[modem]]\nslot = {n}\nport = "{fake.port}"\nmsisdn = "1380000000{n}"\n')
    lines.append('[[modem]]\nslot = 9\nport = "/dev/null-retired"\nretired = true\n')
    (tmp_path / "bj.toml").write_text("\n".join(lines), encoding="utf-8")
    return tmp_path


@pytest.fixture
def fleet(tmp_path: Path, fakes: list[FakeModem]) -> Iterator[Fleet]:
    banks = load_inventories(inventory(tmp_path, fakes))
    with Fleet(banks, CarrierProfile(), FAST) as fleet_:
        fleet_.open(timeout=5)
        fleet_.refresh(timeout=5)
        yield fleet_


def test_states_and_identity(fleet: Fleet) -> None:
    states = [slot.state for slot in fleet.slots]
    assert states == [
        SimState.READY,
        SimState.NO_SIM,
        SimState.OFFLINE,
        SimState.READY,
        SimState.RETIRED,
    ]
    first = fleet.slots[0].identity
    assert first is not None
    assert (first.imsi, first.iccid, first.imei) == (
        "460001234567890",
        "89860000000000000001",
        "867000000000001",
    )
    assert first.msisdn == "13800000001"  # no +CNUM: the inventory's number
    assert fleet.slots[3].identity and fleet.slots[3].identity.msisdn == "13800000001"
    assert fleet.slots[2].error


def test_hung_modem_recovers_when_it_answers(fleet: Fleet, fakes: list[FakeModem]) -> None:
    modem = fleet.slots[2].modem
    assert modem is not None
    fakes[2].hung = False
    from dialbot.modem import LinkState

    assert modem.wait_state(LinkState.READY, 10)
    fleet.refresh(timeout=5)
    assert fleet.slots[2].state == SimState.READY


def test_leases_match_requirements(fleet: Fleet) -> None:
    with pytest.raises(NoModemAvailable):
        fleet.lease(region="上海")
    with pytest.raises(NoModemAvailable):
        fleet.lease(bank="sh-01")
    with fleet.lease(region="北京") as first, fleet.lease(bank="bj-01") as second:
        assert {first.slot.entry.slot, second.slot.entry.slot} == {1, 4}
        with pytest.raises(NoModemAvailable):
            fleet.lease()
    with fleet.lease() as again:
        assert again.slot.state == SimState.READY


def carrier_replies(fake: FakeModem, replies: dict[str, str]) -> list[str]:
    """The fake network: answer texts sent to 10086, and an SP message in between."""
    sent: list[str] = []

    def on_submit(destination: str, text: str) -> None:
        sent.append(text)
        fake.deliver("1065800101", "SP spam in between", reference=99)
        fake.deliver("10086977" if text == "0000" else "10086", replies[text], reference=len(sent))

    fake.on_submit = on_submit
    return sent


def test_carrier_services(fleet: Fleet, fakes: list[FakeModem]) -> None:
    sent = carrier_replies(
        fakes[0],
        {
            "CXYE": "尊敬的客户，您的账户余额为12.34元。【中国移动】",
            "0000": LIST_REPLY,
            "00000": "尊敬的客户，您已成功退订全部增值业务。【中国移动】",
        },
    )
    with fleet.lease(bank="bj-01", slot=1) as lease:
        services = CarrierServices(lease, fleet.carrier, reply_timeout=5)
        balance = services.balance()
        assert (balance.fen, balance.via) == (1234, "sms")
        assert "12.34" in balance.evidence.reply_text and balance.evidence.messages
        listing = services.subscriptions()
        assert [(i.service, i.sp) for i in listing.items] == [
            ("星河笑话", "星河科技"),
            ("天气早知道", "云端信息"),
        ]
        assert listing.evidence.messages[0].parts == 2  # multipart reply, reassembled
        cancel = services.cancel_all()
        assert cancel.acknowledged and cancel.remaining == ()
        with pytest.raises(UnsafeInputError):
            lease.send_sms("10086", "CXYE\r\nAT+CMGD=1,4")
    assert sent == ["CXYE", "0000", "00000"]
    spam = []
    while not fleet.unsolicited.empty():
        spam.append(fleet.unsolicited.get_nowait().text)
    assert spam == ["SP spam in between"] * 3  # kept, not dropped, delivered once each

"""HTTP over AT with the real driver (pyserial, FleetGsmModem) against a virtual bank.

One suite for every backend (after python-can's back-to-back tests): each
case runs on a SIMCom and a Quectel virtual modem; the modems without an
HTTP stack, with a module error or a bearer that drops show the failures
are infrastructure failures (HttpModuleError), never a page.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dialbot.carrier import CarrierProfile
from dialbot.errors import UnsafeInputError
from dialbot.modem import Modem
from dialbot.modem.driver import ModemSettings
from dialbot.modem.http import HttpLimits, HttpModuleError
from dialbot.sim.bank import VirtualBank
from dialbot.sim.worldfile import load_world

WORLD = """
bank:
  name: vb-http
  modems: 6
  balance_fen: 10000
  dialect: simcom
  slots:
    2: {dialect: quectel}
    3: {dialect: huawei}
    4: {dialect: simcom, faults: {http_error: 603}}
    5: {dialect: quectel, faults: {bearer_drop_after: 1}}
    6: {dialect: simcom, faults: {bearer_drop_after: 1}}
sps:
  - code: "901020"
    name: 掌上乐园
    hotline: "4008009000"
    services:
      - {code: ZSWAP, name: 掌上笑话, channel: wap, url: "http://wap.zsly.example/joke",
         billing: monthly, price_fen: 500, subscribe: 订购}
"""
ENTRY = "http://wap.zsly.example/joke"
PROFILE = CarrierProfile()


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualBank]:
    root = tmp_path_factory.mktemp("httpbank")
    (root / "world.yaml").write_text(WORLD, encoding="utf-8")
    with VirtualBank(load_world(root / "world.yaml"), root / "ports") as vbank:
        yield vbank


@pytest.fixture(scope="module")
def modems(bank: VirtualBank) -> Iterator[list[Modem]]:
    started = []
    for port in bank.ports:
        modem = Modem(ModemSettings(port=str(port), command_timeout=3.0, check_interval=60))
        modem.start()
        started.append(modem)
    for modem in started:
        modem.wait_settled(15)
    yield started
    for modem in started:
        modem.close()


def ledger(bank: VirtualBank, slot: int) -> list[str]:
    msisdn = bank.cards[slot - 1].msisdn
    return [e["reason"] for e in bank.call(bank.network.ground_truth)["sims"][msisdn]["ledger"]]


@pytest.mark.parametrize(("slot", "backend"), [(1, "simcom"), (2, "quectel"), (3, "none")])
def test_each_modem_says_whether_it_browses(modems: list[Modem], slot: int, backend: str) -> None:
    assert modems[slot - 1].data_backend() == backend


@pytest.mark.parametrize("slot", [1, 2])
def test_get_page_redirect_and_confirm(bank: VirtualBank, modems: list[Modem], slot: int) -> None:
    modem = modems[slot - 1]
    page = modem.http("GET", ENTRY, PROFILE)
    assert page.status == 200 and not page.truncated
    text = page.body.decode("utf-8")
    assert "资费：5.00元/月" in text and len(page.body) == page.content_length
    assert (
        page.header(
            "content-type",
        )
        == "application/xhtml+xml; charset=utf-8"
    )
    order = modem.http("GET", ENTRY + "/order", PROFILE)
    assert order.status == 302 and order.location and "wap.monternet.example" in order.location
    confirm = modem.http("GET", order.location, PROFILE)
    assert "二次确认" in confirm.body.decode("utf-8")
    assert ledger(bank, slot) == []  # nothing followed, nothing charged


@pytest.mark.parametrize("slot", [1, 2])
def test_post_and_body_limits(modems: list[Modem], slot: int) -> None:
    modem = modems[slot - 1]
    page = modem.http("POST", ENTRY, PROFILE, data="a=1&b=进入")
    assert page.status == 200
    small = modem.http("GET", ENTRY, PROFILE, limits=HttpLimits(max_body=100, chunk=64))
    assert small.truncated and len(small.body) <= 100
    again = modem.http("GET", ENTRY, PROFILE)  # the stream is still in step afterwards
    assert again.status == 200 and not again.truncated


@pytest.mark.parametrize(
    "url",
    [
        'http://wap.zsly.example/a"b',
        "http://wap.zsly.example/a\rAT+CMGS",
        "http://wap.zsly.example/a\nb",
        "http://wap.zsly.example/\x1a",
        "http://wap.zsly.example/\x1b",
        "http://wap.zsly.example/页面",
        "ftp://wap.zsly.example/",
    ],
)
def test_unsafe_urls_refused_before_any_write(modems: list[Modem], url: str) -> None:
    modem = modems[0]
    before = modem.trace.snapshot()
    with pytest.raises(UnsafeInputError):
        modem.http("GET", url, PROFILE)
    with pytest.raises(UnsafeInputError):
        modem.http("POST", ENTRY, PROFILE, data="a=\x1a")
    assert modem.trace.snapshot() == before


def test_modem_without_http_is_an_infrastructure_failure(modems: list[Modem]) -> None:
    with pytest.raises(HttpModuleError, match="no HTTP stack"):
        modems[2].http("GET", ENTRY, PROFILE)


def test_module_error_is_an_infrastructure_failure(modems: list[Modem]) -> None:
    with pytest.raises(HttpModuleError) as failure:
        modems[3].http("GET", ENTRY, PROFILE)
    assert failure.value.code == 603


@pytest.mark.parametrize("slot", [5, 6])
def test_dropped_bearer_is_an_infrastructure_failure(modems: list[Modem], slot: int) -> None:
    modem = modems[slot - 1]
    assert modem.http("GET", ENTRY, PROFILE).status == 200
    with pytest.raises(HttpModuleError):
        modem.http("GET", ENTRY, PROFILE)


def test_sms_still_works_after_http(bank: VirtualBank, modems: list[Modem], tmp_path: Path) -> None:
    modem = modems[0]
    modem.http("GET", ENTRY, PROFILE)
    health = modem.health()
    assert health.sim_ready and health.registered


def test_wap_push_reaches_the_driver_decoded(bank: VirtualBank, modems: list[Modem]) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    modem = modems[2]  # a Huawei: pushes reach modems that cannot browse too
    device = bank.devices[2]
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    bank.call(lambda: device.deliver_wap_push("1065790", ENTRY, "免费笑话，点击进入", now))
    message = modem.unsolicited.get(timeout=10)
    assert message.wap_push is not None and message.wap_push.error is None
    assert (message.wap_push.href, message.wap_push.text) == (ENTRY, "免费笑话，点击进入")
    assert message.parts == 2 and len(message.raw) == 2

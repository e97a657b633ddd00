"""The unmodified python-gsmmodem-new GsmModem against every dialect over real ptys.

One bank serves one modem of each dialect; all are connected at once (the
Wavecom's +CPIN? without OK costs GsmModem its 15 s timeout, paid once).
The network is the echo double, so every expectation is exact.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gsmmodem.modem import GsmModem, ReceivedSms
from gsmmodem.pdu import Concatenation

from dialbot.sim.bank import VirtualBank
from dialbot.sim.dialects import dialect_names
from dialbot.sim.smscodec import split_text

from .netdouble import ECHO_NUMBER, EchoNetwork, card, world

DIALECTS = dialect_names()


class Client:
    """A connected GsmModem plus the messages its callback received."""

    def __init__(self, port: Path) -> None:
        self.inbox: queue.Queue[ReceivedSms] = queue.Queue()
        self.modem = GsmModem(str(port), smsReceivedCallbackFunc=self.inbox.put)

    def receive(self, count: int, timeout: float = 10.0) -> list[ReceivedSms]:
        """Parts come through the callback; any it missed are listed from storage.

        GsmModem reads only the first of several +CMTI lines that arrive together
        (a known driver defect, fixed in dialbot.modem), so a part stranded that
        way is collected with its own listStoredSms().
        """
        got: dict[tuple[int, str], ReceivedSms] = {}
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            try:
                sms = self.inbox.get(timeout=0.3)
                got.setdefault(_key(sms), sms)
            except queue.Empty:
                for sms in self.modem.listStoredSms(delete=True):
                    got.setdefault(_key(sms), sms)
        assert len(got) == count, f"received {len(got)} of {count} parts"
        return list(got.values())


def _key(sms: ReceivedSms) -> tuple[int, str]:
    return (_part_number(sms), sms.text)


def _part_number(sms: ReceivedSms) -> int:
    for ie in getattr(sms, "udh", None) or []:
        if isinstance(ie, Concatenation):
            return int(ie.number)
    return 0


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.02)


def joined(parts: list[ReceivedSms]) -> str:
    """Reassemble concatenated parts by their UDH part number."""
    return "".join(p.text for p in sorted(parts, key=_part_number))


def unhex(text: str) -> str:
    """Text-mode and USSD UCS2 data arrive as hex (27.005 §3.1; DCS 72)."""
    if re.fullmatch(r"(?:[0-9A-F]{4})+", text):
        return bytes.fromhex(text).decode("utf-16-be")
    return text


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualBank]:
    cards = [card(i + 1, name) for i, name in enumerate(DIALECTS)]
    directory = tmp_path_factory.mktemp("bank")
    with VirtualBank(world(*cards), directory, network_factory=EchoNetwork) as bank:
        yield bank


@pytest.fixture(scope="module")
def clients(bank: VirtualBank) -> Iterator[dict[str, Client]]:
    made = {name: Client(port) for name, port in zip(DIALECTS, bank.ports, strict=True)}

    def connect(client: Client) -> None:
        client.modem.connect()
        if client.modem.manufacturer.lower() == "huawei" or "^CURC" in (
            client.modem._commands or []
        ):
            client.modem.write("AT^CURC=0")  # what any Huawei user does first

    with ThreadPoolExecutor(len(made)) as pool:
        list(pool.map(connect, made.values()))
    yield made
    for client in made.values():
        client.modem.close()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_identity(dialect: str, clients: dict[str, Client], bank: VirtualBank) -> None:
    modem = clients[dialect].modem
    sim = bank.cards[DIALECTS.index(dialect)]
    assert modem.imsi == sim.imsi
    assert modem.imei == sim.imei
    assert modem.signalStrength > 0
    assert modem.networkName == "CHINA MOBILE"
    expected = {"huawei": "huawei", "huawei_k3715": "huawei", "simcom": "SIMCOM_Ltd"}
    if dialect in expected:
        assert modem.manufacturer == expected[dialect]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "text",
    [
        "Hello {world} [1] ~ |€| ^_^",
        "中文测试：余额为12.34元",
        "GSM-7 long " + "0123456789" * 30,
        "长短信" * 60,
    ],
    ids=["gsm7", "ucs2", "gsm7-multipart", "ucs2-multipart"],
)
def test_pdu_mode_send_and_receive(dialect: str, text: str, clients: dict[str, Client]) -> None:
    client = clients[dialect]
    client.modem.sendSms(ECHO_NUMBER, text)
    parts = client.receive(len(split_text(text)[1]))
    assert joined(parts) == text
    assert all(p.number == ECHO_NUMBER for p in parts)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_text_mode_send_and_receive(
    dialect: str, clients: dict[str, Client], bank: VirtualBank
) -> None:
    client = clients[dialect]
    modem = client.modem
    modem.smsTextMode = True
    modem.smsEncoding = "GSM"  # a Chinese PDU-mode send left +CSCS at "UCS2"
    try:
        modem.sendSms(ECHO_NUMBER, "Text mode, plain ASCII.")
        assert client.receive(1)[0].text == "Text mode, plain ASCII."
        device = bank.devices[DIALECTS.index(dialect)]
        for text, parts in (("短信中文", 1), ("x" * 200, 2)):
            bank.call(lambda t=text: device.deliver_sms(ECHO_NUMBER, t, time_now(bank)))  # type: ignore[misc]
            got = client.receive(parts)
            assert sorted(unhex(p.text) for p in got) == sorted(split_text(text)[1])
    finally:
        modem.smsTextMode = False


def time_now(bank: VirtualBank):  # noqa: ANN201 - a datetime in the carrier zone
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo("Asia/Shanghai"))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_ussd(dialect: str, clients: dict[str, Client]) -> None:
    modem = clients[dialect].modem
    assert unhex(modem.sendUssd("*100#", responseTimeout=5).message) == "Balance: 12.34 CNY"
    assert (
        unhex(modem.sendUssd("*125#", responseTimeout=5).message)
        == "尊敬的客户，您的账户余额为12.34元。"
    )


@pytest.mark.parametrize("dialect", DIALECTS)
def test_voice_call(dialect: str, clients: dict[str, Client], bank: VirtualBank) -> None:
    modem = clients[dialect].modem
    answered = threading.Event()

    def on_update(call: object) -> None:
        if getattr(call, "answered", False):
            answered.set()

    call = modem.dial("10086", timeout=5, callStatusUpdateCallbackFunc=on_update)
    assert answered.wait(5), "the callee never answered"
    wait_for(lambda: not call.active, timeout=5)  # the far end hangs up after 1 s
    dialled = bank.call(lambda: list(bank.network.dialled))  # type: ignore[attr-defined]
    msisdn = bank.cards[DIALECTS.index(dialect)].msisdn
    assert (msisdn, "10086") in dialled

"""Each defect of python-gsmmodem-new shown on the plain class, then fixed by ours.

`test_plain_*` asserts the defect on the unmodified `GsmModem` (so if a new
library release fixes it, the test says so); `test_fixed_*` asserts the
behaviour the fleet needs on `FleetGsmModem` / `Modem`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fakemodem import FakeModem
from gsmmodem.exceptions import CommandError, TimeoutException
from gsmmodem.modem import GsmModem

from dialbot.modem import FleetGsmModem, IncomingMessage, LinkState, Modem, ModemSettings

LONG_TEXT = (
    "尊敬的客户，您已订购以下业务：1、星河笑话（星河科技），5.00元/月；"
    "2、天气早知道（云端信息），3.00元/月。回复序号可退订。【中国移动】"
)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def fake() -> Iterator[FakeModem]:
    peer = FakeModem()
    yield peer
    peer.close()


def plain(fake: FakeModem, **kw: Any) -> GsmModem:
    gsm = GsmModem(fake.port, 115200, **kw)
    gsm.connect()
    return gsm


def fleet(fake: FakeModem) -> FleetGsmModem:
    gsm = FleetGsmModem(fake.port, command_timeout=2.0)
    gsm.connect()
    return gsm


@pytest.fixture
def driver(fake: FakeModem) -> Iterator[tuple[Modem, list[IncomingMessage]]]:
    got: list[IncomingMessage] = []
    modem = Modem(ModemSettings(fake.port, command_timeout=2.0), unsolicited=got.append)
    modem.start()
    assert modem.wait_settled(10) == LinkState.READY
    yield modem, got
    modem.close()


# 1. reader thread dies on bytes that are not valid UTF-8
def test_plain_reader_dies_on_invalid_utf8(fake: FakeModem) -> None:
    gsm = plain(fake)
    fake.send(b"\r\n\xff\xfe\x80junk\r\n")
    assert wait_for(lambda: not gsm.rxThread.is_alive())
    with pytest.raises(TimeoutException):
        gsm.write("AT+CSQ", timeout=1)


def test_fixed_reader_survives_invalid_utf8(fake: FakeModem) -> None:
    gsm = fleet(fake)
    try:
        fake.send(b"\r\n\xff\xfe\x80\x81\r\n")
        assert wait_for(lambda: any("junk" in line for line in gsm.trace.snapshot()))
        fake.inject["AT+CSQ"] = b"\xff\xfe"  # junk glued to the answer
        assert gsm.signalStrength == 21
        assert gsm.rxThread.is_alive()
    finally:
        gsm.close()


# 2. URCs arriving during a command become part of its response
def test_plain_urc_corrupts_response(fake: FakeModem) -> None:
    gsm = plain(fake)
    try:
        fake.inject["AT+CGMI"] = b"\r\n^RSSI: 17\r\n"
        assert gsm.manufacturer == "^RSSI: 17"
        fake.inject["AT+CSQ"] = b"\r\n^RSSI: 17\r\n"
        with pytest.raises(CommandError):
            gsm.signalStrength  # noqa: B018
    finally:
        gsm.close()


def test_fixed_urc_inside_response(fake: FakeModem) -> None:
    gsm = fleet(fake)
    try:
        fake.inject["AT+CGMI"] = b"\r\n^RSSI: 17\r\n"
        fake.inject["AT+CSQ"] = b'\r\n^RSSI: 17\r\n\r\n+CMTI: "SM",3\r\n'
        assert gsm.manufacturer == "FAKE"
        assert gsm.signalStrength == 21
        fake.inject["AT+CREG?"] = b"\r\n^RSSI: 9\r\n"
        assert gsm.write("AT+CREG?") == ["+CREG: 0,1", "OK"]  # its own +CREG is kept
    finally:
        gsm.close()


# 3. several +CMTI together: only the first message is read
def test_plain_cmti_burst_reads_only_first(fake: FakeModem) -> None:
    got: list[Any] = []
    gsm = plain(fake, smsReceivedCallbackFunc=got.append)
    try:
        for n in range(3):
            fake.store("10086", f"message {n}")
        fake.send(b"".join(b'\r\n+CMTI: "SM",%d\r\n' % i for i in (1, 2, 3)))
        assert wait_for(lambda: len(got) >= 1)
        assert not wait_for(lambda: len(got) >= 2, timeout=1.0)
        assert len(fake.storage) == 2  # stranded in SIM storage
    finally:
        gsm.close()


def test_fixed_cmti_burst_all_delivered_once(
    fake: FakeModem, driver: tuple[Modem, list[IncomingMessage]]
) -> None:
    modem, got = driver
    for n in range(3):
        fake.store("10086", f"message {n}", reference=n)
    fake.send(b"".join(b'\r\n+CMTI: "SM",%d\r\n' % i for i in (1, 2, 3)))
    assert wait_for(lambda: len(got) >= 3)
    assert sorted(m.text for m in got) == ["message 0", "message 1", "message 2"]
    assert wait_for(lambda: not fake.storage)
    modem.sweep()
    assert len(got) == 3  # exactly once


# 4. one byte per system call
def count_reads(gsm: GsmModem, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes per read system call on the modem's port (whatever pyserial method reads)."""
    calls: list[int] = []
    fd = gsm.serial.fd
    real = os.read

    def counting(handle: int, size: int) -> bytes:
        data = real(handle, size)
        if handle == fd and data:
            calls.append(len(data))
        return data

    monkeypatch.setattr(os, "read", counting)
    return calls


def test_plain_reads_one_byte_per_call(fake: FakeModem, monkeypatch: pytest.MonkeyPatch) -> None:
    gsm = plain(fake)
    try:
        calls = count_reads(gsm, monkeypatch)
        fake.handlers["AT+CGMR"] = lambda cmd: ["R" * 400, "OK"]
        gsm.write("AT+CGMR")
        assert sum(calls) >= 400 and max(calls) == 1
    finally:
        gsm.close()


def test_fixed_reads_in_chunks(fake: FakeModem, monkeypatch: pytest.MonkeyPatch) -> None:
    gsm = fleet(fake)
    try:
        calls = count_reads(gsm, monkeypatch)
        fake.handlers["AT+CGMR"] = lambda cmd: ["R" * 400, "OK"]
        assert gsm.write("AT+CGMR") == ["R" * 400, "OK"]
        assert 1 <= len(calls) <= 10 and sum(calls) >= 400
    finally:
        gsm.close()


# 5. concatenated messages are not reassembled
def test_plain_multipart_not_reassembled(fake: FakeModem) -> None:
    got: list[Any] = []
    gsm = plain(fake, smsReceivedCallbackFunc=got.append)
    try:
        indexes = fake.store("10086977", LONG_TEXT)
        assert len(indexes) == 2
        for n, index in enumerate(indexes, start=1):
            fake.send(b'\r\n+CMTI: "SM",%d\r\n' % index)
            assert wait_for(lambda n=n: len(got) >= n)
        assert all(sms.text != LONG_TEXT for sms in got)
        assert "".join(sms.text for sms in got) == LONG_TEXT
    finally:
        gsm.close()


def test_fixed_multipart_reassembled(
    fake: FakeModem, driver: tuple[Modem, list[IncomingMessage]]
) -> None:
    modem, got = driver
    fake.deliver("10086977", LONG_TEXT)
    assert wait_for(lambda: len(got) >= 1)
    assert wait_for(lambda: not fake.storage)
    message = got[0]
    assert (message.text, message.parts, message.complete) == (LONG_TEXT, 2, True)
    assert message.sender == "10086977"
    assert message.sent_at.utcoffset() is not None and message.received_at.tzinfo is not None
    assert len(message.raw) == 2 and len(got) == 1


# 6. ownNumber falls back to phone-book commands that many modems refuse
def test_plain_own_number_uses_phone_book(fake: FakeModem) -> None:
    fake.handlers["AT+CLAC"] = lambda cmd: ["+CLAC: +CSCS,+CMGS", "OK"]
    gsm = plain(fake)
    try:
        with pytest.raises(CommandError):
            gsm.ownNumber  # noqa: B018
        assert "AT+CPBS?" in fake.commands
    finally:
        gsm.close()


def test_fixed_own_number_from_cnum(fake: FakeModem) -> None:
    fake.handlers["AT+CLAC"] = lambda cmd: ["+CLAC: +CSCS,+CMGS", "OK"]
    gsm = fleet(fake)
    try:
        assert gsm.ownNumber == "13800000001"
        fake.cnum = None
        assert gsm.ownNumber is None
        assert not any(c.startswith("AT+CPB") for c in fake.commands)
    finally:
        gsm.close()


def test_sweep_finds_stranded_messages(fake: FakeModem) -> None:
    fake.store("10086", "stored before the driver started")
    got: list[IncomingMessage] = []
    settings = ModemSettings(fake.port, command_timeout=2.0, check_interval=0.2)
    with Modem(settings, unsolicited=got.append) as modem:
        assert modem.wait_settled(10) == LinkState.READY
        assert wait_for(lambda: len(got) == 1)
        fake.store("10086", "stored without any +CMTI")
        assert wait_for(lambda: len(got) == 2)
    assert [m.text for m in got] == ["stored before the driver started", "stored without any +CMTI"]
    assert not fake.storage


def test_concurrent_senders_do_not_interleave(
    fake: FakeModem, driver: tuple[Modem, list[IncomingMessage]]
) -> None:
    modem, _ = driver
    errors: list[BaseException] = []

    def send(n: int) -> None:
        try:
            modem.send_sms("10086", f"CXYE{n}")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert sum(c.startswith("AT+CMGS=") for c in fake.commands) == 4

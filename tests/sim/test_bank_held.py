"""Off the network, on the virtual bank: the SMSC holds SMS and WAP PUSH, then delivers.

A modem goes off the network as a real one does - radio off (AT+CFUN=4) or
out of coverage (the `network_lost` fault) - and the real network holds
what comes for its SIM meanwhile; nothing reaches the port until the modem
is registered again, then every part arrives, indicated by +CMTI.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import serial

from dialbot.sim.bank import VirtualBank
from dialbot.sim.world import Faults

from .netdouble import card, world

PUSH_HREF = "http://wap.sp.example/page"


def command(port: serial.Serial, line: str, timeout: float = 3.0) -> bytes:
    """Send one AT line; the bytes up to its final OK (or the deadline)."""
    port.write(line.encode() + b"\r")
    data = bytearray()
    deadline = time.monotonic() + timeout
    while b"OK\r\n" not in data and b"ERROR" not in data and time.monotonic() < deadline:
        data += port.read(port.in_waiting or 1)
    return bytes(data)


def read_cmti(port: serial.Serial, count: int, timeout: float = 5.0, seen: bytes = b"") -> bytes:
    """Bytes (after `seen`, already read) until `count` +CMTI have arrived, or the deadline."""
    data = bytearray(seen)
    deadline = time.monotonic() + timeout
    while data.count(b"+CMTI:") < count and time.monotonic() < deadline:
        data += port.read(port.in_waiting or 1)
    return bytes(data)


def send_both(bank: VirtualBank, msisdn: str) -> None:
    """From the network: one SMS and one WAP PUSH (an SI in two 8-bit parts) to msisdn."""

    def send() -> None:
        network = bank.network
        network.send(msisdn, "10086", "您的话费余额为12.34元。", 0.0)  # type: ignore[attr-defined]
        account = network.accounts[msisdn]  # type: ignore[attr-defined]
        network.smsc.deliver(account, "wap_push", "10658001", "免费体验", href=PUSH_HREF)  # type: ignore[attr-defined]

    bank.call(send)


def held(bank: VirtualBank, msisdn: str) -> list[str]:
    """What the SMSC holds for msisdn, by kind (ground truth)."""
    return bank.call(lambda: sorted(h["kind"] for h in bank.network.smsc.undelivered(msisdn)))  # type: ignore[attr-defined]


def test_radio_off_holds_sms_and_wap_push_until_radio_on(tmp_path: Path) -> None:
    with VirtualBank(world(card(1), card(2)), tmp_path) as bank:
        msisdn = bank.cards[1].msisdn
        with serial.Serial(str(bank.ports[1]), 115200, timeout=0.2) as port:
            for line in ("ATE0", "AT+CMGF=0", 'AT+CPMS="SM","SM","SM"', "AT+CNMI=2,1,0,0,0"):
                assert b"OK" in command(port, line)
            assert b"OK" in command(port, "AT+CFUN=4")
            assert b"+CREG: 0,0" in command(port, "AT+CREG?")
            send_both(bank, msisdn)
            assert held(bank, msisdn) == ["sms", "wap_push"]
            assert b"+CMTI" not in command(port, "AT")  # nothing reached the modem
            listed = command(port, "AT+CMGL=4")
            assert b"+CMGL" not in listed
            radio_on = command(port, "AT+CFUN=1")
            assert b"OK" in radio_on
            indications = read_cmti(port, 3, seen=radio_on)  # some may follow its OK at once
            assert indications.count(b"+CMTI:") == 3  # the SMS and both parts of the push
            assert held(bank, msisdn) == []
            listed = command(port, "AT+CMGL=4")
            assert listed.count(b"+CMGL:") == 3
            assert b"05040B84" in listed.upper()  # a part addressed to WAP push port 2948


def test_out_of_coverage_holds_until_the_network_is_back(tmp_path: Path) -> None:
    lost = replace(card(2), faults=Faults(network_lost=(0.0, 4.0)))
    with VirtualBank(world(card(1), lost), tmp_path) as bank:
        msisdn = bank.cards[1].msisdn
        with serial.Serial(str(bank.ports[1]), 115200, timeout=0.2) as port:
            for line in ("ATE0", "AT+CMGF=0", 'AT+CPMS="SM","SM","SM"', "AT+CNMI=2,1,0,0,0"):
                assert b"OK" in command(port, line)
            assert b"+CREG: 0,0" in command(port, "AT+CREG?")  # in the 4 s without coverage
            send_both(bank, msisdn)
            assert held(bank, msisdn) == ["sms", "wap_push"]
            indications = read_cmti(port, 3, timeout=10.0)
            assert indications.count(b"+CMTI:") == 3
            assert held(bank, msisdn) == []

"""The AT interpreter of one virtual modem, driven byte by byte (no pty, virtual time)."""

from __future__ import annotations

import pytest
from gsmmodem.pdu import decodeSmsPdu, encodeSmsSubmitPdu

from dialbot.sim.device import Device
from dialbot.sim.world import Faults

from .netdouble import ECHO_NUMBER, EchoNetwork, StepScheduler, card, world


class Rig:
    """A device with its network double, virtual clock and captured output."""

    def __init__(self, dialect: str = "generic", faults: Faults | None = None) -> None:
        self.card = card(1, dialect, faults)
        self.clock = StepScheduler()
        self.net = EchoNetwork(world(self.card), self.clock)
        self.out = bytearray()
        self.dev = Device(self.card, self.net, self.clock, self.out.extend, seed=1)
        self.dev.power_on()
        self.out.clear()

    def at(self, line: str, raw: bytes = b"\r") -> bytes:
        """Send one line; return what came back (after due callbacks ran)."""
        self.out.clear()
        self.dev.feed(line.encode() + raw)
        self.clock.advance(0)
        return bytes(self.out)

    def lines(self, line: str) -> list[str]:
        return [x for x in self.at(line).decode().split("\r\n") if x]


def test_echo_until_ate0_and_again_after_atz() -> None:
    rig = Rig()
    assert rig.at("AT") == b"AT\r\r\nOK\r\n"
    assert rig.at("ATE0") == b"ATE0\r\r\nOK\r\n"
    assert rig.at("AT") == b"\r\nOK\r\n"
    rig.at("ATZ")
    assert rig.at("AT").startswith(b"AT\r")


def test_errors_follow_cmee() -> None:
    rig = Rig(faults=Faults(sim_missing=True))
    rig.at("ATE0")
    assert rig.lines("AT+CIMI") == ["ERROR"]
    rig.at("AT+CMEE=1")
    assert rig.lines("AT+CPIN?") == ["+CME ERROR: 10"]
    rig.at("AT+CMEE=2")
    assert rig.lines("AT+CPIN?") == ["+CME ERROR: SIM not inserted"]
    assert rig.lines("AT+CMGL=4") == ["+CMS ERROR: SIM not inserted"]


def test_unknown_command_per_dialect() -> None:
    assert Rig("huawei").lines("AT+WIND?")[-1] == "COMMAND NOT SUPPORT"
    assert Rig("simcom").lines("AT+CLAC")[-1] == "ERROR"


def test_several_commands_on_one_line() -> None:
    rig = Rig()
    rig.at("ATE0")
    assert rig.lines('AT+CMGF=1;+CSCS="UCS2";+CSCS?') == ['+CSCS: "UCS2"', "OK"]
    assert rig.dev.cmgf == 1


def test_pdu_submit_reaches_the_network_and_esc_aborts() -> None:
    rig = Rig()
    rig.at("ATE0")
    pdu = encodeSmsSubmitPdu("10086", "CXYE")[0]
    assert rig.at(f"AT+CMGS={pdu.tpduLength}") == b"\r\n> "
    reply = rig.at(str(pdu), raw=b"\x1a")
    assert reply.startswith(b"\r\n+CMGS: ") and reply.endswith(b"\r\nOK\r\n")
    assert rig.net.submitted == [(rig.card.msisdn, "10086", "CXYE")]
    rig.at(f"AT+CMGS={pdu.tpduLength}")
    assert rig.at(str(pdu), raw=b"\x1b") == b"\r\nOK\r\n"
    assert len(rig.net.submitted) == 1


def test_bad_pdu_is_refused_with_304() -> None:
    rig = Rig()
    rig.at("ATE0;+CMEE=1")
    rig.at("AT+CMGS=10")
    assert rig.lines("0011ZZ\x1a") == ["+CMS ERROR: 304"]


def test_received_message_is_stored_indicated_read_and_deleted() -> None:
    rig = Rig()
    rig.at('ATE0;+CNMI=2,1,0,0,0;+CPMS="ME","ME","ME"')
    rig.dev.deliver_sms("10086", "余额为12.34元", rig.clock.now())
    assert rig.at("") == b""  # nothing pending after the indication was written
    rig.out.clear()
    rig.dev.deliver_sms("10086", "hello", rig.clock.now())
    assert bytes(rig.out) == b'\r\n+CMTI: "ME",2\r\n'
    head, pdu, ok = rig.lines("AT+CMGR=1")
    assert head.startswith("+CMGR: 0,,") and ok == "OK"
    decoded = decodeSmsPdu(pdu)
    assert decoded["text"] == "余额为12.34元" and decoded["number"] == "10086"
    assert decoded["time"].utcoffset().total_seconds() == 8 * 3600
    assert rig.lines("AT+CMGR=1")[0].startswith("+CMGR: 1,,")  # now read
    rig.at("AT+CMGD=1,0")
    assert rig.lines("AT+CMGL=4")[0].startswith("+CMGL: 2,")
    rig.at("AT+CMGD=1,4")
    assert rig.lines("AT+CMGL=4") == ["OK"]


def test_text_mode_shows_ucs2_as_hex_and_cmt_routes_directly() -> None:
    rig = Rig()
    rig.at("ATE0;+CMGF=1;+CNMI=2,2,0,0,0")
    rig.out.clear()
    rig.dev.deliver_sms("10086", "好", rig.clock.now())
    lines = [x for x in bytes(rig.out).decode().split("\r\n") if x]
    assert lines[0].startswith('+CMT: "10086",,"26/11/24,01:00:00+32"')
    assert lines[1] == "597D"


def test_huawei_noise_until_curc_0() -> None:
    rig = Rig("huawei")
    rig.at("ATE0")
    rig.out.clear()
    rig.clock.advance(20)
    assert b"^" in rig.out
    rig.at("AT^CURC=0")
    rig.out.clear()
    rig.clock.advance(60)
    assert bytes(rig.out) == b""


def test_huawei_ussd_needs_ussdmode_0() -> None:
    rig = Rig("huawei")
    rig.at("ATE0;^CURC=0")
    assert rig.lines('AT+CUSD=1,"*100#",15') == ["ERROR"]
    rig.at("AT^USSDMODE=0")
    assert rig.lines('AT+CUSD=1,"*125#",15')[-1].endswith(",72")


def test_stop_after_commands() -> None:
    rig = Rig(faults=Faults(stop_after_commands=3))
    for _ in range(3):
        assert rig.at("AT").endswith(b"OK\r\n")
    assert rig.at("AT") == b""
    assert rig.at("AT+CSQ") == b""


def test_stop_after_seconds() -> None:
    rig = Rig(faults=Faults(stop_after_s=5))
    assert rig.at("AT").endswith(b"OK\r\n")
    rig.clock.advance(5)
    assert rig.at("AT") == b""


def test_garbage_after_responses_is_not_utf8() -> None:
    rig = Rig(faults=Faults(garbage_rate=1.0))
    reply = rig.at("AT")
    with pytest.raises(UnicodeDecodeError):
        reply.decode("utf-8")
    assert b"OK\r\n" in reply


def test_cms_500_on_send() -> None:
    rig = Rig(faults=Faults(cms_error_rate=1.0))
    rig.at("ATE0;+CMEE=1")
    pdu = encodeSmsSubmitPdu(ECHO_NUMBER, "x")[0]
    rig.at(f"AT+CMGS={pdu.tpduLength}")
    assert rig.lines(str(pdu) + "\x1a") == ["+CMS ERROR: 500"]
    assert rig.net.submitted == []


def test_network_lost_span_and_held_delivery() -> None:
    rig = Rig(faults=Faults(network_lost=(10.0, 5.0)))
    rig.at("ATE0;+CREG=1;+CNMI=2,1,0,0,0")
    assert rig.lines("AT+CREG?") == ["+CREG: 1,1", "OK"]
    rig.clock.advance(11)
    assert rig.lines("AT+CREG?") == ["+CREG: 1,0", "OK"]
    assert rig.lines("AT+CSQ") == ["+CSQ: 99,99", "OK"]
    rig.dev.deliver_sms("10086", "late", rig.clock.now())
    rig.out.clear()
    rig.clock.advance(5)
    assert b"+CREG: 1" in rig.out and b"+CMTI:" in rig.out


def test_radio_off_leaves_the_network_and_pushes_wait() -> None:
    rig = Rig()
    rig.at("ATE0;+CREG=1;+CNMI=2,1,0,0,0")
    assert rig.lines("AT+CFUN=4") == ["OK", "+CREG: 0"]  # OK first, then the change
    assert rig.card.msisdn not in rig.net.handsets  # the network was told: it holds now
    assert rig.lines("AT+CFUN?") == ["+CFUN: 4", "OK"]
    assert rig.lines("AT+CREG?") == ["+CREG: 1,0", "OK"]
    rig.dev.deliver_wap_push("10658001", "http://wap.sp.example/", "体验", rig.clock.now())
    rig.clock.advance(1)
    assert b"+CMTI" not in rig.out  # a handset off the network receives nothing
    rig.at("AT+CFUN=1")
    rig.clock.advance(1)  # both parts of the push (the second 0.1 s after the first)
    assert rig.card.msisdn in rig.net.handsets
    assert b"+CREG: 1" in rig.out and bytes(rig.out).count(b"+CMTI:") == 2


def test_slow_responses_keep_order() -> None:
    rig = Rig(faults=Faults(response_delay_ms=500))
    rig.at("ATE0")
    rig.clock.advance(1)
    rig.out.clear()
    rig.dev.feed(b"AT+CSQ\rAT+CGMI\r")
    assert bytes(rig.out) == b""
    rig.clock.advance(0.5)
    assert b"+CSQ" in rig.out and b"GENERIC" not in rig.out
    rig.clock.advance(0.5)
    assert rig.out.index(b"+CSQ") < rig.out.index(b"GENERIC")


@pytest.mark.parametrize(
    ("dialect", "answered", "ended"),
    [
        ("huawei", "^CONN:1,0", "^CEND:1,"),
        ("wavecom", "OK", "+WIND: 6,1"),
        ("zte", "CONNECT", "HANGUP: 1"),
        ("generic", None, "NO CARRIER"),
    ],
)
def test_call_progress_per_dialect(dialect: str, answered: str | None, ended: str) -> None:
    rig = Rig(dialect)
    rig.at("ATE0")
    rig.at("ATD10086;")
    rig.out.clear()
    rig.clock.advance(0.3)
    assert "+CLCC: 1,0,3," in rig.lines("AT+CLCC")[0]
    rig.clock.advance(1.0)
    if answered:
        assert answered.encode() in rig.out
    assert "+CLCC: 1,0,0," in rig.lines("AT+CLCC")[0]
    rig.out.clear()
    rig.clock.advance(2)
    assert ended.encode() in rig.out
    assert rig.lines("AT+CLCC") == ["OK"]

"""WAP PUSH from stored PDUs: WSP envelope, Service Indication, raw kept when undecodable."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dialbot.modem.inbox import Inbox
from dialbot.modem.wsp import (
    MMS_CONTENT_TYPE,
    SI_CONTENT_TYPE,
    WspError,
    decode_push,
    decode_si,
    encode_push,
    encode_si,
)
from dialbot.sim.smscodec import encode_deliver

SCTS = bytes.fromhex("62111230001023")  # 2026-11-21 03:00:01 +08:00, semi-octets
UDH_PORTS = bytes.fromhex("05040B8423F0")  # 16-bit ports: destination 2948, source 9200


def deliver_pdu(sender: str, user_data: bytes) -> str:
    """An SMS-DELIVER with UDHI, 8-bit data, byte for byte (3GPP TS 23.040 §9.2.2.1)."""
    digits = sender + ("F" if len(sender) % 2 else "")
    address = bytes([len(sender), 0x81]) + bytes.fromhex(
        "".join(digits[i + 1] + digits[i] for i in range(0, len(digits), 2))
    )
    tpdu = bytes([0x44]) + address + bytes([0x00, 0x04]) + SCTS
    tpdu += bytes([len(user_data)]) + user_data
    return ("00" + tpdu.hex()).upper()  # "00": no SMSC address in the stored PDU


def mms_notification() -> bytes:
    """The m-notification.ind of spec/channels.md §4, after its WSP header."""
    location = b"http://mmsc.monternet.com/mms/0123456789ab"
    return (
        bytes([0x8C, 0x82])  # X-Mms-Message-Type: m-notification-ind
        + bytes([0x98])
        + b"T0123456789abc"
        + b"\x00"  # Transaction-Id
        + bytes([0x8D, 0x90])  # MMS-Version 1.0
        + bytes([0x89, 0x17, 0x80])
        + b"13800138000/TYPE=PLMN\x00"  # From (address-present)
        + bytes([0x8A, 0x80])  # Message-Class: personal
        + bytes([0x8E, 0x02, 0x74, 0x00])  # Message-Size: 29696
        + bytes([0x88, 0x05, 0x81, 0x03, 0x01, 0x19, 0x40])  # Expiry: relative 72000 s
        + bytes([0x83])
        + location
        + b"\x00"  # X-Mms-Content-Location
    )


def test_real_two_part_mms_notification_decodes() -> None:
    wsp = (
        bytes([0x01, 0x06, 0x22])
        + b"application/vnd.wap.mms-message\x00"
        + bytes([0xAF, 0x84])
        + mms_notification()
    )
    half = len(wsp) // 2
    parts = []
    for number, chunk in ((1, wsp[:half]), (2, wsp[half:])):
        udh = bytes([0x08, 0x04, 0x9F, 0x8E, 0x02, number]) + UDH_PORTS
        parts.append(deliver_pdu("10658000", bytes([len(udh)]) + udh + chunk))
    inbox = Inbox("ttyTEST")
    assert inbox.add_pdu(parts[1]) == []
    (message,) = inbox.add_pdu(parts[0])
    push = message.wap_push
    assert push is not None and push.error is None
    assert push.content_type == MMS_CONTENT_TYPE
    assert push.headers == (("X-Wap-Application-Id", "4"),)  # x-wap-application:mms.ua
    body = bytes.fromhex(push.body_hex)
    assert body[:2] == b"\x8c\x82" and b"http://mmsc.monternet.com/mms/0123456789ab" in body
    assert message.parts == 2 and message.raw == tuple(parts[n] for n in (0, 1))
    assert decode_push(wsp).tid == 1


def test_service_indication_push_decodes_href_and_text() -> None:
    si = encode_si("http://wap.zsly.example/joke", "免费笑话，点击进入", si_id="ZSWAP-1")
    assert decode_si(si).href == "http://wap.zsly.example/joke"
    wsp = encode_push(0x2E, si)
    udh = UDH_PORTS
    pdu = deliver_pdu("1065800", bytes([len(udh)]) + udh + wsp)
    (message,) = Inbox("ttyTEST").add_pdu(pdu)
    push = message.wap_push
    assert push is not None and push.error is None and push.content_type == SI_CONTENT_TYPE
    assert (push.href, push.text, push.si_id) == (
        "http://wap.zsly.example/joke",
        "免费笑话，点击进入",
        "ZSWAP-1",
    )
    assert "免费笑话" in message.text and "http://wap.zsly.example/joke" in message.text


def test_undecodable_push_is_kept_raw() -> None:
    garbage = bytes([0x01, 0x42, 0x99, 0x00])
    pdu = deliver_pdu("1065800", bytes([len(UDH_PORTS)]) + UDH_PORTS + garbage)
    (message,) = Inbox("ttyTEST").add_pdu(pdu)
    assert message.wap_push is not None and message.wap_push.error
    assert message.raw == (pdu,) and message.wap_push.body_hex == garbage.hex()


def test_incomplete_push_is_evidence_too() -> None:
    wsp = encode_push(0x2E, encode_si("http://wap.a.example/", "x"))
    udh = bytes([0x00, 0x03, 0x07, 0x02, 0x01]) + UDH_PORTS
    inbox = Inbox("ttyTEST", concat_timeout=0.0)
    assert inbox.add_pdu(deliver_pdu("1065800", bytes([len(udh)]) + udh + wsp)) == []
    (message,) = inbox.expire(force=True)
    assert message.wap_push is not None and message.wap_push.error == "parts missing"
    assert not message.complete


@pytest.mark.parametrize(
    "data",
    [b"", b"\x01", b"\x01\x40\x00", b"\x01\x06\x10\xae", b"\x01\x06\x05\x20abc"],
)
def test_malformed_wsp_raises_wsp_error(data: bytes) -> None:
    with pytest.raises(WspError):
        decode_push(data)


def test_plain_sms_is_not_a_push() -> None:
    (part,) = encode_deliver("10086", "hello", datetime.now(UTC), "+8613800100500", 1)
    (message,) = Inbox("ttyTEST").add_pdu(part.pdu)
    assert message.wap_push is None and message.text == "hello"

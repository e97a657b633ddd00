"""MMS notification and retrieve PDUs: the captured vector of spec/channels.md §4 byte for
byte, generated notifications round trip through the simulator's encoder, precise errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_wap_push import UDH_PORTS, deliver_pdu, mms_notification

from dialbot.modem.inbox import Inbox
from dialbot.modem.mms import (
    MmsError,
    MmsNotification,
    MmsPart,
    decode_mms_push,
    decode_notification,
    decode_retrieve,
    encode_mms_push,
    encode_notification,
    encode_retrieve,
)
from dialbot.modem.wsp import MMS_CONTENT_TYPE

CAPTURED = MmsNotification(
    transaction_id="T0123456789abc",
    version="1.0",
    message_class="personal",
    size=29696,
    content_location="http://mmsc.monternet.com/mms/0123456789ab",
    expiry_s=72000,
    sender="13800138000/TYPE=PLMN",
)


def captured_parts() -> list[str]:
    """The two SMS of the captured notification, split as the capture is."""
    wsp = bytes([0x01, 0x06, 0x22]) + b"application/vnd.wap.mms-message\x00"
    wsp += bytes([0xAF, 0x84]) + mms_notification()
    half = len(wsp) // 2
    parts = []
    for number, chunk in ((1, wsp[:half]), (2, wsp[half:])):
        udh = bytes([0x08, 0x04, 0x9F, 0x8E, 0x02, number]) + UDH_PORTS
        parts.append(deliver_pdu("10658000", bytes([len(udh)]) + udh + chunk))
    return parts


def test_captured_notification_decodes_every_field() -> None:
    assert decode_notification(mms_notification()) == CAPTURED


def test_captured_notification_through_the_inbox() -> None:
    inbox = Inbox("ttyTEST")
    first, second = captured_parts()
    assert inbox.add_pdu(first) == []
    (message,) = inbox.add_pdu(second)
    push = message.wap_push
    assert push is not None and push.content_type == MMS_CONTENT_TYPE
    assert decode_notification(bytes.fromhex(push.body_hex)) == CAPTURED


def test_encoder_reproduces_the_capture_byte_for_byte() -> None:
    assert encode_notification(CAPTURED) == mms_notification()
    wsp = bytes([0x01, 0x06, 0x22]) + b"application/vnd.wap.mms-message\x00\xaf\x84"
    assert encode_mms_push(CAPTURED) == wsp + mms_notification()
    assert decode_mms_push(encode_mms_push(CAPTURED)) == CAPTURED


def test_absolute_expiry_and_inserted_address() -> None:
    at = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    n = MmsNotification("x1", "1.2", "advertisement", 5, "http://m.example/a", expiry_at=at)
    body = encode_notification(n)
    assert bytes([0x88, 0x06, 0x80, 0x04]) in body  # value-length 6, absolute, 4-octet date
    assert bytes([0x89, 0x01, 0x81]) in body  # From: insert-address token
    assert decode_notification(body) == n


_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40)


@settings(max_examples=80, deadline=None)
@given(
    tid=_text,
    version=st.sampled_from(["1.0", "1.1", "1.2", "1.3"]),
    cls=st.sampled_from(["personal", "advertisement", "informational", "auto"]),
    size=st.integers(0, 2**40),
    location=_text.map(lambda s: "http://mmsc.example/" + s.replace(" ", "")),
    expiry=st.one_of(
        st.integers(0, 2**31).map(lambda s: (None, s)),
        st.integers(0, 2**32 - 1).map(lambda s: (datetime.fromtimestamp(s, UTC), None)),
    ),
    sender=st.one_of(
        st.none(), _text, st.text(min_size=1, max_size=20).filter(lambda s: "\0" not in s)
    ),
    subject=st.one_of(st.none(), st.text(max_size=30).filter(lambda s: "\0" not in s)),
)
def test_generated_notifications_round_trip(
    tid: str,
    version: str,
    cls: str,
    size: int,
    location: str,
    expiry: tuple[datetime | None, int | None],
    sender: str | None,
    subject: str | None,
) -> None:
    n = MmsNotification(tid, version, cls, size, location, expiry[0], expiry[1], sender, subject)
    assert decode_mms_push(encode_mms_push(n)) == n


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "empty MMS PDU"),
        (bytes([0x98]) + b"x\x00", "does not start with X-Mms-Message-Type"),
        (bytes([0x8C, 0x84, 0x98]) + b"x\x00", "m-retrieve-conf, not m-notification-ind"),
        (mms_notification()[:-1], "X-Mms-Content-Location at offset"),
        (mms_notification().replace(b"\x8e\x02\x74\x00", b"\x8e\x28\x74\x00"), "long-integer length 40"),
        (mms_notification().replace(b"\x88\x05\x81", b"\x88\x05\x85"), "unknown expiry token 0x85"),
        (mms_notification().replace(b"\x8a\x80", b""), "without X-Mms-Message-Class"),
        (mms_notification() + b"\x05", "0x05 is not an MMS field code"),
    ],
)  # fmt: skip
def test_malformed_notifications_say_what_and_where(body: bytes, error: str) -> None:
    with pytest.raises(MmsError, match=error):
        decode_notification(body)


def test_a_push_of_another_type_is_not_a_notification() -> None:
    with pytest.raises(MmsError, match="not application/vnd.wap.mms-message"):
        decode_mms_push(bytes([0x01, 0x06, 0x01, 0xAE]) + b"\x02\x05\x6a\x00")


def test_retrieve_conf_parts_round_trip_and_empty_content() -> None:
    at = datetime(2026, 11, 29, tzinfo=UTC)
    text = "彩信杂志第1期".encode()
    body = encode_retrieve("t1", "1065800121", "彩信杂志", [MmsPart("text/plain", text)], at)
    content = decode_retrieve(body)
    assert content.subject == "彩信杂志" and content.transaction_id == "t1"
    assert content.content_type == "application/vnd.wap.multipart.mixed"
    assert content.parts == (MmsPart("text/plain", text),) and content.payload_size == len(text)
    assert decode_retrieve(encode_retrieve("t2", "1", "s", [], at)).payload_size == 0
    with pytest.raises(MmsError, match="multipart entry 1 of 1"):
        decode_retrieve(body[:-3])
    with pytest.raises(MmsError, match="not an m-retrieve-conf"):
        decode_retrieve(mms_notification())

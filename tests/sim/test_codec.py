"""The SMS codec against python-gsmmodem-new's PDU functions and real-world PDUs."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from gsmmodem.pdu import Concatenation, decodeSmsPdu, encodeSmsSubmitPdu

from dialbot.sim.smscodec import (
    Concat,
    SmsCodecError,
    decode_submit,
    encode_deliver,
    encode_deliver_part,
    split_text,
)

WHEN = datetime(2026, 11, 24, 1, 13, 7, tzinfo=ZoneInfo("Asia/Shanghai"))
TEXTS = [
    "CXYE",
    "Extension table: {}[]~|^€\\",
    "尊敬的客户，您的账户余额为12.34元。【中国移动】",
    "long GSM-7 " + "abcdefghij" * 40,
    "长的中文短信" * 30,
]


@pytest.mark.parametrize("text", TEXTS)
def test_their_submit_decodes_with_ours(text: str) -> None:
    pdus = encodeSmsSubmitPdu("10658001", text, reference=9)
    decoded = [decode_submit(str(p), p.tpduLength) for p in pdus]
    assert {d.destination for d in decoded} == {"10658001"}
    assert "".join(d.text for d in decoded) == text
    if len(pdus) > 1:
        assert [d.concat.number for d in decoded if d.concat] == list(range(1, len(pdus) + 1))


@pytest.mark.parametrize("text", TEXTS)
def test_our_deliver_decodes_with_theirs(text: str) -> None:
    parts = encode_deliver("10086", text, WHEN, "+8613800100500", reference=42)
    decoded = [decodeSmsPdu(p.pdu) for p in parts]
    assert "".join(d["text"] for d in decoded) == text
    for part, d in zip(parts, decoded, strict=True):
        assert d["type"] == "SMS-DELIVER" and d["number"] == "10086"
        assert d["smsc"] == "+8613800100500" and d["tpdu_length"] == part.tpdu_length
        assert d["time"] == WHEN  # SCTS carries +08:00
        if len(parts) > 1:
            (ie,) = [ie for ie in d["udh"] if isinstance(ie, Concatenation)]
            assert (ie.reference, ie.parts) == (42, len(parts))


def test_single_part_limits() -> None:
    assert len(split_text("a" * 160)[1]) == 1
    assert len(split_text("a" * 161)[1]) == 2
    assert len(split_text("中" * 70)[1]) == 1
    assert len(split_text("中" * 71)[1]) == 2


def test_surrogate_pairs_survive_a_split() -> None:
    text = "😀" * 40
    parts = split_text(text)[1]
    assert "".join(parts) == text and all(len(p.encode("utf-16-be")) <= 134 for p in parts)


def test_wrong_length_and_garbage_are_refused() -> None:
    pdu = encodeSmsSubmitPdu("10086", "CXYE")[0]
    with pytest.raises(SmsCodecError):
        decode_submit(str(pdu), pdu.tpduLength + 1)
    with pytest.raises(SmsCodecError):
        decode_submit("00110")
    with pytest.raises(SmsCodecError):
        decode_submit("zz")


def _user_data(pdu: bytes) -> bytes:
    """TP-UDL and TP-UD of an SMS-DELIVER (everything after the SCTS)."""
    i = pdu[0] + 2  # SMSC field, first octet
    i += 2 + (pdu[i] + 1) // 2  # originating address
    return pdu[i + 2 + 7 :]  # PID, DCS, SCTS


def test_encoder_reproduces_real_world_user_data(corpus: Path) -> None:
    rows = [json.loads(line) for line in (corpus / "deliver-pdus.jsonl").read_text().splitlines()]
    assert rows
    for row in rows:
        real = decodeSmsPdu(row["pdu"])
        concat = Concat(**row["concat"]) if row.get("concat") else None
        ours = encode_deliver_part(
            row["sender"], row["text"], real["time"], "+8613800100500", concat
        )
        assert _user_data(bytes.fromhex(ours.pdu)) == _user_data(bytes.fromhex(row["pdu"])), row[
            "text"
        ]
        assert decodeSmsPdu(ours.pdu)["text"] == row["text"]

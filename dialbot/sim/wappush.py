"""WAP PUSH as the network delivers it: SI in a WSP push, in concatenated 8-bit SMS.

An SP's push gateway sends a Service Indication (`href` + text) to a SIM;
the SMSC carries it as SMS-DELIVER parts with 8-bit data and a user-data
header addressing WAP port 2948 (source 9200) plus a 16-bit concatenation
reference, as real pushes are (spec/channels.md §4). The WSP and WBXML
encoding is `dialbot.modem.wsp`'s, so the driver's decoder is checked
against the same definitions a real capture follows (tests build one byte
for byte as well).
"""

from __future__ import annotations

from datetime import datetime

from gsmmodem import pdu as gp

from dialbot.modem.wsp import WAP_PUSH_PORT, WAP_PUSH_SOURCE_PORT, encode_push, encode_si
from dialbot.sim.smscodec import Concat, DeliverPart, SmsCodecError

DATA_8BIT = 0x04
MAX_UD = 140


def push_parts(
    sender: str,
    href: str,
    text: str,
    sent_at: datetime,
    smsc: str,
    reference: int,
    min_parts: int = 2,
) -> list[DeliverPart]:
    """The SMS-DELIVER parts of one SI push (at least `min_parts`, as pushes usually span two)."""
    payload = encode_push(0x2E, encode_si(href, text, si_id=f"{reference}"))
    return wsp_parts(sender, payload, sent_at, smsc, reference, min_parts)


def wsp_parts(
    sender: str,
    payload: bytes,
    sent_at: datetime,
    smsc: str,
    reference: int,
    min_parts: int = 2,
) -> list[DeliverPart]:
    """Any WSP push payload (an SI, an MMS notification) as SMS-DELIVER parts to port 2948."""
    if sent_at.tzinfo is None:
        raise SmsCodecError("SCTS needs a timezone-aware time")
    ports = bytes([0x05, 0x04]) + WAP_PUSH_PORT.to_bytes(2, "big")
    ports += WAP_PUSH_SOURCE_PORT.to_bytes(2, "big")
    room = MAX_UD - 1 - len(ports) - 6
    count = max(min_parts, -(-len(payload) // room))
    size = -(-len(payload) // count)
    chunks = [payload[i : i + size] for i in range(0, len(payload), size)]
    ref16 = reference & 0xFFFF
    parts = []
    for number, chunk in enumerate(chunks, start=1):
        concat = bytes([0x08, 0x04, ref16 >> 8, ref16 & 0xFF, len(chunks), number])
        udh = concat + ports
        user_data = bytes([len(udh)]) + udh + chunk
        smsc_field = gp._encodeAddressField(smsc, smscField=True) if smsc else bytearray([0])
        tpdu = bytearray([0x44])  # SMS-DELIVER, TP-MMS, UDHI
        tpdu += gp._encodeAddressField(sender)
        tpdu += bytes([0x00, DATA_8BIT])
        tpdu += gp._encodeTimestamp(sent_at)
        tpdu += bytes([len(user_data)]) + user_data
        pdu = bytes(smsc_field) + bytes(tpdu)
        concat_info = Concat(ref16 & 0xFF, len(chunks), number)
        parts.append(
            DeliverPart(pdu.hex().upper(), len(tpdu), chunk.hex().upper(), DATA_8BIT, concat_info)
        )
    return parts

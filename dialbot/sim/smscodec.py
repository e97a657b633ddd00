"""SMS PDUs as the virtual network sees them (3GPP TS 23.040 / 23.038).

A virtual modem must decode the SMS-SUBMIT PDUs a client sends and encode
the SMS-DELIVER PDUs it stores, exactly as a real network would, so that the
real driver's own PDU code cannot tell the difference. The bit-level work is
python-gsmmodem-new's (`gsmmodem.pdu`); this module adds what it lacks: a
DELIVER encoder, text splitting for UCS2 beyond the basic plane, concatenation
bookkeeping and clear errors for malformed input.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gsmmodem import pdu as gp
from gsmmodem.exceptions import EncodingError

GSM7 = 0x00
UCS2 = 0x08
GSM7_SINGLE = 160  # septets in one message
GSM7_PART = 153  # septets per part after a 6-octet concatenation header
UCS2_SINGLE = 70  # UTF-16 code units in one message
UCS2_PART = 67


class SmsCodecError(ValueError):
    """A PDU the network cannot accept (the modem answers +CMS ERROR: 304)."""


@dataclass(frozen=True)
class Concat:
    """Concatenation header: which part of which long message this is."""

    reference: int
    parts: int
    number: int


@dataclass(frozen=True)
class Submit:
    """A decoded SMS-SUBMIT (one PDU; a long text arrives as several)."""

    destination: str
    text: str
    reference: int
    concat: Concat | None
    status_report: bool


@dataclass(frozen=True)
class DeliverPart:
    """One SMS-DELIVER PDU plus what text mode needs to show the same part."""

    pdu: str  # hex, upper case, with the SMSC field
    tpdu_length: int  # what +CMGR/+CMGL/+CMT report as <length>
    text: str  # this part's text
    dcs: int  # GSM7 or UCS2
    concat: Concat | None


def is_gsm7(text: str) -> bool:
    """True when the text fits the GSM-7 default alphabet (with its extension table)."""
    try:
        gp.encodeGsm7(text)
    except ValueError:
        return False
    return True


def ucs2_bytes(text: str) -> bytes:
    """UCS2 as networks send it: UTF-16BE (surrogate pairs beyond the basic plane)."""
    if all(ord(ch) <= 0xFFFF for ch in text):
        return bytes(gp.encodeUcs2(text))
    return text.encode("utf-16-be")


def ucs2_text(data: bytes) -> str:
    """Inverse of `ucs2_bytes`; unpaired surrogates become U+FFFD rather than failing."""
    return data.decode("utf-16-be", errors="replace")


def split_text(text: str) -> tuple[int, list[str]]:
    """The alphabet and the parts a network would use for this text."""
    if is_gsm7(text):
        if len(gp.encodeGsm7(text)) <= GSM7_SINGLE:
            return GSM7, [text]
        return GSM7, list(gp.divideTextGsm7(text))
    if len(ucs2_bytes(text)) <= 2 * UCS2_SINGLE:
        return UCS2, [text]
    return UCS2, _split_ucs2(text)


def _split_ucs2(text: str) -> list[str]:
    """Parts of at most 67 UTF-16 units, never splitting a surrogate pair."""
    parts: list[str] = []
    current: list[str] = []
    units = 0
    for ch in text:
        width = 2 if ord(ch) > 0xFFFF else 1
        if units + width > UCS2_PART:
            parts.append("".join(current))
            current, units = [], 0
        current.append(ch)
        units += width
    if current:
        parts.append("".join(current))
    return parts


def encode_deliver(
    sender: str, text: str, sent_at: datetime, smsc: str, reference: int = 0
) -> list[DeliverPart]:
    """SMS-DELIVER PDUs for a text, concatenated (8-bit reference) when it is long.

    `sent_at` must be timezone-aware: the SCTS carries its UTC offset, so the
    carrier's zone reaches the client unchanged.
    """
    dcs, texts = split_text(text)
    total = len(texts)
    return [
        encode_deliver_part(
            sender, part, sent_at, smsc, Concat(reference & 0xFF, total, n) if total > 1 else None
        )
        for n, part in enumerate(texts, start=1)
    ]


def encode_deliver_part(
    sender: str, text: str, sent_at: datetime, smsc: str, concat: Concat | None
) -> DeliverPart:
    """One SMS-DELIVER PDU; `text` must already fit one part (see `split_text`)."""
    if sent_at.tzinfo is None:
        raise SmsCodecError("SCTS needs a timezone-aware time")
    dcs = GSM7 if is_gsm7(text) else UCS2
    smsc_field = gp._encodeAddressField(smsc, smscField=True) if smsc else bytearray([0])
    tpdu = bytearray([0x44 if concat else 0x04])  # SMS-DELIVER, TP-MMS; UDHI when concatenated
    tpdu += gp._encodeAddressField(sender)
    tpdu += bytes([0x00, dcs])  # TP-PID, TP-DCS
    tpdu += gp._encodeTimestamp(sent_at)
    tpdu += _user_data(text, dcs, concat)
    pdu = bytes(smsc_field) + bytes(tpdu)
    return DeliverPart(pdu.hex().upper(), len(tpdu), text, dcs, concat)


def _user_data(text: str, dcs: int, concat: Concat | None) -> bytes:
    """TP-UDL followed by TP-UD (header, fill bits, payload)."""
    udh = b""
    if concat is not None:
        udh = bytes(
            gp.Concatenation(0x00, 3, [concat.reference, concat.parts, concat.number]).encode()
        )
    if dcs == GSM7:
        septets = gp.encodeGsm7(text)
        if not udh:
            return bytes([len(septets)]) + bytes(gp.packSeptets(septets))
        header = bytes([len(udh)]) + udh
        shift = (len(header) * 8) % 7  # gsmmodem's convention for the fill bits
        body = bytes(gp.packSeptets(septets, padBits=shift))
        udl = len(septets) + (len(header) * 8 + 6) // 7
        return bytes([udl]) + header + body
    payload = ucs2_bytes(text)
    header = bytes([len(udh)]) + udh if udh else b""
    return bytes([len(header) + len(payload)]) + header + payload


def decode_submit(pdu_hex: str, tpdu_length: int | None = None) -> Submit:
    """Decode an SMS-SUBMIT sent with AT+CMGS; `tpdu_length` is checked when given."""
    try:
        raw = bytes.fromhex(pdu_hex.strip())
    except ValueError as exc:
        raise SmsCodecError(f"PDU is not hex: {exc}") from exc
    try:
        decoded = gp.decodeSmsPdu(raw.hex())
    except (EncodingError, StopIteration, IndexError, ValueError, KeyError) as exc:
        raise SmsCodecError(f"undecodable PDU: {exc!r}") from exc
    if decoded.get("type") != "SMS-SUBMIT":
        raise SmsCodecError(f"expected SMS-SUBMIT, got {decoded.get('type')}")
    if tpdu_length is not None and decoded["tpdu_length"] != tpdu_length:
        raise SmsCodecError(f"length {tpdu_length} does not match TPDU of {decoded['tpdu_length']}")
    destination = decoded.get("number")
    if not destination:
        raise SmsCodecError("SMS-SUBMIT without destination")
    text = decoded.get("text", "")
    if _dcs_alphabet(raw) == UCS2:
        # gsmmodem decodes UTF-16 unit by unit; re-pair surrogates.
        text = text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "replace")
    concat = None
    for ie in decoded.get("udh", []):
        if isinstance(ie, gp.Concatenation):
            concat = Concat(ie.reference, ie.parts, ie.number)
    first_octet = raw[raw[0] + 1]
    return Submit(destination, text, decoded["reference"], concat, bool(first_octet & 0x20))


def _dcs_alphabet(raw: bytes) -> int:
    """The alphabet of a SUBMIT's TP-DCS (gsmmodem only reports it indirectly)."""
    i = raw[0] + 1  # skip SMSC
    i += 2  # first octet, TP-MR
    i += 2 + (raw[i] + 1) // 2  # destination address
    dcs = raw[i + 1]
    if dcs & 0xC0 == 0:
        return dcs & 0x0C
    return GSM7


def scts_text(when: datetime) -> str:
    """Text-mode timestamp "yy/MM/dd,hh:mm:ss±zz" (zone in quarter hours)."""
    offset = when.utcoffset()
    quarters = int(offset.total_seconds() // 900) if offset is not None else 0
    sign = "+" if quarters >= 0 else "-"
    return when.strftime("%y/%m/%d,%H:%M:%S") + f"{sign}{abs(quarters):02d}"


def text_mode_body(part: DeliverPart, charset: str) -> str:
    """A part's data as text mode shows it (27.005 §3.1: UCS2 data as hex)."""
    if part.dcs == UCS2 or charset == "UCS2":
        return ucs2_bytes(part.text).hex().upper()
    return part.text

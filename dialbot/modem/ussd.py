"""USSD answers as modems really print them.

Depending on make and mode the text of a +CUSD line is plain text, UCS2 as
hex (DCS 72 on Huawei E3276, Quectel) or packed GSM-7 as hex (Huawei E160);
and some modems omit the DCS or the quotes. The library handles none of
this (it returns the hex, or fails on a line without DCS).
"""

from __future__ import annotations

import re
import string

from gsmmodem.pdu import decodeGsm7, unpackSeptets

CUSD = re.compile(r'\+CUSD:\s*(\d)(?:\s*,\s*"?(.*?)"?(?:\s*,\s*(\d+))?)?\s*$', re.DOTALL)
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_PRINTABLE = set(string.printable)


def _is_ucs2_dcs(dcs: int) -> bool:
    if dcs == 0x11:  # UCS2 preceded by language
        return True
    group = dcs >> 4
    return group in (4, 5, 6, 7, 9) and (dcs >> 2) & 3 == 2


def _readable(text: str) -> bool:
    return bool(text) and all(c in _PRINTABLE or ord(c) > 0x7F for c in text) and "\x00" not in text


_UCS2_HIGH = {0x00, 0x04, 0x05, 0x06, 0x20, 0x30, 0xFF, *range(0x4E, 0xA0)}


def _ucs2(raw: bytes, strict: bool = False) -> str | None:
    if len(raw) % 2:
        return None
    if strict and any(high not in _UCS2_HIGH for high in raw[0::2]):
        return None  # not the scripts a carrier writes in: probably not UCS2
    return raw.decode("utf-16-be", errors="replace").split("\x00", 1)[0]


def _ucs2_guess(raw: bytes) -> str | None:
    return _ucs2(raw, strict=True)


def _gsm7(raw: bytes) -> str | None:
    if len(raw) < 4:
        return None
    try:
        return str(decodeGsm7(unpackSeptets(bytearray(raw)))).rstrip("\r\n@")
    except (ValueError, IndexError, KeyError):
        return None


def decode_ussd_text(text: str, dcs: int | None) -> str:
    """The human-readable text of a +CUSD answer; the DCS decides first, readability second."""
    if not _HEX.fullmatch(text) or text.isdigit():
        return text  # plain text (digits alone are an answer, not hex)
    raw = bytes.fromhex(text)
    if dcs is not None and _is_ucs2_dcs(dcs):
        return _ucs2(raw) or text
    for decode in (_gsm7, _ucs2_guess) if dcs is not None else (_ucs2_guess, _gsm7):
        decoded = decode(raw)
        if decoded and _readable(decoded) and decoded.isprintable():
            return decoded
    return text


def parse_cusd(lines: list[str]) -> tuple[bool, str | None]:
    """(session still open, decoded text) from one or more +CUSD lines."""
    joined = "\r\n".join(line for line in lines if line)
    session_open, message = False, None
    for chunk in re.split(r"(?=\+CUSD:)", joined):
        match = CUSD.match(chunk.strip())
        if not match:
            continue
        status = int(match.group(1))
        dcs = int(match.group(3)) if match.group(3) else None
        if status == 2 and message is not None:
            continue  # a trailing "session released" line
        session_open = status == 1
        if match.group(2) is not None:
            message = decode_ussd_text(match.group(2), dcs)
    return session_open, message

"""Incoming messages: decoded from stored PDUs, reassembled, timestamped, de-duplicated.

The library hands out one object per stored PDU; a carrier's subscription
list or an SP's prompt often spans several. Parts are collected here by
(sender, reference, count) and delivered as one message once complete, or
as an incomplete one when the missing parts never come (never stranded).
A storage slot read but not yet deleted is remembered with its PDU, so a
slot read twice (a failed delete) is not delivered twice; once the delete
succeeds it is forgotten, so two identical messages an SP really sent
twice are both delivered (a double message is evidence).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from gsmmodem.exceptions import EncodingError
from gsmmodem.pdu import Concatenation, PortAddress, decodeSmsPdu

from dialbot.modem.wsp import (
    SI_CONTENT_TYPE,
    WAP_PUSH_PORT,
    WspError,
    decode_push,
    decode_si,
)

DEFAULT_TZ = ZoneInfo("Asia/Shanghai")
_CMGL = re.compile(r"^\+CMGL:\s*(\d+),\s*(\d+),")


@dataclass(frozen=True)
class IncomingMessage:
    """One received message as a subscriber would read it, with its raw PDUs as evidence."""

    sender: str
    text: str
    sent_at: datetime
    received_at: datetime
    port: str
    parts: int = 1
    complete: bool = True
    raw: tuple[str, ...] = ()
    wap_push: WapPushInfo | None = None  # set when the message is a WAP PUSH (port 2948)


@dataclass(frozen=True)
class WapPushInfo:
    """A push as decoded; `error` says why not when it could not be (raw PDUs stay)."""

    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    href: str | None = None
    text: str = ""
    si_id: str | None = None
    body_hex: str = ""
    error: str | None = None


def decode_wap_push(payload: bytes) -> WapPushInfo:
    """WSP envelope, and the SI inside when it is one; never raises."""
    try:
        push = decode_push(payload)
    except WspError as exc:
        return WapPushInfo(body_hex=payload.hex(), error=f"WSP: {exc}")
    info = WapPushInfo(push.content_type, push.headers, body_hex=push.body.hex())
    if push.content_type != SI_CONTENT_TYPE:
        return info
    try:
        si = decode_si(push.body)
    except WspError as exc:
        return WapPushInfo(
            push.content_type, push.headers, body_hex=push.body.hex(), error=f"SI: {exc}"
        )
    return WapPushInfo(push.content_type, push.headers, si.href, si.text, si.si_id, push.body.hex())


def push_text(info: WapPushInfo) -> str:
    """What a handset would show for a push (the SI text and link), for text-based rules."""
    if info.error is not None or info.content_type != SI_CONTENT_TYPE:
        return f"[WAP PUSH {info.content_type or 'undecodable'}]"
    return " ".join(part for part in (info.text, info.href or "") if part)


@dataclass
class _Pending:
    sender: str
    total: int
    first_seen: float
    sent_at: datetime
    parts: dict[int, tuple[str, str]] = field(default_factory=dict)  # number -> (text, pdu)
    wap: bool = False  # addressed to the WAP push port: text holds the raw octets


def parse_cmgl(lines: Iterable[str]) -> list[tuple[int, str]]:
    """(storage index, PDU hex) pairs from an AT+CMGL answer in PDU mode."""
    result: list[tuple[int, str]] = []
    index: int | None = None
    for line in lines:
        match = _CMGL.match(line)
        if match:
            index = int(match.group(1))
        elif index is not None:
            result.append((index, line.strip()))
            index = None
    return result


class Inbox:
    """Turns stored PDUs into whole messages, each exactly once."""

    def __init__(self, port: str, tz: ZoneInfo = DEFAULT_TZ, concat_timeout: float = 120.0) -> None:
        self.port = port
        self.tz = tz
        self.concat_timeout = concat_timeout
        self._pending: dict[tuple[str, int, int], _Pending] = {}
        self._undeleted: dict[tuple[str, int], str] = {}
        self.undecodable: list[str] = []

    def deleted(self, slot: tuple[str, int]) -> None:
        """The storage slot was deleted: a new PDU there is a new message."""
        self._undeleted.pop(slot, None)

    def add_pdu(self, pdu: str, slot: tuple[str, int] | None = None) -> list[IncomingMessage]:
        """Feed one stored PDU; returns the messages it completes (usually 0 or 1)."""
        if slot is not None:
            if self._undeleted.get(slot) == pdu:
                return []  # read before, its delete failed
            self._undeleted[slot] = pdu
        try:
            decoded = decodeSmsPdu(pdu)
        except (EncodingError, StopIteration, ValueError, KeyError, IndexError):
            self.undecodable.append(pdu)
            return []
        if decoded.get("type") != "SMS-DELIVER":
            return []
        now = datetime.now(self.tz)
        sender = str(decoded.get("number") or "")
        text = str(decoded.get("text") or "")
        sent = decoded.get("time")
        sent_at = sent.astimezone(self.tz) if isinstance(sent, datetime) else now
        udh = decoded.get("udh", [])
        concat = next((ie for ie in udh if isinstance(ie, Concatenation)), None)
        ports = next((ie for ie in udh if isinstance(ie, PortAddress)), None)
        wap = ports is not None and int(ports.destination) == WAP_PUSH_PORT
        if concat is None or concat.parts <= 1:
            pending = _Pending(sender, 1, time.monotonic(), sent_at, {1: (text, pdu)}, wap)
            return [self._join(pending, now, complete=True)]
        key = (sender, int(concat.reference), int(concat.parts))
        pending = self._pending.setdefault(
            key, _Pending(sender, int(concat.parts), time.monotonic(), sent_at, wap=wap)
        )
        pending.parts[int(concat.number)] = (text, pdu)
        if len(pending.parts) < pending.total:
            return []
        del self._pending[key]
        return [self._join(pending, now, complete=True)]

    def expire(self, force: bool = False) -> list[IncomingMessage]:
        """Deliver what is left of multipart messages whose missing parts never came."""
        now_mono = time.monotonic()
        out: list[IncomingMessage] = []
        for key, pending in list(self._pending.items()):
            if force or now_mono - pending.first_seen >= self.concat_timeout:
                del self._pending[key]
                out.append(self._join(pending, datetime.now(self.tz), complete=False))
        return out

    def _join(self, pending: _Pending, now: datetime, complete: bool) -> IncomingMessage:
        numbers = sorted(pending.parts)
        text = "".join(pending.parts[n][0] for n in numbers)
        push = None
        if pending.wap:
            # 8-bit user data comes from the library one character per octet
            push = decode_wap_push(text.encode("latin-1", errors="replace"))
            if not complete:
                push = WapPushInfo(body_hex=push.body_hex, error="parts missing")
            text = push_text(push)
        return IncomingMessage(
            sender=pending.sender,
            text=text,
            sent_at=pending.sent_at,
            received_at=now,
            port=self.port,
            parts=pending.total,
            complete=complete,
            raw=tuple(pending.parts[n][1] for n in numbers),
            wap_push=push,
        )

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
from gsmmodem.pdu import Concatenation, decodeSmsPdu

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


@dataclass
class _Pending:
    sender: str
    total: int
    first_seen: float
    sent_at: datetime
    parts: dict[int, tuple[str, str]] = field(default_factory=dict)  # number -> (text, pdu)


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
        concat = next((ie for ie in decoded.get("udh", []) if isinstance(ie, Concatenation)), None)
        if concat is None or concat.parts <= 1:
            return [IncomingMessage(sender, text, sent_at, now, self.port, raw=(pdu,))]
        key = (sender, int(concat.reference), int(concat.parts))
        pending = self._pending.setdefault(
            key, _Pending(sender, int(concat.parts), time.monotonic(), sent_at)
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
        return IncomingMessage(
            sender=pending.sender,
            text="".join(pending.parts[n][0] for n in numbers),
            sent_at=pending.sent_at,
            received_at=now,
            port=self.port,
            parts=pending.total,
            complete=complete,
            raw=tuple(pending.parts[n][1] for n in numbers),
        )

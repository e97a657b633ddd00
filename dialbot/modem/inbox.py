"""Incoming messages: stored PDUs decoded, reassembled and timestamped.

The driver reads each PDU from the modem's storage, hands it to its
`dialbot.modem.store.PduStore` (which commits it) and only then deletes it
from the modem: read → store → delete, as SMS daemons do. What the store
accepted as new is fed here; a carrier's subscription list or an SP's prompt
often spans several PDUs, so parts are collected by (sender, reference,
count) and delivered as one message once complete, or as an incomplete one
when the missing parts never come (never stranded). A PDU that cannot be
decoded, or is not a message to the SIM (a status report, a saved
SMS-SUBMIT), is delivered too, with its `problem`: it is evidence, kept raw.

Every delivered message names the store receipts of its PDUs, so whoever
records it as evidence marks them recorded in the same transaction.
"""

from __future__ import annotations

import hashlib
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
_CMGL = re.compile(r"^\+CMGL:\s*(\d+)\s*(?:,|$)")  # index first; the rest varies by modem
# A message read more than this long after the network stamped it was read late (a lost
# +CMTI, a periodic sweep): its order among events is the network's time, not the host's.
# Below it the host's read time stands (it is on the same clock as the probe's actions;
# the network clock may be off by a few seconds and has whole seconds only).
LATE_READ_S = 10.0
# A time stamp further back than this is taken for a wrong network clock, not a late read.
IMPLAUSIBLE_S = 7 * 24 * 3600.0
_DECODE_ERRORS = (EncodingError, StopIteration, ValueError, KeyError, IndexError, TypeError)


@dataclass(frozen=True)
class StoredPdu:
    """One PDU as read from the modem's storage: what is committed before it is deleted.

    `scts` is the network's service-centre time stamp with its own UTC offset (None when
    the PDU has none or cannot be decoded); `read_at` the host's time of reading.
    """

    port: str
    memory: str
    index: int
    pdu: str
    read_at: datetime
    kind: str = "SMS-DELIVER"  # the PDU type, or "undecodable"
    sender: str | None = None
    text: str | None = None
    scts: datetime | None = None
    concat: tuple[int, int, int] | None = None  # (reference, parts, number)
    problem: str | None = None
    wap: bool = False  # addressed to the WAP push port (2948): `text` holds the raw octets

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.pdu.strip().upper().encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True)
class IncomingMessage:
    """One received message as a subscriber would read it, with its raw PDUs as evidence.

    `problem` says why it is not an ordinary message (undecodable PDU, status report...);
    `receipts` are the store's ids of its PDUs; `scts` the network's time stamp.
    """

    sender: str
    text: str
    sent_at: datetime
    received_at: datetime
    port: str
    parts: int = 1
    complete: bool = True
    raw: tuple[str, ...] = ()
    scts: datetime | None = None
    receipts: tuple[int, ...] = ()
    slots: tuple[str, ...] = ()  # "SM:3": where each PDU was stored
    problem: str | None = None
    recovered: bool = False  # stored by an earlier process, delivered after a restart
    wap_push: WapPushInfo | None = None  # set when the message is a WAP PUSH (port 2948)

    @property
    def network_at(self) -> datetime:
        """When the message happened, as far as ordering goes (see `event_time`)."""
        return event_time(self.received_at, self.scts)


def event_time(read_at: datetime, scts: datetime | None) -> datetime:
    """The network's time for a message read late, else the host's read time.

    Both are aware, so comparing them is absolute whatever zone each carries.
    A network stamp later than the read (a clock ahead), or absurdly old (a
    wrong clock), is not believed.
    """
    if scts is None:
        return read_at
    late = (read_at - scts).total_seconds()
    return scts if LATE_READ_S < late <= IMPLAUSIBLE_S else read_at


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
    first: StoredPdu
    parts: dict[int, tuple[StoredPdu, int | None]] = field(default_factory=dict)


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


def read_pdu(port: str, memory: str, index: int, pdu: str, read_at: datetime) -> StoredPdu:
    """Decode what can be decoded of one stored PDU; never raises (bad input is evidence)."""
    base = StoredPdu(port, memory, index, pdu, read_at)
    try:
        decoded = decodeSmsPdu(pdu)
    except _DECODE_ERRORS as exc:
        why = f"undecodable PDU ({type(exc).__name__}: {str(exc)[:80]})"
        return StoredPdu(port, memory, index, pdu, read_at, "undecodable", problem=why)
    kind = str(decoded.get("type") or "unknown")
    sent = decoded.get("time")
    scts = sent if isinstance(sent, datetime) and sent.tzinfo is not None else None
    udh = decoded.get("udh") or []
    concat = next((ie for ie in udh if isinstance(ie, Concatenation)), None)
    parts = (int(concat.reference), int(concat.parts), int(concat.number)) if concat else None
    ports = next((ie for ie in udh if isinstance(ie, PortAddress)), None)
    wap = ports is not None and int(ports.destination) == WAP_PUSH_PORT
    return StoredPdu(
        base.port,
        memory,
        index,
        pdu,
        read_at,
        kind,
        sender=str(decoded.get("number") or ""),
        text=str(decoded.get("text") or ""),
        scts=scts,
        concat=parts if parts and parts[1] > 1 else None,
        problem=None if kind == "SMS-DELIVER" else f"not a received message ({kind})",
        wap=wap,
    )


class Inbox:
    """Turns stored PDUs (each fed once, by the store's say) into whole messages."""

    def __init__(self, port: str, tz: ZoneInfo = DEFAULT_TZ, concat_timeout: float = 120.0) -> None:
        self.port = port
        self.tz = tz
        self.concat_timeout = concat_timeout
        self._pending: dict[tuple[str, int, int], _Pending] = {}

    def add_pdu(self, pdu: str, slot: tuple[str, int] | None = None) -> list[IncomingMessage]:
        """Feed one PDU read now (no store): the messages it completes."""
        memory, index = slot or ("", 0)
        return self.add(read_pdu(self.port, memory, index, pdu, datetime.now(self.tz)))

    def add(
        self, item: StoredPdu, receipt: int | None = None, recovered: bool = False
    ) -> list[IncomingMessage]:
        """Feed one stored PDU; returns the messages it completes (usually 0 or 1)."""
        if item.problem is not None or item.concat is None:
            return [self._single(item, receipt, recovered)]
        reference, total, number = item.concat
        key = (item.sender or "", reference, total)
        age = max(0.0, (datetime.now(self.tz) - item.read_at).total_seconds())
        pending = self._pending.setdefault(
            key, _Pending(item.sender or "", total, time.monotonic() - age, item)
        )
        pending.parts[number] = (item, receipt)
        if len(pending.parts) < pending.total:
            return []
        del self._pending[key]
        return [self._join(pending, datetime.now(self.tz), True, recovered)]

    def expire(self, force: bool = False) -> list[IncomingMessage]:
        """Deliver what is left of multipart messages whose missing parts never came."""
        now_mono = time.monotonic()
        out: list[IncomingMessage] = []
        for key, pending in list(self._pending.items()):
            if force or now_mono - pending.first_seen >= self.concat_timeout:
                del self._pending[key]
                out.append(self._join(pending, datetime.now(self.tz), False, False))
        return out

    def _single(self, item: StoredPdu, receipt: int | None, recovered: bool) -> IncomingMessage:
        text, push = _wap_text([item], complete=True)
        return IncomingMessage(
            sender=item.sender or "",
            text=text,
            sent_at=(item.scts or item.read_at).astimezone(self.tz),
            received_at=item.read_at.astimezone(self.tz),
            port=self.port,
            raw=(item.pdu,),
            scts=item.scts,
            receipts=() if receipt is None else (receipt,),
            slots=(f"{item.memory}:{item.index}",),
            problem=item.problem,
            recovered=recovered,
            wap_push=push,
        )

    def _join(
        self, pending: _Pending, now: datetime, complete: bool, recovered: bool
    ) -> IncomingMessage:
        numbers = sorted(pending.parts)
        items = [pending.parts[n][0] for n in numbers]
        first = pending.first
        stamps = [i.scts for i in items if i.scts is not None]
        text, push = _wap_text(items, complete)
        return IncomingMessage(
            sender=pending.sender,
            text=text,
            sent_at=(min(stamps) if stamps else first.read_at).astimezone(self.tz),
            received_at=max(i.read_at for i in items).astimezone(self.tz) if complete else now,
            port=self.port,
            parts=pending.total,
            complete=complete,
            raw=tuple(i.pdu for i in items),
            scts=min(stamps) if stamps else None,
            receipts=tuple(r for n in numbers if (r := pending.parts[n][1]) is not None),
            slots=tuple(f"{i.memory}:{i.index}" for i in items),
            recovered=recovered,
            wap_push=push,
        )


def _wap_text(items: list[StoredPdu], complete: bool) -> tuple[str, WapPushInfo | None]:
    """The text a handset shows for these parts, and the push decoded when they are one."""
    text = "".join(i.text or "" for i in items)
    if not any(i.wap and i.problem is None for i in items):
        return text, None
    # 8-bit user data comes from the library one character per octet
    push = decode_wap_push(text.encode("latin-1", errors="replace"))
    if not complete:
        push = WapPushInfo(body_hex=push.body_hex, error="parts missing")
    return push_text(push), push

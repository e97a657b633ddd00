"""MMS PDUs (OMA MMS Encapsulation 1.x): the notification a SIM receives, the content it fetches.

An MMS subscription's content is announced by an `m-notification.ind` in a
WSP push to port 2948 (`application/vnd.wap.mms-message`, see
`dialbot.modem.wsp`); the handset then fetches its `X-Mms-Content-Location`
from the MMSC through the WAP proxy and gets an `m-retrieve.conf` (headers,
then a WSP multipart body). `decode_notification` reads the fields a probe
needs (message type, transaction id, version, from, class, size, expiry as an
absolute date or a relative offset, content location); `decode_retrieve`
reads the content's parts, so that "delivered nothing" can be told from a
real message. Malformed input raises `MmsError` naming the field and the
octet offset; the caller keeps the raw PDUs as evidence whatever happens.

The encoders are the simulator's (its MMSC and the SPs' push gateways) and
the tests' (a round trip over generated notifications): one definition of
the format for both sides, checked against a real capture byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from dialbot.modem.wsp import (
    MMS_CONTENT_TYPE,
    PUSH_PDU,
    WspError,
    _content_type,
    _Reader,
    decode_push,
)

# X-Mms-* field codes (OMA-TS-MMS-ENC §7.4, Table 25), without the high bit.
BCC, CC, CONTENT_LOCATION, CONTENT_TYPE, DATE = 0x01, 0x02, 0x03, 0x04, 0x05
DELIVERY_REPORT, DELIVERY_TIME, EXPIRY, FROM = 0x06, 0x07, 0x08, 0x09
MESSAGE_CLASS, MESSAGE_ID, MESSAGE_TYPE, MMS_VERSION, MESSAGE_SIZE = 0x0A, 0x0B, 0x0C, 0x0D, 0x0E
PRIORITY, READ_REPORT, REPORT_ALLOWED, RESPONSE_STATUS, RESPONSE_TEXT = 0x0F, 0x10, 0x11, 0x12, 0x13
SENDER_VISIBILITY, STATUS, SUBJECT, TO, TRANSACTION_ID = 0x14, 0x15, 0x16, 0x17, 0x18

M_NOTIFICATION_IND = 0x82
M_RETRIEVE_CONF = 0x84
MESSAGE_TYPES = {0x80: "m-send-req", 0x81: "m-send-conf", 0x82: "m-notification-ind",
                 0x83: "m-notifyresp-ind", 0x84: "m-retrieve-conf", 0x85: "m-acknowledge-ind",
                 0x86: "m-delivery-ind"}  # fmt: skip
MESSAGE_CLASSES = {0x80: "personal", 0x81: "advertisement", 0x82: "informational", 0x83: "auto"}
CLASS_CODES = {name: code for code, name in MESSAGE_CLASSES.items()}
ADDRESS_PRESENT, INSERT_ADDRESS = 0x80, 0x81
ABSOLUTE, RELATIVE = 0x80, 0x81
CHARSET_UTF8 = 0x6A
# WAP-230 Table 40 codes an MMS body uses beyond those `wsp.CONTENT_TYPES` names.
_MORE_TYPES = {"0x1D": "image/gif", "0x1E": "image/jpeg", "0x20": "image/png",
               "0x23": "application/vnd.wap.multipart.mixed",
               "0x26": "application/vnd.wap.multipart.alternative",
               "0x33": "application/vnd.wap.multipart.related"}  # fmt: skip
# Fields whose value is an Encoded-string-value (text, or value-length + charset + text).
_ENCODED_STRINGS = {BCC, CC, RESPONSE_TEXT, SUBJECT, TO}
_TEXT_FIELDS = {CONTENT_LOCATION, MESSAGE_ID, TRANSACTION_ID}
_NAMES = {CONTENT_LOCATION: "X-Mms-Content-Location", EXPIRY: "X-Mms-Expiry", FROM: "From",
          MESSAGE_CLASS: "X-Mms-Message-Class", MESSAGE_SIZE: "X-Mms-Message-Size",
          MESSAGE_TYPE: "X-Mms-Message-Type", MMS_VERSION: "X-Mms-MMS-Version",
          SUBJECT: "Subject", TRANSACTION_ID: "X-Mms-Transaction-Id", DATE: "Date"}  # fmt: skip
_REQUIRED = (TRANSACTION_ID, MMS_VERSION, MESSAGE_CLASS, MESSAGE_SIZE, EXPIRY, CONTENT_LOCATION)


class MmsError(WspError):
    """The bytes are not a well-formed MMS PDU of the expected type (the message says where)."""


@dataclass(frozen=True)
class MmsNotification:
    """The fields of one m-notification.ind.

    Expiry is either absolute (`expiry_at`) or relative (`expiry_s`, seconds
    from receipt), as the PDU says; exactly one of them is set.
    """

    transaction_id: str
    version: str
    message_class: str
    size: int
    content_location: str
    expiry_at: datetime | None = None
    expiry_s: int | None = None
    sender: str | None = None  # None: the MMSC inserts the address (insert-address token)
    subject: str | None = None

    def fields(self) -> dict[str, object]:
        """JSON-able fields for the evidence log."""
        return {
            "transaction_id": self.transaction_id,
            "version": self.version,
            "message_class": self.message_class,
            "size": self.size,
            "content_location": self.content_location,
            "expiry_at": self.expiry_at.isoformat() if self.expiry_at else None,
            "expiry_s": self.expiry_s,
            "from": self.sender,
            "subject": self.subject,
        }


@dataclass(frozen=True)
class MmsPart:
    content_type: str
    data: bytes


@dataclass(frozen=True)
class MmsContent:
    """What an m-retrieve.conf carries: its subject and its parts."""

    transaction_id: str | None
    subject: str | None
    content_type: str
    parts: tuple[MmsPart, ...]

    @property
    def payload_size(self) -> int:
        return sum(len(p.data) for p in self.parts)


# --- decoding --------------------------------------------------------------------------------


def _fail(r: _Reader, field: int, why: str) -> MmsError:
    return MmsError(f"{_NAMES.get(field, f'field 0x{field | 0x80:02X}')} at offset {r.pos}: {why}")


def _long_integer(r: _Reader, field: int) -> int:
    length = r.byte()
    if not 1 <= length <= 30:
        raise _fail(r, field, f"long-integer length {length} not in 1..30")
    return int.from_bytes(r.take(length), "big")


def _integer(r: _Reader, field: int) -> int:
    """Integer-value: a short integer (one octet >= 0x80) or a long integer."""
    if r.peek() >= 0x80:
        return r.byte() & 0x7F
    return _long_integer(r, field)


def _encoded_string(r: _Reader) -> str:
    if r.peek() >= 0x20 or r.peek() == 0:  # a text string (0x00 alone: the empty one)
        return r.cstring()
    length = r.value_length()
    inner = _Reader(r.data, r.pos, r.pos + length)
    if inner.end > r.end:
        raise WspError("encoded string beyond the data")
    r.pos += length
    charset = _integer(inner, 0)
    raw = inner.data[inner.pos : inner.end].rstrip(b"\x00").removeprefix(b"\x7f")
    return raw.decode("utf-8" if charset in (0, CHARSET_UTF8) else "latin-1", errors="replace")


def _skip_value(r: _Reader) -> None:
    """An unknown field's value, by the generic WSP rules (short, text, or length-prefixed)."""
    first = r.peek()
    if first >= 0x80:
        r.byte()
    elif first >= 0x20:
        r.cstring()
    else:
        r.take(r.value_length())


def _version(r: _Reader) -> str:
    value = r.byte()
    if value < 0x80:
        raise _fail(r, MMS_VERSION, f"not a short-integer version: 0x{value:02X}")
    major, minor = (value >> 4) & 0x07, value & 0x0F
    return f"{major}.{minor if minor != 0x0F else 0}"


def _from(r: _Reader) -> str | None:
    length = r.value_length()
    inner = _Reader(r.data, r.pos, r.pos + length)
    if inner.end > r.end:
        raise _fail(r, FROM, "value length beyond the data")
    r.pos += length
    token = inner.byte()
    if token == INSERT_ADDRESS:
        return None
    if token != ADDRESS_PRESENT:
        raise _fail(inner, FROM, f"unknown address token 0x{token:02X}")
    return _encoded_string(inner)


def _expiry(r: _Reader) -> tuple[datetime | None, int | None]:
    length = r.value_length()
    inner = _Reader(r.data, r.pos, r.pos + length)
    if inner.end > r.end:
        raise _fail(r, EXPIRY, "value length beyond the data")
    r.pos += length
    token = inner.byte()
    value = _long_integer(inner, EXPIRY)
    if token == ABSOLUTE:
        return datetime.fromtimestamp(value, UTC), None
    if token == RELATIVE:
        return None, value
    raise _fail(inner, EXPIRY, f"unknown expiry token 0x{token:02X}")


def _ctype(r: _Reader) -> str:
    value = _content_type(r)
    return _MORE_TYPES.get(value, value)


def _message_class(r: _Reader) -> str:
    first = r.peek()
    if first >= 0x80:
        r.byte()
        if first not in MESSAGE_CLASSES:
            raise _fail(r, MESSAGE_CLASS, f"unknown class 0x{first:02X}")
        return MESSAGE_CLASSES[first]
    if first < 0x20:
        raise _fail(r, MESSAGE_CLASS, f"not a class token: 0x{first:02X}")
    return r.cstring()


def _headers(r: _Reader, stop_at_content_type: bool) -> dict[int, object]:
    """The PDU's header fields, in order, until the end (or the Content-Type, which is last)."""
    out: dict[int, object] = {}
    while r.pos < r.end:
        first = r.byte()
        if first < 0x80:
            raise MmsError(f"offset {r.pos - 1}: 0x{first:02X} is not an MMS field code")
        field = first & 0x7F
        if not out and field != MESSAGE_TYPE:
            raise MmsError(f"offset {r.pos - 1}: the PDU does not start with X-Mms-Message-Type")
        try:
            if field == MESSAGE_TYPE:
                out[field] = r.byte()
            elif field in _TEXT_FIELDS:
                out[field] = r.cstring()
            elif field in _ENCODED_STRINGS:
                out[field] = _encoded_string(r)
            elif field == MMS_VERSION:
                out[field] = _version(r)
            elif field == FROM:
                out[field] = _from(r)
            elif field == EXPIRY:
                out[field] = _expiry(r)
            elif field == MESSAGE_CLASS:
                out[field] = _message_class(r)
            elif field in (MESSAGE_SIZE, DATE):
                out[field] = _long_integer(r, field)
            elif field == CONTENT_TYPE and stop_at_content_type:
                out[field] = _ctype(r)
                return out
            else:
                _skip_value(r)
        except MmsError:
            raise
        except WspError as exc:
            raise _fail(r, field, str(exc)) from None
    return out


def decode_notification(body: bytes) -> MmsNotification:
    """The m-notification.ind after a push's WSP header (the push body)."""
    r = _Reader(body)
    headers = _headers(r, stop_at_content_type=False)
    kind = headers.get(MESSAGE_TYPE)
    if kind is None:
        raise MmsError("empty MMS PDU")
    if kind != M_NOTIFICATION_IND:
        name = MESSAGE_TYPES.get(int(str(kind)), f"0x{kind:02X}")
        raise MmsError(f"X-Mms-Message-Type is {name}, not m-notification-ind")
    missing = [_NAMES[f] for f in _REQUIRED if f not in headers]
    if missing:
        raise MmsError(f"m-notification-ind without {', '.join(missing)}")
    expiry = headers[EXPIRY]
    assert isinstance(expiry, tuple)
    expiry_at: datetime | None = expiry[0]
    expiry_s: int | None = expiry[1]
    sender = headers.get(FROM)
    subject = headers.get(SUBJECT)
    return MmsNotification(
        transaction_id=str(headers[TRANSACTION_ID]),
        version=str(headers[MMS_VERSION]),
        message_class=str(headers[MESSAGE_CLASS]),
        size=int(str(headers[MESSAGE_SIZE])),
        content_location=str(headers[CONTENT_LOCATION]),
        expiry_at=expiry_at,
        expiry_s=expiry_s,
        sender=None if sender is None else str(sender),
        subject=None if subject is None else str(subject),
    )


def decode_mms_push(data: bytes) -> MmsNotification:
    """A whole WSP push (the reassembled SMS payload) carrying an m-notification.ind."""
    push = decode_push(data)
    if push.content_type != MMS_CONTENT_TYPE:
        raise MmsError(f"push content type is {push.content_type}, not {MMS_CONTENT_TYPE}")
    return decode_notification(push.body)


def decode_retrieve(body: bytes) -> MmsContent:
    """An m-retrieve.conf: its headers, then its multipart body (WAP-230 §8.5)."""
    r = _Reader(body)
    headers = _headers(r, stop_at_content_type=True)
    if headers.get(MESSAGE_TYPE) != M_RETRIEVE_CONF:
        raise MmsError("not an m-retrieve-conf")
    if CONTENT_TYPE not in headers:
        raise MmsError("m-retrieve-conf without Content-Type")
    content_type = str(headers[CONTENT_TYPE])
    parts: list[MmsPart] = []
    if content_type.startswith("application/vnd.wap.multipart"):
        count = r.uintvar()
        for n in range(count):
            try:
                head_len, data_len = r.uintvar(), r.uintvar()
                head = _Reader(r.data, r.pos, r.pos + head_len)
                r.take(head_len)
                parts.append(MmsPart(_ctype(head), r.take(data_len)))
            except WspError as exc:
                raise MmsError(f"multipart entry {n + 1} of {count}: {exc}") from None
    else:
        parts.append(MmsPart(content_type, body[r.pos :]))
    subject, tid = headers.get(SUBJECT), headers.get(TRANSACTION_ID)
    return MmsContent(
        None if tid is None else str(tid),
        None if subject is None else str(subject),
        content_type,
        tuple(parts),
    )


# --- encoding (the simulator's MMSC and SP push gateways, and tests) ---------------------------


def _text(value: str) -> bytes:
    raw = value.encode("utf-8")
    if b"\x00" in raw:
        raise MmsError("text value contains NUL")
    return (b"\x7f" + raw if raw[:1] and raw[0] >= 0x7F else raw) + b"\x00"


def _long(value: int) -> bytes:
    raw = value.to_bytes(max(1, -(-value.bit_length() // 8)), "big")
    return bytes([len(raw)]) + raw


def _length(n: int) -> bytes:
    return bytes([n]) if n <= 30 else bytes([31]) + _uintvar(n)


def _encoded(value: str) -> bytes:
    if value.isascii() and value[:1] >= " ":  # else the charset form
        return _text(value)
    inner = bytes([0x80 | CHARSET_UTF8]) + _text(value)
    return _length(len(inner)) + inner


def encode_notification(n: MmsNotification) -> bytes:
    """The m-notification.ind of `n`, fields in the order of the spec's table."""
    major, minor = (int(x) for x in n.version.split("."))
    out = bytearray([0x80 | MESSAGE_TYPE, M_NOTIFICATION_IND])
    out += bytes([0x80 | TRANSACTION_ID]) + _text(n.transaction_id)
    out += bytes([0x80 | MMS_VERSION, 0x80 | (major << 4) | minor])
    if n.sender is not None:
        address = bytes([ADDRESS_PRESENT]) + _encoded(n.sender)
    else:
        address = bytes([INSERT_ADDRESS])
    out += bytes([0x80 | FROM]) + _length(len(address)) + address
    if n.subject is not None:
        out += bytes([0x80 | SUBJECT]) + _encoded(n.subject)
    cls = CLASS_CODES.get(n.message_class)
    out += bytes([0x80 | MESSAGE_CLASS]) + (bytes([cls]) if cls else _text(n.message_class))
    out += bytes([0x80 | MESSAGE_SIZE]) + _long(n.size)
    if n.expiry_at is not None:
        expiry = bytes([ABSOLUTE]) + _long(int(n.expiry_at.timestamp()))
    else:
        expiry = bytes([RELATIVE]) + _long(n.expiry_s or 0)
    out += bytes([0x80 | EXPIRY]) + _length(len(expiry)) + expiry
    out += bytes([0x80 | CONTENT_LOCATION]) + _text(n.content_location)
    return bytes(out)


def encode_mms_push(n: MmsNotification, tid: int = 1) -> bytes:
    """The WSP push of a notification as carriers send it: textual content type, app id mms.ua."""
    headers = MMS_CONTENT_TYPE.encode() + b"\x00" + bytes([0x80 | 0x2F, 0x84])
    return bytes([tid, PUSH_PDU]) + _uintvar(len(headers)) + headers + encode_notification(n)


def encode_retrieve(
    transaction_id: str, sender: str, subject: str, parts: list[MmsPart], date: datetime
) -> bytes:
    """An m-retrieve.conf with a multipart/mixed body (text parts as text/plain; charset=utf-8)."""
    out = bytearray([0x80 | MESSAGE_TYPE, M_RETRIEVE_CONF])
    out += bytes([0x80 | TRANSACTION_ID]) + _text(transaction_id)
    out += bytes([0x80 | MMS_VERSION, 0x90])
    out += bytes([0x80 | DATE]) + _long(int(date.timestamp()))
    address = bytes([ADDRESS_PRESENT]) + _encoded(sender)
    out += bytes([0x80 | FROM]) + _length(len(address)) + address
    out += bytes([0x80 | SUBJECT]) + _encoded(subject)
    out += bytes([0x80 | CONTENT_TYPE, 0xA3])  # application/vnd.wap.multipart.mixed
    out += _uintvar(len(parts))
    for part in parts:
        head = _text(part.content_type)
        out += _uintvar(len(head)) + _uintvar(len(part.data)) + head + part.data
    return bytes(out)


def _uintvar(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.insert(0, 0x80 | (n & 0x7F))
        n >>= 7
    return bytes(out)

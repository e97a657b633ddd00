"""WSP push PDUs (WAP-230) and Service Indication (WAP-167, WBXML) decoding.

A WAP PUSH or an MMS notification arrives as SMS user data addressed to WAP
port 2948: a WSP push PDU (`TID`, `06` Push, header length, content type,
headers, body). `decode_push` reads that envelope for any content type, so
the MMS side reuses it for `application/vnd.wap.mms-message`;
`decode_si` reads the Service Indication an SP sends (`si`/`indication`
with `href`, `si-id`, `created`, `action` and the text the user sees).
Everything here raises `WspError` on malformed input; the caller keeps the
raw PDUs as evidence whatever happens (spec/channels.md §4).

No maintained Python package decodes these (python-messaging is Python-2
era), hence this small decoder of the headers the probes meet.
"""

from __future__ import annotations

from dataclasses import dataclass

WAP_PUSH_PORT = 2948
WAP_PUSH_SOURCE_PORT = 9200
PUSH_PDU = 0x06
CONFIRMED_PUSH_PDU = 0x07

# WAP-230 Appendix A, Table 40 (the content types push traffic uses).
CONTENT_TYPES = {
    0x02: "text/html",
    0x03: "text/plain",
    0x08: "text/vnd.wap.wml",
    0x2E: "application/vnd.wap.sic",
    0x2F: "application/vnd.wap.slc",
    0x30: "application/vnd.wap.coc",
    0x3E: "application/vnd.wap.mms-message",
}
# WAP-230 Table 39 (field names, encoding version 1.x) - those seen in pushes.
HEADER_NAMES = {
    0x04: "Content-Language",
    0x0D: "Content-Length",
    0x0E: "Content-Location",
    0x11: "Content-Type",
    0x12: "Date",
    0x2F: "X-Wap-Application-Id",
    0x32: "Push-Flag",
    0x3B: "X-Wap-Initiator-URI",
    0x3C: "X-Wap-Content-URI",
}
SI_CONTENT_TYPE = "application/vnd.wap.sic"
MMS_CONTENT_TYPE = "application/vnd.wap.mms-message"


class WspError(ValueError):
    """The bytes are not a WSP push (or not a Service Indication)."""


@dataclass(frozen=True)
class WspPush:
    """The envelope of one push."""

    tid: int
    pdu_type: int
    content_type: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class ServiceIndication:
    """What an SI says: the link and text shown to the user, and its attributes."""

    href: str | None
    text: str
    si_id: str | None = None
    created: str | None = None
    action: str | None = None


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise WspError("truncated")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def peek(self) -> int:
        if self.pos >= self.end:
            raise WspError("truncated")
        return self.data[self.pos]

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise WspError("truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uintvar(self) -> int:
        value = 0
        for _ in range(5):
            byte = self.byte()
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                return value
        raise WspError("uintvar longer than 5 octets")

    def cstring(self) -> str:
        end = self.data.find(b"\x00", self.pos, self.end)
        if end < 0:
            raise WspError("text string without terminator")
        raw = self.data[self.pos : end]
        self.pos = end + 1
        if raw[:1] == b"\x7f":  # quote: a text starting with an octet >= 0x80 follows
            raw = raw[1:]
        return raw.decode("utf-8", errors="replace")

    def value_length(self) -> int:
        first = self.byte()
        if first <= 30:
            return first
        if first == 31:
            return self.uintvar()
        raise WspError(f"not a value length: 0x{first:02X}")


def _content_type(r: _Reader) -> str:
    first = r.peek()
    if first >= 0x80:
        r.byte()
        return CONTENT_TYPES.get(first & 0x7F, f"0x{first & 0x7F:02X}")
    if first >= 0x20:
        return r.cstring()
    length = r.value_length()  # Content-general-form: media type, then parameters (kept out)
    inner = _Reader(r.data, r.pos, r.pos + length)
    r.pos += length
    media = inner.peek()
    if media >= 0x80:
        return CONTENT_TYPES.get(media & 0x7F, f"0x{media & 0x7F:02X}")
    return inner.cstring()


def _header_value(r: _Reader) -> str:
    first = r.peek()
    if first >= 0x80:
        r.byte()
        return str(first & 0x7F)
    if first >= 0x20:
        return r.cstring()
    length = r.value_length()
    return r.take(length).hex()


def _headers(r: _Reader) -> tuple[tuple[str, str], ...]:
    out = []
    while r.pos < r.end:
        first = r.peek()
        if first >= 0x80:
            r.byte()
            name = HEADER_NAMES.get(first & 0x7F, f"0x{first & 0x7F:02X}")
        elif first >= 0x20:
            name = r.cstring()
        else:
            raise WspError(f"bad header name octet 0x{first:02X}")
        out.append((name, _header_value(r)))
    return tuple(out)


def decode_push(data: bytes) -> WspPush:
    """The WSP push envelope of connectionless push user data."""
    r = _Reader(data)
    tid = r.byte()
    pdu_type = r.byte()
    if pdu_type not in (PUSH_PDU, CONFIRMED_PUSH_PDU):
        raise WspError(f"not a push PDU (type 0x{pdu_type:02X})")
    length = r.uintvar()
    end = r.pos + length
    if end > len(data):
        raise WspError("header length beyond the data")
    headers_reader = _Reader(data, r.pos, end)
    content_type = _content_type(headers_reader)
    headers = _headers(headers_reader)
    return WspPush(tid, pdu_type, content_type, headers, data[end:])


# --- Service Indication (WBXML, WAP-167 §8) ----------------------------------------------

SWITCH_PAGE, END, ENTITY, STR_I, LITERAL, OPAQUE, STR_T = 0x00, 0x01, 0x02, 0x03, 0x04, 0xC3, 0x83
SI_TAGS = {0x05: "si", 0x06: "indication", 0x07: "info", 0x08: "item"}
SI_ATTR_START = {
    0x05: ("action", "signal-none"),
    0x06: ("action", "signal-low"),
    0x07: ("action", "signal-medium"),
    0x08: ("action", "signal-high"),
    0x09: ("action", "delete"),
    0x0A: ("created", ""),
    0x0B: ("href", ""),
    0x0C: ("href", "http://"),
    0x0D: ("href", "http://www."),
    0x0E: ("href", "https://"),
    0x0F: ("href", "https://www."),
    0x10: ("si-expires", ""),
    0x11: ("si-id", ""),
    0x12: ("class", ""),
}
SI_ATTR_VALUES = {0x85: ".com/", 0x86: ".edu/", 0x87: ".net/", 0x88: ".org/"}


def _opaque_date(raw: bytes) -> str:
    digits = raw.hex()  # WAP-167 §8.2.2: BCD-like date octets, trailing zeros dropped
    digits = digits.ljust(14, "0")
    return (
        f"{digits[0:4]}-{digits[4:6]}-{digits[6:8]}T{digits[8:10]}:{digits[10:12]}:{digits[12:14]}Z"
    )


def decode_si(body: bytes) -> ServiceIndication:
    """A WBXML Service Indication: href, text, si-id, created and action."""
    r = _Reader(body)
    r.byte()  # WBXML version
    public_id = r.uintvar()
    if public_id == 0:
        r.uintvar()  # a string table reference; SI pushes use the well-known id 0x05
    charset = r.uintvar()
    table = r.take(r.uintvar())
    encoding = "utf-8" if charset in (0, 0x6A) else "latin-1"
    attrs: dict[str, str] = {}
    text: list[str] = []
    depth = 0
    stack: list[str] = []
    while r.pos < r.end:
        token = r.byte()
        if token == SWITCH_PAGE:
            r.byte()
        elif token == END:
            if not stack:
                break
            stack.pop()
            depth -= 1
        elif token == STR_I:
            raw = r.data[r.pos : r.data.find(b"\x00", r.pos)]
            if r.data.find(b"\x00", r.pos) < 0:
                raise WspError("inline string without terminator")
            r.pos += len(raw) + 1
            if stack and stack[-1] == "indication":
                text.append(raw.decode(encoding, errors="replace"))
        elif token == STR_T:
            offset = r.uintvar()
            end = table.find(b"\x00", offset)
            if stack and stack[-1] == "indication":
                text.append(table[offset:end].decode(encoding, errors="replace"))
        elif token == ENTITY:
            if stack and stack[-1] == "indication":
                text.append(chr(r.uintvar()))
            else:
                r.uintvar()
        else:
            tag = SI_TAGS.get(token & 0x3F)
            if tag is None:
                raise WspError(f"unknown SI token 0x{token:02X}")
            if token & 0x80:
                _si_attributes(r, encoding, attrs if tag == "indication" else {})
            if token & 0x40:
                stack.append(tag)
                depth += 1
    if "href" not in attrs and not text:
        raise WspError("no indication in the SI")
    return ServiceIndication(
        href=attrs.get("href"),
        text="".join(text).strip(),
        si_id=attrs.get("si-id"),
        created=attrs.get("created"),
        action=attrs.get("action"),
    )


def _si_attributes(r: _Reader, encoding: str, attrs: dict[str, str]) -> None:
    name: str | None = None
    while True:
        token = r.byte()
        if token == END:
            return
        if token in SI_ATTR_START:
            name, prefix = SI_ATTR_START[token]
            attrs[name] = prefix
        elif token in SI_ATTR_VALUES and name is not None:
            attrs[name] += SI_ATTR_VALUES[token]
        elif token == STR_I and name is not None:
            end = r.data.find(b"\x00", r.pos)
            if end < 0:
                raise WspError("inline string without terminator")
            attrs[name] += r.data[r.pos : end].decode(encoding, errors="replace")
            r.pos = end + 1
        elif token == OPAQUE and name is not None:
            raw = r.take(r.uintvar())
            attrs[name] = _opaque_date(raw) if name in ("created", "si-expires") else raw.hex()
        else:
            raise WspError(f"unknown SI attribute token 0x{token:02X}")


# --- encoding (the simulator's SP push gateway and tests) ------------------------------------


def encode_si(href: str, text: str, si_id: str | None = None) -> bytes:
    """A WBXML SI: `<si><indication href=… si-id=… action="signal-medium">text</indication></si>`."""
    out = bytearray([0x02, 0x05, 0x6A, 0x00])  # WBXML 1.2, SI 1.0, UTF-8, empty string table
    out += bytes([0x45])  # <si> with content
    out += bytes([0xC6])  # <indication> with attributes and content
    if href.startswith("http://www."):
        out += bytes([0x0D, STR_I]) + href[len("http://www.") :].encode() + b"\x00"
    elif href.startswith("http://"):
        out += bytes([0x0C, STR_I]) + href[len("http://") :].encode() + b"\x00"
    else:
        out += bytes([0x0B, STR_I]) + href.encode() + b"\x00"
    if si_id:
        out += bytes([0x11, STR_I]) + si_id.encode() + b"\x00"
    out += bytes([0x07, END])  # action="signal-medium", end of attributes
    out += bytes([STR_I]) + text.encode("utf-8") + b"\x00"
    out += bytes([END, END])
    return bytes(out)


def encode_push(content_type_code: int, body: bytes, app_id: int = 0x02, tid: int = 1) -> bytes:
    """A connectionless WSP push with a well-known content type and X-Wap-Application-Id."""
    headers = bytes([0x80 | content_type_code, 0x80 | 0x2F, 0x80 | app_id])
    return bytes([tid, PUSH_PDU, len(headers)]) + headers + body

"""One AT exchange read straight from the byte stream, payload included.

Line framing is not enough for data commands: `AT+HTTPREAD` answers
`+HTTPREAD: <n>` followed by exactly n raw bytes (which may hold CR LF, lines
that look like URCs, or half a UTF-8 character), and Quectel's `AT+QHTTPREAD`
answers `CONNECT`, a header block, the body and only then `OK`. An
`Exchange` is fed the reader's buffer while it is installed (see
`dialbot.modem.patched`), takes what belongs to its answer - lines, the raw
payload a `RawRule` announces, the final result or a `CONNECT`/`DOWNLOAD`
prompt - hands unsolicited lines back to the normal handler, and leaves
everything after its final line in the buffer. It knows no port, so the
framing is tested on transcripts.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

FINAL = re.compile(r"^(OK|ERROR|NO CARRIER|COMMAND NOT SUPPORT|\+CM[ES] ERROR:.*)$")
PROMPTS = ("CONNECT", "DOWNLOAD")


@dataclass(frozen=True)
class RawRule:
    """After a line matching `trigger`, raw bytes follow.

    `size(match)` gives their count; with `head_first`, a header block ending
    in a blank line comes before those bytes (Quectel with responseheader=1).
    """

    trigger: re.Pattern[str]
    size: Callable[[re.Match[str]], int]
    head_first: bool = False


@dataclass
class Exchange:
    """The answer to one command, filled by the reader thread."""

    prompts: tuple[str, ...] = ()  # prompt words that end the answer (CONNECT, DOWNLOAD)
    raw: RawRule | None = None
    is_urc: Callable[[str], bool] = lambda line: False
    max_payload: int = 1 << 20
    lines: list[str] = field(default_factory=list)
    head: bytes = b""
    payload: bytes = b""
    final: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    _want: int | None = None  # raw bytes still expected
    _in_head: bool = False
    _buf: bytearray = field(default_factory=bytearray)

    @property
    def ok(self) -> bool:
        return self.final == "OK" or self.final in self.prompts

    def feed(self, buffer: bytearray, other: Callable[[bytes], None]) -> None:
        """Consume from `buffer` what belongs to this answer; `other` gets foreign lines."""
        while buffer and not self.done.is_set():
            if self._in_head:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                self.head = bytes(buffer[: end + 4])
                del buffer[: end + 4]
                self._in_head = False
                continue
            if self._want is not None:
                take = min(self._want, len(buffer))
                self._buf += buffer[:take]
                del buffer[:take]
                self._want -= take
                if self._want:
                    return
                self._want = None
                self.payload = bytes(self._buf)
                continue
            end = buffer.find(b"\r\n")
            if end < 0:
                return
            raw = bytes(buffer[:end])
            del buffer[: end + 2]
            self._line(raw, other)

    def _line(self, raw: bytes, other: Callable[[bytes], None]) -> None:
        line = raw.decode("utf-8", errors="replace").strip()
        if not line:
            return
        if FINAL.match(line) or line in self.prompts:
            self.final = line
            self.done.set()
            return
        rule = self.raw
        match = rule.trigger.match(line) if rule is not None else None
        if rule is not None and match is not None and not self.payload:
            self.lines.append(line)
            size = rule.size(match)
            if not 0 <= size <= self.max_payload:
                self.final = f"ERROR payload of {size} bytes is over the limit"
                self.done.set()
                return
            self._in_head = rule.head_first
            self._want = size if size else None
            return
        if self.is_urc(line):
            other(raw)
            return
        self.lines.append(line)

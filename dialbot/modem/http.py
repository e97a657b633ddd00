"""HTTP through a modem's own stack: one public get/post, a backend per command family.

After python-can's `BusABC`: `HttpFamily.get`/`post` are written once and own
what must never differ between makes - the refusal of unsafe input before
anything is written, the size and time limits, no automatic redirects, the
`HttpResponse` the flows record as evidence. A backend implements only the
hooks `_attach` (bring the data bearer up), `_request` (one request, its
status, header block and body) and `_detach`. `BACKENDS` names them
(`simcom`: +SAPBR/+HTTP*, `quectel`: +QIACT/+QHTTP*); `detect` asks a modem
which one it speaks, by command and not by brand, so a modem without an
HTTP stack is `none` and never gets a WAP probe.

Module errors (SIMCom 601-604, Quectel 7xx), a dropped bearer or a timeout
raise `HttpModuleError` / `AtTimeout`: infrastructure failures, never
findings about an SP.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from dialbot.carrier import CarrierProfile
from dialbot.errors import ModemError, UnsafeInputError
from dialbot.modem.link import AtLink

MAX_URL = 1024
_URL = re.compile(r"http://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][\x21-\x7e]*)?")
_TOKEN = re.compile(r"[\x20-\x7e]*")


class HttpModuleError(ModemError):
    """The modem's HTTP stack failed (module error code, bearer down): not the SP's doing."""

    def __init__(self, message: str, code: int | None = None, trace: list[str] | None = None):
        self.code = code
        super().__init__(message, trace)


@dataclass(frozen=True)
class HttpLimits:
    """Bounds on one request; a page over `max_body` is cut there and marked truncated."""

    timeout_s: float = 30.0
    max_body: int = 64 * 1024
    chunk: int = 1024
    bearer_timeout_s: float = 85.0  # SIM800 may take this long to open a bearer


@dataclass(frozen=True)
class HttpResponse:
    """What a request gave, exactly as read from the modem."""

    method: str
    url: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    truncated: bool = False
    elapsed_s: float = 0.0
    content_length: int = 0

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    @property
    def location(self) -> str | None:
        """The redirect target of a 30x (not followed: the caller decides)."""
        return self.header("location") if 300 <= self.status < 400 else None


@dataclass
class RawResult:
    """A backend's answer before the family shapes it."""

    status: int
    head: bytes
    body: bytes
    content_length: int
    truncated: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def check_url(url: str) -> str:
    """An absolute http:// URL of printable ASCII without quotes, else UnsafeInputError."""
    if not isinstance(url, str):
        raise UnsafeInputError(f"URL must be a string, not {type(url).__name__}")
    for pos, char in enumerate(url):
        if ord(char) < 0x21 or ord(char) > 0x7E or char in "\"'\\":
            raise UnsafeInputError(f"URL has unsafe character U+{ord(char):04X} at {pos}: {url!r}")
    if len(url) > MAX_URL:
        raise UnsafeInputError(f"URL longer than {MAX_URL} characters")
    if not _URL.fullmatch(url):
        raise UnsafeInputError(f"not an absolute http:// URL: {url!r}")
    return url


def check_body(data: bytes) -> bytes:
    """Form data: printable (UTF-8 allowed), no control character (CR, LF, Ctrl-Z, ESC…)."""
    for pos, byte in enumerate(data):
        if byte < 0x20 or byte == 0x7F:
            raise UnsafeInputError(f"form data has control byte 0x{byte:02X} at {pos}")
    return data


def check_token(value: str, what: str) -> str:
    """A header value or user agent: printable ASCII without quotes."""
    if not _TOKEN.fullmatch(value) or '"' in value:
        raise UnsafeInputError(f"{what} must be printable ASCII without quotes: {value!r}")
    return value


def parse_head(head: bytes) -> tuple[int | None, tuple[tuple[str, str], ...]]:
    """Status (from a status line, if any) and headers of a header block."""
    status = None
    headers = []
    for raw in head.decode("latin-1").split("\r\n"):
        if raw.startswith("HTTP/"):
            parts = raw.split(" ", 2)
            if len(parts) >= 2 and parts[1].isdigit():
                status = int(parts[1])
            continue
        name, colon, value = raw.partition(":")
        if colon and name.strip():
            headers.append((name.strip(), value.strip()))
    return status, tuple(headers)


class HttpFamily(ABC):
    """HTTP over AT; public methods written once, backends override the hooks only."""

    name = "abstract"
    user_agent = "Mozilla/5.0 (dialbot WAP probe)"

    def __init__(
        self, link: AtLink, profile: CarrierProfile, limits: HttpLimits | None = None
    ) -> None:
        self.link = link
        self.profile = profile
        self.limits = limits or HttpLimits()
        self.proxy = profile.proxy_host_port
        self.attached = False

    def get(self, url: str) -> HttpResponse:
        """GET `url` (never following redirects: a 30x comes back with its Location)."""
        return self._perform("GET", check_url(url), b"", "")

    def post(
        self, url: str, data: str | bytes, content_type: str = "application/x-www-form-urlencoded"
    ) -> HttpResponse:
        """POST form data to `url`; data with a control character is refused before any write."""
        body = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        return self._perform(
            "POST", check_url(url), check_body(body), check_token(content_type, "content type")
        )

    def close(self) -> None:
        """Release the data bearer (best effort: the modem may be gone)."""
        if self.attached:
            self.attached = False
            self._detach()

    def _perform(self, method: str, url: str, body: bytes, content_type: str) -> HttpResponse:
        urlsplit(url)  # validated above; parsing here keeps backends from re-checking
        started = time.monotonic()
        deadline = started + self.limits.timeout_s
        if not self.attached:
            self._attach()
            self.attached = True
        try:
            raw = self._request(method, url, body, content_type, deadline)
        except HttpModuleError:
            self.attached = False  # a failed stack is set up again before the next request
            raise
        status, headers = parse_head(raw.head)
        return HttpResponse(
            method=method,
            url=url,
            status=raw.status if raw.status else (status or 0),
            headers=headers,
            body=raw.body,
            truncated=raw.truncated,
            elapsed_s=time.monotonic() - started,
            content_length=raw.content_length,
        )

    def _left(self, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise HttpModuleError(
                f"{self.name}: request took longer than {self.limits.timeout_s:g}s"
            )
        return left

    # --- backend hooks ---------------------------------------------------------------

    @abstractmethod
    def _attach(self) -> None:
        """Bring the data bearer up on the carrier's WAP APN."""

    @abstractmethod
    def _request(
        self, method: str, url: str, body: bytes, content_type: str, deadline: float
    ) -> RawResult:
        """One request through the carrier's proxy; module errors raise HttpModuleError."""

    @abstractmethod
    def _detach(self) -> None:
        """Take the bearer down."""

"""The seams inside the virtual network.

The AT side (`device`, `bank`) and the network side (`network`, `carrier`,
`sps`) meet only here, so that each can be built and tested on its own:
the network never sees AT commands or PDUs, a device never sees ledgers or
SP behaviour (so no ground truth can leak to the robot through the AT side).

Everything in the network runs on one thread: the bank's asyncio loop. The
`Scheduler` is that loop seen from the network; tests use a manual one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class Scheduler(Protocol):
    """The network's clock: time-based behaviour runs on it, never on sleep()."""

    def now(self) -> datetime:
        """Current time, timezone-aware, in the carrier's zone."""
        ...

    def elapsed(self) -> float:
        """Seconds since the network started (faults and nights count from here)."""
        ...

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> None:
        """Run fn on the network thread after delay_s seconds."""
        ...


class Handset(Protocol):
    """What the network may do to a virtual modem (implemented by `device`)."""

    msisdn: str

    def deliver_sms(self, sender: str, text: str, sent_at: datetime) -> None:
        """A mobile-terminated message arrives (split, stored, indicated by the device)."""
        ...

    def deliver_ussd(self, text: str, session_open: bool = False) -> None:
        """A network-initiated or late USSD reply (+CUSD unsolicited)."""
        ...

    def deliver_wap_push(self, sender: str, href: str, text: str, sent_at: datetime) -> None:
        """A WAP PUSH Service Indication (the device encodes it as SMS to port 2948)."""
        ...

    def deliver_push(self, sender: str, payload: bytes, sent_at: datetime) -> None:
        """A ready WSP push (an MMS notification) as concatenated 8-bit SMS to port 2948."""
        ...


class CallLeg(Protocol):
    """The network's end of one call, told what the handset does (e.g. the IVR platform).

    The handset calls `answered` when the far end picks up, `dtmf` for each
    key it sends while the call is up, and `released` exactly once when the
    call really ends (far end, handset, or the network letting go late).
    """

    def answered(self) -> None: ...

    def dtmf(self, key: str) -> None: ...

    def released(self) -> None: ...


@dataclass(frozen=True)
class CallResult:
    """How a voice call placed by a handset goes."""

    answered: bool
    answer_after_s: float = 1.0
    duration_s: float = 2.0  # the far end hangs up after this long, unless the handset does
    holds_after_hangup_s: float = 0.0  # the network keeps the call up after the handset hangs up
    leg: CallLeg | None = None


@dataclass(frozen=True)
class HttpRequest:
    """An HTTP request as a modem's stack puts it on the air.

    `apn` is the bearer it travels on; `via` the host:port the module
    connects to (the proxy, or the URL's own host when no proxy is set);
    `url` the absolute URL asked for.
    """

    apn: str
    via: str
    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass(frozen=True)
class HttpResult:
    """What came back: a response, or why none did (`error`: "dns", "network", "socket")."""

    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    error: str | None = None


class NetworkPort(Protocol):
    """What a virtual modem may ask of the network (implemented by `network`)."""

    def attach(self, handset: Handset) -> None:
        """Register a handset under its msisdn (SIM ready and on the network, or back on it:
        what was held for it while it was away is delivered now)."""
        ...

    def detach(self, msisdn: str) -> None:
        """The handset left the network (out of coverage, radio off): hold what comes for it."""
        ...

    def submit_sms(self, msisdn: str, destination: str, text: str) -> None:
        """A mobile-originated message (already reassembled from concatenated parts)."""
        ...

    def ussd(self, msisdn: str, request: str) -> str | None:
        """A USSD request; the reply text, or None when the network gives none."""
        ...

    def dial(self, msisdn: str, number: str) -> CallResult:
        """A voice call from msisdn to number."""
        ...

    def http(self, msisdn: str, request: HttpRequest) -> HttpResult:
        """An HTTP request over the data bearer (only the carrier's WAP gateway answers)."""
        ...

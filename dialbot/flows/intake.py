"""Taking a leased modem's incoming messages: record each at once, route it, match it.

A message that concerns the activity under way (from the carrier, or from
the SP under probe) is recorded in that activity's evidence and kept for the
flow's `expect` steps. Anything else is not this probe's business: it goes
to the watch (`dialbot.flows.watch`), which records and judges it. Nothing
received is ever dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from dialbot.carrier import CarrierProfile
from dialbot.db.evidence import EventRow
from dialbot.fleet import Lease
from dialbot.flows.record import Recorder
from dialbot.judge.classify import MsgClass, classify, is_carrier
from dialbot.modem import IncomingMessage

Foreign = Callable[[IncomingMessage], None]
Match = Callable[["Received"], bool]


def national(number: str) -> str:
    """A sender as the catalogue writes numbers (no +86 / 86 in front of a mobile number)."""
    digits = number.strip().lstrip("+")
    if digits.startswith("86") and len(digits) == 13 and digits[2] == "1":
        return digits[2:]
    return digits


def from_access(message: IncomingMessage, access: str) -> bool:
    """Whether a message comes from an SP access number (or a longer number under it)."""
    return bool(access) and national(message.sender).startswith(access)


@dataclass(frozen=True)
class Received:
    """A recorded message of the activity, with its class as the judge would see it."""

    message: IncomingMessage
    row: EventRow
    cls: MsgClass
    carrier: bool

    @property
    def at(self) -> datetime:
        return self.message.received_at


class Intake:
    """Pulls messages from one lease for one activity (a run, a cleanup)."""

    def __init__(
        self,
        lease: Lease,
        recorder: Recorder,
        carrier: CarrierProfile,
        access: str | None,
        foreign: Foreign,
    ) -> None:
        self.lease = lease
        self.recorder = recorder
        self.carrier = carrier
        self.access = access or ""
        self.foreign = foreign
        self.unclaimed: list[Received] = []
        self.seen: list[Received] = []

    def mine(self, message: IncomingMessage) -> bool:
        return is_carrier(national(message.sender), self.carrier) or from_access(
            message, self.access
        )

    def take(self, message: IncomingMessage) -> Received | None:
        """Record a message (or hand it to the watch); return it when it is the activity's."""
        if message.problem is not None or not self.mine(message):
            self.foreign(message)  # the watch records it (a PDU that is no message: a note)
            return None
        sender = national(message.sender)
        row = self.recorder.sms_in(message)
        cls = classify(message.text, sender, self.carrier)
        received = Received(message, row, cls, is_carrier(sender, self.carrier))
        self.unclaimed.append(received)
        self.seen.append(received)
        return received

    def pump(self, timeout: float) -> Received | None:
        """Wait up to timeout for the next message of any kind; return it when it is ours."""
        message = self.lease.wait_message(lambda _m: True, max(0.0, timeout))
        return None if message is None else self.take(message)

    def drain(self) -> None:
        """Record everything already received."""
        for message in self.lease.take_all():
            self.take(message)

    def observe(self, seconds: float) -> None:
        """Record whatever arrives during `seconds`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.pump(left)

    def wait_for(
        self, match: Match, timeout: float, since: datetime | None = None
    ) -> Received | None:
        """The first unclaimed message (received at or after `since`) that matches, waiting."""
        deadline = time.monotonic() + timeout
        while True:
            for received in self.unclaimed:
                if (since is None or received.at >= since) and match(received):
                    self.unclaimed.remove(received)
                    return received
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.pump(left)

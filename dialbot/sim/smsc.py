"""The SMSC's store and forward: what cannot reach a SIM now waits, for a while.

A real network cannot deliver to a handset that is off the network (out of
coverage, radio off, powered off, not yet registered): the SMSC is told
"absent subscriber", keeps the message, and delivers it when the network
sees the handset register again - until the message's validity period runs
out, when it is dropped unseen. Plain SMS, WAP PUSH (a Service Indication in
8-bit SMS) and MMS notifications (a WSP push in SMS) all travel this way, so
they are all held alike. The SCTS a handset reads is when the SMSC took the
message, not when it finally arrived, and held messages keep their order.

The network tells the store who is reachable (`Network.attach`/`detach`,
which the virtual modems call as they register and deregister); nothing
here reads a handset's own state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dialbot.sim.carrier import Account
from dialbot.sim.contracts import Handset, Scheduler

# (account, direction, kind, peer, text): the network's ground-truth record.
Record = Callable[[Account, str, str, str, str], None]
KINDS = ("sms", "wap_push", "mms")


@dataclass(frozen=True)
class Held:
    """One message for a SIM: what the handset gets, and until when the SMSC tries."""

    kind: str  # "sms" | "wap_push" (an SI) | "mms" (an m-notification.ind)
    sender: str
    text: str  # the SMS text; the SI's text; the MMS notification's content location
    sent_at: datetime  # SCTS: when the SMSC took it
    expires: float  # network seconds (`Scheduler.elapsed`) after which it is dropped
    href: str = ""  # wap_push: the SI's link
    payload: bytes = b""  # mms: the WSP push as encoded

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "sender": self.sender, "text": self.text}


class Smsc:
    """Delivers at once to a reachable SIM; otherwise holds until it is back or too late."""

    def __init__(
        self,
        clock: Scheduler,
        validity_s: float,
        handsets: Mapping[str, Handset],
        record: Record,
    ) -> None:
        self.clock = clock
        self.validity_s = validity_s
        self.handsets = handsets  # the network's attached handsets (reachable SIMs)
        self.record = record
        self.waiting: dict[str, list[tuple[Account, Held]]] = {}
        self.expired: dict[str, list[Held]] = {}
        self.closed = False

    def deliver(
        self,
        account: Account,
        kind: str,
        sender: str,
        text: str,
        *,
        href: str = "",
        payload: bytes = b"",
    ) -> None:
        """Take one message for `account`'s SIM: hand it over now, or hold it."""
        if kind not in KINDS:
            raise ValueError(f"unknown message kind {kind!r}")
        held = Held(
            kind, sender, text, self.clock.now(), self.clock.elapsed() + self.validity_s,
            href, payload,
        )  # fmt: skip
        msisdn = account.msisdn
        handset = self.handsets.get(msisdn)
        if handset is not None and not self.waiting.get(msisdn):
            self._hand_over(account, handset, held)
            return
        self.waiting.setdefault(msisdn, []).append((account, held))
        self.clock.call_later(self.validity_s, lambda: self._expire(msisdn))

    def alert(self, msisdn: str) -> None:
        """The SIM registered again: deliver what is still valid, in order."""
        self._expire(msisdn)
        handset = self.handsets.get(msisdn)
        if handset is None or self.closed:
            return
        for account, held in self.waiting.pop(msisdn, []):
            self._hand_over(account, handset, held)

    def undelivered(self, msisdn: str) -> list[dict[str, Any]]:
        """Held for this SIM now (ground truth)."""
        return [held.describe() for _, held in self.waiting.get(msisdn, [])]

    def dropped(self, msisdn: str) -> list[dict[str, Any]]:
        """Dropped unseen when their validity ran out (ground truth)."""
        return [held.describe() for held in self.expired.get(msisdn, [])]

    def _expire(self, msisdn: str) -> None:
        now = self.clock.elapsed()
        queue = self.waiting.get(msisdn, [])
        keep = [(a, h) for a, h in queue if h.expires > now]
        gone = [h for _, h in queue if h.expires <= now]
        if gone:
            self.expired.setdefault(msisdn, []).extend(gone)
        if keep:
            self.waiting[msisdn] = keep
        else:
            self.waiting.pop(msisdn, None)

    def _hand_over(self, account: Account, handset: Handset, held: Held) -> None:
        if held.kind == "sms":
            self.record(account, "mt", "sms", held.sender, held.text)
            handset.deliver_sms(held.sender, held.text, held.sent_at)
        elif held.kind == "wap_push":
            self.record(account, "mt", "wap_push", held.sender, f"{held.text} {held.href}")
            handset.deliver_wap_push(held.sender, held.href, held.text, held.sent_at)
        else:
            self.record(account, "mt", "mms", held.sender, held.text)
            handset.deliver_push(held.sender, held.payload, held.sent_at)

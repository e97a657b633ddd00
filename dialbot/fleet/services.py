"""The carrier's own services as typed operations: balance, subscription list, cancel-all.

Each returns the parsed result together with the raw evidence (what was
sent, and the reply exactly as received), because a balance reading or a
subscription list is evidence in a finding. How the carrier answers comes
from the `CarrierProfile` (spec/formats.md §3), never from code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from dialbot.carrier import CarrierProfile
from dialbot.errors import ModemError
from dialbot.fleet.lease import Lease
from dialbot.judge.classify import parse_balance
from dialbot.judge.listing import CarrierList, parse_list
from dialbot.judge.model import ListedItem
from dialbot.modem import IncomingMessage


class CarrierReplyError(ModemError):
    """The carrier did not answer in time, or answered something the profile cannot parse."""


@dataclass(frozen=True)
class Evidence:
    """What was asked and what came back, verbatim."""

    request: str  # the text sent, or "ussd:<code>"
    to: str
    reply_text: str
    messages: tuple[IncomingMessage, ...] = ()


@dataclass(frozen=True)
class Balance:
    fen: int
    via: str  # "sms" | "ussd"
    evidence: Evidence


# One listed item, names as the carrier bills them (see dialbot.judge.listing).
Subscription = ListedItem


@dataclass(frozen=True)
class SubscriptionList:
    """A subscription list, and whether it is whole: a multipart reply with a missing part, or
    a text that says it goes on, is not (and then it proves nothing about what is absent)."""

    items: tuple[Subscription, ...]
    evidence: Evidence
    complete: bool = True
    why_incomplete: str = ""


@dataclass(frozen=True)
class CancelAll:
    acknowledged: bool  # the reply lists nothing still subscribed
    remaining: tuple[Subscription, ...]
    evidence: Evidence


def yuan_to_fen(text: str) -> int:
    """'12.34' -> 1234, exactly (no floats near money)."""
    return int((Decimal(text) * 100).to_integral_value())


def parse_items(text: str, profile: CarrierProfile) -> tuple[Subscription, ...]:
    """Every item of a list reply (() for a reply that is not a list)."""
    parsed = parse_list(text, profile)
    return parsed.items if parsed is not None else ()


def read_list(message: IncomingMessage, profile: CarrierProfile) -> CarrierList:
    """A list reply as a `CarrierList`; incomplete when the message lacks a part."""
    parsed = parse_list(message.text, profile)
    if parsed is None:
        parsed = CarrierList((), complete=False, why_incomplete="the reply is not a list")
    if not message.complete:
        parsed = parsed.incomplete(f"multipart reply with a missing part (of {message.parts})")
    return parsed


class CarrierServices:
    """Ask the carrier's service number, through a leased modem."""

    def __init__(self, lease: Lease, profile: CarrierProfile, reply_timeout: float = 60.0) -> None:
        self.lease = lease
        self.profile = profile
        self.reply_timeout = reply_timeout

    def _from_carrier(self, message: IncomingMessage) -> bool:
        sender = message.sender.lstrip("+")
        number = self.profile.service_number
        return sender.startswith(number) or sender.startswith("86" + number)

    def _reply_to_query(self, message: IncomingMessage, accept: re.Pattern[str] | None) -> bool:
        """From the carrier, not one of its own notices, and (when given) what `accept` finds."""
        if message.problem is not None or not self._from_carrier(message):
            return False
        if re.search(self.profile.notices, message.text):
            return False
        return accept is None or bool(accept.search(message.text))

    def _ask(self, text: str, accept: re.Pattern[str] | None) -> IncomingMessage:
        """Send text to the service number and take the first carrier reply that accepts
        (a message it does not take stays with the lease: recorded later, never lost)."""
        self.lease.send_sms(self.profile.service_number, text)
        reply = self.lease.wait_message(
            lambda m: self._reply_to_query(m, accept), self.reply_timeout
        )
        if reply is None:
            raise CarrierReplyError(
                f"no reply from {self.profile.service_number} to {text!r} "
                f"within {self.reply_timeout:g}s",
                self.lease.modem.trace.snapshot(),
            )
        return reply

    def balance(self) -> Balance:
        """The SIM's balance in fen, by SMS or USSD as the profile says."""
        pattern = re.compile(self.profile.balance_reply)
        if self.profile.balance_by_ussd:
            code = self.profile.ussd_code
            text = self.lease.ussd(code)
            evidence = Evidence(f"ussd:{code}", code, text)
            via = "ussd"
        else:
            reply = self._ask(self.profile.balance_query, pattern)
            evidence = Evidence(
                self.profile.balance_query, self.profile.service_number, reply.text, (reply,)
            )
            text, via = reply.text, "sms"
        fen = parse_balance(text, self.profile)  # the judge's reading: 12元3角4分 whole
        if fen is None:
            raise CarrierReplyError(
                f"balance reply not understood: {text!r}", self.lease.modem.trace.snapshot()
            )
        return Balance(fen, via, evidence)

    def _list_pattern(self) -> re.Pattern[str]:
        """A list reply: it says there are none, or it is the list (never just an item)."""
        return re.compile(
            f"(?:{self.profile.subscriptions_none})|(?:{self.profile.subscriptions_reply})"
        )

    def listed_in(self, text: str) -> tuple[Subscription, ...]:
        """The items of a reply that is a subscription list; () for any other reply."""
        return parse_items(text, self.profile)

    def subscriptions(self) -> SubscriptionList:
        """Every active subscription of the SIM, parsed from the (multipart) list reply."""
        query = self.profile.subscriptions_query
        reply = self._ask(query, self._list_pattern())
        evidence = Evidence(query, self.profile.service_number, reply.text, (reply,))
        parsed = read_list(reply, self.profile)
        return SubscriptionList(parsed.items, evidence, parsed.complete, parsed.why_incomplete)

    def cancel_all(self) -> CancelAll:
        """Send the carrier's cancel-all; acknowledged when the reply lists nothing remaining
        (a carrier without cancel-all answers with the list: its items remain)."""
        text = self.profile.cancel_all
        reply = self._ask(text, None)
        remaining = self.listed_in(reply.text)
        evidence = Evidence(text, self.profile.service_number, reply.text, (reply,))
        return CancelAll(not remaining, remaining, evidence)

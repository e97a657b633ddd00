"""The flow language: what a probe does, step by step.

A flow is data, not code: a QA engineer reads and extends `probes/*.yaml`
without touching Python. Each step is one thing a subscriber (or the
carrier's self-service) can do or see. Time windows are in seconds as
written; the runner multiplies them by `[probe] time_scale`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# Who a message goes to or comes from: the SP under probe (its access
# number), the carrier's service number, or any sender at all.
Party = Literal["sp", "carrier", "any"]
# What kind of message an `expect` waits for (the judge's classification).
Kind = Literal["prompt", "welcome", "content", "cancel_ack", "any"]
# Why a message is sent: the judge needs to know which sends were orders,
# confirmations, use requests and cancellations.
Purpose = Literal["order", "confirm", "use", "cancel", "other"]

PARTIES: tuple[str, ...] = ("sp", "carrier", "any")
KINDS: tuple[str, ...] = ("prompt", "welcome", "content", "cancel_ack", "any")
PURPOSES: tuple[str, ...] = ("order", "confirm", "use", "cancel", "other")
BILLINGS: tuple[str, ...] = ("monthly", "per_use", "per_minute")


@dataclass(frozen=True)
class Send:
    """Send a text: `{subscribe}`, `{use}`, `{cancel}` expand to the service's keywords."""

    text: str
    to: Party = "sp"
    purpose: Purpose = "other"
    line: int = 0


@dataclass(frozen=True)
class Expect:
    """Wait up to `within` seconds for a message; missing it is NO_RESPONSE unless optional."""

    kind: Kind = "any"
    sender: Party = "sp"
    within: float = 60.0
    capture: str | None = None
    optional: bool = False
    line: int = 0


@dataclass(frozen=True)
class Reply:
    """Answer a captured prompt with its confirmation token (or a literal text)."""

    to: str  # name of a capture
    text: str | None = None  # None: the token the prompt asks for
    line: int = 0


@dataclass(frozen=True)
class Balance:
    """Read the balance (SMS or USSD per the carrier profile)."""

    label: str = ""
    line: int = 0


@dataclass(frozen=True)
class Subscriptions:
    """Ask the carrier for the SIM's active subscriptions (`0000`)."""

    label: str = ""
    line: int = 0


@dataclass(frozen=True)
class Detail:
    """Ask the carrier for the itemized bill (`detail_query`); nothing where it offers none."""

    label: str = ""
    line: int = 0


@dataclass(frozen=True)
class Observe:
    """Wait `seconds`, recording everything that arrives (nothing is expected)."""

    seconds: float
    line: int = 0


@dataclass(frozen=True)
class Cancel:
    """Cancel with the SP's own keyword; expect its acknowledgement within `within`."""

    within: float = 60.0
    line: int = 0


@dataclass(frozen=True)
class CancelAll:
    """The carrier's cancel-all (`00000`)."""

    within: float = 60.0
    line: int = 0


@dataclass(frozen=True)
class Open:
    """WAP: load the service's entry page; every redirect it sends is recorded, hop by hop."""

    line: int = 0


@dataclass(frozen=True)
class Explore:
    """WAP: follow each other link of the entry page once (进入, 免费 …), declining any order
    page it reaches; at most `limit` links."""

    limit: int = 6
    line: int = 0


@dataclass(frozen=True)
class Order:
    """WAP: follow the link whose text is the catalogue's `subscribe_cmd`, then on the
    carrier's confirmation page confirm (or decline with `confirm: false`)."""

    confirm: bool = True
    line: int = 0


@dataclass(frozen=True)
class Use:
    """WAP: follow the link whose text is the catalogue's `use_cmd` (skipped without one)."""

    line: int = 0


@dataclass(frozen=True)
class Call:
    """A voice call to the service's access number (spec/channels.md §5).

    Dial, wait up to `answer_within` s for the answer, send `keys` as DTMF
    (`{use}`: the catalogue's use_cmd), stay `hold` billing minutes from the
    answer (the carrier's `billing_minute_s`; never time-scaled, so 1.05
    crosses a minute boundary on any network), hang up, and confirm with
    +CLCC within `release_within` s that the call is gone.
    """

    keys: str = "{use}"
    hold: float = 1.05
    answer_within: float = 60.0
    release_within: float = 10.0
    label: str = ""
    line: int = 0


WapStep = Open | Explore | Order | Use


@dataclass(frozen=True)
class FetchMms:
    """MMS: wait up to `within` for an MMS notification from the SP (none already waiting),
    then fetch the content of every notification not yet fetched, through the WAP proxy."""

    within: float = 60.0
    line: int = 0


Step = (
    Send
    | Expect
    | Reply
    | Balance
    | Subscriptions
    | Detail
    | Observe
    | Cancel
    | CancelAll
    | WapStep
    | Call
    | FetchMms
)


@dataclass(frozen=True)
class Flow:
    """A named sequence of steps for the services of the given billing types."""

    name: str
    kind: str  # decline | monthly | per_use | hygiene | wap | ivr | mms: what was intended
    billing: tuple[str, ...]
    steps: tuple[Step, ...]
    description: str = ""
    source: str = "<flow>"
    labels: dict[str, int] = field(default_factory=dict)

    def unavoidable_wait_s(self) -> float:
        """Seconds the flow must wait whatever the SP does (observe windows)."""
        return sum(s.seconds for s in self.steps if isinstance(s, Observe))

    def call_minutes(self) -> float:
        """Billing minutes the flow's calls hold (time_scale never shortens them)."""
        return sum(s.hold for s in self.steps if isinstance(s, Call))

    def fits(self, channel: str, billing: str) -> bool:
        """Whether this flow probes a service of that channel and billing.

        A channel with flows of its own (`CHANNEL_FLOW_KINDS`: voice calls for
        ivr lines, browsing for wap services) gets only those, and those flows
        nothing else: an SMS flow would text a number that only takes calls,
        a browse has no page on an SMS service.
        """
        own = self.kind if self.kind in CHANNEL_FLOW_KINDS.values() else None
        if own != CHANNEL_FLOW_KINDS.get(channel):
            return False
        if self.kind == "mms" and channel != "mms":
            return False  # MMS content flows fetch what only an MMS service sends
        return billing in self.billing


# Channels probed only by flows of their own kind (the flow of that name is their standard
# one), which probe nothing else. MMS services are ordered and declined by SMS: they take
# the SMS flows as well as the `mms` kind (which is for them only).
CHANNEL_FLOW_KINDS = {"ivr": "ivr", "wap": "wap"}


def default_flows(channel: str, billing: str) -> tuple[str, ...]:
    """The flows every service of this channel and billing gets in a sweep: its
    channel's own flow; an MMS service decline + its MMS content flow; else decline +
    its billing type's flow."""
    own = CHANNEL_FLOW_KINDS.get(channel)
    if own is not None:
        return (own,)
    if channel == "mms":
        return ("decline", "mms" if billing == "monthly" else "mms_per_use")
    return ("decline", billing)

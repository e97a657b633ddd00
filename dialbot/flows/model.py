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
BILLINGS: tuple[str, ...] = ("monthly", "per_use")


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
    | Observe
    | Cancel
    | CancelAll
    | WapStep
    | FetchMms
)


@dataclass(frozen=True)
class Flow:
    """A named sequence of steps for the services of the given billing types."""

    name: str
    kind: str  # decline | monthly | per_use | hygiene: tells the judge what was intended
    billing: tuple[str, ...]
    steps: tuple[Step, ...]
    description: str = ""
    source: str = "<flow>"
    labels: dict[str, int] = field(default_factory=dict)

    def unavoidable_wait_s(self) -> float:
        """Seconds the flow must wait whatever the SP does (observe windows)."""
        return sum(s.seconds for s in self.steps if isinstance(s, Observe))

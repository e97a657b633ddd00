"""What the judge reads and what it writes: plain typed records.

The judge is pure: it never touches the database, a modem or the simulator.
The flow runner (or a test) builds a `RunRecord` from the evidence log of one
run and the catalogue entry the run probed; `dialbot.judge.judge()` turns it
into `Finding`s. Keeping the input a plain record means every rule can be
tested with a hand-written run, and an SP that disputes a finding can be shown
exactly which events it rests on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Literal

from dialbot.carrier import CarrierProfile

EventKind = Literal[
    "sms_out",
    "sms_in",
    "balance",
    "subscriptions",
    "ussd",
    "modem_fault",
    "note",
    "http",
    "call",
    "mms",
]
FlowKind = Literal[
    "decline", "monthly", "per_use", "hygiene", "watch", "follow", "wap", "ivr", "mms"
]
Billing = Literal["monthly", "per_use", "per_minute"]
Severity = Literal["critical", "major", "minor", "quality"]


@dataclass(frozen=True)
class ServiceInfo:
    """A catalogue entry as it was when the run was made (spec/formats.md §1)."""

    sp_code: str
    sp_name: str
    service_code: str
    service_name: str
    access_number: str
    billing: Billing
    price_fen: int
    subscribe_cmd: str
    sp_hotline: str = ""
    cancel_cmd: str = ""
    use_cmd: str = ""
    channel: str = "sms"  # sms | wap | mms | ivr (spec/channels.md §1)
    url: str = ""  # wap: the entry page

    @property
    def key(self) -> tuple[str, str]:
        """(sp_code, service_code): how services are told apart everywhere."""
        return (self.sp_code, self.service_code)


@dataclass(frozen=True)
class ListedItem:
    """One entry of the carrier's subscription list: names as the carrier spells them.

    `service` and `sp` are labels read from the item as well as they can be;
    `raw` is the item's whole text (what matching looks at, see
    `dialbot.judge.listing`), `number` the item number the carrier gave it (what
    a cancel by item number sends back). Two items are equal by their labels.
    """

    service: str
    sp: str = ""
    number: int | None = field(default=None, compare=False)
    raw: str = field(default="", compare=False)
    price_fen: int | None = field(default=None, compare=False)
    access: str = field(default="", compare=False)  # access numbers in the item, comma-separated


@dataclass(frozen=True)
class Event:
    """One evidence event of the run, as stored in the evidence log.

    `peer` is the other number (sender of an `sms_in`, destination of an
    `sms_out`); `text` is verbatim. `balance_fen` is set on `balance` events,
    `items` on `subscriptions` events (None there means: parse `text`).
    """

    id: int
    at: datetime
    kind: EventKind
    peer: str = ""
    text: str = ""
    balance_fen: int | None = None
    items: tuple[ListedItem, ...] | None = None
    data: Mapping[str, Any] | None = field(default=None, compare=False)  # http: what led there
    # `call` events: the call record (modem.voice.CallRecord.evidence()), times in seconds
    call: dict[str, Any] | None = field(default=None, hash=False, compare=False)


class ActionKind(Enum):
    """What the probe itself did; the judge measures the SP against these."""

    ORDER = "order"
    CONFIRM = "confirm"  # the confirmation token was sent
    WITHHOLD = "withhold"  # the confirmation was deliberately not sent (decline flow)
    USE = "use"
    CANCEL = "cancel"  # the SP's own cancel keyword
    CANCEL_ALL = "cancel_all"  # the carrier's cancel-all (00000)


@dataclass(frozen=True)
class Action:
    """One probe action: when, which `sms_out` event carried it, how long an answer may take.

    `event_id` is None only for WITHHOLD (nothing was sent). `window_s` is the
    flow's (already time-scaled) window for the SP's answer; None means the
    flow expects no particular answer to this action.
    """

    kind: ActionKind
    at: datetime
    event_id: int | None = None
    window_s: float | None = None


@dataclass(frozen=True)
class PastOrder:
    """One order a probe placed on this SIM, and how it ended, as the evidence log tells it.

    Built from the database (obligations and the SIM's events), so it survives
    a restart. `ended_at` is when the carrier's list no longer showed it (the
    obligation was discharged; None: it may still be active). `cancel_acked_at`
    is set only when the SIM did have the subscription and its cancellation
    was acknowledged (the SP's 成功退订, the carrier's cancel-all reply, or the
    list after a cancel); `evidence` holds the events that show it. An order
    that ended without it (declined, never active) gave the SIM no subscription.
    """

    sp_code: str
    service_code: str
    ordered_at: datetime
    ended_at: datetime | None = None
    cancel_acked_at: datetime | None = None
    evidence: tuple[int, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.sp_code, self.service_code)


@dataclass(frozen=True)
class FollowedOrder:
    """An order followed on later nights (the month after), for a `follow` run.

    `since` is where this night's judgement starts: charges before it were
    judged on an earlier night (the events before it are still given, to know
    the previous charge and the reminders that came before). `trial` says the
    order was a free trial (nothing charged when ordered), so its first charge
    is the conversion to paid. `cancel_acked_at` is when the cancellation was
    acknowledged (None: the subscription is deliberately kept); `evidence`
    holds the events of the order and of its cancellation.
    """

    service: ServiceInfo
    ordered_at: datetime
    since: datetime
    trial: bool = False
    cancel_acked_at: datetime | None = None
    evidence: tuple[int, ...] = ()


@dataclass(frozen=True)
class RunRecord:
    """Everything the judge needs about one run.

    `service` is the catalogue entry under probe (None for hygiene and watch
    runs). `catalogue` lets the judge name the SP behind a message or a listed
    subscription that is not the one under probe. `legit` holds the
    (sp_code, service_code) pairs that probes legitimately ordered on this SIM
    and that may still be active (their own runs judge them). `observed_until`
    is when the run stopped recording: an answer that was never waited for
    cannot be missing. `history` is the SIM's past orders (watch runs): what
    tells a message after a cancellation from spam to a SIM that never had a
    subscription with the SP. `cut` marks a run its process never finished
    (killed, or stopped by an unexpected error): it is judged only by the
    rules that need nothing but what was seen (`rules.SEEN_RULES`), never by
    one that needs a whole watched window. `followed` (follow runs) holds the orders whose
    month after this run checks: the SIM's events since the first of them.
    """

    run_id: int
    flow: FlowKind
    events: tuple[Event, ...]
    observed_until: datetime
    service: ServiceInfo | None = None
    actions: tuple[Action, ...] = ()
    carrier: CarrierProfile = field(default_factory=CarrierProfile)
    catalogue: tuple[ServiceInfo, ...] = ()
    legit: frozenset[tuple[str, str]] = frozenset()
    infra_failed: bool = False
    cut: bool = False
    history: tuple[PastOrder, ...] = ()
    followed: tuple[FollowedOrder, ...] = ()


@dataclass(frozen=True)
class Finding:
    """One violation (spec/violations.md), backed by the event ids that prove it."""

    code: str
    severity: Severity
    amount_fen: int
    observed_at: datetime
    evidence: list[int]
    sp_code: str
    service_code: str
    detail: str

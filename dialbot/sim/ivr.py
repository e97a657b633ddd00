"""The IVR platform behind the virtual carrier (spec/channels.md §5, §6).

Voice lines of the world (`channel: ivr`, e.g. 125900001) answer after
`answer_after_s`, take DTMF keys along their menu, hang up by themselves
after `hangs_up_after_s`, and are billed when the call is released: the
information fee (the SP's price) per started billing minute from answer,
plus the carrier's airtime `call_fee_fen_per_min` per started minute from
answer. The billing minute is the carrier key `billing_minute_s` (60 s on a
real network); the robot's `time_scale` never shortens it.

The dishonest knobs, each exactly as documented in channels.md §6:
`bill_extra_minutes` (minutes billed beyond the call), `bill_from_dial`
(the information fee counts from dialling, not from answer),
`holds_after_hangup_s` (the network keeps the call, and its billing, up
after the caller hung up) and `subscribe_on_key` (that key sequence silently
subscribes a monthly fee of `subscribe_on_key_fen`, no SMS confirmation).
"""

from __future__ import annotations

import dataclasses
import math

from dialbot.sim.carrier import Account, Carrier
from dialbot.sim.contracts import CallResult, Scheduler
from dialbot.sim.world import Service, Sp

#: Reasons of the ledger entries a call leaves (ground truth only).
IVR_FEE, AIRTIME, KEY_SUBSCRIBE = "ivr_fee", "airtime", "key_subscribe"
_EPSILON = 1e-6  # a call of exactly one billing minute is one minute, not two


def started_minutes(seconds: float, minute_s: float) -> int:
    """Billing minutes begun by a call of `seconds` (0 s: none; 60 s: one; 61 s: two)."""
    if seconds <= _EPSILON:
        return 0
    return max(1, math.ceil(seconds / minute_s - _EPSILON))


class IvrCall:
    """One call to an IVR line: the platform's `CallLeg`."""

    def __init__(self, platform: IvrPlatform, account: Account, sp: Sp, service: Service) -> None:
        self.platform = platform
        self.account = account
        self.sp = sp
        self.service = service
        self.dialled_at = platform.clock.elapsed()
        self.answered_at: float | None = None
        self.released_at: float | None = None
        self.keys = ""
        self.subscribed = False

    def answered(self) -> None:
        if self.answered_at is None and self.released_at is None:
            self.answered_at = self.platform.clock.elapsed()

    def dtmf(self, key: str) -> None:
        """A key along the menu; the hidden subscription key subscribes once per call."""
        if self.answered_at is None or self.released_at is not None:
            return
        self.keys += key
        trap = self.service.behaviour.subscribe_on_key
        if trap and self.keys.endswith(trap) and not self.subscribed:
            self.subscribed = True
            self.platform.key_subscribe(self)

    def released(self) -> None:
        if self.released_at is not None:
            return
        self.released_at = self.platform.clock.elapsed()
        self.platform.bill(self)


class IvrPlatform:
    """Every IVR line of the world, billing through the carrier."""

    def __init__(self, carrier: Carrier, clock: Scheduler) -> None:
        self.carrier = carrier
        self.clock = clock
        self.lines: dict[str, tuple[Sp, Service]] = {}
        self.calls: list[IvrCall] = []

    def add(self, sp: Sp, service: Service) -> None:
        self.lines[service.access] = (sp, service)

    def serves(self, number: str) -> bool:
        return number in self.lines

    def dial(self, account: Account, number: str) -> CallResult:
        """A caller dials a line: it will answer, and bill when released."""
        sp, service = self.lines[number]
        b = service.behaviour
        call = IvrCall(self, account, sp, service)
        self.calls.append(call)
        return CallResult(
            answered=True,
            answer_after_s=b.answer_after_s,
            duration_s=b.hangs_up_after_s,
            holds_after_hangup_s=b.holds_after_hangup_s,
            leg=call,
        )

    def minute_s(self) -> float:
        return float(self.carrier.profile.billing_minute_s)

    def bill(self, call: IvrCall) -> None:
        """At release: information fee and airtime, each per started minute."""
        if call.answered_at is None or call.released_at is None:
            return  # never answered: nothing is billed
        b = call.service.behaviour
        minute = self.minute_s()
        start = call.dialled_at if b.bill_from_dial else call.answered_at
        info = started_minutes(call.released_at - start, minute) + b.bill_extra_minutes
        airtime = started_minutes(call.released_at - call.answered_at, minute)
        code = call.service.code
        self.carrier.charge(
            call.account, info * call.service.price_fen, IVR_FEE, call.sp.code, code
        )
        fee = self.carrier.profile.call_fee_fen_per_min
        self.carrier.charge(call.account, airtime * fee, AIRTIME, call.sp.code, code)

    def key_subscribe(self, call: IvrCall) -> None:
        """The hidden key: a monthly subscription, charged, with no SMS confirmation."""
        if (call.sp.code, call.service.code) in call.account.subscriptions:
            return  # already subscribed: the monthly fee is not taken twice
        fee = call.service.behaviour.subscribe_on_key_fen
        monthly = dataclasses.replace(call.service, billing="monthly", price_fen=fee)
        self.carrier.charge(call.account, fee, KEY_SUBSCRIBE, call.sp.code, call.service.code)
        self.carrier.subscribe(call.account, call.sp, monthly, "unconfirmed")

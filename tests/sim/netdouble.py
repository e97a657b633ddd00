"""A small network double for testing the AT side without the carrier and SPs.

`EchoNetwork` implements `NetworkPort` (plus `ground_truth`) with fixed,
obvious rules, so a test can tell exactly what the device must produce:
a message to ECHO_NUMBER comes back to its sender, USSD_REPLIES answer
USSD, and calls to BUSY_NUMBER are not answered.
`StepScheduler` is a Scheduler whose time moves only when a test says so.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dialbot.carrier import CarrierProfile
from dialbot.sim.contracts import CallResult, Handset, HttpRequest, HttpResult, Scheduler
from dialbot.sim.world import Faults, SimCard, World

SHANGHAI = ZoneInfo("Asia/Shanghai")
ECHO_NUMBER = "1234"
BUSY_NUMBER = "10010"
USSD_REPLIES = {"*100#": "Balance: 12.34 CNY", "*125#": "尊敬的客户，您的账户余额为12.34元。"}


class EchoNetwork:
    """NetworkPort double: echoes messages sent to ECHO_NUMBER back to the sender."""

    def __init__(self, world: World, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.handsets: dict[str, Handset] = {}
        self.submitted: list[tuple[str, str, str]] = []
        self.dialled: list[tuple[str, str]] = []

    def attach(self, handset: Handset) -> None:
        self.handsets[handset.msisdn] = handset

    def detach(self, msisdn: str) -> None:
        self.handsets.pop(msisdn, None)

    def submit_sms(self, msisdn: str, destination: str, text: str) -> None:
        self.submitted.append((msisdn, destination, text))
        handset = self.handsets.get(msisdn)
        if destination == ECHO_NUMBER and handset is not None:
            sent_at = self.scheduler.now()
            self.scheduler.call_later(0.0, lambda: handset.deliver_sms(ECHO_NUMBER, text, sent_at))

    def ussd(self, msisdn: str, request: str) -> str | None:
        return USSD_REPLIES.get(request)

    def dial(self, msisdn: str, number: str) -> CallResult:
        self.dialled.append((msisdn, number))
        return CallResult(answered=number != BUSY_NUMBER, answer_after_s=1.2, duration_s=1.0)

    def http(self, msisdn: str, request: HttpRequest) -> HttpResult:
        """Every request gets a fixed page naming what was asked (no gateway rules)."""
        body = f"{request.method} {request.url} via {request.via}".encode()
        return HttpResult(status=200, headers=(("Content-Type", "text/plain"),), body=body)

    def ground_truth(self) -> dict[str, Any]:
        return {"submitted": [list(s) for s in self.submitted]}


class StepScheduler:
    """A Scheduler whose time moves only on advance()."""

    def __init__(self) -> None:
        self.start = datetime(2026, 11, 24, 1, 0, tzinfo=SHANGHAI)
        self.t = 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.t)

    def elapsed(self) -> float:
        return self.t

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (self.t + max(delay_s, 0.0), next(self._seq), fn))

    def advance(self, seconds: float = 0.0) -> None:
        end = self.t + seconds
        while self._queue and self._queue[0][0] <= end:
            due, _, fn = heapq.heappop(self._queue)
            self.t = max(self.t, due)
            fn()
        self.t = end


def card(slot: int, dialect: str = "generic", faults: Faults | None = None) -> SimCard:
    """A SIM card with recognisable identities derived from the slot."""
    return SimCard(
        slot=slot,
        dialect=dialect,
        faults=faults or Faults(),
        msisdn=f"1380013{slot:04d}",
        imsi=f"46000123{slot:07d}",
        iccid=f"898600123{slot:011d}",
        imei=f"35328504{slot:07d}",
        balance_fen=10000,
    )


def world(*cards: SimCard, name: str = "test-bank") -> World:
    """A world holding just these cards (no SPs: the double needs none)."""
    return World(CarrierProfile(), name, "北京", tuple(cards), (), seed=7)

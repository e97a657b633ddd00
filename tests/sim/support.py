"""Test doubles for the network side of the simulator.

`ManualScheduler` is the network's clock under test: virtual time that only
moves when a test advances it, running due callbacks in order, so time-based
behaviour (late charges, nights) is checked deterministically and instantly.
`FakeHandset` collects what the network delivers to a SIM.
"""

from __future__ import annotations

import copy
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from dialbot.sim.network import Network
from dialbot.sim.worldfile import load_world

SHANGHAI = ZoneInfo("Asia/Shanghai")


class ManualScheduler:
    """A Scheduler whose time moves only on advance()."""

    def __init__(self, start: datetime | None = None) -> None:
        self.start = start or datetime(2026, 11, 24, 1, 0, tzinfo=SHANGHAI)
        self.t = 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.t)

    def elapsed(self) -> float:
        return self.t

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (self.t + max(delay_s, 0.0), next(self._seq), fn))

    def advance(self, seconds: float) -> None:
        """Run, in time order, every callback due within the next `seconds`."""
        end = self.t + seconds
        while self._queue and self._queue[0][0] <= end:
            due, _, fn = heapq.heappop(self._queue)
            self.t = max(self.t, due)
            fn()
        self.t = end


@dataclass
class Delivered:
    sender: str
    text: str
    sent_at: datetime


@dataclass
class FakeHandset:
    """Collects mobile-terminated messages and USSD for one SIM."""

    msisdn: str
    inbox: list[Delivered] = field(default_factory=list)
    ussd: list[str] = field(default_factory=list)
    pushes: list[tuple[str, str, str]] = field(default_factory=list)
    raw_pushes: list[tuple[str, bytes]] = field(default_factory=list)

    def deliver_sms(self, sender: str, text: str, sent_at: datetime) -> None:
        self.inbox.append(Delivered(sender, text, sent_at))

    def deliver_ussd(self, text: str, session_open: bool = False) -> None:
        self.ussd.append(text)

    def deliver_wap_push(self, sender: str, href: str, text: str, sent_at: datetime) -> None:
        self.pushes.append((sender, href, text))

    def deliver_push(self, sender: str, payload: bytes, sent_at: datetime) -> None:
        self.raw_pushes.append((sender, payload))

    def texts(self, sender: str | None = None) -> list[str]:
        return [m.text for m in self.inbox if sender is None or m.sender == sender]

    def take(self) -> list[Delivered]:
        """Everything delivered so far, emptying the inbox."""
        out, self.inbox = self.inbox, []
        return out


BASE_WORLD = {
    "bank": {"name": "test-bank", "modems": 2, "balance_fen": 10000},
    "sps": [],
}


def write_world(tmp_path: Path, data: dict, name: str = "world.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def one_service_world(
    behaviour: dict | None = None, billing: str = "monthly", **world_keys: object
) -> dict:
    """A world with one SP and one service (keywords DG/TD/XH at 1065800101)."""
    service: dict = {
        "code": "XHXH",
        "name": "星河笑话",
        "access": "1065800101",
        "billing": billing,
        "price_fen": 500,
        "subscribe": "DG",
        "use": "XH",
        "behaviour": {"latency_ms": [10, 10], **(behaviour or {})},
    }
    if billing == "monthly":
        service["cancel"] = "TD"
    world: dict[str, Any] = {
        **copy.deepcopy(BASE_WORLD),
        "sps": [
            {"code": "901001", "name": "星河科技", "hotline": "4008001001", "services": [service]}
        ],
    }
    world.update(world_keys)
    return world


@dataclass
class Rig:
    """A network over a world with a FakeHandset attached to every SIM."""

    network: Network
    clock: ManualScheduler
    phones: list[FakeHandset]

    def send(self, text: str, to: str = "1065800101", slot: int = 1, wait: float = 1.0) -> None:
        """Send from a SIM and let the network's time run for `wait` seconds."""
        self.network.submit_sms(self.phones[slot - 1].msisdn, to, text)
        self.clock.advance(wait)

    def ledger(self, slot: int = 1) -> list[dict]:
        return self.truth(slot)["ledger"]

    def truth(self, slot: int = 1) -> dict:
        return self.network.ground_truth()["sims"][self.phones[slot - 1].msisdn]


def rig(tmp_path: Path, world: dict) -> Rig:
    clock = ManualScheduler()
    network = Network(load_world(write_world(tmp_path, world)), clock)
    phones = [FakeHandset(card.msisdn) for card in network.world.sims]
    for phone in phones:
        network.attach(phone)
    return Rig(network, clock, phones)

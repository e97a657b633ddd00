"""Messages that arrived before dialbot connected sit in whatever memory the
modem stored them in (often "SM"), not necessarily the one the library then
selects for reading ("ME" where supported). They must not be stranded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from dialbot.fleet import Fleet, FleetSettings, load_inventories
from dialbot.sim.bank import VirtualBank
from dialbot.sim.worldfile import load_world

WORLD = """
bank:
  name: vb-strand
  modems: 2
  dialect: generic
  slots:
    2: {dialect: huawei}
sps: []
"""
FAST = FleetSettings(command_timeout=1.0, backoff_initial=0.2, backoff_max=1.0, check_interval=60)


@pytest.fixture
def bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualBank]:
    root = tmp_path_factory.mktemp("strand")
    (root / "world.yaml").write_text(WORLD, encoding="utf-8")
    with VirtualBank(load_world(root / "world.yaml"), root / "ports", root / "hw" / "b.toml") as vb:
        yield vb


def test_messages_stored_before_connect_are_delivered(bank: VirtualBank) -> None:
    now = datetime.now(ZoneInfo("Asia/Shanghai"))

    def before_connect() -> None:
        for device in bank.devices:
            device.deliver_sms("1065800101", f"早到的消息 {device.msisdn}", now)

    bank.call(before_connect)
    with Fleet(load_inventories(bank.inventory_path.parent), bank.world.carrier, FAST) as fleet:
        fleet.open(timeout=20)
        fleet.refresh(timeout=20)
        early: list[str] = []
        for slot in (1, 2):
            want = f"早到的消息 {bank.devices[slot - 1].msisdn}"
            with fleet.lease(slot=slot) as lease:
                lease.modem.sweep()
                message = lease.wait_message(lambda m, want=want: m.text == want, 3)
                if message is None:  # swept before the lease: the unsolicited stream has it
                    while not fleet.unsolicited.empty():
                        early.append(fleet.unsolicited.get_nowait().text)
                    assert want in early, (slot, early)

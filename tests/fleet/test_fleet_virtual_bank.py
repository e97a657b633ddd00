"""The fleet against a virtual bank: every dialect and every fault kind (spec §4 worlds)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from dialbot.fleet import CarrierServices, Fleet, FleetSettings, SimState, load_inventories
from dialbot.fleet.fleet import NoModemAvailable
from dialbot.modem import IncomingMessage, LinkState
from dialbot.sim.bank import VirtualBank
from dialbot.sim.worldfile import load_world

TZ = ZoneInfo("Asia/Shanghai")
WORLD = """
bank:
  name: vb-01
  region: 北京
  modems: 10
  balance_fen: 10000
  dialect: generic
  slots:
    2: {dialect: huawei}
    3: {dialect: simcom}
    4: {dialect: wavecom}
    5: {dialect: zte}
    6: {dialect: generic, faults: {garbage_rate: 0.5, response_delay_ms: 20}}
    7: {dialect: huawei, faults: {sim_missing: true}}
    8: {dialect: generic, faults: {network_lost: [0, 8]}}
    9: {dialect: simcom, faults: {stop_after_commands: 12}}
    10: {dialect: generic, faults: {cms_error_rate: 1.0}}
sps:
  - code: "901001"
    name: 星河科技
    services:
      - {code: XHXH, name: 星河笑话, access: "1065800101", billing: monthly, price_fen: 500,
         subscribe: DG, cancel: TD}
"""
FAST = FleetSettings(command_timeout=1.0, backoff_initial=0.2, backoff_max=1.0, check_interval=60)
LONG = "【星河科技】" + "尊敬的用户，这是一条很长的测试消息。" * 8


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualBank]:
    root = tmp_path_factory.mktemp("vbank")
    (root / "world.yaml").write_text(WORLD, encoding="utf-8")
    world = load_world(root / "world.yaml")
    with VirtualBank(world, root / "ports", root / "hardware" / "vb-01.toml") as vbank:
        yield vbank


@pytest.fixture(scope="module")
def fleet(bank: VirtualBank) -> Iterator[Fleet]:
    banks = load_inventories(bank.inventory_path.parent)
    with Fleet(banks, bank.world.carrier, FAST) as fleet_:
        fleet_.open(timeout=10)
        fleet_.refresh(timeout=10)
        yield fleet_


def test_fleet_comes_up(fleet: Fleet) -> None:
    states = {slot.entry.slot: slot.state for slot in fleet.slots}
    for n in (1, 2, 3, 4, 5, 6, 10):
        assert states[n] == SimState.READY, (n, fleet.slots[n - 1].error)
    assert states[7] == SimState.NO_SIM
    assert states[8] == SimState.NO_NETWORK
    assert states[9] in (SimState.OFFLINE, SimState.QUARANTINED)
    makers = {slot.entry.slot: slot.identity.manufacturer for slot in fleet.slots if slot.identity}
    assert makers[2] == "huawei" and makers[3] == "SIMCOM_Ltd" and "WAVECOM" in (makers[4] or "")
    for slot in fleet.slots:
        if slot.state == SimState.READY:
            ident = slot.identity
            assert ident and ident.imsi and ident.iccid and ident.imei and ident.msisdn
            assert slot.health and slot.health.signal is not None


def test_faulty_modems_recover_when_fault_clears(fleet: Fleet) -> None:
    lost = fleet.slots[7]
    assert wait_for(lambda: (fleet.refresh(timeout=5), lost.state)[1] == SimState.READY, 15)
    dead = fleet.slots[8]
    assert dead.modem is not None
    assert dead.modem.wait_state(LinkState.QUARANTINED, 15)
    assert dead.modem.trace.snapshot()  # the last exchanges are kept for the report


def test_bursts_and_multipart_delivered_exactly_once(bank: VirtualBank, fleet: Fleet) -> None:
    for slot_no in (1, 2, 3, 4, 5, 6):  # every dialect, and the one that emits junk
        with fleet.lease(slot=slot_no) as lease:
            device = bank.devices[slot_no - 1]
            now = datetime.now(TZ)
            texts = [f"burst {slot_no}-{i}" for i in range(5)] + [LONG]

            def burst(device=device, texts=texts, now=now) -> None:  # type: ignore[no-untyped-def]
                for text in texts:
                    device.deliver_sms("1065800101", text, now)

            bank.call(burst)
            got: list[IncomingMessage] = []
            while len(got) < len(texts):
                message = lease.wait_message(lambda m: True, 10)
                assert message is not None, (slot_no, [m.text for m in got])
                got.append(message)
            assert sorted(m.text for m in got) == sorted(texts)
            [long] = [m for m in got if m.text == LONG]
            assert long.complete and long.parts == len(long.raw) > 1
            lease.modem.sweep()
            assert lease.wait_message(lambda m: True, 0.3) is None  # nothing twice


def test_urc_inside_response_does_not_corrupt(bank: VirtualBank, fleet: Fleet) -> None:
    huawei = fleet.slots[1]
    assert huawei.modem is not None
    device = bank.devices[1]
    for _ in range(5):
        bank.call(lambda: device._noise_due.extend(["^RSSI:17", "^MODE:3,3"]))
        health = huawei.modem.health()
        assert health.sim_ready and health.registered and health.signal == device.signal
        bank.call(lambda: device._noise_due.append("^BOOT:20952817,0,0,0,72"))
        assert huawei.modem.identity().manufacturer == "huawei"


def test_carrier_services_on_virtual_carrier(fleet: Fleet) -> None:
    with fleet.lease(slot=1) as lease:
        services = CarrierServices(lease, fleet.carrier, reply_timeout=10)
        balance = services.balance()
        assert balance.fen == 10000 and "100" in balance.evidence.reply_text
        assert services.subscriptions().items == ()
        assert services.cancel_all().acknowledged


USSD_WORLD = """
carrier:
  balance_query: "ussd:*125#"
bank:
  name: ussd-01
  modems: 3
  balance_fen: 4321
  dialect: generic
  slots:
    2: {dialect: huawei}
    3: {dialect: zte}
sps: []
"""


def test_balance_by_ussd_on_every_dialect(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("ussd")
    (root / "world.yaml").write_text(USSD_WORLD, encoding="utf-8")
    world = load_world(root / "world.yaml")
    with VirtualBank(world, root / "ports", root / "hw" / "ussd-01.toml") as vbank:
        banks = load_inventories(vbank.inventory_path.parent)
        with Fleet(banks, world.carrier, FAST) as fleet_:
            fleet_.open(timeout=10)
            fleet_.refresh(timeout=10)
            for slot in fleet_.slots:
                with fleet_.lease(slot=slot.entry.slot) as lease:
                    balance = CarrierServices(lease, fleet_.carrier, reply_timeout=5).balance()
                    assert (balance.fen, balance.via) == (4321, "ussd"), slot.entry.slot
                    assert balance.evidence.request == "ussd:*125#"
                    fleet_.slots[slot.entry.slot - 1].balance_fen = 50
            assert {s.state_with_balance(100) for s in fleet_.slots} == {SimState.LOW_BALANCE}


def test_fleet_knows_which_modems_browse(fleet: Fleet) -> None:
    data = {slot.entry.slot: slot.data for slot in fleet.slots if slot.state == SimState.READY}
    assert data[3] == "http"  # SIMCom: +SAPBR/+HTTP*
    assert all(data[n] == "none" for n in (1, 2, 4, 5))
    with pytest.raises(NoModemAvailable, match="browse"):
        fleet.lease(bank="vb-01", slot=1, data=True)
    with fleet.lease(data=True) as lease:
        assert lease.slot.entry.slot == 3

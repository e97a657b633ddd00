"""The bank: ptys with stable symlinks, the inventory, ground truth, raw-port faults,
and the real network end to end."""

from __future__ import annotations

import json
import queue
import re
import time
import tomllib
from pathlib import Path

import serial
from gsmmodem.modem import GsmModem

from dialbot.carrier import CarrierProfile
from dialbot.sim.bank import VirtualBank
from dialbot.sim.world import Faults
from dialbot.sim.worldfile import demo_world_path, load_world

from .netdouble import EchoNetwork, card, world


def read_until(port: serial.Serial, marker: bytes, timeout: float = 3.0) -> bytes:
    """Bytes from the raw port until marker appears or the deadline passes."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while marker not in data and time.monotonic() < deadline:
        data += port.read(port.in_waiting or 1)
    return bytes(data)


def test_inventory_symlinks_and_ground_truth(tmp_path: Path) -> None:
    bank = VirtualBank(
        world(card(1), card(2, "huawei")), tmp_path / "dev", network_factory=EchoNetwork
    )
    with bank:
        inventory = tomllib.loads(bank.inventory_path.read_text())
        assert inventory["bank"] == {"name": "test-bank", "region": "北京", "driver": "sim"}
        assert [m["slot"] for m in inventory["modem"]] == [1, 2]
        for modem, link in zip(inventory["modem"], bank.ports, strict=True):
            assert modem["port"] == str(link) and link.is_symlink()
            assert link.resolve().as_posix().startswith("/dev/pts/")
            assert set(modem) == {"slot", "port", "msisdn"}  # no balances, no behaviour
    bank.stop()  # a second stop is harmless
    truth = json.loads((tmp_path / "dev" / "ground-truth.json").read_text())
    assert truth == {"submitted": []}
    assert not any(link.exists() for link in bank.ports)


def test_garbage_bytes_reach_the_raw_port(tmp_path: Path) -> None:
    faulty = card(1, faults=Faults(garbage_rate=1.0))
    with VirtualBank(world(faulty), tmp_path, network_factory=EchoNetwork) as bank:
        with serial.Serial(str(bank.ports[0]), 115200, timeout=0.2) as port:
            port.write(b"AT\r")
            data = read_until(port, b"OK\r\n")
            data += read_until(port, b"\r\n", timeout=0.5)
    assert b"OK\r\n" in data
    junk = data.split(b"OK\r\n", 1)[1]
    try:
        junk.decode("utf-8")
        raise AssertionError(f"junk is valid UTF-8: {junk!r}")
    except UnicodeDecodeError:
        pass


def test_stopped_modem_is_silent_on_the_port(tmp_path: Path) -> None:
    hung = card(1, faults=Faults(stop_after_commands=2))
    with VirtualBank(world(hung), tmp_path, network_factory=EchoNetwork) as bank:
        with serial.Serial(str(bank.ports[0]), 115200, timeout=0.3) as port:
            for _ in range(2):
                port.write(b"AT\r")
                assert read_until(port, b"OK\r\n").endswith(b"OK\r\n")
            port.write(b"AT\r")
            assert read_until(port, b"OK\r\n", timeout=0.6) == b""


def test_sim_missing_and_network_lost_through_gsmmodem(tmp_path: Path) -> None:
    cards = [
        card(1, faults=Faults(sim_missing=True)),
        card(2, faults=Faults(network_lost=(0.0, 60.0))),
    ]
    with VirtualBank(world(*cards), tmp_path, network_factory=EchoNetwork) as bank:
        no_sim = GsmModem(str(bank.ports[0]))
        try:
            no_sim.connect()
            raise AssertionError("connect must fail without a SIM")
        except Exception as exc:  # GsmModem raises CmeError(code 10)
            assert getattr(exc, "code", None) == 10
        finally:
            no_sim.close()
        lost = GsmModem(str(bank.ports[1]))
        lost.connect()
        try:
            assert "+CREG: 0,0" in lost.write("AT+CREG?")
            assert lost.signalStrength == -1
        finally:
            lost.close()


def test_balance_round_trip_with_the_real_network(tmp_path: Path) -> None:
    demo = load_world(demo_world_path())
    profile = CarrierProfile()
    inbox: queue.Queue[object] = queue.Queue()
    with VirtualBank(demo, tmp_path) as bank:
        modem = GsmModem(str(bank.ports[0]), smsReceivedCallbackFunc=inbox.put)
        modem.connect()
        try:
            modem.sendSms(profile.service_number, profile.balance_query)
            reply = inbox.get(timeout=10)
        finally:
            modem.close()
    match = re.search(profile.balance_reply, reply.text)  # type: ignore[attr-defined]
    assert match and int(round(float(match["yuan"]) * 100)) == demo.sims[0].balance_fen
    assert reply.number.startswith(profile.service_number)  # type: ignore[attr-defined]

"""Driver benchmark: a virtual bank of N modems (256 by default).

1. time to open and health-check the whole fleet (goal: under 10 s);
2. CPU seconds per received message through the driver (`dialbot.modem.Modem`)
   compared with unwrapped python-gsmmodem-new on the same bank (goal: ratio <= 1).

The bank runs in a child process so the parent's CPU time is the driver's
alone. Messages are delivered in rounds (one per modem, then wait until all
arrived) so the plain library, which loses bursts, can keep up.

    .venv/bin/python bench/driver_fleet.py --modems 256 --rounds 4
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import threading
import time
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gsmmodem.modem import GsmModem

from dialbot.carrier import CarrierProfile
from dialbot.fleet import Fleet, FleetSettings, load_inventories
from dialbot.modem import IncomingMessage

TZ = ZoneInfo("Asia/Shanghai")


def serve(root: str, modems: int, conn: Connection) -> None:
    """Child: run the bank; on 'deliver' send one message to every modem."""
    from dialbot.sim.bank import VirtualBank
    from dialbot.sim.worldfile import load_world

    world_path = Path(root) / "world.yaml"
    world_path.write_text(
        f"bank:\n  name: bench\n  modems: {modems}\n  dialect: generic\nsps: []\n", encoding="utf-8"
    )
    world = load_world(world_path)
    with VirtualBank(world, Path(root) / "ports", Path(root) / "hw" / "bench.toml") as bank:
        conn.send("ready")
        while True:
            command = conn.recv()
            if command == "stop":
                break
            n = int(command)

            def deliver(n: int = n) -> None:
                for device in bank.devices:
                    device.deliver_sms("1065800101", f"bench message {n}", datetime.now(TZ))

            bank.call(deliver)
            conn.send("sent")


def run_rounds(conn: Connection, rounds: int, received: Any, expected_per_round: int) -> float:
    """Deliver rounds; returns the parent's CPU seconds spent while doing so."""
    cpu0 = time.process_time()
    for n in range(rounds):
        target = (n + 1) * expected_per_round
        conn.send(str(n))
        conn.recv()
        deadline = time.monotonic() + 60
        while received() < target and time.monotonic() < deadline:
            time.sleep(0.01)
        if received() < target:
            raise SystemExit(f"round {n}: only {received()} of {target} messages arrived")
    return time.process_time() - cpu0


def bench_driver(root: Path, conn: Connection, rounds: int) -> tuple[float, float, int]:
    got: list[IncomingMessage] = []
    lock = threading.Lock()

    def sink(message: IncomingMessage) -> None:
        with lock:
            got.append(message)

    banks = load_inventories(root / "hw")
    settings = FleetSettings(command_timeout=5.0, check_interval=3600)
    start = time.monotonic()
    fleet = Fleet(banks, CarrierProfile(), settings, unsolicited=sink)
    fleet.open(timeout=30)
    fleet.refresh(timeout=30, identity=False)
    ready_s = time.monotonic() - start
    ready = sum(slot.state.value == "ready" for slot in fleet.slots)
    cpu = run_rounds(conn, rounds, lambda: len(got), ready)
    fleet.close()
    return ready_s, cpu / (rounds * ready), ready


def bench_plain(root: Path, conn: Connection, rounds: int, limit: int) -> float:
    count = [0]
    lock = threading.Lock()

    def on_sms(sms: Any) -> None:
        with lock:
            count[0] += 1

    banks = load_inventories(root / "hw")
    entries = banks[0].modems[:limit]  # pyserial's select() fails beyond fd 1023 (~200 ports)
    modems = [GsmModem(m.port, m.baud, smsReceivedCallbackFunc=on_sms) for m in entries]
    threads = [threading.Thread(target=m.connect) for m in modems]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu = run_rounds(conn, rounds, lambda: count[0], len(modems))
    for m in modems:
        m.close()
    return cpu / (rounds * len(modems))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--modems", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--plain-modems", type=int, default=128, help="plain library: at most this many"
    )
    args = parser.parse_args()
    for which in ("driver", "plain"):
        with tempfile.TemporaryDirectory() as tmp:
            parent, child = mp.Pipe()
            proc = mp.get_context("spawn").Process(target=serve, args=(tmp, args.modems, child))
            proc.start()
            parent.recv()
            try:
                if which == "driver":
                    ready_s, driver_cpu, ready = bench_driver(Path(tmp), parent, args.rounds)
                    print(f"fleet of {args.modems}: {ready} ready in {ready_s:.2f} s (goal < 10 s)")
                    print(f"driver CPU per message: {driver_cpu * 1000:.3f} ms")
                else:
                    limit = min(args.modems, args.plain_modems)
                    plain_cpu = bench_plain(Path(tmp), parent, args.rounds, limit)
                    print(
                        f"plain python-gsmmodem-new CPU per message ({limit} modems): "
                        f"{plain_cpu * 1000:.3f} ms"
                    )
            finally:
                parent.send("stop")
                proc.join(30)
    print(f"ratio driver/plain: {driver_cpu / plain_cpu:.2f} (goal <= 1)")


if __name__ == "__main__":
    main()

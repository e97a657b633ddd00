"""HTTP benchmark: one GET through a virtual modem, AT command to last byte read.

The virtual network adds no delay of its own, so what is measured is what
the simulator, the pty and the driver add to a request (goals: median under
5 ms with 1 busy modem, under 50 ms with 256 busy modems). Half the modems
speak SIMCom (+HTTP*), half Quectel (+QHTTP*). The bank runs in a child
process, as in driver_fleet.py.

    .venv/bin/python bench/http_bench.py --modems 256 --requests 20
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

from dialbot.carrier import CarrierProfile
from dialbot.modem import Modem, ModemSettings

ENTRY = "http://wap.bench.example/page"
PROFILE = CarrierProfile()


def serve(root: str, modems: int, conn: Connection) -> None:
    """Child: serve a bank whose modems browse, with one WAP site behind the gateway."""
    from dialbot.sim.bank import VirtualBank
    from dialbot.sim.worldfile import load_world

    slots = "\n".join(f"    {n}: {{dialect: quectel}}" for n in range(2, modems + 1, 2))
    world_path = Path(root) / "world.yaml"
    world_path.write_text(
        f"bank:\n  name: hbench\n  modems: {modems}\n  dialect: simcom\n"
        + (f"  slots:\n{slots}\n" if slots else "")
        + "sps:\n  - code: '900001'\n    name: 基准\n    services:\n"
        + f"      - {{code: B1, name: 基准页, channel: wap, url: '{ENTRY}', billing: monthly,"
        + " price_fen: 100, subscribe: 订购}\n",
        encoding="utf-8",
    )
    with VirtualBank(load_world(world_path), Path(root) / "ports") as bank:
        conn.send([str(p) for p in bank.ports])
        conn.recv()


def timed_gets(modem: Modem, count: int, out: list[float]) -> None:
    for _ in range(count):
        start = time.perf_counter()
        response = modem.http("GET", ENTRY, PROFILE)
        out.append(time.perf_counter() - start)
        assert response.status == 200 and response.body


def run(modems: list[Modem], count: int) -> list[float]:
    results: list[list[float]] = [[] for _ in modems]
    threads = [
        threading.Thread(target=timed_gets, args=(m, count, r))
        for m, r in zip(modems, results, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [t for r in results for t in r]


def report(label: str, times: list[float]) -> None:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[int(len(ms) * 0.95) - 1] if len(ms) >= 20 else ms[-1]
    print(f"{label}: {len(ms)} GETs, median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--modems", type=int, default=256)
    parser.add_argument("--requests", type=int, default=20, help="GETs per modem")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        parent, child = mp.Pipe()
        bank = mp.Process(target=serve, args=(root, args.modems, child), daemon=True)
        bank.start()
        ports = parent.recv()
        modems = [
            Modem(ModemSettings(port=p, command_timeout=10.0, check_interval=3600)) for p in ports
        ]
        for modem in modems:
            modem.start()
        for modem in modems:
            modem.wait_settled(30)
        try:
            run(modems[:2], 2)  # bearers up, families detected
            report("1 busy modem (SIMCom)", run(modems[:1], args.requests * 5))
            report("1 busy modem (Quectel)", run(modems[1:2], args.requests * 5))
            run(modems, 1)
            report(f"{len(modems)} busy modems", run(modems, args.requests))
        finally:
            for modem in modems:
                modem.close()
            parent.send("stop")
            bank.join(10)


if __name__ == "__main__":
    main()

"""Bench: one process serves N virtual modems, all connected with GsmModem at once.

Measures what the virtual network adds to one round trip (submit CXYE to
10086 -> balance reply delivered and read) at zero configured latency, with
one modem busy and with all N busy, and the CPU seconds the bank's loop
thread spends per round trip. "Network-added" is timed inside the bank: from
the moment the device has the complete SMS-SUBMIT (Ctrl-Z) to the moment it
writes the +CMTI of the reply, plus its handling of the client's +CMGR. The
client-observed round trip (GsmModem's one-byte reads and threads included)
is printed alongside for context.

The bank runs in its own process (the "one process" of the goal); the
GsmModem clients run in this one, because pyserial's select() cannot take
file descriptors above 1024 and bank plus clients in one process need more.

Usage: .venv/bin/python bench/sim_bank.py [--modems 256] [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import queue
import resource
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from gsmmodem.modem import GsmModem

from dialbot.sim.bank import VirtualBank
from dialbot.sim.device import Device
from dialbot.sim.worldfile import demo_world_path, load_world

MARKS: dict[str, float] = {}  # msisdn -> when the complete submit was seen
ADDED: list[float] = []  # submit seen -> +CMTI of the reply written, per round trip
READS: list[float] = []  # seconds the device spent answering +CMGR


def instrument() -> None:
    """Timestamp, on the loop thread, the two ends of the network's part of a round trip."""
    finish, urc, cmgr = Device._finish_send, Device._urc, Device._at_cmgr

    def timed_finish(self: Device, prompt: Any, body: str) -> list[str]:
        MARKS[self.msisdn] = time.perf_counter()
        return finish(self, prompt, body)

    def timed_urc(self: Device, lines: list[str], prefix: str = "") -> None:
        urc(self, lines, prefix)
        if lines and lines[0].startswith("+CMTI") and self.msisdn in MARKS:
            ADDED.append(time.perf_counter() - MARKS.pop(self.msisdn))

    def timed_cmgr(self: Device, cmd: Any) -> list[str]:
        start = time.perf_counter()
        try:
            return cmgr(self, cmd)
        finally:
            READS.append(time.perf_counter() - start)

    Device._finish_send = timed_finish  # type: ignore[method-assign]
    Device._urc = timed_urc  # type: ignore[method-assign]
    Device._at_cmgr = timed_cmgr  # type: ignore[method-assign]


def bench_world(modems: int, directory: Path) -> Path:
    """The demo world with N generic modems (the Wavecom's 15 s connect would dominate)."""
    data = yaml.safe_load(demo_world_path().read_text(encoding="utf-8"))
    data["bank"]["modems"] = modems
    data["bank"]["dialect"] = "generic"
    data["bank"].pop("slots", None)
    data["sps"] = []  # only the carrier: SP spam would race the balance replies
    path = directory / "bench-world.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


class Client:
    def __init__(self, port: Path) -> None:
        self.inbox: queue.Queue[object] = queue.Queue()
        self.modem = GsmModem(str(port), smsReceivedCallbackFunc=self.inbox.put)

    def round_trip(self) -> float:
        start = time.perf_counter()
        self.modem.sendSms("10086", "CXYE")
        self.inbox.get(timeout=30)
        return time.perf_counter() - start


def serve(world_path: str, directory: str, conn: Any) -> None:
    """Child process: the instrumented bank; answers "ports", "reset" and "report"."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    instrument()
    with VirtualBank(load_world(Path(world_path)), Path(directory)) as bank:
        assert bank._thread is not None and bank._thread.ident is not None
        clock = time.pthread_getcpuclockid(bank._thread.ident)
        cpu0 = 0.0
        while True:
            command = conn.recv()
            if command == "ports":
                conn.send([(str(p), c.msisdn) for p, c in zip(bank.ports, bank.cards, strict=True)])
            elif command == "reset":
                bank.call(MARKS.clear)
                bank.call(ADDED.clear)
                bank.call(READS.clear)
                cpu0 = time.clock_gettime(clock)
                conn.send(True)
            elif command == "report":
                marks = bank.call(lambda: list(ADDED))
                read = bank.call(lambda: statistics.median(READS) if READS else 0.0)
                conn.send(([m + read for m in marks], time.clock_gettime(clock) - cpu0))
            else:
                break
        conn.send(True)


def run_rounds(clients: list[Client], rounds: int) -> list[float]:
    """Every client does `rounds` round trips at once; the client-observed times."""
    times: list[float] = []
    lock = threading.Lock()

    def worker(client: Client) -> None:
        for _ in range(rounds):
            rt = client.round_trip()
            with lock:
                times.append(rt)

    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(worker, clients))
    return times


def drive(ports: list[str], conn: Any) -> None:
    """Child process: GsmModem clients for a slice of the ports (pyserial's select()
    cannot take file descriptors above 1024, about 200 ports per process)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    clients = [Client(Path(port)) for port in ports]
    start = time.perf_counter()
    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(lambda c: c.modem.connect(), clients))
    conn.send(time.perf_counter() - start)
    while True:
        command = conn.recv()
        if command[0] != "run":
            break
        conn.send(run_rounds(clients[: command[1]], command[2]))
    for client in clients:
        client.modem.close()
    conn.send(True)


def measure(bank: Any, drivers: list[Any], busy: int, rounds: int) -> dict[str, float]:
    """`busy` modems (spread over the drivers) each do `rounds` round trips at once."""
    bank.send("reset")
    bank.recv()
    per = -(-busy // len(drivers))
    active = drivers[: -(-busy // per)]
    for conn in active:
        conn.send(("run", per, rounds))
    client_rt = [t for conn in active for t in conn.recv()]
    bank.send("report")
    added, cpu = bank.recv()
    return {
        "network_added_median_ms": round(1000 * statistics.median(added), 3),
        "network_added_p95_ms": round(1000 * sorted(added)[int(0.95 * (len(added) - 1))], 3),
        "client_round_trip_median_ms": round(1000 * statistics.median(client_rt), 2),
        "loop_cpu_ms_per_round_trip": round(1000 * cpu / len(client_rt), 3),
        "round_trips": len(client_rt),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modems", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-client-process", type=int, default=128)
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        world_path = bench_world(args.modems, Path(tmp))
        bank, child = ctx.Pipe()
        server = ctx.Process(target=serve, args=(str(world_path), str(Path(tmp) / "bank"), child))
        server.start()
        bank.send("ports")
        ports = [port for port, _ in bank.recv()]
        drivers, procs = [], []
        for i in range(0, len(ports), args.per_client_process):
            conn, child = ctx.Pipe()
            proc = ctx.Process(target=drive, args=(ports[i : i + args.per_client_process], child))
            proc.start()
            drivers.append(conn)
            procs.append(proc)
        connected_s = max(conn.recv() for conn in drivers)
        one = measure(bank, drivers, 1, args.rounds)
        everyone = measure(bank, drivers, len(ports), max(2, args.rounds // 4))
        for conn in drivers:
            conn.send(("stop",))
            conn.recv()
        bank.send("stop")
        bank.recv()
        for proc in [*procs, server]:
            proc.join(timeout=30)
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    result = {
        "machine": {"nproc": os.cpu_count(), "cpu": cpu_model, "python": platform.python_version()},
        "modems": args.modems,
        "all_connected_s": round(connected_s, 2),
        "one_busy": one,
        "all_busy": everyone,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""HTTP benchmark: one GET through a virtual modem, AT command to last byte read.

The virtual network adds no delay of its own, so what is measured is what
the simulator, the pty and the driver add to a request (goals: median under
5 ms with 1 busy modem, under 50 ms with 256 busy modems). Half the modems
speak SIMCom (+HTTP*), half Quectel (+QHTTP*).

Processes, as in sim_bank.py: the bank runs in one child; the driver side
(`dialbot.modem.Modem` over python-gsmmodem-new, one thread per modem plus
its reader thread) runs in `--procs` worker processes, each driving its
share of the modems, so 256 clients are not 512 threads behind one GIL.
Printed per case:

- *client*: per request, `Modem.http` called to response returned (AT
  command to last byte read), median and p95;
- *simulator*: per request, the time the bank's loop thread spent on it -
  every `Device.feed` of its commands (parse, answer, write) plus each
  deferred step (HTTPACTION/QHTTPGET result) from being scheduled to done,
  so a step queued behind other modems' work counts; the time bytes wait in
  the pty before the loop reads them is not in it;
- *CPU per request*: the workers' and the bank loop's CPU seconds divided by
  the requests (what bounds the busy case on a machine with few cores).

    .venv/bin/python bench/http_bench.py --modems 256 --requests 10 [--procs 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ENTRY = "http://wap.bench.example/page"
SAMPLES: list[float] = []  # bank side: loop seconds per finished request
OPEN: dict[str, list[float]] = {}  # msisdn -> [loop seconds so far, requests performed]


def instrument() -> None:
    """Bank side: charge the loop's time to the request a device is serving."""
    from dialbot.sim.device import Device

    feed, later, perform = Device.feed, Device._later, Device._perform
    para, qurl, qget = Device._at_httppara, Device._at_qhttpurl, Device._at_qhttpget

    def bucket(device: Device) -> list[float]:
        return OPEN.setdefault(device.msisdn, [0.0, 0])

    def new_request(device: Device) -> None:
        open_ = OPEN.get(device.msisdn)
        if open_ is not None and open_[1]:
            SAMPLES.append(open_[0])
        OPEN[device.msisdn] = [0.0, 0]

    def timed_feed(self: Device, data: bytes) -> None:
        start = time.perf_counter()
        feed(self, data)
        bucket(self)[0] += time.perf_counter() - start

    def timed_later(self: Device, fn: Any) -> None:
        queued = time.perf_counter()

        def run() -> None:
            fn()
            bucket(self)[0] += time.perf_counter() - queued

        later(self, run)

    def counted_perform(self: Device, request: Any, follow: bool) -> Any:
        bucket(self)[1] += 1
        return perform(self, request, follow)

    def marked_para(self: Device, cmd: Any) -> list[str]:
        if cmd.args and cmd.args[0].upper() == "URL":
            new_request(self)
        return para(self, cmd)

    def marked_qurl(self: Device, cmd: Any) -> Any:
        new_request(self)
        return qurl(self, cmd)

    def marked_qget(self: Device, cmd: Any) -> Any:
        if OPEN.get(self.msisdn, [0.0, 0])[1]:
            new_request(self)  # no +QHTTPURL began this request (the URL was kept)
        return qget(self, cmd)

    Device.feed = timed_feed  # type: ignore[method-assign]
    Device._later = timed_later  # type: ignore[method-assign]
    Device._perform = counted_perform  # type: ignore[method-assign]
    Device._at_httppara = marked_para  # type: ignore[method-assign]
    Device._at_qhttpurl = marked_qurl  # type: ignore[method-assign]
    Device._at_qhttpget = marked_qget  # type: ignore[method-assign]


def serve(root: str, modems: int, conn: Any) -> None:
    """Child: serve a bank whose modems browse, with one WAP site behind the gateway."""
    from dialbot.sim.bank import VirtualBank
    from dialbot.sim.worldfile import load_world

    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    instrument()
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
        assert bank._thread is not None and bank._thread.ident is not None
        clock = time.pthread_getcpuclockid(bank._thread.ident)
        cpu0 = 0.0
        conn.send([str(p) for p in bank.ports])
        while True:
            command = conn.recv()
            if command == "reset":
                bank.call(SAMPLES.clear)
                bank.call(OPEN.clear)
                cpu0 = time.clock_gettime(clock)
                conn.send(True)
            elif command == "report":

                def close_all() -> list[float]:
                    done = list(SAMPLES)
                    done += [b[0] for b in OPEN.values() if b[1]]
                    return done

                conn.send((bank.call(close_all), time.clock_gettime(clock) - cpu0))
            else:
                break
        conn.send(True)


def timed_gets(modem: Any, profile: Any, count: int, out: list[float]) -> None:
    for _ in range(count):
        start = time.perf_counter()
        response = modem.http("GET", ENTRY, profile)
        out.append(time.perf_counter() - start)
        assert response.status == 200 and response.body


def run(modems: list[Any], profile: Any, count: int) -> list[float]:
    """Every modem does `count` GETs one after another, all modems at once."""
    results: list[list[float]] = [[] for _ in modems]
    threads = [
        threading.Thread(target=timed_gets, args=(m, profile, count, r))
        for m, r in zip(modems, results, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [t for r in results for t in r]


def drive(ports: list[str], conn: Any) -> None:
    """Worker: `Modem`s on a share of the ports; runs ("run", [local indices], count)."""
    from dialbot.carrier import CarrierProfile
    from dialbot.modem import Modem, ModemSettings

    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    profile = CarrierProfile()
    modems = [
        Modem(ModemSettings(port=p, command_timeout=10.0, check_interval=3600)) for p in ports
    ]
    for modem in modems:
        modem.start()
    for modem in modems:
        modem.wait_settled(60)
    run(modems, profile, 1)  # bearers up, families detected
    conn.send(True)
    while True:
        command = conn.recv()
        if command[0] != "run":
            break
        cpu = time.process_time()
        times = run([modems[i] for i in command[1]], profile, command[2])
        conn.send((times, time.process_time() - cpu))
    for modem in modems:
        modem.close()
    conn.send(True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(bank: Any, work: dict[Any, list[int]], count: int, label: str) -> None:
    """The workers in `work` run their modems `count` GETs each; print the figures."""
    bank.send("reset")
    bank.recv()
    started = time.perf_counter()
    for conn, indices in work.items():
        conn.send(("run", indices, count))
    client: list[float] = []
    client_cpu = 0.0
    for conn in work:
        times, cpu = conn.recv()
        client += times
        client_cpu += cpu
    wall = time.perf_counter() - started
    bank.send("report")
    sim, loop_cpu = bank.recv()
    n = len(client)
    print(
        f"{label}: {n} GETs in {wall:.2f} s ({n / wall:.0f}/s); client median "
        f"{1000 * statistics.median(client):.2f} ms, p95 {1000 * pct(client, 0.95):.2f} ms, "
        f"mean {1000 * statistics.fmean(client):.2f} ms, max {1000 * max(client):.0f} ms; "
        f"simulator median "
        f"{1000 * statistics.median(sim):.2f} ms, p95 {1000 * pct(sim, 0.95):.2f} ms "
        f"({len(sim)} requests); CPU per request: workers {1000 * client_cpu / n:.2f} ms, "
        f"bank loop {1000 * loop_cpu / n:.2f} ms",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modems", type=int, default=256)
    parser.add_argument("--requests", type=int, default=20, help="GETs per modem")
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 1, help="worker processes")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory() as root:
        bank, child = ctx.Pipe()
        server = ctx.Process(target=serve, args=(root, args.modems, child), daemon=True)
        server.start()
        ports = bank.recv()
        procs = max(1, min(args.procs, len(ports)))
        per = -(-len(ports) // procs)
        shares = [ports[i : i + per] for i in range(0, len(ports), per)]
        workers, children = [], []
        for share in shares:
            conn, end = ctx.Pipe()
            proc = ctx.Process(target=drive, args=(share, end), daemon=True)
            proc.start()
            workers.append(conn)
            children.append(proc)
        for conn in workers:
            conn.recv()
        first = workers[0]
        try:
            measure(bank, {first: [0]}, args.requests * 5, "1 busy modem (SIMCom)")
            if len(shares[0]) > 1:
                measure(bank, {first: [1]}, args.requests * 5, "1 busy modem (Quectel)")
            every = {conn: list(range(len(s))) for conn, s in zip(workers, shares, strict=True)}
            label = f"{len(ports)} busy modems ({len(shares)} worker processes)"
            measure(bank, every, args.requests, label)
        finally:
            for conn in workers:
                conn.send(("stop",))
                conn.recv()
            bank.send("stop")
            bank.recv()
            for proc in [*children, server]:
                proc.join(10)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

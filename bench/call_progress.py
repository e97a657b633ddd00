"""Bench: the virtual network's added delay on call progress (issue 12, performance).

Every modem (Huawei dialect, so progress comes as ^CONN/^CEND URCs) dials
the demo world's honest IVR line, waits for the answer, and hangs up. Two
delays are timed inside the bank, on its loop thread:

- *dial -> answer*: from the device taking ``ATD…;`` to it writing ``^CONN``,
  minus the answer delay the world configures (``answer_after_s``, floored by
  the device's ringing time): what the simulator adds;
- *hang-up -> release*: from the device taking ``ATH`` to it writing ``^CEND``
  (right after ATH's own ``OK``).

The client side is one selector thread over raw, non-blocking ptys (no
GsmModem threads competing for the GIL); its observed times are printed for
context. Run with 1 modem (sequential rounds) and with all N at once.

Usage: .venv/bin/python bench/call_progress.py [--modems 256] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import selectors
import statistics
import tempfile
import time
import tty
from pathlib import Path
from typing import Any

import yaml

from dialbot.sim import device_calls
from dialbot.sim.bank import VirtualBank
from dialbot.sim.device import Device
from dialbot.sim.worldfile import demo_world_path, load_world

LINE = "125900001"
ANSWER_AFTER_S = 0.3
DIAL: dict[str, float] = {}
HANG: dict[str, float] = {}
ANSWER_ADDED: list[float] = []
RELEASE_ADDED: list[float] = []


def instrument() -> None:
    """Timestamp both ends of the network's part, on the loop thread."""
    dial, hang, urc, send = Device._v_d, Device._v_h, Device._urc, Device._send
    expected = max(ANSWER_AFTER_S, device_calls.ALERT_AFTER_S + 0.05)

    def timed_dial(self: Device, cmd: Any) -> Any:
        DIAL[self.msisdn] = time.perf_counter()
        return dial(self, cmd)

    def timed_hang(self: Device, cmd: Any) -> Any:
        HANG[self.msisdn] = time.perf_counter()
        return hang(self, cmd)

    def timed_urc(self: Device, lines: list[str], prefix: str = "") -> None:
        urc(self, lines, prefix)
        now = time.perf_counter()
        if lines and lines[0].startswith("^CONN") and self.msisdn in DIAL:
            ANSWER_ADDED.append(now - DIAL.pop(self.msisdn) - expected)
        elif lines and lines[0].startswith("^CEND") and self.msisdn in HANG:
            RELEASE_ADDED.append(now - HANG.pop(self.msisdn))

    def timed_send(self: Device, data: bytes) -> None:
        held = any(line.startswith("^CEND") for line in self._held)
        send(self, data)
        if held and not any(line.startswith("^CEND") for line in self._held):
            if self.msisdn in HANG:  # the ^CEND went out right after ATH's OK
                RELEASE_ADDED.append(time.perf_counter() - HANG.pop(self.msisdn))

    Device._send = timed_send  # type: ignore[method-assign]
    Device._v_d = timed_dial  # type: ignore[method-assign]
    Device._v_h = timed_hang  # type: ignore[method-assign]
    Device._urc = timed_urc  # type: ignore[method-assign]


def bench_world(modems: int, directory: Path) -> Path:
    """The demo world's IVR SP only, N Huawei modems, a quick answer, no hang-up by the line."""
    data = yaml.safe_load(demo_world_path().read_text(encoding="utf-8"))
    data["bank"].update({"modems": modems, "dialect": "huawei"})
    data["bank"].pop("slots", None)
    data["sps"] = [sp for sp in data["sps"] if sp["code"] == "901015"]
    honest = data["sps"][0]["services"][0]
    honest["behaviour"] = {"answer_after_s": ANSWER_AFTER_S, "hangs_up_after_s": 3600}
    data["sps"][0]["services"] = [honest]
    path = directory / "bench-world.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


class Port:
    """One raw, non-blocking client end of a modem's pty."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.buffer = b""

    def send(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\r")


def wait_all(
    sel: selectors.BaseSelector, ports: list[Port], marker: bytes, timeout: float
) -> list[float]:
    """Read every port until each has shown `marker`; seconds until each did."""
    start = time.perf_counter()
    waiting = set(range(len(ports)))
    seen: list[float] = []
    while waiting:
        left = start + timeout - time.perf_counter()
        if left <= 0:
            raise TimeoutError(f"{len(waiting)} ports never showed {marker!r}")
        for key, _ in sel.select(left):
            index = key.data
            port = ports[index]
            try:
                port.buffer += os.read(port.fd, 4096)
            except BlockingIOError:
                continue
            if index in waiting and marker in port.buffer:
                waiting.discard(index)
                seen.append(time.perf_counter() - start)
                port.buffer = port.buffer.split(marker, 1)[1]
    return seen


def one_round(sel: selectors.BaseSelector, ports: list[Port]) -> tuple[list[float], list[float]]:
    for port in ports:
        port.buffer = b""
        port.send(f"ATD{LINE};")
    answered = wait_all(sel, ports, b"^CONN", 30.0)
    for port in ports:
        port.send("ATH")
    released = wait_all(sel, ports, b"^CEND", 30.0)
    return answered, released


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.2f} ms" if values else "-"


def p95_ms(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[int(0.95 * (len(ordered) - 1))] * 1000:.2f} ms"


def run(modems: int, rounds: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    instrument()
    with tempfile.TemporaryDirectory() as tmp:
        world = load_world(bench_world(modems, Path(tmp)))
        with VirtualBank(world, Path(tmp) / "ports") as bank:
            ports = [Port(p) for p in bank.ports]
            sel = selectors.DefaultSelector()
            for i, port in enumerate(ports):
                sel.register(port.fd, selectors.EVENT_READ, i)
            for port in ports:
                port.send("ATE0")
                port.send("AT^CURC=0")
            time.sleep(0.5)
            for port in ports:
                try:
                    os.read(port.fd, 65536)
                except BlockingIOError:
                    pass
            for label, group in (("1 modem", ports[:1]), (f"{modems} modems", ports)):
                bank.call(ANSWER_ADDED.clear)
                bank.call(RELEASE_ADDED.clear)
                seen_answer: list[float] = []
                seen_release: list[float] = []
                for _ in range(rounds):
                    a, r = one_round(sel, group)
                    seen_answer += a
                    seen_release += r
                added_a = bank.call(lambda: list(ANSWER_ADDED))
                added_r = bank.call(lambda: list(RELEASE_ADDED))
                print(
                    f"{label:>12}: network-added dial->answer median {median_ms(added_a)} "
                    f"(p95 {p95_ms(added_a)}), hang-up->release median {median_ms(added_r)} "
                    f"(p95 {p95_ms(added_r)}); client-observed answer {median_ms(seen_answer)} "
                    f"(configured {ANSWER_AFTER_S * 1000:.0f} ms), release {median_ms(seen_release)}; "
                    f"{len(added_a)} calls"
                )
            for port in ports:
                os.close(port.fd)
    print(
        f"machine: {os.cpu_count()} CPU, {platform.machine()}, Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modems", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    run(args.modems, args.rounds)


if __name__ == "__main__":
    main()

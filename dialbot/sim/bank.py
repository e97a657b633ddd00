"""A bank of virtual modems: one asyncio loop, one pseudo-terminal per slot.

Clients open the slave side (or its stable symlink DIR/ttyGSM<slot-1>) with
pyserial exactly as they would /dev/ttyUSB0; the master side is read by the
loop and fed to that slot's `Device`. Devices and the network are touched
only on the loop thread, so none of them needs a lock; other threads reach
them through `VirtualBank.call`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import threading
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from dialbot.sim.clock import LoopScheduler
from dialbot.sim.contracts import NetworkPort, Scheduler
from dialbot.sim.device import Device
from dialbot.sim.world import World

T = TypeVar("T")
BACKLOG_LIMIT = 256 * 1024  # bytes kept for a client that does not read; older output is dropped
READ_CHUNK = 4096


class BankNetwork(NetworkPort, Protocol):
    """The network side as the bank needs it: the NetworkPort plus its ground truth."""

    def ground_truth(self) -> dict[str, Any]: ...


NetworkFactory = Callable[[World, Scheduler], BankNetwork]


def _default_network(world: World, scheduler: Scheduler) -> BankNetwork:
    from dialbot.sim.network import Network  # the network side; imported late on purpose

    network: BankNetwork = Network(world, scheduler)
    return network


class PtyPort:
    """The master side of one pseudo-terminal, with a write backlog for slow readers."""

    def __init__(self, loop: asyncio.AbstractEventLoop, link: Path) -> None:
        self._loop = loop
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no line discipline: bytes pass unchanged both ways
        os.set_blocking(self.master, False)
        self.slave_path = Path(os.ttyname(self._slave))
        self.link = link
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(self.slave_path)
        self._backlog = bytearray()
        self._closed = False

    def listen(self, on_data: Callable[[bytes], None]) -> None:
        """Call on_data with whatever the client writes (on the loop thread)."""

        def readable() -> None:
            try:
                data = os.read(self.master, READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # EIO while no client holds the slave open
            if data:
                on_data(data)

        self._loop.add_reader(self.master, readable)

    def write(self, data: bytes) -> None:
        """Send to the client; what the kernel buffer cannot take waits in the backlog."""
        if self._closed or not data:
            return
        if self._backlog:
            self._queue(data)
            return
        try:
            sent = os.write(self.master, data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            return
        if sent < len(data):
            self._queue(data[sent:])
            self._loop.add_writer(self.master, self._flush)

    def _queue(self, data: bytes) -> None:
        self._backlog += data
        if len(self._backlog) > BACKLOG_LIMIT:
            del self._backlog[: len(self._backlog) - BACKLOG_LIMIT]

    def _flush(self) -> None:
        try:
            sent = os.write(self.master, bytes(self._backlog))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            sent = len(self._backlog)
        del self._backlog[:sent]
        if not self._backlog:
            self._loop.remove_writer(self.master)

    def close(self) -> None:
        """Stop serving: the symlink goes, both ends of the pty close."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self.master)
        self._loop.remove_writer(self.master)
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.link.is_symlink():
            self.link.unlink()


class VirtualBank:
    """Serves every slot of a world on pseudo-terminals; safe to stop twice; a context manager."""

    def __init__(
        self,
        world: World,
        directory: Path,
        inventory_path: Path | None = None,
        *,
        network_factory: NetworkFactory | None = None,
    ) -> None:
        self.world = world
        self.directory = Path(directory)
        self.inventory_path = inventory_path or self.directory / f"{world.bank_name}.toml"
        self.cards = sorted(world.sims, key=lambda c: c.slot)
        self.ports = [self.directory / f"ttyGSM{c.slot - 1}" for c in self.cards]
        self._factory = network_factory or _default_network
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ptys: list[PtyPort] = []
        self.devices: list[Device] = []
        self.network: BankNetwork
        self._stopped = False

    # ---- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start the loop thread, open one pty per slot, write the inventory."""
        if self._loop is not None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"simbank-{self.world.bank_name}", daemon=True
        )
        self._thread.start()
        try:
            self.call(self._open)
        except BaseException:
            self.stop()
            raise
        self._write_inventory()

    def _open(self) -> None:
        assert self._loop is not None
        scheduler = LoopScheduler(self._loop)
        self.network = self._factory(self.world, scheduler)
        for card, link in zip(self.cards, self.ports, strict=True):
            port = PtyPort(self._loop, link)
            device = Device(card, self.network, scheduler, port.write, seed=self.world.seed)
            port.listen(device.feed)
            self._ptys.append(port)
            self.devices.append(device)
        for device in self.devices:
            device.power_on()

    def stop(self) -> None:
        """Write the ground truth, close every port and end the loop (idempotent)."""
        if self._stopped or self._loop is None:
            self._stopped = True
            return
        self._stopped = True
        try:
            if hasattr(self, "network"):
                truth = self.call(self.network.ground_truth)
                path = self.directory / "ground-truth.json"
                path.write_text(json.dumps(truth, ensure_ascii=False, indent=2, default=str))
        finally:
            try:
                self.call(self._close)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                if self._thread is not None:
                    self._thread.join(timeout=10)
                self._loop.close()

    def _close(self) -> None:
        for port in self._ptys:
            port.close()

    def __enter__(self) -> VirtualBank:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- access from other threads --------------------------------------------------

    def call(self, fn: Callable[[], T]) -> T:
        """Run fn on the loop thread and return its result (or raise its exception)."""
        loop = self._loop
        if loop is None or not loop.is_running():
            raise RuntimeError("the virtual bank is not running")
        if threading.current_thread() is self._thread:
            return fn()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller's thread
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(timeout=30)

    # ---- inventory ----------------------------------------------------------------------

    def _write_inventory(self) -> None:
        """spec/formats.md §2, driver "sim"; nothing of the ground truth goes here."""
        lines = ["[bank]", f"name = {_toml_str(self.world.bank_name)}"]
        if self.world.bank_region:
            lines.append(f"region = {_toml_str(self.world.bank_region)}")
        lines.append('driver = "sim"')
        for card, port in zip(self.cards, self.ports, strict=True):
            lines += [
                "",
                "[[modem]]",
                f"slot = {card.slot}",
                f"port = {_toml_str(str(port.absolute()))}",
                f"msisdn = {_toml_str(card.msisdn)}",
            ]
        self.inventory_path.parent.mkdir(parents=True, exist_ok=True)
        self.inventory_path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _toml_str(value: str) -> str:
    """A TOML basic string (JSON escapes are valid TOML escapes)."""
    return json.dumps(value, ensure_ascii=False)

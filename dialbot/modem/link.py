"""The AT link a capability family talks through (the `AtLink` seam).

A family (HTTP today) needs four things of a modem: send a command and get
its answer (payload included), write raw bytes after a `CONNECT`/`DOWNLOAD`
prompt, and wait for the unsolicited result that announces a result later.
`AtLink` names exactly that; `GsmLink` provides it over the fleet's
`FleetGsmModem` without touching the library's private methods: answers are
read by an `Exchange` installed in the reader (`run_exchange`), URCs arrive
through the driver's URC handler into a `UrcBox`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Protocol

from gsmmodem.exceptions import TimeoutException

from dialbot.errors import AtTimeout
from dialbot.modem.exchange import Exchange, RawRule
from dialbot.modem.patched import FleetGsmModem, is_urc

DATA_URCS = ("+HTTPACTION:", "+QHTTPGET:", "+QHTTPPOST:", "+QHTTPREAD:", "+QIURC:", "+SAPBR 1:")


class AtLink(Protocol):
    """What a capability family may do on a modem (the modem's operation lock is held)."""

    def run(
        self,
        command: str,
        timeout: float,
        prompts: tuple[str, ...] = (),
        raw: RawRule | None = None,
    ) -> Exchange:
        """Send one command line (from code, never from data) and read its whole answer."""
        ...

    def send_data(self, data: bytes, timeout: float) -> Exchange:
        """Write bytes after a prompt and read the answer that follows them."""
        ...

    def wait_urc(self, prefix: str, timeout: float) -> str:
        """The next unsolicited line starting with `prefix` (AtTimeout when none comes)."""
        ...

    def forget_urcs(self) -> None:
        """Drop data URCs left from earlier requests."""
        ...


class UrcBox:
    """Data URCs from the reader thread, waited for by the family that asked."""

    def __init__(self, size: int = 64) -> None:
        self._lines: deque[str] = deque(maxlen=size)
        self._cond = threading.Condition()

    def put(self, line: str) -> None:
        with self._cond:
            self._lines.append(line)
            self._cond.notify_all()

    def take(self, prefix: str, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines:
                    if line.startswith(prefix):
                        self._lines.remove(line)
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def clear(self) -> None:
        with self._cond:
            self._lines.clear()


class GsmLink:
    """`AtLink` over a connected `FleetGsmModem`."""

    def __init__(self, gsm: FleetGsmModem, urcs: UrcBox) -> None:
        self.gsm = gsm
        self.urcs = urcs

    def _exchange(
        self, data: bytes, timeout: float, prompts: tuple[str, ...], raw: RawRule | None
    ) -> Exchange:
        exchange = Exchange(prompts=prompts, raw=raw, is_urc=lambda line: is_urc(line, None))
        try:
            return self.gsm.run_exchange(data, exchange, timeout)
        except TimeoutException as exc:
            raise AtTimeout(
                f"{self.gsm.port}: no answer in {timeout:g}s", self.gsm.trace.snapshot()
            ) from exc

    def run(
        self,
        command: str,
        timeout: float,
        prompts: tuple[str, ...] = (),
        raw: RawRule | None = None,
    ) -> Exchange:
        return self._exchange(command.encode("ascii") + b"\r", timeout, prompts, raw)

    def send_data(self, data: bytes, timeout: float) -> Exchange:
        return self._exchange(data, timeout, (), None)

    def wait_urc(self, prefix: str, timeout: float) -> str:
        line = self.urcs.take(prefix, timeout)
        if line is None:
            raise AtTimeout(
                f"{self.gsm.port}: no {prefix} within {timeout:g}s", self.gsm.trace.snapshot()
            )
        return line

    def forget_urcs(self) -> None:
        self.urcs.clear()

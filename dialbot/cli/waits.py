"""Telling the user of `dialbot probe` what it waits for, and for how long.

A probe mostly waits: for an SP's prompt, its content, a charge, its
acknowledgement of a cancellation. At `time_scale` 1 those windows are the
real minutes an SP may take on a real network, and a silent console for
four minutes looks like a hang. So every wait is announced with its
maximum and the clock time it ends; on a terminal a status line counts the
time left down until the next thing happens.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

from rich.console import Console
from rich.markup import escape
from rich.status import Status

from dialbot.flows.model import Cancel, CancelAll, Expect, Flow, Observe
from dialbot.modem.inbox import DEFAULT_TZ


def span(seconds: float) -> str:
    """A duration for people: 45s, 4m00s, 1h02m."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def flow_wait_s(flow: Flow) -> float:
    """The longest a flow can wait, unscaled: every window waited out to its end."""
    total = 0.0
    for step in flow.steps:
        if isinstance(step, Expect | Cancel | CancelAll):
            total += step.within
        elif isinstance(step, Observe):
            total += step.seconds
    return total


class WaitDisplay:
    """Announces each wait (``waiting``) and, on a terminal, counts its time left down."""

    def __init__(self, console: Console, time_scale: float) -> None:
        self.console = console
        self.time_scale = time_scale
        self._lock = threading.Lock()
        self._what = ""
        self._until: float | None = None
        self._stop = threading.Event()
        self._status: Status | None = None
        self._thread: threading.Thread | None = None
        if console.is_terminal:
            self._status = console.status("", spinner="dots")
            self._thread = threading.Thread(target=self._tick, name="wait display", daemon=True)

    def waiting(self, what: str, seconds: float) -> None:
        """The run now waits up to ``seconds`` for ``what``."""
        ends = datetime.now(DEFAULT_TZ) + timedelta(seconds=seconds)
        self.console.print(
            f"  … waiting up to {span(seconds)} for {escape(what)} (until {ends:%H:%M:%S})",
            style="dim",
            highlight=False,
        )
        with self._lock:
            self._what = what
            self._until = time.monotonic() + seconds
        if self._status is not None and self._thread is not None and not self._thread.is_alive():
            self._status.start()
            self._thread.start()

    def event(self) -> None:
        """Something happened: the countdown waits for the next announced wait."""
        with self._lock:
            self._until = None

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                what, until = self._what, self._until
            if self._status is None:
                return
            if until is None:
                self._status.update("working")
            else:
                left = max(0.0, until - time.monotonic())
                self._status.update(f"waiting for {escape(what)}: {span(left)} left")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=2.0)
        if self._status is not None:
            self._status.stop()

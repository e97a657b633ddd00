"""Voice calls written once for every make: dial, follow progress, DTMF, hang up, time it.

The make's words are a `Progress` dialect (`dialbot.modem.progress`); this
module is the state machine: it places the call (``ATD<n>;`` sent without
waiting, so that makes whose ATD has no immediate final result do not stall
the line), follows progress from unsolicited lines or ``+CLCC`` polls, sends
DTMF (``AT+VTS``, one key per command, keys checked), hangs up (``ATH``) and
confirms the call is gone (``+CLCC``).

Every progress line is kept with its monotonic offset from dialling and its
timezone-aware wall time (`CallRecord`): the measured connected duration is
the robot's own, from the answer it saw to the hang-up it sent, with the
bounds the measurement allows (a polled answer happened after the previous
poll, the network released no later than ATH's OK). A call that cannot be
placed (no network, BUSY, NO CARRIER or NO ANSWER before answer, no answer
in time) raises `CallNotPlaced`: an infrastructure outcome, never a finding.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from dialbot.errors import CallNotPlaced, UnsafeInputError
from dialbot.modem.inbox import DEFAULT_TZ
from dialbot.modem.progress import ClccPoll, Event, Kind, Progress, progress_for
from dialbot.modem.safety import check_number

DTMF = re.compile(r"[0-9*#A-D]+")
POLL_INTERVAL_S = 0.2


def check_dtmf(keys: str) -> str:
    """Return keys if they are DTMF keys only (0-9 * # A-D), else raise."""
    if not isinstance(keys, str) or not DTMF.fullmatch(keys):
        raise UnsafeInputError(f"not DTMF keys (0-9, *, #, A-D): {keys!r}")
    return keys


class Line(Protocol):
    """What the voice family needs of a modem (implemented by `dialbot.modem.driver.Modem`)."""

    def command(self, command: str, timeout: float | None = None) -> list[str]: ...

    def write_nowait(self, command: str) -> None: ...

    def manufacturer(self) -> str: ...

    def locked(self) -> Any: ...


@dataclass
class ProgressLine:
    t: float  # seconds since dialling (monotonic)
    at: datetime  # wall time, timezone-aware
    line: str
    event: str | None


@dataclass
class CallRecord:
    """The `call` evidence: everything the robot saw and did, with its times."""

    number: str
    make: str
    dialled_at: datetime
    lines: list[ProgressLine] = field(default_factory=list)
    answered_t: float | None = None  # when the robot saw the answer
    answer_earliest_t: float | None = None  # the answer happened no earlier than this
    dtmf: list[tuple[float, str]] = field(default_factory=list)
    hangup_t: float | None = None  # ATH sent
    hangup_done_t: float | None = None  # ATH answered
    ended_by: str | None = None  # "robot" | "far_end" | "not_placed"
    cause: str = ""
    ended_t: float | None = None  # the far end's end (or a failed placement)
    released_t: float | None = None  # +CLCC lists no call any more
    release_polls: int = 0

    def measured_s(self) -> float | None:
        """Connected duration as measured: from the answer seen to the hang-up sent."""
        end = self.hangup_t if self.ended_by == "robot" else self.ended_t
        if self.answered_t is None or end is None:
            return None
        return max(0.0, end - self.answered_t)

    def max_connected_s(self) -> float | None:
        """The longest the call can really have lasted, given when the robot looked."""
        end = self.hangup_done_t if self.ended_by == "robot" else self.ended_t
        start = self.answer_earliest_t
        if start is None or end is None:
            return None
        return max(0.0, end - start)

    def evidence(self) -> dict[str, Any]:
        """JSON-able, for the hash-chained evidence log (kind `call`)."""
        return {
            "number": self.number,
            "make": self.make,
            "dialled_at": self.dialled_at.isoformat(),
            "progress": [
                {"t": round(p.t, 3), "at": p.at.isoformat(), "line": p.line, "event": p.event}
                for p in self.lines
            ],
            "answered_t": _round(self.answered_t),
            "answer_earliest_t": _round(self.answer_earliest_t),
            "dtmf": [{"t": round(t, 3), "key": k} for t, k in self.dtmf],
            "hangup_t": _round(self.hangup_t),
            "hangup_done_t": _round(self.hangup_done_t),
            "ended_by": self.ended_by,
            "cause": self.cause,
            "ended_t": _round(self.ended_t),
            "released_t": _round(self.released_t),
            "release_polls": self.release_polls,
            "measured_s": _round(self.measured_s()),
            "max_connected_s": _round(self.max_connected_s()),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class Voice:
    """The voice family of one modem; one call at a time."""

    def __init__(
        self,
        line: Line,
        poll_interval: float = POLL_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.line = line
        self.poll_interval = poll_interval
        self.clock = clock
        self._progress: Progress | None = None
        self._active: VoiceCall | None = None
        self._lock = threading.Lock()

    def reset(self) -> None:
        """The link was re-opened: the make is asked again on the next call."""
        self._progress = None

    def progress(self) -> Progress:
        if self._progress is None:
            self._progress = progress_for(self.line.manufacturer())
        return self._progress

    def on_urc(self, line: str) -> None:
        """Reader thread: hand every unsolicited line to the call in progress (never blocks)."""
        call = self._active
        if call is not None:
            call.inbox.put((self.clock(), datetime.now(DEFAULT_TZ), line))

    def dial(self, number: str, answer_timeout: float = 60.0) -> VoiceCall:
        """Place a voice call and return it answered; raise CallNotPlaced otherwise."""
        check_number(number)
        progress = self.progress()
        with self._lock:
            if self._active is not None:
                raise CallNotPlaced("busy_line", "a call is already in progress")
            call = VoiceCall(self, number, progress)
            self._active = call
        try:
            call.place(answer_timeout)
        except BaseException:
            self._finished(call)
            raise
        return call

    def _finished(self, call: VoiceCall) -> None:
        with self._lock:
            if self._active is call:
                self._active = None


class VoiceCall:
    """One call placed by `Voice.dial`; use dtmf, hold, hang_up, confirm_released."""

    def __init__(self, voice: Voice, number: str, progress: Progress) -> None:
        self.voice = voice
        self.line = voice.line
        self.progress = progress
        self.inbox: queue.Queue[tuple[float, datetime, str]] = queue.Queue()
        self._t0 = voice.clock()
        self.record = CallRecord(number, progress.name, datetime.now(DEFAULT_TZ))
        self.answered = False
        self.ended = False

    # -- time and records ----------------------------------------------------------
    def now(self) -> float:
        return self.voice.clock() - self._t0

    def _note(
        self, mono: float, at: datetime, line: str, event: Event | None, label: str | None = None
    ) -> None:
        if event is not None:
            label = event.kind.value + (f":{event.cause}" if event.cause else "")
        self.record.lines.append(ProgressLine(mono - self._t0, at, line, label))

    def _apply(self, event: Event, t: float, earliest: float | None = None) -> None:
        if event.kind == Kind.ANSWERED and not self.answered:
            self.answered = True
            self.record.answered_t = t
            self.record.answer_earliest_t = t if earliest is None else earliest
        elif event.kind in (Kind.ENDED, Kind.FAILED) and not self.ended:
            self.ended = True
            self.record.ended_t = t
            self.record.cause = event.cause
            if self.record.ended_by is None:
                self.record.ended_by = "far_end" if self.answered else "not_placed"

    def _pump(self, timeout: float, until: Callable[[Event], bool]) -> Event | None:
        """Take progress lines for up to timeout s; return the first event `until` accepts."""
        deadline = self.voice.clock() + max(timeout, 0.0)
        while True:
            left = deadline - self.voice.clock()
            try:
                if left > 0:
                    mono, at, line = self.inbox.get(timeout=left)
                else:
                    mono, at, line = self.inbox.get_nowait()
            except queue.Empty:
                return None
            event = self.progress.parse(line, self.answered)
            self._note(mono, at, line, event)
            if event is None:
                continue
            self._apply(event, mono - self._t0)
            if until(event):
                return event

    # -- placing -------------------------------------------------------------------
    def place(self, answer_timeout: float) -> None:
        settle = 5.0
        done = {Kind.ANSWERED, Kind.ENDED, Kind.FAILED}
        with self.line.locked():
            self.line.write_nowait(f"ATD{self.record.number};")
            if self.progress.dial_blocks:  # no other command until answered or gone
                self._pump(answer_timeout, lambda e: e.kind in done)
            else:
                first = self._pump(settle, lambda e: e.kind in done | {Kind.ACCEPTED})
                if first is None:
                    self._abandon("no_final", answer_timeout)
        if not self.answered and not self.ended:
            if self.progress.polls:
                self._poll_answer(answer_timeout)
            else:
                self._pump(answer_timeout - self.now(), lambda e: e.kind in done)
        if not self.answered:
            if not self.ended:
                self._abandon("answer_timeout", answer_timeout)
            raise CallNotPlaced(self.record.cause or "ended", self._why(), self.record)

    def _poll_answer(self, answer_timeout: float) -> None:
        previous = 0.0
        while not self.answered and not self.ended and self.now() < answer_timeout:
            sent = self.now()
            lines = self.line.command("AT+CLCC")
            event = ClccPoll.poll(lines)
            got = self.voice.clock()
            for text in lines:
                self._note(got, datetime.now(DEFAULT_TZ), text, event)
            if self._pump(0.0, lambda e: e.kind in (Kind.ENDED, Kind.FAILED)) is not None:
                return
            if event.kind == Kind.ANSWERED:
                self._apply(event, got - self._t0, earliest=previous)
                return
            if event.kind == Kind.ENDED:
                self._apply(Event(Kind.ENDED, "gone"), got - self._t0)
                return
            previous = sent
            self._pump(self.voice.poll_interval, lambda e: e.kind in (Kind.ENDED, Kind.FAILED))

    def _abandon(self, cause: str, answer_timeout: float) -> None:
        """Give up placing: hang up so the line is free, and say why."""
        try:
            self.line.command("ATH")
        finally:
            self.ended = True
            self.record.cause = cause
            self.record.ended_by = "not_placed"
            self.record.ended_t = self.now()

    def _why(self) -> str:
        return f"call to {self.record.number} not placed: {self.record.cause}"

    # -- during the call -----------------------------------------------------------
    def dtmf(self, keys: str) -> None:
        """Send DTMF keys one per AT+VTS (keys checked before anything is written)."""
        check_dtmf(keys)
        for key in keys:
            self._pump(0.0, lambda e: False)
            if self.ended:
                raise CallNotPlaced("dropped", f"call dropped before DTMF {key!r}", self.record)
            self.record.dtmf.append((self.now(), key))
            self.line.command(f"AT+VTS={key}")

    def hold(self, seconds: float) -> bool:
        """Stay on the line; False when the call ended meanwhile (the far end or the network)."""
        self._pump(seconds, lambda e: e.kind in (Kind.ENDED, Kind.FAILED))
        return not self.ended

    def hang_up(self) -> None:
        """ATH, timed: sent and answered. A call the far end already ended is left as is."""
        self._pump(0.0, lambda e: False)
        if self.ended:
            return
        self.record.ended_by = "robot"
        self.record.hangup_t = self.now()
        try:
            self.line.command("ATH")
        finally:
            self.record.hangup_done_t = self.now()
            self.ended = True

    def confirm_released(self, within_s: float = 5.0) -> bool:
        """Poll +CLCC until no call is listed; False when one still is after within_s."""
        try:
            deadline = self.now() + within_s
            while True:
                lines = self.line.command("AT+CLCC")
                self.record.release_polls += 1
                got = self.voice.clock()
                listed = [x for x in lines if x.startswith("+CLCC")]
                for text in listed:
                    self._note(got, datetime.now(DEFAULT_TZ), text, None, "listed")
                if not listed:
                    self.record.released_t = got - self._t0
                    return True
                if self.now() >= deadline:
                    return False
                self._pump(self.voice.poll_interval, lambda e: False)
        finally:
            self._pump(0.0, lambda e: False)
            self.voice._finished(self)

    def close(self) -> None:
        """Hang up if still up and forget the call (safe twice)."""
        if not self.ended:
            try:
                self.hang_up()
            except Exception:  # the link may be gone; the fleet's hygiene checks the SIM
                pass
        self.voice._finished(self)

    def elapsed_since_answer(self) -> float:
        return 0.0 if self.record.answered_t is None else self.now() - self.record.answered_t

    def wall(self, t: float) -> datetime:
        return self.record.dialled_at + timedelta(seconds=t)

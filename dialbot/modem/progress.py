"""Call progress per make: modem lines -> call events, with no port involved.

Makes report a voice call's progress in their own words (spec/channels.md
§5): Huawei announces ``^ORIG``/``^CONF``/``^CONN``/``^CEND``; Wavecom answers
``ATD`` with ``OK`` only when the callee picks up and reports ``+WIND: 5/6``;
ZTE says ``CONNECT`` and ``HANGUP: n``; the rest say nothing until the call
ends and must be polled with ``+CLCC``. Each `Progress` dialect maps one line
(in the state the call is in) to an `Event`, or to None when the line is not
about the call; `ClccPoll.poll` reads one ``AT+CLCC`` answer.

Written once per make and tested on transcripts (tests/modem/test_progress.py),
so the state machine in `dialbot.modem.voice` never looks at vendor syntax.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Kind(enum.Enum):
    """What a progress line says about the call."""

    ACCEPTED = "accepted"  # the modem took the dial command (final OK of ATD)
    DIALING = "dialing"
    ALERTING = "alerting"
    ANSWERED = "answered"
    ENDED = "ended"  # the call is gone (before answer: it was not placed)
    FAILED = "failed"  # the dial command itself was refused (ERROR, +CME ERROR)


@dataclass(frozen=True)
class Event:
    kind: Kind
    cause: str = ""  # for ENDED/FAILED: busy, no_answer, no_carrier, hangup, error…


#: Result codes every make may give to end a call (or to refuse placing one).
ENDINGS = {
    "BUSY": "busy",
    "NO ANSWER": "no_answer",
    "NO CARRIER": "no_carrier",
    "NO DIALTONE": "no_dialtone",
    "NO DIAL TONE": "no_dialtone",
}
_CLCC = re.compile(r"^\+CLCC:\s*(\d+),([01]),(\d),")
_CEND = re.compile(r"^\^CEND:\s*\d+,\s*(\d+)(?:,\s*(\d+))?(?:,\s*(\d+))?")
_CC_BUSY = 17  # 3GPP 24.008 cause: user busy


def common(line: str, answered: bool) -> Event | None:
    """Final result codes shared by every make."""
    cause = ENDINGS.get(line.strip().upper())
    if cause is not None:
        return Event(Kind.ENDED, cause)
    if line.startswith("+CME ERROR") or line == "ERROR" or line == "COMMAND NOT SUPPORT":
        return None if answered else Event(Kind.FAILED, line)
    return None


class Progress:
    """A make's progress reports; the base knows only the common result codes."""

    name = "clcc"
    #: True when ATD has no immediate final result (it comes at answer or not at all):
    #: no other command may be sent until the call is answered or gone.
    dial_blocks = False
    #: True when nothing but +CLCC polling tells that the callee answered.
    polls = True

    def parse(self, line: str, answered: bool) -> Event | None:
        """The event a line means while the call is (or is not yet) answered."""
        line = line.strip()
        if line == "OK" and not self.dial_blocks and not answered:
            return Event(Kind.ACCEPTED)
        return common(line, answered)


class ClccPoll(Progress):
    """27.007 makes: ATD answers OK at once, progress only by polling +CLCC."""

    @staticmethod
    def poll(lines: list[str]) -> Event:
        """One AT+CLCC answer: the voice call's state, or ENDED when none is listed."""
        for line in lines:
            match = _CLCC.match(line.strip())
            if match is None or match.group(2) != "0":
                continue  # not a mobile-originated call
            stat = int(match.group(3))
            if stat == 0:
                return Event(Kind.ANSWERED)
            if stat == 3:
                return Event(Kind.ALERTING)
            if stat == 2:
                return Event(Kind.DIALING)
            return Event(Kind.DIALING if stat in (1, 4, 5) else Kind.ENDED, f"stat {stat}")
        return Event(Kind.ENDED, "not listed")


class HuaweiProgress(Progress):
    """Huawei ^ORIG (dialing), ^CONF (alerting), ^CONN (answered), ^CEND (ended)."""

    name = "huawei"
    polls = False

    def parse(self, line: str, answered: bool) -> Event | None:
        line = line.strip()
        if line.startswith("^ORIG:"):
            return Event(Kind.DIALING)
        if line.startswith("^CONF:"):
            return Event(Kind.ALERTING)
        if line.startswith("^CONN:"):
            return Event(Kind.ANSWERED)
        match = _CEND.match(line)
        if match is not None:
            cc_cause = match.group(3)
            busy = cc_cause is not None and int(cc_cause) == _CC_BUSY
            return Event(Kind.ENDED, "busy" if busy and not answered else "cend")
        return super().parse(line, answered)


class WavecomWind(Progress):
    """Wavecom: ATD's OK comes when the callee answers; +WIND: 5 call, 2 ringback, 6 released."""

    name = "wavecom"
    dial_blocks = True
    polls = False

    def parse(self, line: str, answered: bool) -> Event | None:
        line = line.strip()
        if line.startswith("+WIND:"):
            code = line.split(":", 1)[1].split(",")[0].strip()
            if code == "5":
                return Event(Kind.DIALING)
            if code == "2":
                return Event(Kind.ALERTING)
            if code == "6":
                return Event(Kind.ENDED, "released")
            return None
        if line == "OK" and not answered:
            return Event(Kind.ANSWERED)
        return super().parse(line, answered)


class ZteProgress(Progress):
    """ZTE: no final to ATD; CONNECT when answered, HANGUP: n at the end, OK if refused."""

    name = "zte"
    dial_blocks = True
    polls = False

    def parse(self, line: str, answered: bool) -> Event | None:
        line = line.strip()
        if line.startswith("CONNECT") and not answered:
            return Event(Kind.ANSWERED)
        if line.startswith("HANGUP:"):
            return Event(Kind.ENDED, "hangup")
        if line == "OK" and not answered:
            return Event(Kind.ENDED, "refused")
        return super().parse(line, answered)


def progress_for(manufacturer: str) -> Progress:
    """The progress dialect of a make, from its +CGMI answer (unknown: poll +CLCC)."""
    maker = manufacturer.strip().lower()
    if "huawei" in maker:
        return HuaweiProgress()
    if "wavecom" in maker or "sierra" in maker:
        return WavecomWind()
    if "zte" in maker:
        return ZteProgress()
    return ClccPoll()

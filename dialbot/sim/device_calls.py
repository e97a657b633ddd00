"""Voice calls of a virtual modem: ATD…; / ATH / +CLCC and each make's call progress.

Call progress is where makes differ most (python-gsmmodem picks a table per
make): Huawei announces ^ORIG/^CONF/^CONN/^CEND, Wavecom answers ATD with OK
only when the callee picks up and reports +WIND: 5/6, ZTE says CONNECT and
HANGUP: n, and the rest must be polled with +CLCC. The network decides only
whether and when the far end answers and hangs up (`CallResult`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dialbot.sim.atparse import AtError, Command, Reply
from dialbot.sim.contracts import CallLeg, CallResult, NetworkPort, Scheduler
from dialbot.sim.dialects import Dialect

DIAL_STRING = re.compile(r"^\+?[0-9*#]{1,40}$")
DTMF_KEYS = re.compile(r"^[0-9*#A-Da-d]{1,32}$")
ALERT_AFTER_S = 0.2


@dataclass
class Call:
    """The one call a virtual modem can hold; `gen` invalidates stale timers."""

    number: str
    stat: int  # +CLCC <stat>: 0 active, 2 dialing, 3 alerting
    gen: int
    answered_at: float | None = None
    leg: CallLeg | None = None
    hold_s: float = 0.0  # how long the network keeps the call after the handset hangs up
    hung_up: bool = False  # the handset hung up; the network has not let go yet


class CallCommands:
    """ATD/ATH/ATA/+CHUP/+CLCC/+VTS; expects the attributes `Device` defines."""

    msisdn: str
    dialect: Dialect
    network: NetworkPort
    scheduler: Scheduler
    call: Call | None
    _held: list[str]  # URCs written right after the response being built (Device)

    def _urc(self, lines: list[str], prefix: str = "") -> None:
        raise NotImplementedError

    def _require_sim(self, cms: bool = False) -> None:
        raise NotImplementedError

    def _registered(self) -> bool:
        raise NotImplementedError

    def init_calls(self) -> None:
        self.call = None
        self._call_gen = 0

    def _v_d(self, cmd: Command) -> list[str] | Reply:
        dial = cmd.raw.strip()
        if not dial.endswith(";"):
            return Reply([], "NO CARRIER")  # data calls are not offered
        number = dial[:-1].strip()
        if not DIAL_STRING.match(number):
            raise AtError("CME", 50)
        self._require_sim()
        if self.call is not None:
            raise AtError("CME", 3)
        if not self._registered():
            return Reply([], "NO CARRIER")
        result = self.network.dial(self.msisdn, number)
        self._call_gen += 1
        self.call = Call(
            number, 2, self._call_gen, leg=result.leg, hold_s=result.holds_after_hangup_s
        )
        gen = self._call_gen
        self.scheduler.call_later(ALERT_AFTER_S, lambda: self._alerting(gen))
        self.scheduler.call_later(
            max(result.answer_after_s, ALERT_AFTER_S + 0.05), lambda: self._picked_up(gen, result)
        )
        style = self.dialect.calls
        if style == "huawei":
            self.scheduler.call_later(0.0, lambda: self._urc_if_live(gen, ["^ORIG:1,0"]))
            return []
        if style == "wavecom":
            self.scheduler.call_later(
                0.0, lambda: self._urc_if_live(gen, ["+WIND: 5,1", "+WIND: 2"])
            )
            return Reply([], None)  # OK comes when the callee answers
        if style == "zte":
            return Reply([], None)
        return []

    def _urc_if_live(self, gen: int, lines: list[str]) -> None:
        if self._live(gen):
            self._urc(lines)

    def _end_if_live(self, gen: int) -> None:
        if self._live(gen):
            self._ended()

    def _live(self, gen: int) -> bool:
        return self.call is not None and self.call.gen == gen

    def _alerting(self, gen: int) -> None:
        if self._live(gen) and self.call is not None and self.call.stat == 2:
            self.call.stat = 3
            if self.dialect.calls == "huawei":
                self._urc(["^CONF:1"])

    def _picked_up(self, gen: int, result: CallResult) -> None:
        if not self._live(gen) or self.call is None:
            return
        if not result.answered:
            self._ended(rejected=True)
            return
        self.call.stat = 0
        self.call.answered_at = self.scheduler.elapsed()
        if self.call.leg is not None:
            self.call.leg.answered()
        answer = {"huawei": ["^CONN:1,0"], "wavecom": ["OK"], "zte": ["CONNECT"]}
        lines = answer.get(self.dialect.calls)
        if lines:
            self._urc(lines)
        self.scheduler.call_later(result.duration_s, lambda: self._end_if_live(gen))

    def _ended(self, rejected: bool = False) -> bool:
        """The far end hung up (or never answered): the make's end-of-call lines."""
        call, self.call = self.call, None
        if call is None:
            return False
        if call.leg is not None:
            call.leg.released()
        if call.hung_up:
            self._release_after_hold(call)
            return True
        duration = 0
        if call.answered_at is not None:
            duration = int(self.scheduler.elapsed() - call.answered_at)
        style = self.dialect.calls
        if style == "huawei":
            self._urc([f"^CEND:1,{duration},104,{17 if rejected else 16}"])
        elif style == "wavecom":
            self._urc(["NO ANSWER" if rejected else "NO CARRIER", "+WIND: 6,1"])
        elif style == "zte":
            self._urc(["OK" if rejected else "HANGUP: 1"])
        else:
            self._urc(["BUSY" if rejected else "NO CARRIER"])
        return True

    def _hang_up(self) -> list[str]:
        call = self.call
        if call is None or call.hung_up:
            return []
        if call.hold_s > 0 and call.answered_at is not None:
            # The network keeps the call (and its billing) up: +CLCC still lists it.
            call.hung_up = True
            gen = call.gen
            self.scheduler.call_later(call.hold_s, lambda: self._end_if_live(gen))
            return []
        self.call = None
        if call.leg is not None:
            call.leg.released()
        self._release_after_hold(call, after_response=True)
        return []

    def _release_after_hold(self, call: Call, after_response: bool = False) -> None:
        """The handset's hang-up took effect: Huawei reports ^CEND, the others nothing.

        During ATH itself the ^CEND follows the command's OK in the same write
        (held until the response is out), as on a real stick; later it is a URC.
        """
        if self.dialect.calls != "huawei":
            return
        duration = 0
        if call.answered_at is not None:
            duration = int(self.scheduler.elapsed() - call.answered_at)
        line = f"^CEND:1,{duration},104,16"
        if after_response:
            self._held.append(line)
        else:
            self._urc([line])

    def _v_h(self, cmd: Command) -> list[str]:
        return self._hang_up()

    def _at_chup(self, cmd: Command) -> list[str]:
        return [] if cmd.form == "test" else self._hang_up()

    def _v_a(self, cmd: Command) -> Reply:
        return Reply([], "NO CARRIER")  # nobody calls a virtual modem

    def _at_clcc(self, cmd: Command) -> list[str]:
        if cmd.form == "test" or self.call is None:
            return []
        kind = 145 if self.call.number.startswith("+") else 129
        return [f'+CLCC: 1,0,{self.call.stat},0,0,"{self.call.number}",{kind}']

    def _at_vts(self, cmd: Command) -> list[str]:
        if cmd.form == "test":
            return ["+VTS: (0-9,*,#,A,B,C,D)"]
        call = self.call
        if call is None or call.stat != 0 or call.hung_up:
            raise AtError("CME", 3)
        keys = cmd.args[0] if cmd.args else ""
        if not DTMF_KEYS.match(keys):
            raise AtError("CME", 50)
        if call.leg is not None:
            for key in keys.upper():
                call.leg.dtmf(key)
        return []

    def _at_dtmf(self, cmd: Command) -> list[str]:
        if cmd.form == "test":
            return []
        if self.call is None or self.call.stat != 0:
            raise AtError("CME", 3)
        return []

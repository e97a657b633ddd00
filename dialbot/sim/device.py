"""One virtual modem: the AT interpreter behind a pseudo-terminal (bytes in, bytes out).

It frames like a real modem (echo until ATE0, CR LF around every line,
+CME/+CMS errors per +CMEE, the "> " prompt, Ctrl-Z and ESC), speaks the
dialect of the make it imitates, and carries the faults its slot declares.
It knows nothing of ledgers or SPs: it talks to the network only through
`NetworkPort`, and the network talks back through the `Handset` methods.
Everything runs on the bank's event loop thread.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from dialbot.sim.atparse import AtError, Command, Reply, UnknownCommand, parse_line, unquote
from dialbot.sim.contracts import NetworkPort, Scheduler
from dialbot.sim.device_calls import CallCommands
from dialbot.sim.device_http import HttpCommands, RawReply
from dialbot.sim.device_sms import Prompt, SmsCommands, SmsState
from dialbot.sim.dialects import get_dialect
from dialbot.sim.smscodec import is_gsm7, ucs2_bytes, ucs2_text
from dialbot.sim.world import SimCard

CTRL_Z, ESC = 0x1A, 0x1B
MAX_LINE = 4096
OPERATORS = {
    "46000": ("CHINA MOBILE", "CMCC"),
    "46002": ("CHINA MOBILE", "CMCC"),
    "46007": ("CHINA MOBILE", "CMCC"),
    "46001": ("CHINA UNICOM", "UNICOM"),
    "46003": ("CHINA TELECOM", "CT"),
}
JUNK = bytes([0xFF, 0xFE, 0x80, 0x9F, 0xC3, 0x28, 0x00, 0xA0, 0xE2, 0x82])


def _frame(lines: list[str]) -> bytes:
    """Verbose (V1) framing: every line between CR LF pairs."""
    return b"".join(b"\r\n" + line.encode("utf-8") + b"\r\n" for line in lines)


class Device(SmsCommands, CallCommands, HttpCommands):
    """A virtual modem of one slot; `write` sends bytes to the client side of its port."""

    def __init__(
        self,
        card: SimCard,
        network: NetworkPort,
        scheduler: Scheduler,
        write: Callable[[bytes], None],
        seed: int = 0,
    ) -> None:
        self.card = card
        self.msisdn = card.msisdn
        self.dialect = get_dialect(card.dialect)
        self.faults = card.faults
        self.network = network
        self.scheduler = scheduler
        self.rng = random.Random(f"{seed}:{card.slot}")
        self.cms_error_rate = card.faults.cms_error_rate
        self.signal = 14 + self.rng.randrange(15)
        self._write = write
        self._rx = bytearray()
        self._busy = False  # a slow response is on its way; later input waits
        self._held: list[str] = []  # URCs held while a response or the prompt is pending
        self._noise_due: list[str] = []
        self._lines_seen = 0
        self._dead = False
        self._last_activity = -1.0
        self.sms = SmsState()
        self.prompt: Prompt | None = None
        self.curc = 1 if self.dialect.noise else 0
        self.ussd_mode = self.dialect.ussd_mode_default
        self.smsc = "+8613800100500"
        self._busy_left = 0  # Wavecom: 515 answers still due after +CFUN=1
        self._csca_busy = self.dialect.csca_busy_once
        self.cfun = 1  # +CFUN: 1 full, 4 radio off (flight mode), 0 minimum
        self.reset()
        self.init_calls()
        self.init_http()

    # ---- lifecycle -------------------------------------------------------------

    def reset(self) -> None:
        """ATZ / power-on settings (storage, SMSC and vendor modes survive)."""
        self.echo = True
        self.cmee = 0
        self.cmgf = 0
        self.cscs = "GSM"
        self.cnmi = (0, 0, 0, 0, 0)
        self.cpms = [self.dialect.default_memory] * 3
        self.creg_n = 0
        self.cops_format = 0

    def power_on(self) -> None:
        """Boot banner, network attach (when the SIM is present), fault timers, noise."""
        boot = list(self.dialect.boot_lines)
        if self.faults.sim_missing:
            boot = [line.replace("READY", "NOT INSERTED") for line in boot]
        self._urc(boot)
        if self._registered():
            self.network.attach(self)
        lost = self.faults.network_lost
        if lost is not None:
            self.scheduler.call_later(lost[0], self._registration_changed)
            self.scheduler.call_later(lost[0] + lost[1], self._registration_changed)
        if self.dialect.noise:
            self._schedule_noise()

    def _is_dead(self) -> bool:
        limit = self.faults.stop_after_s
        if not self._dead and limit is not None and self.scheduler.elapsed() >= limit:
            self._dead = True
        return self._dead

    # ---- input -------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes the client wrote to its end of the port."""
        if self._is_dead():
            return
        self._last_activity = self.scheduler.elapsed()
        if self.echo and self.raw_wait is None:
            self._write(data)
        self._rx += data
        self._drain()

    def _drain(self) -> None:
        while self._rx and not self._busy and not self._dead:
            raw = self.raw_wait
            if raw is not None:
                if len(self._rx) < raw.length:
                    return
                data = bytes(self._rx[: raw.length])
                del self._rx[: raw.length]
                self.raw_wait = None
                raw.done(data)
                continue
            if self.prompt is not None:
                end = next((i for i, b in enumerate(self._rx) if b in (CTRL_Z, ESC)), -1)
                if end < 0:
                    if len(self._rx) > MAX_LINE:
                        self._rx.clear()
                    return
                body, stop = bytes(self._rx[:end]), self._rx[end]
                del self._rx[: end + 1]
                self._end_prompt(body.decode("utf-8", "replace").strip(), stop == CTRL_Z)
                continue
            end = self._rx.find(b"\r")
            if end < 0:
                if len(self._rx) > MAX_LINE:
                    self._rx.clear()
                return
            line = bytes(self._rx[:end]).lstrip(b"\n").decode("latin-1")
            del self._rx[: end + 1]
            self._run_line(line)

    def _run_line(self, line: str) -> None:
        commands = parse_line(line)
        if commands is None:
            return  # not an AT line: real modems stay silent
        self._lines_seen += 1
        info: list[str] = []
        payload = b""
        final: str | None = "OK"
        for command in commands:
            try:
                reply = self._dispatch(command)
            except AtError as exc:
                final = exc.render(self.cmee)
                break
            except UnknownCommand:
                final = self.dialect.unknown_reply
                break
            if isinstance(reply, Reply):
                info += reply.lines
                final = reply.final
                if isinstance(reply, RawReply):
                    payload += reply.payload
                if final != "OK":
                    break
            else:
                info += reply
        if self.prompt is not None:
            self._respond(info, None, tail=b"\r\n> ")
        else:
            self._respond(info, final, payload=payload)

    def _end_prompt(self, body: str, send: bool) -> None:
        prompt, self.prompt = self.prompt, None
        if prompt is None:
            return
        if not send:
            self._respond([], "OK")  # ESC: the message is dropped
            return
        try:
            lines = self._finish_send(prompt, body)
        except AtError as exc:
            self._respond([], exc.render(self.cmee))
            return
        self._respond(lines, "OK")

    def _dispatch(self, command: Command) -> list[str] | Reply:
        name = command.name
        if name[0] in "+^$":
            if not self.dialect.supports(name):
                raise UnknownCommand(name)
            handler = getattr(self, "_at_" + name[1:].lower(), None)
        else:
            handler = getattr(self, "_v_" + name.replace("&", "amp_").lower(), None)
        if handler is None:
            raise UnknownCommand(name)
        if self._busy_left > 0:
            self._busy_left -= 1
            raise AtError("CME", 515)
        result: list[str] | Reply = handler(command)
        return result

    # ---- output ------------------------------------------------------------------

    def _respond(
        self, info: list[str], final: str | None, tail: bytes = b"", payload: bytes = b""
    ) -> None:
        """Frame a response; slow modems send it late and take no new command meanwhile.

        `payload` (HTTP data) goes raw between the info lines and the final result.
        """
        out = bytearray(_frame(self._noise_due))
        self._noise_due = []
        if info:
            out += b"\r\n" + "\r\n".join(info).encode("utf-8") + b"\r\n"
        out += payload
        if final:
            out += _frame([final])
        out += tail
        if self.faults.garbage_rate and self.rng.random() < self.faults.garbage_rate:
            out += self._junk()
        delay = self.faults.response_delay_ms / 1000.0
        if delay <= 0:
            self._send(bytes(out))
            return
        self._busy = True
        self.scheduler.call_later(delay, lambda: self._after_slow(bytes(out)))

    def _after_slow(self, data: bytes) -> None:
        self._busy = False
        self._send(data)
        self._drain()

    def _send(self, data: bytes) -> None:
        if self._is_dead():
            return
        self._last_activity = self.scheduler.elapsed()
        self._write(data)
        limit = self.faults.stop_after_commands
        if limit is not None and self._lines_seen >= limit:
            self._dead = True  # answered its last command; silent from now on
            return
        if self._held and self.prompt is None and not self._busy and self.raw_wait is None:
            held, self._held = self._held, []
            self._write(_frame(held))

    def _junk(self) -> bytes:
        size = 3 + self.rng.randrange(8)
        return bytes(self.rng.choice(JUNK) for _ in range(size)) + b"\r\n"

    def _urc(self, lines: list[str], prefix: str = "") -> None:
        """Unsolicited lines; held back while the client is typing or a response is due."""
        if not lines or self._is_dead():
            return
        lines = [prefix + lines[0], *lines[1:]]
        if self.prompt is not None or self._busy or self.raw_wait is not None:
            self._held += lines
            return
        self._write(_frame(lines))

    # ---- Huawei noise ----------------------------------------------------------------

    def _schedule_noise(self) -> None:
        self.scheduler.call_later(2.0 + 3.0 * self.rng.random(), self._noise_tick)

    def _noise_tick(self) -> None:
        if self.curc == 0 or self._is_dead():
            return  # AT^CURC=1 reschedules
        line = self.rng.choice([f"^RSSI:{self._csq()[0]}", "^MODE:3,3", "^BOOT:20952817,0,0,0,72"])
        if self.scheduler.elapsed() - self._last_activity < 0.05:
            self._noise_due.append(line)  # lands inside the next response, as on real sticks
        else:
            self._urc([line])
        self._schedule_noise()

    # ---- state helpers -------------------------------------------------------------

    def _require_sim(self, cms: bool = False) -> None:
        if self.faults.sim_missing:
            raise AtError("CMS", 310) if cms else AtError("CME", 10)

    def _network_lost_now(self) -> bool:
        lost = self.faults.network_lost
        if lost is None:
            return False
        now = self.scheduler.elapsed()
        return lost[0] <= now < lost[0] + lost[1]

    def _registered(self) -> bool:
        return not self.faults.sim_missing and self.cfun == 1 and not self._network_lost_now()

    def _registration_changed(self) -> None:
        """On or off the network: +CREG if asked for, and the network told, as a real
        handset's (de)registration tells the HLR - so the SMSC holds what comes meanwhile."""
        registered = self._registered()
        if self.creg_n >= 1:
            self._urc([f"+CREG: {1 if registered else 0}"])
        if self.faults.sim_missing:
            return
        if registered:
            self._flush_held_mt()
            self.network.attach(self)
        else:
            self.network.detach(self.msisdn)

    def _csq(self) -> tuple[int, int]:
        return (self.signal, 99) if self._registered() else (99, 99)

    # ---- basic (V.250) commands --------------------------------------------------------

    def _v_z(self, cmd: Command) -> list[str]:
        self.reset()
        return []

    def _v_amp_f(self, cmd: Command) -> list[str]:
        self.reset()
        return []

    def _v_e(self, cmd: Command) -> list[str]:
        self.echo = cmd.raw != "0"
        return []

    def _v_i(self, cmd: Command) -> list[str]:
        return [self.dialect.manufacturer, self.dialect.model, self.dialect.revision or ""]

    def _ok(self, cmd: Command) -> list[str]:
        return []

    _v_v = _v_q = _v_x = _v_amp_c = _v_amp_d = _v_amp_w = _v_s0 = _ok

    # ---- identity and status ------------------------------------------------------------

    def _at_cgmi(self, cmd: Command) -> list[str]:
        return [] if cmd.form == "test" else [self.dialect.manufacturer]

    def _at_cgmm(self, cmd: Command) -> list[str]:
        return [] if cmd.form == "test" else [self.dialect.model]

    def _at_cgmr(self, cmd: Command) -> list[str]:
        return [] if cmd.form == "test" else [self.dialect.revision or ""]

    def _at_cgsn(self, cmd: Command) -> list[str]:
        return [] if cmd.form == "test" else [self.card.imei]

    _at_gmi, _at_gmm, _at_gmr, _at_gsn = _at_cgmi, _at_cgmm, _at_cgmr, _at_cgsn

    def _at_gcap(self, cmd: Command) -> list[str]:
        return ["+GCAP: +CGSM,+DS,+ES"]

    def _at_cimi(self, cmd: Command) -> list[str]:
        self._require_sim()
        return [] if cmd.form == "test" else [self.card.imsi]

    def _at_ccid(self, cmd: Command) -> list[str]:
        self._require_sim()
        return [self.dialect.ccid_style.format(iccid=self.card.iccid).replace("^ICCID", "+CCID")]

    def _at_iccid(self, cmd: Command) -> list[str]:
        self._require_sim()
        return [self.dialect.ccid_style.format(iccid=self.card.iccid)]

    _at_qccid = _at_iccid

    def _at_cnum(self, cmd: Command) -> list[str]:
        self._require_sim()
        if cmd.form == "test":
            return []
        kind = 145 if self.msisdn.startswith("+") else 129
        return [f'+CNUM: "","{self.msisdn}",{kind}']

    def _at_cpin(self, cmd: Command) -> list[str] | Reply:
        self._require_sim()
        if cmd.form == "set":
            raise AtError("CME", 3)  # no PIN is pending
        if cmd.form == "test":
            return []
        if not self.dialect.cpin_final_ok:
            return Reply(["+CPIN: READY"], final=None)
        return ["+CPIN: READY"]

    def _at_cfun(self, cmd: Command) -> list[str]:
        if cmd.form == "read":
            return [f"+CFUN: {self.cfun}"]
        if cmd.form == "test":
            return ["+CFUN: (0,1,4),(0-1)"]
        level = cmd.int_arg(0, 1)
        if level not in (0, 1, 4):
            raise AtError("CME", 50)
        if level == 1:
            self._busy_left = self.dialect.cfun_set_busy
        was = self._registered()
        self.cfun = level  # 0/4: the radio is off, the modem leaves the network
        if self._registered() != was:
            self.scheduler.call_later(0.0, self._registration_changed)  # after this OK
        return []

    def _at_cmee(self, cmd: Command) -> list[str]:
        if cmd.form == "read":
            return [f"+CMEE: {self.cmee}"]
        if cmd.form == "test":
            return ["+CMEE: (0-2)"]
        value = cmd.int_arg(0, 0)
        if value not in (0, 1, 2):
            raise AtError()
        self.cmee = value
        return []

    def _at_cscs(self, cmd: Command) -> list[str]:
        if cmd.form == "read":
            return [f'+CSCS: "{self.cscs}"']
        if cmd.form == "test":
            return ['+CSCS: ("IRA","GSM","UCS2")']
        value = (cmd.args or [""])[0].upper()
        if value not in ("IRA", "GSM", "UCS2"):
            raise AtError("CME", 4)
        self.cscs = value
        return []

    def _at_csq(self, cmd: Command) -> list[str]:
        if cmd.form == "test":
            return ["+CSQ: (0-31,99),(0-7,99)"]
        rssi, ber = self._csq()
        return [f"+CSQ: {rssi},{ber}"]

    def _at_creg(self, cmd: Command) -> list[str]:
        if cmd.form == "set":
            self.creg_n = cmd.int_arg(0, 0)
            return []
        if cmd.form == "test":
            return ["+CREG: (0-2)"]
        stat = 1 if self._registered() else 0
        if self.creg_n == 2 and stat:
            return [f'+CREG: 2,1,"{self.card.slot:04X}","{0x5E25 + self.card.slot:08X}"']
        return [f"+CREG: {self.creg_n},{stat}"]

    def _at_cgreg(self, cmd: Command) -> list[str]:
        return [f"+CGREG: 0,{1 if self._registered() else 0}"] if cmd.form == "read" else []

    def _at_cops(self, cmd: Command) -> list[str]:
        long_name, short_name = OPERATORS.get(self.card.imsi[:5], ("CHINA MOBILE", "CMCC"))
        numeric = self.card.imsi[:5]
        if cmd.form == "test":
            return [f'+COPS: (2,"{long_name}","{short_name}","{numeric}"),,(0-4),(0-2)']
        if cmd.form == "set":
            if cmd.int_arg(0, 0) == 3:
                self.cops_format = cmd.int_arg(1, 0)
            return []
        if not self._registered():
            return ["+COPS: 0"]
        name = [long_name, short_name, numeric][min(self.cops_format, 2)]
        return [f'+COPS: 0,{self.cops_format},"{name}",0']

    def _at_cpas(self, cmd: Command) -> list[str]:
        return [f"+CPAS: {4 if self.call is not None else 0}"]

    def _at_ceer(self, cmd: Command) -> list[str]:
        return ["+CEER: No cause information available"]

    def _at_clac(self, cmd: Command) -> list[str]:
        commands = self.dialect.clac
        if commands is None:
            raise AtError()
        if self.dialect.clac_style == "oneline":
            return ["+CLAC:" + ",".join(commands) + ","]
        suffix = "\r" if self.dialect.clac_style == "lines_cr" else ""
        return [c + suffix for c in commands]

    def _plain(self, cmd: Command) -> list[str]:
        """Settings the simulator accepts and ignores (caller ID, hang-up mode...)."""
        return []

    _at_clip = _at_crc = _at_colp = _at_cgdcont = _plain

    def _at_cvhu(self, cmd: Command) -> list[str]:
        return ["+CVHU: (0-1)"] if cmd.form == "test" else []

    # ---- vendor commands ---------------------------------------------------------------

    def _at_curc(self, cmd: Command) -> list[str]:
        if cmd.form == "read":
            return [f"^CURC: {self.curc}"]
        was, self.curc = self.curc, cmd.int_arg(0, 0)
        if self.curc == 0:
            self._noise_due = []
        elif was == 0:
            self._schedule_noise()
        return []

    def _at_ussdmode(self, cmd: Command) -> list[str]:
        if cmd.form == "read":
            return [f"^USSDMODE: {self.ussd_mode}"]
        self.ussd_mode = cmd.int_arg(0, 0)
        return []

    def _at_cvoice(self, cmd: Command) -> list[str]:
        return ["^CVOICE:0,8000,16,20"] if cmd.form == "read" else []

    def _at_sysinfo(self, cmd: Command) -> list[str]:
        status = 2 if self._registered() else 0
        return [f"^SYSINFO:{status},3,0,3,1,,3"]

    def _at_hwver(self, cmd: Command) -> list[str]:
        return ['^HWVER:"CD1E1752M"']

    def _at_wind(self, cmd: Command) -> list[str]:
        if cmd.form == "read":
            return [f"+WIND: {self.wind}"]
        if cmd.form == "set":
            self.wind = cmd.int_arg(0, 0)
        return []

    wind = 0

    def _at_zpas(self, cmd: Command) -> list[str]:
        if self.dialect.zpas is None:
            raise AtError()
        return [self.dialect.zpas] if cmd.form != "test" else []

    def _at_ddet(self, cmd: Command) -> list[str]:
        return []

    def _at_cspn(self, cmd: Command) -> list[str]:
        return [f'+CSPN: "{OPERATORS.get(self.card.imsi[:5], ("CHINA MOBILE",))[0]}",0']

    # ---- USSD ----------------------------------------------------------------------------

    def _at_cusd(self, cmd: Command) -> list[str]:
        if cmd.form == "read":
            return ["+CUSD: 1"]
        if cmd.form == "test":
            return ["+CUSD: (0-2)"]
        args = cmd.args
        if cmd.int_arg(0, 0) == 2 or len(args) < 2:
            return []
        if self.ussd_mode != 0:
            raise AtError()  # Huawei: USSD only in text mode (AT^USSDMODE=0)
        self._require_sim()
        if not self._registered():
            raise AtError("CME", 30)
        request = self._ussd_input(args[1])
        reply = self.network.ussd(self.msisdn, request)
        if reply is not None:
            self.scheduler.call_later(0.0, lambda: self.deliver_ussd(reply))
        return []

    def _ussd_input(self, value: str) -> str:
        if self.cscs == "UCS2" and len(value) % 4 == 0:
            try:
                return ucs2_text(bytes.fromhex(value))
            except ValueError:
                pass
        return unquote(value)

    def deliver_ussd(self, text: str, session_open: bool = False) -> None:
        """Handset API: +CUSD with the network's text (UCS2 hex, DCS 72, when not GSM-7)."""
        status = 1 if session_open else 0
        if is_gsm7(text) and self.cscs != "UCS2" and '"' not in text:
            self._urc([f'+CUSD: {status},"{text}",15'])
        else:
            self._urc([f'+CUSD: {status},"{ucs2_bytes(text).hex().upper()}",72'])

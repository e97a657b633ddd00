"""python-gsmmodem-new, with the defects a fleet hits fixed in a thin subclass.

Each fix is shown by a test in tests/modem/test_defects.py that fails
against the plain `GsmModem`:

- the reader thread died on bytes that are not valid UTF-8 (only
  SerialException was caught): lines are decoded leniently, junk is dropped,
  and no error in handling one line can stop the thread;
- it read one byte per system call: it now reads whatever is waiting (one
  poll and one read per burst on the fleet's `PollSerial`);
- unsolicited result codes arriving during a command became part of that
  command's response: they are recognised and routed to the URC handler;
- several +CMTI in one burst were grouped into one notification of which
  only the first was read: every URC line is dispatched on its own (and the
  driver sweeps storage anyway);
- `ownNumber` fell back to phone-book commands: only +CNUM is asked;
- every command has a deadline no longer than `command_timeout`, and a
  write to a port that no one reads cannot block for ever;
- a `+CPMS:` answer with no memory lists (Samsung J700, in the corpus)
  crashed connect (IndexError): it is read as "no storage lists" instead.

Concatenated messages are reassembled one layer up (`dialbot.modem.inbox`).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

import serial
from gsmmodem.exceptions import CmeError, CommandError, TimeoutException
from gsmmodem.modem import CTRLZ, TERMINATOR, GsmModem, Ussd
from gsmmodem.serial_comms import SerialComms

from dialbot.modem.exchange import Exchange
from dialbot.modem.port import open_port
from dialbot.modem.trace import AtTrace
from dialbot.modem.ussd import parse_cusd

log = logging.getLogger(__name__)

#: Lines a modem may send at any time, never as part of another command's answer
#: (unless that command is the one that asks for them, e.g. AT+CREG? for +CREG).
URC_PREFIXES = (
    "+CMTI:",
    "+CDSI:",
    "+CMT:",
    "+CDS:",
    "+CUSD:",
    "+CREG:",
    "+CGREG:",
    "+CEREG:",
    "+CRING:",
    "+CLIP:",
    "RING",
    "^RSSI:",
    "^HCSQ:",
    "^MODE:",
    "^BOOT:",
    "^DSFLOWRPT:",
    "^SRVST:",
    "^SIMST:",
    "^ORIG:",
    "^CONF:",
    "^CONN:",
    "^CEND:",
    "+WIND:",
    "NO CARRIER",  # a call ended (ATD itself is sent without waiting: see modem/voice.py)
    "BUSY",
    "NO ANSWER",
    "HANGUP:",  # ZTE
    "+ZPAS:",
    "+DTMF:",
    "RDY",
    "Call Ready",
    "SMS Ready",
    "+CPIN: READY",
    # data (spec/channels.md §3): results of HTTP requests and bearer loss come as URCs
    "+HTTPACTION:",
    "+QHTTPGET:",
    "+QHTTPPOST:",
    "+QHTTPREAD:",
    "+QIURC:",
    "+SAPBR 1:",
)

_JUNK = re.compile(r"[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
SIM_ABSENT_CODES = {10, 13}
CPIN_GRACE_S = 0.3  # +CME ERROR: SIM not inserted / SIM failure
READ_CHUNK = 4096  # bytes the reader takes per system call at most


def _looks_like_junk(line: str) -> bool:
    """Junk bytes that happen to decode (e.g. 'à', '₠'): no ASCII letter or digit, no CJK."""
    for char in line:
        if (char.isascii() and char.isalnum()) or char in "+^>":
            return False
        if "\u3000" <= char <= "\u9fff" or "\uff00" <= char <= "\uffef":
            return False
    return True


def is_urc(line: str, pending_command: str | None) -> bool:
    """True when line is an unsolicited code that does not answer pending_command."""
    for prefix in URC_PREFIXES:
        if line.startswith(prefix):
            name = prefix.split(":")[0].split(" ")[0]
            return pending_command is None or name not in pending_command
    return False


class _SerialFix(SerialComms):
    """Fixes below `GsmModem` in the MRO: reading, line handling, writing."""

    timeout = 0.2  # read timeout: how soon the reader notices close()

    trace: AtTrace
    on_urc: Callable[[str], None]
    on_link_lost: Callable[[BaseException], None]
    _pending_command: str | None
    exchange: Exchange | None = None  # an answer read raw (payload commands), see run_exchange

    def connect(self) -> None:
        """Open the port with a write deadline and start the chunked reader."""
        kwargs = dict(self.com_kwargs)
        kwargs.setdefault("write_timeout", 5.0)
        self.serial = open_port(self.port, self.baudrate, self.timeout, **kwargs)
        self.alive = True
        self.rxThread = threading.Thread(target=self._readLoop, daemon=True, name=f"rx {self.port}")
        self.rxThread.start()

    def close(self) -> None:
        """Stop the reader and close the port; safe twice and on a vanished port."""
        self.alive = False
        thread = getattr(self, "rxThread", None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        try:
            self.serial.close()
        except Exception:  # the port may already be gone
            pass

    def _readLoop(self) -> None:
        """Read whatever is waiting (not one byte per call) and survive any bad line."""
        buffer = bytearray()
        try:
            while self.alive:
                burst = getattr(self.serial, "read_available", None)  # PollSerial: one per burst
                if burst is not None:
                    data = burst(READ_CHUNK)
                else:
                    data = self.serial.read(max(1, self.serial.in_waiting))
                if not data:
                    continue
                buffer.extend(data)
                buffer = self._split_lines(buffer)
        except (serial.SerialException, OSError, TypeError, AttributeError, ValueError) as exc:
            # TypeError/AttributeError/ValueError: pyserial on a port closed under it
            if self.alive:
                self.alive = False
                self.trace.note(f"link lost: {exc}")
                self.on_link_lost(exc)

    def _split_lines(self, buffer: bytearray) -> bytearray:
        """Hand every complete line (or an expected prompt such as '> ') to the handler.

        While an `Exchange` is installed it takes the bytes of its answer first.
        """
        exchange = self.exchange
        if exchange is not None and not exchange.done.is_set():
            exchange.feed(buffer, lambda raw: self._safe_handle(raw, True))
            if not exchange.done.is_set():
                return buffer
            # Not cleared here: the caller, woken by `done`, may already have installed
            # the next command's exchange, which this thread must not wipe out.
        while True:
            end = buffer.find(b"\r\n")
            if end < 0:
                break
            raw = bytes(buffer[:end])
            del buffer[: end + 2]
            self._safe_handle(raw, True)
        expect = self._expectResponseTermSeq
        if expect and buffer.endswith(expect):
            raw = bytes(buffer)
            buffer.clear()
            self._safe_handle(raw, False)
        return buffer

    def _safe_handle(self, raw: bytes, check_term: bool) -> None:
        """Decode leniently, drop junk, and never let one line kill the reader."""
        text = raw.decode("utf-8", errors="replace")
        line = _JUNK.sub("", text)
        if line != text:
            self.trace.note(f"dropped junk from line {raw!r}")
        line = line.strip() if check_term else line
        if check_term and line and _looks_like_junk(line):
            self.trace.note(f"dropped junk line {raw!r}")
            return
        if not line:
            return
        try:
            self._handleLineRead(line, check_term)
        except Exception:  # a bug in a handler must not stop the reader
            log.exception("error handling line %r on %s", line, self.port)

    def _handleLineRead(self, line: str, checkForResponseTerm: bool = True) -> None:
        """Route URCs away from a pending response; everything else as before."""
        self.trace.rx(line)
        event = self._responseEvent
        waiting = event is not None and not event.is_set()
        if not waiting or is_urc(line, self._pending_command):
            self.on_urc(line)
            return
        super()._handleLineRead(line, checkForResponseTerm)
        if (
            (self._pending_command or "").strip() == "AT+CPIN?"
            and line.startswith("+CPIN:")
            and event
        ):
            # Wavecom answers AT+CPIN? without a final OK: end the response shortly after.
            timer = threading.Timer(CPIN_GRACE_S, event.set)
            timer.daemon = True
            timer.start()

    def write(
        self,
        data: str,
        waitForResponse: bool = True,
        timeout: float = 5,
        expectedResponseTermSeq: str | None = None,
    ) -> list[str] | None:
        """Write under the lock, remembering the command so its own answers are not URCs."""
        if not self.alive:
            raise TimeoutException()
        with self._txLock:
            self._pending_command = data if waitForResponse else None
            self.trace.tx(data)
            try:
                result: list[str] | None = super().write(
                    data, waitForResponse, timeout, expectedResponseTermSeq
                )
            except TimeoutException:
                self.trace.note(f"no answer within {timeout:g}s")
                raise
            except serial.SerialTimeoutException as exc:
                self.trace.note(f"write blocked for {timeout:g}s")
                raise TimeoutException() from exc
            finally:
                self._pending_command = None
            return result

    def run_exchange(self, data: bytes, exchange: Exchange, timeout: float) -> Exchange:
        """Write raw bytes and read the answer into `exchange` (payload-safe, see exchange.py)."""
        if not self.alive:
            raise TimeoutException()
        with self._txLock:
            self.exchange = exchange
            self.trace.tx(data.decode("utf-8", errors="replace")[:200])
            try:
                self.serial.write(data)
            except serial.SerialTimeoutException as exc:
                self.exchange = None
                raise TimeoutException() from exc
            answered = exchange.done.wait(timeout)
            self.exchange = None  # only the writer (under the lock) installs or clears it
            if not answered:
                self.trace.note(f"no answer within {timeout:g}s")
                raise TimeoutException()
        for line in exchange.lines:
            self.trace.rx(line)
        if exchange.payload or exchange.head:
            self.trace.note(f"read {len(exchange.head)}+{len(exchange.payload)} raw bytes")
        self.trace.rx(exchange.final or "")
        return exchange


class FleetGsmModem(GsmModem, _SerialFix):
    """`GsmModem` as a fleet needs it: the fixes above plus deadlines and dialects."""

    def __init__(
        self,
        port: str,
        baudrate: int = 115200,
        *,
        command_timeout: float = 5.0,
        send_timeout: float = 30.0,
        trace: AtTrace | None = None,
        on_urc: Callable[[str], None] | None = None,
        on_link_lost: Callable[[BaseException], None] | None = None,
        **serial_kwargs: Any,
    ) -> None:
        super().__init__(port, baudrate, requestDelivery=False, **serial_kwargs)
        self.command_timeout = command_timeout
        self.send_timeout = send_timeout
        self.trace = trace or AtTrace()
        self.on_urc = on_urc or (lambda line: None)
        self.on_link_lost = on_link_lost or (lambda exc: None)
        self._pending_command = None
        self._cusd_partial: list[str] = []
        self.sim_absent = False
        self._connecting = False
        self._connect_timed_out = False
        self.com_kwargs.setdefault("write_timeout", command_timeout)

    def write(  # type: ignore[override]
        self,
        data: str,
        waitForResponse: bool = True,
        timeout: float = 10,
        parseError: bool = True,
        writeTerm: str = TERMINATOR,
        expectedResponseTermSeq: str | None = None,
    ) -> list[str] | None:
        """Every command has a deadline: never longer than command_timeout (send_timeout for a message body)."""
        if self._connect_timed_out:
            raise TimeoutException()  # hung during connect: fail the rest at once
        limit = self.send_timeout if writeTerm == CTRLZ else self.command_timeout
        try:
            result: list[str] | None = GsmModem.write(
                self,
                data,
                waitForResponse,
                min(timeout, limit),
                parseError,
                writeTerm,
                expectedResponseTermSeq,
            )
        except TimeoutException as exc:
            if self._connecting and not exc.data:
                self._connect_timed_out = True
            raise
        if data == "AT+CPMS=?" and result:
            result = ["+CPMS: (),(),()" if line.strip() == "+CPMS:" else line for line in result]
        return result

    def connect(self, pin: str | None = None, waitingForModemToStartInSeconds: float = 0) -> None:
        """Connect; a missing SIM leaves the link usable (health reports it), dialects set up."""
        self._connecting, self._connect_timed_out = True, False
        try:
            GsmModem.connect(self, pin, waitingForModemToStartInSeconds)
        except CommandError:
            if not self.sim_absent:
                raise
        finally:
            self._connecting, self._connect_timed_out = False, False
        self._setup_dialect()

    def _setup_dialect(self) -> None:
        """Per-make settings the library does not do (Huawei: stop periodic ^RSSI etc.)."""
        try:
            maker = (self.manufacturer or "").strip().lower()
        except (CommandError, TimeoutException):
            return
        if "huawei" in maker:
            self.write("AT^CURC=0", parseError=False)

    def _unlockSim(self, pin: str | None) -> None:
        """As the library, but a missing SIM is a state to report, not a link failure."""
        try:
            super()._unlockSim(pin)
        except CmeError as exc:
            if exc.code in SIM_ABSENT_CODES:
                self.sim_absent = True
                self.trace.note(f"SIM absent (+CME ERROR: {exc.code})")
                raise CommandError("SIM absent") from exc
            raise

    def _parseCusdResponse(self, lines: list[str]) -> Ussd:
        """USSD text decoded per its DCS (UCS2 or packed GSM-7 hex), DCS optional."""
        session_open, message = parse_cusd(lines)
        return Ussd(self, session_open, message)

    @property
    def ownNumber(self) -> str | None:
        """The SIM's number from +CNUM only (many modems refuse the phone-book fallback)."""
        try:
            response = self.write("AT+CNUM") or []
        except (CommandError, TimeoutException):
            return None
        for line in response:
            match = self.CNUM_REGEX.match(line)
            if match:
                return str(match.group(1))
        return None

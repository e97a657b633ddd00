"""A small scripted AT peer on a real pty, for driver tests below the fleet.

It answers just enough for python-gsmmodem-new's connect() and the driver's
operations, stores SMS-DELIVER PDUs like a SIM, and lets a test inject what
real modems do: URCs inside a response, junk bytes, silence.
"""

from __future__ import annotations

import os
import re
import select
import threading
import time
import tty
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from dialbot.sim.smscodec import decode_submit, encode_deliver

TZ = ZoneInfo("Asia/Shanghai")


class FakeModem:
    """One scripted modem on a pseudo-terminal (`.port` is the path pyserial opens)."""

    def __init__(self, manufacturer: str = "FAKE", cnum: str | None = "13800000001") -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.manufacturer = manufacturer
        self.cnum = cnum
        self.storage: dict[int, str] = {}
        self.commands: list[str] = []
        self.hung = False
        self.send_delay = 0.0  # seconds a send (the PDU after '> ') takes to be answered
        self.creg = 1
        self.sim_present = True
        self.inject: dict[str, bytes] = {}  # command -> bytes sent before its answer
        self.after: dict[str, bytes] = {}  # command -> bytes sent after its answer
        self.handlers: dict[str, Callable[[str], list[str] | None]] = {}
        self.on_submit: Callable[[str, str], None] | None = None  # (destination, text)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sms_dest: str | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    # -- test controls --------------------------------------------------------
    def send(self, data: bytes) -> None:
        """Write raw bytes to the host (a URC, junk...)."""
        os.write(self.master, data)

    def store(self, sender: str, text: str, reference: int = 7) -> list[int]:
        """Store a message (split into parts when long); returns the storage indexes."""
        parts = encode_deliver(
            sender, text, datetime(2026, 11, 24, 1, 2, 3, tzinfo=TZ), "+8613800100500", reference
        )
        indexes = []
        with self._lock:
            for part in parts:
                index = max(self.storage, default=0) + 1
                self.storage[index] = part.pdu
                indexes.append(index)
        return indexes

    def deliver(self, sender: str, text: str, reference: int = 7) -> None:
        """Store a message and announce every part with +CMTI, all in one burst."""
        indexes = self.store(sender, text, reference)
        self.send(b"".join(b'\r\n+CMTI: "SM",%d\r\n' % i for i in indexes))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

    # -- the modem -------------------------------------------------------------
    def _loop(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            buffer += data
            while True:
                cut = min(
                    (i for i in (buffer.find(b"\r"), buffer.find(b"\x1a")) if i >= 0), default=-1
                )
                if cut < 0:
                    break
                chunk, buffer = buffer[:cut], buffer[cut + 1 :]
                self._command(chunk.decode("ascii", "replace").strip())

    def _command(self, cmd: str) -> None:
        if not cmd:
            return
        self.commands.append(cmd)
        if self.hung:
            return
        if self._sms_dest is not None:  # a PDU after the '> ' prompt
            self._sms_dest = None
            if self.send_delay:
                time.sleep(self.send_delay)  # a slow network: the modem is busy, not dead
            self._reply(cmd, ["+CMGS: 5", "OK"])
            if self.on_submit is not None:
                submit = decode_submit(cmd)
                self.on_submit(submit.destination, submit.text)
            return
        handler = self.handlers.get(cmd)
        lines = handler(cmd) if handler else None
        if lines is None:
            lines = self._answer(cmd)
        if lines is None:
            return
        self._reply(cmd, lines)

    def _reply(self, cmd: str, lines: list[str]) -> None:
        body = b"".join(b"\r\n" + line.encode() + b"\r\n" for line in lines[:-1])
        final = b"\r\n" + lines[-1].encode() + b"\r\n" if lines else b""
        os.write(self.master, self.inject.get(cmd, b"") + body + final + self.after.get(cmd, b""))

    def _answer(self, cmd: str) -> list[str] | None:
        if cmd.startswith("AT+CMGS="):
            self._sms_dest = cmd
            os.write(self.master, b"\r\n> ")
            return None
        if cmd == "AT+CPIN?":
            return ["+CPIN: READY", "OK"] if self.sim_present else ["+CME ERROR: 10"]
        if not self.sim_present and cmd in ("AT+CIMI", "AT+CNUM", "AT+CCID"):
            return ["+CME ERROR: 10"]
        simple = {
            "AT+CFUN?": ["+CFUN: 1", "OK"],
            "AT+CGMI": [self.manufacturer, "OK"],
            "AT+CGMM": ["FM-1", "OK"],
            "AT+CGSN": ["867000000000001", "OK"],
            "AT+CIMI": ["460001234567890", "OK"],
            "AT+CCID": ["+CCID: 89860000000000000001", "OK"],
            "AT+CLAC": ["+CLAC: +CNUM,+CSCS,+CMGS", "OK"],
            "AT+CSCA?": ['+CSCA: "+8613800100500",145', "OK"],
            "AT+CPMS=?": ['+CPMS: ("SM"),("SM"),("SM")', "OK"],
            "AT+CSQ": ["+CSQ: 21,99", "OK"],
            "AT+CREG?": [f"+CREG: 0,{self.creg}", "OK"],
            "AT+CSCS=?": ['+CSCS: ("GSM","UCS2")', "OK"],
            "AT+CSCS?": ['+CSCS: "GSM"', "OK"],
        }
        if cmd in simple:
            return simple[cmd]
        if cmd == "AT+CNUM":
            return [f'+CNUM: "","{self.cnum}",129', "OK"] if self.cnum else ["OK"]
        if cmd in ("AT+CPBS?", "AT+CPBR=1") or cmd.startswith("AT+CPBS="):
            return ["+CME ERROR: 3"]  # many modems refuse the phone book
        if cmd == "AT+ZPAS?" or cmd.startswith("AT+WIND"):
            return ["ERROR"]
        match = re.fullmatch(r"AT\+CMGL=4", cmd)
        if match:
            with self._lock:
                lines = []
                for index, pdu in sorted(self.storage.items()):
                    lines += [f"+CMGL: {index},0,,{len(pdu) // 2 - 8}", pdu]
            return [*lines, "OK"]
        match = re.fullmatch(r"AT\+CMGR=(\d+)", cmd)
        if match:
            with self._lock:
                pdu = self.storage.get(int(match.group(1)))
            return [f"+CMGR: 0,,{len(pdu) // 2 - 8}", pdu, "OK"] if pdu else ["+CMS ERROR: 321"]
        match = re.fullmatch(r"AT\+CMGD=(\d+)(,.*)?", cmd)
        if match:
            with self._lock:
                self.storage.pop(int(match.group(1)), None)
            return ["OK"]
        return ["OK"]

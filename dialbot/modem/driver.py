"""One `Modem` per port: deadlines, delivery, storage sweeps and recovery.

A worker thread owns the link: it connects, sweeps message storage when a
+CMTI arrives (coalescing bursts) and periodically (so nothing is stranded),
checks the modem answers, and reconnects with backoff when it does not.
Every PDU read is committed to the modem's `PduStore` before ``AT+CMGD``
deletes it (read → store → delete); what an earlier process stored and
never recorded is delivered again when the worker starts.
After `quarantine_after` failed attempts in a row the modem is quarantined
(not leased) but still retried, and returns to service when it answers.
Operations from other threads (send, USSD, health) hold the modem's
operation lock, so a sweep never interleaves with a half-sent message.
"""

from __future__ import annotations

import enum
import logging
import queue
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TypeVar

import serial
from gsmmodem.exceptions import CmeError as LibCmeError
from gsmmodem.exceptions import CmsError as LibCmsError
from gsmmodem.exceptions import CommandError, TimeoutException

from dialbot.carrier import CarrierProfile
from dialbot.errors import AtTimeout, CmeError, CmsError, ModemBusy, ModemError
from dialbot.modem.health import Health, Identity, read_health, read_identity
from dialbot.modem.http import (
    HttpFamily,
    HttpLimits,
    HttpModuleError,
    HttpResponse,
    check_body,
    check_url,
)
from dialbot.modem.http_backends import BACKENDS, detect
from dialbot.modem.inbox import DEFAULT_TZ, Inbox, IncomingMessage, parse_cmgl, read_pdu
from dialbot.modem.link import DATA_URCS, GsmLink, UrcBox
from dialbot.modem.patched import FleetGsmModem
from dialbot.modem.safety import check_number, check_text, check_ussd
from dialbot.modem.store import MemoryStore, PduStore
from dialbot.modem.trace import AtTrace
from dialbot.modem.voice import Voice

log = logging.getLogger(__name__)
T = TypeVar("T")
Sink = Callable[[IncomingMessage], None]


class LinkState(enum.Enum):
    """Whether the driver can talk to the modem (the SIM's state is the fleet's business)."""

    CONNECTING = "connecting"
    READY = "ready"
    FAILED = "failed"
    QUARANTINED = "quarantined"
    CLOSED = "closed"


@dataclass(frozen=True)
class ModemSettings:
    """How one port is driven; the defaults suit USB modems on a hub."""

    port: str
    baud: int = 115200
    pin: str | None = None
    command_timeout: float = 5.0
    send_timeout: float = 30.0
    ussd_timeout: float = 15.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    quarantine_after: int = 3
    check_interval: float = 10.0
    sweep_interval: float = 30.0
    concat_timeout: float = 120.0


class Modem:
    """The driver for one port. Start it, lease it, close it (safe twice)."""

    def __init__(
        self,
        settings: ModemSettings,
        unsolicited: Sink | None = None,
        store: PduStore | None = None,
    ) -> None:
        self.settings = settings
        self.store: PduStore = store or MemoryStore()
        self.store_error: str | None = None  # why the last sweep left messages on the modem
        self._recovered = False
        self.port = settings.port
        self.trace = AtTrace()
        self.inbox = Inbox(settings.port, DEFAULT_TZ, settings.concat_timeout)
        self.state = LinkState.CLOSED
        self.last_error: str | None = None
        self.failures = 0
        self.unsolicited: queue.Queue[IncomingMessage] = queue.Queue()
        self._unsolicited_sink = unsolicited
        self._sink: Sink | None = None
        self._sink_lock = threading.Lock()
        self._op_lock = threading.RLock()
        self._sweep_lock = threading.Lock()
        self._events: queue.Queue[str] = queue.Queue()
        self._state_changed = threading.Condition()
        self._gsm: FleetGsmModem | None = None
        self._memories: set[str] = set()  # every memory a +CMTI ever named
        self._named: set[str] = set()  # memories named since the last sweep
        self._named_lock = threading.Lock()
        self._full_due = True  # the next sweep lists every memory (a new connection)
        self._readable_cache: tuple[FleetGsmModem | None, set[str]] = (None, set())
        self.urcs = UrcBox()
        self._http: tuple[FleetGsmModem | None, str, HttpFamily | None] = (None, "", None)
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self.voice = Voice(self)

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        """Start the worker; it connects in the background (see wait_settled)."""
        if self._thread is not None:
            return
        self._set_state(LinkState.CONNECTING)
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"modem {self.port}")
        self._thread.start()

    def wait_settled(self, timeout: float) -> LinkState:
        """Wait until the first connect attempt has finished (or timeout); returns the state."""
        with self._state_changed:
            self._state_changed.wait_for(lambda: self.state != LinkState.CONNECTING, timeout)
            return self.state

    def wait_state(self, want: LinkState, timeout: float) -> bool:
        """Wait until the link reaches a state; True if it did."""
        with self._state_changed:
            return self._state_changed.wait_for(lambda: self.state == want, timeout)

    def close(self) -> None:
        """Stop the worker and close the port; safe to call twice."""
        self._closing.set()
        self._events.put("close")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.settings.command_timeout + 5)
        self._drop_link()
        self._set_state(LinkState.CLOSED)

    def __enter__(self) -> Modem:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- delivery ----------------------------------------------------------
    def set_sink(self, sink: Sink | None) -> None:
        """Deliver incoming messages to sink (a lease holder), or to the unsolicited stream."""
        with self._sink_lock:
            self._sink = sink

    def _deliver(self, message: IncomingMessage) -> None:
        """To the lease holder, else to the unsolicited sink; a message neither takes is
        still in the store, unrecorded, and is delivered again after a restart."""
        if message.problem is not None:
            log.warning("%s: %s kept as evidence (%s)", self.port, message.problem, message.slots)
        with self._sink_lock:
            # a message a dead process read belongs to no activity under way: not to a lease
            lease = None if message.recovered else self._sink
            targets = [t for t in (lease, self._unsolicited_sink) if t is not None]
            for target in targets or [self.unsolicited.put]:
                try:
                    target(message)
                    return
                except Exception:
                    log.exception("message sink failed on %s", self.port)
            log.error("%s: no sink took message %s; left in the store", self.port, message.slots)

    # -- operations --------------------------------------------------------
    def command(self, command: str, timeout: float | None = None) -> list[str]:
        """Send one AT command (from code, never from data) and return its answer lines."""
        return self._op(lambda gsm: gsm.write(command, timeout=timeout or 1e9) or [])

    def write_nowait(self, command: str) -> None:
        """Send one AT command (from code) without waiting: its result codes arrive as URCs.

        For commands whose final result comes late or never (ATD on Wavecom
        and ZTE); the voice family reads the result from the URC stream.
        """
        self._op(lambda gsm: gsm.write(command, waitForResponse=False))

    def manufacturer(self) -> str:
        """The +CGMI answer (the make decides the call-progress dialect)."""
        return self._op(lambda gsm: str(gsm.manufacturer or ""))

    def health(self) -> Health:
        """+CPIN, +CREG and +CSQ, each within the command timeout."""
        return self._op(read_health)

    def identity(self, msisdn_fallback: str | None = None) -> Identity:
        """IMSI, ICCID, IMEI, make, model and the MSISDN (+CNUM, else the inventory's)."""
        return self._op(lambda gsm: read_identity(gsm, msisdn_fallback))

    def send_sms(self, number: str, text: str) -> None:
        """Send a text message (multipart when long); unsafe input never reaches the port."""
        check_number(number)
        check_text(text)
        self._op(lambda gsm: gsm.sendSms(number, text))

    def ussd(self, code: str) -> str:
        """Send a USSD request and return the network's answer text."""
        check_ussd(code)

        def run(gsm: FleetGsmModem) -> str:
            reply = gsm.sendUssd(code, responseTimeout=self.settings.ussd_timeout)
            try:
                if reply.sessionActive:
                    reply.cancel()
            except (CommandError, TimeoutException):
                pass
            return str(reply.message or "")

        return self._op(run)

    def data_backend(self) -> str:
        """The HTTP command family this modem speaks (`simcom`, `quectel`) or `none`."""
        return self._op(lambda gsm: self._data_backend(gsm))

    def http(
        self,
        method: str,
        url: str,
        carrier: CarrierProfile,
        data: str | None = None,
        limits: HttpLimits | None = None,
    ) -> HttpResponse:
        """One HTTP request through the modem's stack and the carrier's WAP proxy.

        Unsafe URL or data is refused before anything is written; a modem
        without an HTTP stack, a module error or a dropped bearer raise
        `HttpModuleError` (an infrastructure failure).
        """
        check_url(url)
        if data is not None:
            check_body(data.encode("utf-8"))

        def run(gsm: FleetGsmModem) -> HttpResponse:
            family = self._family(gsm, carrier, limits)
            if method == "POST":
                return family.post(url, data or "")
            return family.get(url)

        return self._op(run)

    def _data_backend(self, gsm: FleetGsmModem) -> str:
        if self._http[0] is not gsm:
            self._http = (gsm, detect(GsmLink(gsm, self.urcs)), None)
        return self._http[1]

    def _family(
        self, gsm: FleetGsmModem, carrier: CarrierProfile, limits: HttpLimits | None
    ) -> HttpFamily:
        name = self._data_backend(gsm)
        if name not in BACKENDS:
            raise HttpModuleError(
                f"{self.port}: this modem has no HTTP stack", trace=self.trace.snapshot()
            )
        family = self._http[2]
        wanted = limits or HttpLimits()
        if family is None or family.profile != carrier or family.limits != wanted:
            family = BACKENDS[name](GsmLink(gsm, self.urcs), carrier, wanted)
            self._http = (gsm, name, family)
        return family

    def sweep(self, named_only: bool = False) -> int:
        """Read every stored message, store it, deliver what completes, delete what was read.

        `named_only` (the sweep a +CMTI asks for): list only the memories the
        indications named since the last sweep, not every readable one - one
        AT+CMGL instead of a +CPMS and a +CMGL per memory, for each message. A
        full sweep still runs after every connect, on the worker's periodic
        check, when no memory was named, and whenever a flow asks for one.

        Read → store (committed) → deliver → delete. The modem is held (the
        operation lock) only for the AT commands, not while the store commits,
        so a send is not kept waiting on the database; sweeps are serialised
        among themselves, so nothing deletes a slot between this sweep's
        listing and its delete. A PDU the store refuses stays on the modem and
        the sweep stops there (the next one reads it again); one stored before
        and not yet deleted (its delete failed, the process died) is deleted,
        not delivered twice.
        """
        with self._sweep_lock:
            delivered = self._recover()
            with self._named_lock:
                named, self._named = self._named, set()
            memories = named if named_only and named and not self._full_due else None
            for memory, listed, read_at in self._op(partial(self._list_locked, memories=memories)):
                items = [read_pdu(self.port, memory or "", i, pdu, read_at) for i, pdu in listed]
                if not items:  # an empty memory: what arrives there later is new
                    self.store.listed(memory or "")
                    continue
                try:
                    receipts = self.store.store_many(items)
                except Exception as exc:  # the database is down: keep them on the modem
                    self.store_error = _describe(exc)
                    self.trace.note(f"store failed, {len(items)} PDU(s) left on the modem")
                    log.error("%s: %d PDU(s) not stored (%s)", self.port, len(items), exc)
                    with self._named_lock:
                        self._named |= named  # still to read there
                    return delivered
                self.store_error = None
                for item, receipt in zip(items, receipts, strict=True):
                    if receipt.new:
                        for message in self.inbox.add(item, receipt.id):
                            self._deliver(message)
                            delivered += 1
                done = [
                    (item.index, receipt.id) for item, receipt in zip(items, receipts, strict=True)
                ]
                self._op(partial(self._delete_locked, memory=memory, done=done))
            for message in self.inbox.expire():
                self._deliver(message)
                delivered += 1
            if memories is None:
                self._full_due = False
            return delivered

    def _list_locked(
        self, gsm: FleetGsmModem, memories: set[str] | None = None
    ) -> list[tuple[str | None, list[tuple[int, str]], datetime]]:
        """The stored PDUs of `memories` (None: every readable memory), each listing stamped
        with its time; the memory selected already is listed first (no +CPMS for it)."""
        if gsm.sim_absent:
            return []  # no SIM, no storage to sweep
        wanted = self._memories | self._readable(gsm) if memories is None else memories
        current = gsm._smsMemReadDelete
        order: list[str | None] = [*sorted(wanted, key=lambda m: (m != current, m))] or [None]
        out = []
        for memory in order:
            if memory is not None:
                gsm._setSmsMemory(readDelete=memory)
            listed = parse_cmgl(gsm.write("AT+CMGL=4") or [])
            out.append((memory, listed, datetime.now(DEFAULT_TZ)))
        return out

    def _delete_locked(
        self, gsm: FleetGsmModem, memory: str | None, done: list[tuple[int, int]]
    ) -> None:
        """Delete what the store committed, in the memory it was listed from."""
        if memory is not None:
            gsm._setSmsMemory(readDelete=memory)
        for index, receipt in done:
            gsm.write(f"AT+CMGD={index}")
            self.store.deleted(receipt)

    @property
    def busy_wait(self) -> float:
        """How long an operation waits for the one under way (a send may take send_timeout)."""
        s = self.settings
        return max(s.command_timeout * 4, s.send_timeout + s.command_timeout)

    def _op(self, fn: Callable[[FleetGsmModem], T]) -> T:
        """Run fn on the link under the operation lock, translating errors (with the trace)."""
        if not self._op_lock.acquire(timeout=self.busy_wait):
            raise ModemBusy(f"{self.port}: modem busy", self.trace.snapshot())
        try:
            gsm = self._gsm
            if gsm is None or self.state not in (LinkState.READY, LinkState.CONNECTING):
                raise ModemError(
                    f"{self.port}: not connected ({self.state.value}: {self.last_error})",
                    self.trace.snapshot(),
                )
            return fn(gsm)
        except TimeoutException as exc:
            self._events.put("fault")
            raise AtTimeout(f"{self.port}: no answer in time", self.trace.snapshot()) from exc
        except LibCmsError as exc:
            raise CmsError(int(exc.code), trace=self.trace.snapshot()) from exc
        except LibCmeError as exc:
            raise CmeError(exc.code, trace=self.trace.snapshot()) from exc
        except CommandError as exc:
            raise ModemError(f"{self.port}: {exc}", self.trace.snapshot()) from exc
        except (serial.SerialException, OSError) as exc:
            self._events.put("fault")
            raise ModemError(f"{self.port}: port error: {exc}", self.trace.snapshot()) from exc
        finally:
            self._op_lock.release()

    def _recover(self) -> int:
        """Once per Modem: deliver what an earlier process stored and never recorded."""
        if self._recovered:
            return 0
        delivered = 0
        for receipt, item in self.store.left_over():
            for message in self.inbox.add(item, receipt, recovered=True):
                self._deliver(message)
                delivered += 1
        self._recovered = True
        return delivered

    def _readable(self, gsm: FleetGsmModem) -> set[str]:
        """SIM and phone memories, asked once per connection.

        Messages that arrived before we connected sit where the modem stored
        them (often "SM"), not in the memory the library then selects ("ME").
        """
        if self._readable_cache[0] is not gsm:
            try:
                lines = gsm.write("AT+CPMS=?") or []
            except CommandError:
                lines = []
            self._readable_cache = (gsm, readable_memories(lines))
        return self._readable_cache[1]

    # -- URCs (reader thread: never block) -----------------------------------
    def _on_urc(self, line: str) -> None:
        gsm = self._gsm
        self.voice.on_urc(line)
        if line.startswith(DATA_URCS):
            self.urcs.put(line)
        elif line.startswith("+CMTI:") or line.startswith("+CDSI:"):
            memory = line.split(":", 1)[1].split(",")[0].strip().strip('"')
            if memory:
                self._memories.add(memory)
                with self._named_lock:
                    self._named.add(memory)
            self._events.put("sweep")
        elif line.startswith("+CUSD:") and gsm is not None:
            gsm._handleUssd([line])

    def _on_link_lost(self, exc: BaseException) -> None:
        self._events.put("fault")

    # -- worker --------------------------------------------------------------
    def _set_state(self, state: LinkState) -> None:
        with self._state_changed:
            self.state = state
            self._state_changed.notify_all()

    def _run(self) -> None:
        while not self._closing.is_set():
            if self.state != LinkState.READY and not self._try_connect():
                delay = min(
                    self.settings.backoff_max,
                    self.settings.backoff_initial * 2 ** max(0, self.failures - 1),
                )
                if self._closing.wait(delay):
                    break
                continue
            self._serve_once()

    def _try_connect(self) -> bool:
        self._drop_link()
        gsm = FleetGsmModem(
            self.settings.port,
            self.settings.baud,
            command_timeout=self.settings.command_timeout,
            send_timeout=self.settings.send_timeout,
            trace=self.trace,
            on_urc=self._on_urc,
            on_link_lost=self._on_link_lost,
        )
        self.trace.note(f"connecting (attempt after {self.failures} failures)")
        try:
            with self._op_lock:
                self._gsm = gsm
                gsm.connect(pin=self.settings.pin)
        except Exception as exc:  # any failure to open or set up counts the same
            self.failures += 1
            self.last_error = _describe(exc)
            self.trace.note(f"connect failed: {self.last_error}")
            self._drop_link()
            quarantined = self.failures >= self.settings.quarantine_after
            self._set_state(LinkState.QUARANTINED if quarantined else LinkState.FAILED)
            return False
        self.failures = 0
        self.last_error = None
        self.voice.reset()
        self._drain_events()
        self._full_due = True
        self._set_state(LinkState.READY)
        self._events.put("sweep")
        return True

    def _serve_once(self) -> None:
        """Handle one event, or do the periodic check and sweep."""
        try:
            event = self._events.get(timeout=self.settings.check_interval)
        except queue.Empty:
            event = "tick"
        if event == "close":
            return
        if event == "fault":
            self._fault("link lost or command timed out")
            return
        try:
            if event == "tick" and not self._check_if_idle():
                return  # in use (a send, a lease's exchange): working, so not checked now
            self._drain_events("sweep")
            self.sweep(named_only=event == "sweep")
        except ModemBusy:
            log.info("%s: busy with a long operation; checked later", self.port)
        except AtTimeout:
            self._fault("no answer")
        except ModemError as exc:
            log.warning("%s: sweep failed: %s", self.port, exc)

    def _check_if_idle(self) -> bool:
        """The idle check (AT) when no operation is under way; False when one is."""
        if not self._op_lock.acquire(blocking=False):
            return False
        try:
            self._op(lambda gsm: gsm.write("AT"))
        finally:
            self._op_lock.release()
        return True

    def _fault(self, why: str) -> None:
        if self.state != LinkState.READY:
            return
        self.trace.note(f"fault: {why}")
        self.last_error = why
        self.failures += 1
        self._drop_link()
        self._set_state(LinkState.FAILED)

    def _drain_events(self, only: str | None = None) -> None:
        """Coalesce queued events (a burst of +CMTI needs one sweep)."""
        kept: list[str] = []
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            if only is not None and event != only:
                kept.append(event)
        for event in kept:
            self._events.put(event)

    def _drop_link(self) -> None:
        gsm, self._gsm = self._gsm, None
        if gsm is not None:
            gsm.close()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the modem for a sequence of operations (e.g. send then wait for the reply)."""
        with self._op_lock:
            yield


def readable_memories(cpms_test_reply: list[str]) -> set[str]:
    """The message memories worth sweeping from an ``AT+CPMS=?`` reply.

    Only "SM" and "ME": "MT" is both of them again, "BM"/"SR" hold broadcasts
    and status reports.
    """
    for line in cpms_test_reply:
        if line.startswith("+CPMS:"):
            first = line.split(":", 1)[1].strip().lstrip("(").split(")", 1)[0]
            return {m for m in re.findall(r'"([A-Z_]+)"', first) if m in ("SM", "ME")}
    return set()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutException):
        return "no answer within the command timeout"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]

"""The SMS half of a virtual modem: storage, +CMGS/+CMGR/+CMGL/+CMGD, +CNMI indications.

A mixin of `dialbot.sim.device.Device`; it only uses the device's framing
(`_urc`), its settings and its network port, so the rules of 27.005 live in
one place: messages are stored per `+CPMS`, indicated per `+CNMI`, shown in
PDU or text mode per `+CMGF`, and long texts travel as concatenated parts.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from dialbot.sim.atparse import AtError, Command, unquote
from dialbot.sim.contracts import NetworkPort, Scheduler
from dialbot.sim.dialects import Dialect
from dialbot.sim.smscodec import (
    DeliverPart,
    SmsCodecError,
    decode_submit,
    encode_deliver,
    scts_text,
    text_mode_body,
    ucs2_text,
)
from dialbot.sim.wappush import push_parts, wsp_parts

TEXT_STAT = {0: "REC UNREAD", 1: "REC READ", 2: "STO UNSENT", 3: "STO SENT"}
STAT_BY_TEXT = {v: k for k, v in TEXT_STAT.items()} | {"ALL": 4}
CAPACITY = {"SM": 50, "ME": 100, "SR": 20, "BM": 20}
ALIAS = {"MT": "ME", "SM_P": "SM", "ME_P": "ME"}
PART_GAP_S = 0.1  # between the parts of one concatenated message


@dataclass
class Stored:
    """One stored part as the SIM/ME memory holds it."""

    part: DeliverPart
    sender: str
    sent_at: datetime
    stat: int = 0  # 0 unread, 1 read


@dataclass
class Prompt:
    """A +CMGS waiting for its PDU or text after the "> " prompt."""

    length: int | None  # PDU mode: TPDU length; text mode: None
    destination: str = ""


@dataclass
class SmsState:
    """What ATZ does not reset: the memories themselves and the reassembly buffer."""

    memories: dict[str, dict[int, Stored]] = field(
        default_factory=lambda: {name: {} for name in CAPACITY}
    )
    overflow: list[tuple[str, DeliverPart, datetime]] = field(default_factory=list)
    partial: dict[tuple[str, int, int], dict[int, str]] = field(default_factory=dict)
    mr: int = 0
    mt_ref: int = 0
    held: list[Callable[[], None]] = field(default_factory=list)  # see `_hold_if_off`


class SmsCommands:
    """27.005 commands; expects the attributes and helpers `Device` defines."""

    msisdn: str
    dialect: Dialect
    network: NetworkPort
    scheduler: Scheduler
    rng: random.Random
    cms_error_rate: float
    sms: SmsState
    cmgf: int
    cscs: str
    cnmi: tuple[int, int, int, int, int]
    cpms: list[str]
    smsc: str
    prompt: Prompt | None

    # provided by Device
    def _urc(self, lines: list[str], prefix: str = "") -> None:
        raise NotImplementedError

    def _require_sim(self, cms: bool = False) -> None:
        raise NotImplementedError

    def _registered(self) -> bool:
        raise NotImplementedError

    # ---- storage -----------------------------------------------------------

    def _memory(self, name: str) -> dict[int, Stored]:
        return self.sms.memories[ALIAS.get(name, name)]

    def _capacity(self, name: str) -> int:
        return CAPACITY[ALIAS.get(name, name)]

    def _store(self, sender: str, part: DeliverPart, sent_at: datetime) -> int | None:
        memory = self._memory(self.cpms[2])
        for index in range(1, self._capacity(self.cpms[2]) + 1):
            if index not in memory:
                memory[index] = Stored(part, sender, sent_at)
                return index
        return None

    def _hold_if_off(self, delivery: Callable[[], None]) -> bool:
        """Keep a delivery that reached the device while it is off the network.

        The network holds what comes for a detached handset (`dialbot.sim.smsc`,
        with its validity period); this catches only what a network hands over
        at the very instant the modem leaves it, or a network double that does
        not track registration. `_flush_held_mt` delivers it when the modem is back.
        """
        if self._registered():
            return False
        self.sms.held.append(delivery)
        return True

    def _flush_held_mt(self) -> None:
        """Deliveries kept while the modem was off the network, in order."""
        held, self.sms.held = self.sms.held, []
        for delivery in held:
            delivery()

    def deliver_sms(self, sender: str, text: str, sent_at: datetime) -> None:
        """Handset API: a mobile-terminated message, split into parts as the network would."""
        if self._hold_if_off(partial(self.deliver_sms, sender, text, sent_at)):
            return
        self.sms.mt_ref = (self.sms.mt_ref + 1) % 256
        parts = encode_deliver(sender, text, sent_at, self.smsc_of_network(), self.sms.mt_ref)
        self._deliver_part(sender, parts[0], sent_at)
        for n, part in enumerate(parts[1:], start=1):
            # Each part is its own transfer over the air; they follow one another.
            self.scheduler.call_later(n * PART_GAP_S, self._part_sender(sender, part, sent_at))

    def deliver_wap_push(self, sender: str, href: str, text: str, sent_at: datetime) -> None:
        """Handset API: a Service Indication, as concatenated 8-bit parts to WAP port 2948."""
        if self._hold_if_off(partial(self.deliver_wap_push, sender, href, text, sent_at)):
            return
        self.sms.mt_ref = (self.sms.mt_ref + 1) % 256
        ref = 0x9F00 | self.sms.mt_ref
        parts = push_parts(sender, href, text, sent_at, self.smsc_of_network(), ref)
        self._deliver_part(sender, parts[0], sent_at)
        for n, part in enumerate(parts[1:], start=1):
            self.scheduler.call_later(n * PART_GAP_S, self._part_sender(sender, part, sent_at))

    def deliver_push(self, sender: str, payload: bytes, sent_at: datetime) -> None:
        """Handset API: a ready WSP push (an MMS notification), as 8-bit parts to port 2948."""
        if self._hold_if_off(partial(self.deliver_push, sender, payload, sent_at)):
            return
        self.sms.mt_ref = (self.sms.mt_ref + 1) % 256
        ref = 0x9F00 | self.sms.mt_ref
        parts = wsp_parts(sender, payload, sent_at, self.smsc_of_network(), ref)
        self._deliver_part(sender, parts[0], sent_at)
        for n, part in enumerate(parts[1:], start=1):
            self.scheduler.call_later(n * PART_GAP_S, self._part_sender(sender, part, sent_at))

    def _part_sender(self, sender: str, part: DeliverPart, sent_at: datetime) -> Callable[[], None]:
        return lambda: self._deliver_part(sender, part, sent_at)

    def smsc_of_network(self) -> str:
        """The service centre that delivers (not the client's +CSCA setting)."""
        return "+8613800100500"

    def _deliver_part(self, sender: str, part: DeliverPart, sent_at: datetime) -> None:
        mode, mt = self.cnmi[0], self.cnmi[1]
        if mode != 0 and mt in (2, 3):
            if self.cmgf == 0:
                self._urc([f",{part.tpdu_length}", part.pdu], prefix="+CMT: ")
            else:
                header = f'"{sender}",,"{scts_text(sent_at)}"'
                self._urc([header, text_mode_body(part, self.cscs)], prefix="+CMT: ")
            return
        index = self._store(sender, part, sent_at)
        if index is None:
            self.sms.overflow.append((sender, part, sent_at))  # the SMSC retries later
            return
        if mode != 0 and mt == 1:
            self._urc([f'+CMTI: "{self.cpms[2]}",{index}'])

    def _retry_overflow(self) -> None:
        pending, self.sms.overflow = self.sms.overflow, []
        for sender, part, sent_at in pending:
            self._deliver_part(sender, part, sent_at)

    # ---- settings ----------------------------------------------------------

    def _at_cmgf(self, cmd: Command) -> list[str]:
        if cmd.form == "read":
            return [f"+CMGF: {self.cmgf}"]
        if cmd.form == "test":
            return ["+CMGF: (0,1)"]
        value = cmd.int_arg(0, 0)
        if value not in (0, 1):
            raise AtError()
        self.cmgf = value
        return []

    def _at_cnmi(self, cmd: Command) -> list[str]:
        if cmd.form == "read":
            return ["+CNMI: " + ",".join(map(str, self.cnmi))]
        if cmd.form == "test":
            return [f"+CNMI: (0-2),(0-3),(0,2),(0-{self.dialect.cnmi_max_ds}),(0,1)"]
        values = [cmd.int_arg(i, 0) for i in range(5)]
        if values[0] > 3 or values[1] > 3 or values[3] > self.dialect.cnmi_max_ds:
            raise AtError("CMS", 303) if self.dialect.cnmi_max_ds < 2 else AtError()
        self.cnmi = (values[0], values[1], values[2], values[3], values[4])
        return []

    def _at_cpms(self, cmd: Command) -> list[str]:
        self._require_sim(cms=True)
        if cmd.form == "test":
            return ["+CPMS: " + self.dialect.cpms_support]
        if cmd.form == "read":
            return ["+CPMS: " + ",".join(self._usage(m, named=True) for m in self.cpms)]
        names = [a.upper() for a in cmd.args]
        if not 1 <= len(names) <= 3 or not self._allowed_memories(names):
            raise AtError("CMS", 302)
        for i, name in enumerate(names):
            if name:
                self.cpms[i] = name
        return ["+CPMS: " + ",".join(self._usage(m, named=False) for m in self.cpms)]

    def _allowed_memories(self, names: list[str]) -> bool:
        groups = [g.strip("()") for g in self.dialect.cpms_support.strip("()").split("),(")]
        if len(names) > len(groups):
            return False
        return all(not n or f'"{n}"' in groups[i] for i, n in enumerate(names))

    def _usage(self, name: str, named: bool) -> str:
        used, total = len(self._memory(name)), self._capacity(name)
        return f'"{name}",{used},{total}' if named else f"{used},{total}"

    def _at_csca(self, cmd: Command) -> list[str]:
        if cmd.form == "read":
            return [f'+CSCA: "{self.smsc}",{145 if self.smsc.startswith("+") else 129}']
        if cmd.form == "set":
            self.smsc = cmd.args[0] if cmd.args else ""
        return []

    def _at_csmp(self, cmd: Command) -> list[str]:
        if cmd.form == "read":
            return ["+CSMP: 17,167,0,0"]
        if self.dialect.csmp_clears_smsc:
            self.smsc = ""
        return []

    def _at_csdh(self, cmd: Command) -> list[str]:
        return ["+CSDH: 0"] if cmd.form == "read" else []

    def _at_cmms(self, cmd: Command) -> list[str]:
        return ["+CMMS: 0"] if cmd.form == "read" else []

    # ---- reading and deleting ----------------------------------------------

    def _at_cmgr(self, cmd: Command) -> list[str]:
        self._require_sim(cms=True)
        if cmd.form != "set":
            return []
        stored = self._memory(self.cpms[0]).get(cmd.int_arg(0))
        if stored is None:
            raise AtError("CMS", 321)
        lines = self._show(stored, None)
        stored.stat = 1 if stored.stat == 0 else stored.stat
        return lines

    def _at_cmgl(self, cmd: Command) -> list[str]:
        self._require_sim(cms=True)
        if cmd.form == "test":
            return (
                ['+CMGL: ("REC UNREAD","REC READ","STO UNSENT","STO SENT","ALL")']
                if self.cmgf
                else ["+CMGL: (0-4)"]
            )
        wanted = self._list_filter(cmd)
        lines: list[str] = []
        memory = self._memory(self.cpms[0])
        for index in sorted(memory):
            stored = memory[index]
            if wanted in (4, stored.stat):
                lines += self._show(stored, index)
                stored.stat = 1 if stored.stat == 0 else stored.stat
        return lines

    def _list_filter(self, cmd: Command) -> int:
        if cmd.form != "set" or not cmd.args:
            return 0 if self.cmgf == 0 else STAT_BY_TEXT["REC UNREAD"]
        if self.cmgf == 0:
            value = cmd.int_arg(0)
            if not 0 <= value <= 4:
                raise AtError("CMS", 302)
            return value
        key = cmd.args[0].upper()
        if key not in STAT_BY_TEXT:
            raise AtError("CMS", 302)
        return STAT_BY_TEXT[key]

    def _show(self, stored: Stored, index: int | None) -> list[str]:
        """+CMGR (index None) or +CMGL lines for one stored part."""
        part = stored.part
        if self.cmgf == 0:
            head = f"+CMGR: {stored.stat},,{part.tpdu_length}"
            if index is not None:
                head = f"+CMGL: {index},{stored.stat},,{part.tpdu_length}"
            return [head, part.pdu]
        meta = f'"{TEXT_STAT[stored.stat]}","{stored.sender}",,"{scts_text(stored.sent_at)}"'
        head = f"+CMGR: {meta}" if index is None else f"+CMGL: {index},{meta}"
        return [head, *text_mode_body(part, self.cscs).splitlines()]

    def _at_cmgd(self, cmd: Command) -> list[str]:
        self._require_sim(cms=True)
        if cmd.form == "test":
            return [f"+CMGD: (1-{self._capacity(self.cpms[0])}),(0-4)"]
        memory = self._memory(self.cpms[0])
        index, flag = cmd.int_arg(0), cmd.int_arg(1, 0)
        if flag == 0:
            if not 0 <= index <= self._capacity(self.cpms[0]):
                raise AtError("CMS", 321)
            memory.pop(index, None)
        else:
            keep = {1: {0, 2, 3}, 2: {0, 2}, 3: {0}, 4: set()}.get(flag)
            if keep is None:
                raise AtError("CMS", 302)
            for i in [i for i, s in memory.items() if s.stat not in keep]:
                del memory[i]
        self._retry_overflow()
        return []

    # ---- sending -------------------------------------------------------------

    def _at_cmgs(self, cmd: Command) -> list[str]:
        if cmd.form == "test":
            return []
        if cmd.form != "set" or not cmd.args:
            raise AtError()
        self._require_sim(cms=True)
        if self.cmgf == 0:
            self.prompt = Prompt(length=cmd.int_arg(0))
        else:
            self.prompt = Prompt(length=None, destination=unquote(cmd.args[0]))
        return []

    def _finish_send(self, prompt: Prompt, body: str) -> list[str]:
        """The client ended the "> " input with Ctrl-Z: decode, charge the fault dice, submit."""
        if not self._registered():
            raise AtError("CMS", 331)
        if prompt.length is not None:
            try:
                submit = decode_submit(body, prompt.length)
            except SmsCodecError:
                raise AtError("CMS", 304) from None
            destination, text, concat = submit.destination, submit.text, submit.concat
        else:
            destination, text, concat = prompt.destination, self._text_mode_input(body), None
        if self.cms_error_rate and self.rng.random() < self.cms_error_rate:
            raise AtError("CMS", 500)
        self.sms.mr = (self.sms.mr + 1) % 256
        if concat is None:
            self._submit_later(destination, text)
        else:
            self._collect_part(destination, concat.reference, concat.parts, concat.number, text)
        return [f"+CMGS: {self.sms.mr}"]

    def _text_mode_input(self, body: str) -> str:
        if self.cscs == "UCS2":
            try:
                return ucs2_text(bytes.fromhex(body))
            except ValueError:
                raise AtError("CMS", 305) from None
        return body

    def _collect_part(self, dest: str, ref: int, parts: int, number: int, text: str) -> None:
        key = (dest, ref, parts)
        got = self.sms.partial.setdefault(key, {})
        got[number] = text
        if len(got) == parts:
            del self.sms.partial[key]
            self._submit_later(dest, "".join(got[i] for i in sorted(got)))

    def _submit_later(self, destination: str, text: str) -> None:
        """Hand the message to the network after +CMGS has gone out, as a real SMSC would."""
        msisdn = self.msisdn
        self.scheduler.call_later(0.0, lambda: self.network.submit_sms(msisdn, destination, text))

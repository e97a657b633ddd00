"""The driver on real captures (../shared/corpus): transcripts fed through a pty.

Every `AT+CMGR` reply of gammu's at-sms and at-sms-failing folders is served
as the modem's storage (its PDU line verbatim, in an `AT+CMGL` answer); the
driver must store each PDU before deleting it, deliver what decodes with the
network's time stamp, and keep what does not decode as raw evidence with its
problem — never crash, never delete a PDU unseen. The SMS-DELIVER PDUs of
deliver-pdus.jsonl must decode to the text and sender their sources assert
(the two-part one reassembled, or recorded incomplete when a part is
missing). `AT+CPMS=?` and `AT+CREG?` replies of real devices drive memory
selection and health.
"""

from __future__ import annotations

import json
import queue
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakemodem import FakeModem

from dialbot.modem import IncomingMessage, LinkState, Modem, ModemSettings
from dialbot.modem.inbox import StoredPdu
from dialbot.modem.store import MemoryStore, Receipt

_HEADER = re.compile(r"^\+CMG[RL]:\s*(.*)$")
# at-sms dumps python-gsmmodem-new cannot decode (the corpus README names 20, 24 and 26;
# 04 is a CMGR reply cut short in the capture).
UNDECODABLE = {"04", "20", "24", "26"}


def transcript(path: Path) -> tuple[str, list[str]]:
    """(command, answer lines) of one .dump: the echoed command first, blank lines dropped."""
    lines = [line.strip() for line in path.read_text("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    return lines[0], lines[1:]


def pdus_of(answer: list[str]) -> list[str]:
    """The PDU lines of a +CMGR/+CMGL answer, verbatim."""
    return [answer[i + 1] for i, line in enumerate(answer[:-1]) if _HEADER.match(line)]


def as_cmgl(answer: list[str], first_index: int) -> list[str]:
    """A +CMGR answer as the +CMGL answer of a modem holding it at first_index..."""
    out, index = [], first_index
    for line in answer:
        match = _HEADER.match(line)
        if match:
            out.append(f"+CMGL: {index},{match.group(1)}")
            index += 1
        else:
            out.append(line)
    return out


class RecordingStore(MemoryStore):
    """A MemoryStore that notes, for each PDU, which commands the modem had seen when it
    was stored (to prove the delete came after)."""

    def __init__(self, fake: FakeModem) -> None:
        super().__init__()
        self.fake = fake
        self.items: list[StoredPdu] = []
        self.commands_at_store: list[list[str]] = []

    def store_many(self, items: list[StoredPdu]) -> list[Receipt]:
        for item in items:
            self.items.append(item)
            self.commands_at_store.append(list(self.fake.commands))
        return super().store_many(items)


@pytest.fixture
def fake() -> Iterator[FakeModem]:
    peer = FakeModem()
    yield peer
    peer.close()


def driver(
    fake: FakeModem, **settings: float
) -> tuple[Modem, list[IncomingMessage], RecordingStore]:
    got: list[IncomingMessage] = []
    store = RecordingStore(fake)
    modem = Modem(
        ModemSettings(fake.port, command_timeout=2.0, **settings),  # type: ignore[arg-type]
        unsolicited=got.append,
        store=store,
    )
    modem.start()
    assert modem.wait_settled(10) == LinkState.READY
    return modem, got, store


def serve_dump(fake: FakeModem, answer: list[str], index: int = 1) -> dict[int, str]:
    """The modem's storage holds the dump's PDUs; AT+CMGL answers with the dump's lines."""
    held = dict(enumerate(pdus_of(answer), start=index))
    lines = as_cmgl(answer[:-1] if answer[-1] == "OK" else answer, index)

    def cmgl(_cmd: str) -> list[str]:
        return [line for line in lines if _still_held(line, held)] + ["OK"] if held else ["OK"]

    def cmgd(cmd: str) -> list[str]:
        held.pop(int(cmd.split("=")[1].split(",")[0]), None)
        return ["OK"]

    fake.handlers["AT+CMGL=4"] = cmgl
    for i in list(held):
        fake.handlers[f"AT+CMGD={i}"] = cmgd
    return held


def _still_held(line: str, held: dict[int, str]) -> bool:
    match = re.match(r"^\+CMGL:\s*(\d+),", line)
    if match:
        return int(match.group(1)) in held
    return line in held.values()


def dumps(corpus: Path, folder: str) -> list[Path]:
    found = sorted((corpus / "gammu" / folder).glob("*.dump"))
    assert found, f"no captures in {folder}"
    return found


@pytest.mark.parametrize("folder", ["at-sms", "at-sms-failing"])
def test_every_captured_pdu_is_stored_before_its_delete(
    corpus: Path, fake: FakeModem, folder: str
) -> None:
    modem, got, store = driver(fake)
    try:
        for path in dumps(corpus, folder):
            _command, answer = transcript(path)
            pdus = pdus_of(answer)
            assert pdus, path
            held = serve_dump(fake, answer, index=3)
            stored_before = len(store.items)
            delivered_before = len(got)
            modem.sweep()
            assert held == {}, f"{path.name}: left on the modem"
            items = store.items[stored_before:]
            assert [i.pdu for i in items] == pdus, path.name
            for item, seen in zip(items, store.commands_at_store[stored_before:], strict=True):
                assert f"AT+CMGD={item.index}" not in seen[-3:], f"{path.name}: deleted first"
            # a part of a concatenated message waits for the rest: force it out, incomplete
            messages = got[delivered_before:] + modem.inbox.expire(force=True)
            assert sum(len(m.raw) for m in messages) == len(pdus), path.name
            for item in items:
                message = next(m for m in messages if item.pdu in m.raw)
                if item.kind == "undecodable":
                    assert message.problem and "undecodable" in message.problem, path.name
                    assert message.raw == (item.pdu,)
                elif item.kind == "SMS-DELIVER":
                    assert message.problem is None and message.sender, path.name
                    assert message.scts is not None and message.scts.tzinfo is not None
                else:  # a status report or a saved SMS-SUBMIT: kept, said what it is
                    assert message.problem == f"not a received message ({item.kind})"
            if folder == "at-sms":
                undecodable = path.stem in UNDECODABLE
                assert (items[0].kind == "undecodable") == undecodable, path.name
            fake.commands.clear()
        assert modem.state == LinkState.READY
    finally:
        modem.close()


def test_failing_captures_are_all_kept_with_a_problem(corpus: Path, fake: FakeModem) -> None:
    """The malformed replies gammu must reject: none is taken for a message to the SIM,
    except the one well-formed SMS-DELIVER among them (35)."""
    modem, got, _store = driver(fake)
    try:
        ordinary = []
        for path in dumps(corpus, "at-sms-failing"):
            _command, answer = transcript(path)
            serve_dump(fake, answer)
            before = len(got)
            modem.sweep()
            ordinary += [path.stem for m in got[before:] if m.problem is None]
        assert ordinary == ["35"]
    finally:
        modem.close()


def test_deliver_pdus_decode_to_what_their_sources_assert(corpus: Path, fake: FakeModem) -> None:
    cases = [json.loads(line) for line in (corpus / "deliver-pdus.jsonl").read_text().splitlines()]
    singles = [c for c in cases if not c.get("concat")]
    parts = [c for c in cases if c.get("concat")]
    modem, got, _store = driver(fake)
    try:
        for case in singles:
            fake.storage[1] = case["pdu"]
            modem.sweep()
            message = got.pop()
            assert (message.text, message.sender) == (case["text"], case["sender"]), case
            assert message.raw == (case["pdu"],) and message.problem is None
        groups: dict[tuple[str, int], list[dict]] = {}
        for case in parts:
            groups.setdefault((case["sender"], case["concat"]["reference"]), []).append(case)
        assert len(groups) == 2
        for n, case in enumerate(reversed(parts), start=1):  # parts out of order, interleaved
            fake.storage[n] = case["pdu"]
        modem.sweep()
        assert len(got) == len(groups)
        for joined in got:
            group = groups[(joined.sender.lstrip("+"), joined_reference(joined, groups))]
            ordered = sorted(group, key=lambda c: c["concat"]["number"])
            assert joined.complete and joined.parts == len(ordered)
            assert joined.text == "".join(c["text"] for c in ordered)
            assert joined.raw == tuple(c["pdu"] for c in ordered)
    finally:
        modem.close()


def joined_reference(message: IncomingMessage, groups: dict[tuple[str, int], list[dict]]) -> int:
    """The reference of the group whose first part's PDU the message holds."""
    return next(ref for (_s, ref), group in groups.items() if group[0]["pdu"] in message.raw)


def test_a_missing_part_is_recorded_incomplete(corpus: Path, fake: FakeModem) -> None:
    cases = [json.loads(line) for line in (corpus / "deliver-pdus.jsonl").read_text().splitlines()]
    first = next(c for c in cases if c.get("concat") and c["concat"]["number"] == 1)
    modem, got, store = driver(fake, concat_timeout=0.5)
    try:
        fake.storage[1] = first["pdu"]
        modem.sweep()
        assert got == [] and 1 not in fake.storage  # stored, deleted, waiting for its part
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.6)
            modem.sweep()
        (message,) = got
        assert not message.complete and message.text == first["text"]
        assert message.raw == (first["pdu"],) and message.receipts == (1,)
        assert len(store.items) == 1
    finally:
        modem.close()


@pytest.mark.parametrize(
    "name, memories",
    [
        ("alcatel-s320", {"SM", "ME"}),
        ("brovi-e3372-325", {"SM", "ME"}),
        ("generic", {"SM", "ME"}),
        ("samsung-j700", set()),
    ],
)
def test_captured_cpms_replies_choose_the_memories_swept(
    corpus: Path, fake: FakeModem, name: str, memories: set[str]
) -> None:
    _command, answer = transcript(corpus / "gammu" / "at-cpms" / f"{name}.dump")
    fake.handlers["AT+CPMS=?"] = lambda _cmd: answer
    modem, _got, _store = driver(fake)
    try:
        modem.sweep()  # after the worker's own first sweep (the operation lock orders them)
        start = _selected(fake)
        fake.commands.clear()
        modem.sweep()  # starts on the memory the last sweep ended on, then switches to each
        listed = _listed_memories(fake.commands, start)
        assert listed == memories
        assert sum(c == "AT+CMGL=4" for c in fake.commands) == max(1, len(memories))
        # the memory selected already is listed first, without switching to it
        assert sum(c.startswith("AT+CPMS=") for c in fake.commands) == max(0, len(memories) - 1)
    finally:
        modem.close()


def _selected(fake: FakeModem) -> str | None:
    """The read memory the modem has selected now: the last one switched to."""
    switched = [m for c in fake.commands for m in re.findall(r'^AT\+CPMS="(\w+)"', c)]
    return switched[-1] if switched else None


def _listed_memories(commands: list[str], start: str | None) -> set[str]:
    """The memories each AT+CMGL listed, following the +CPMS switches from `start`."""
    current, listed = start, set()
    for command in commands:
        if match := re.match(r'^AT\+CPMS="(\w+)"', command):
            current = match.group(1)
        elif command == "AT+CMGL=4" and current is not None:
            listed.add(current)
    return listed


def test_an_indication_has_only_its_memory_listed(corpus: Path, fake: FakeModem) -> None:
    """A +CMTI names where the message is: that memory is listed, not every one (a
    CPMS and a CMGL each); the message is read, stored and deleted as in a full sweep."""
    _command, answer = transcript(corpus / "gammu" / "at-cpms" / "generic.dump")
    fake.handlers["AT+CPMS=?"] = lambda _cmd: answer
    got: queue.Queue[IncomingMessage] = queue.Queue()
    store = RecordingStore(fake)
    modem = Modem(ModemSettings(fake.port, command_timeout=2.0), unsolicited=got.put, store=store)
    modem.start()
    try:
        assert modem.wait_settled(10) == LinkState.READY
        modem.sweep()
        memory_before = _selected(fake)
        fake.commands.clear()
        fake.deliver("10658888", "尊敬的用户，回复Y确认订购")
        assert got.get(timeout=10).text == "尊敬的用户，回复Y确认订购"  # the worker's sweep
        swept = list(fake.commands)  # its listings are done: the message came of them
        modem.sweep()  # waits for the worker's sweep to end (sweeps take turns)
        assert sum(c == "AT+CMGL=4" for c in swept) == 1
        assert _listed_memories(swept, memory_before) == {"SM"}
        assert not fake.storage  # deleted once stored
        assert len(store.items) == 1
    finally:
        modem.close()


@pytest.mark.parametrize(
    "name, registered",
    [
        ("empty", False),
        ("huawei", True),
        ("none", False),
        ("siemens", True),
        ("sierra312u", True),
        ("telit", True),
    ],
)
def test_captured_creg_replies_give_health(
    corpus: Path, fake: FakeModem, name: str, registered: bool
) -> None:
    _command, answer = transcript(corpus / "gammu" / "at-creg" / f"{name}.dump")
    modem, _got, _store = driver(fake)
    try:
        fake.handlers["AT+CREG?"] = lambda _cmd: answer
        assert modem.health().registered is registered
        assert modem.state == LinkState.READY
    finally:
        modem.close()

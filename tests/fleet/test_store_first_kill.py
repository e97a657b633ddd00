"""Store first, delete after: kill -9 between reading a message and recording it loses nothing.

A real process (tests/fleet/receiver_proc.py) reads from the virtual bank
with the durable receipt log and dies (SIGKILL) before any message becomes
evidence — once after the modem's delete (the message only in its memory,
as in a lease's inbox), once before it (the sweep hung in the delivery).
The restarted receiver records each message exactly once, as evidence
marked recovered; a further restart records nothing again.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.carrier import CarrierProfile
from dialbot.db.engine import engine_of, open_database
from dialbot.db.evidence import verify_chain
from dialbot.db.models import EvidenceEvent
from dialbot.db.received import DbPduStore, unrecorded
from dialbot.fleet import Fleet, FleetSettings, load_inventories
from dialbot.flows.watch import Watch
from dialbot.sim.bank import VirtualBank
from dialbot.sim.worldfile import load_world

TZ = ZoneInfo("Asia/Shanghai")
WORLD = """
bank:
  name: kb
  modems: 1
  balance_fen: 10000
sps:
  - code: "901001"
    name: 星河科技
    services:
      - {code: XHXH, name: 星河笑话, access: "1065800101", billing: monthly, price_fen: 500,
         subscribe: DG, cancel: TD}
"""
PROC = Path(__file__).with_name("receiver_proc.py")
FAST = FleetSettings(command_timeout=1.0, backoff_initial=0.2, check_interval=60)


@pytest.fixture
def bank(tmp_path: Path) -> Iterator[VirtualBank]:
    (tmp_path / "world.yaml").write_text(WORLD, encoding="utf-8")
    world = load_world(tmp_path / "world.yaml")
    with VirtualBank(world, tmp_path / "ports", tmp_path / "hw" / "kb.toml") as vb:
        yield vb


def _stored(bank: VirtualBank) -> int:
    """How many PDUs the SIM's storage holds (the network's view, not the driver's)."""
    device = bank.devices[0]
    return bank.call(lambda: sum(len(m) for m in device.sms.memories.values()))


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _run_and_kill(bank: VirtualBank, url: str, mode: str, text: str) -> None:
    """Start the receiver, send it `text`, wait until it has read it, SIGKILL it."""
    hardware = str(bank.inventory_path.parent)
    proc = subprocess.Popen(
        [sys.executable, str(PROC), url, hardware, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(
        target=lambda: [lines.put(raw.decode()) for raw in stdout], daemon=True
    ).start()
    try:
        now = datetime.now(TZ)
        device = bank.devices[0]
        bank.call(lambda: device.deliver_sms("1065800101", text, now))
        deadline = time.monotonic() + 30
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"the receiver never read {text!r}") from None
            if line.strip() == f"READ {text}":
                break
        if mode == "park":  # killed after the delete: only the receipt log has it
            _wait(lambda: _stored(bank) == 0, 10, "the modem's delete")
        else:  # killed inside the delivery: stored, and still on the modem
            assert _stored(bank) == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


def _received_texts(db: sessionmaker[Session]) -> list[tuple[str, bool]]:
    with db() as session:
        rows = session.scalars(
            select(EvidenceEvent).where(EvidenceEvent.kind == "sms_in").order_by(EvidenceEvent.id)
        ).all()
        return [(r.text or "", bool((r.data or {}).get("recovered"))) for r in rows]


def _restart(bank: VirtualBank, db: sessionmaker[Session]) -> None:
    """A receiver that records (the watch, as a station's): open, sweep once, close."""
    watch = Watch(db, CarrierProfile(), (), grace_s=0)
    fleet = Fleet(
        load_inventories(bank.inventory_path.parent),
        settings=FAST,
        unsolicited=watch.put_from_port,
        stores=lambda slot: DbPduStore(db, slot.source, slot.entry.msisdn),
    )
    with fleet:
        fleet.open(timeout=10)
        for slot in fleet.slots:
            assert slot.modem is not None
            slot.modem.sweep()  # after the worker's first sweep (the op lock orders them)
    watch.judge_all()


def test_kill_between_reading_and_recording_loses_nothing(bank: VirtualBank, db_url: str) -> None:
    db = open_database(db_url)
    try:
        _run_and_kill(bank, db_url, "park", "第一条：删除之后被杀")
        assert len(unrecorded(db)) == 1 and _received_texts(db) == []
        _run_and_kill(bank, db_url, "block", "第二条：删除之前被杀")
        assert len(unrecorded(db)) == 2 and _received_texts(db) == []

        _restart(bank, db)
        assert sorted(_received_texts(db)) == sorted(
            [("第一条：删除之后被杀", True), ("第二条：删除之前被杀", True)]
        )
        assert unrecorded(db) == []
        assert _stored(bank) == 0  # the second was read again and deleted, once

        _restart(bank, db)  # nothing is recorded twice
        assert len(_received_texts(db)) == 2
        assert verify_chain(db).ok
    finally:
        engine_of(db).dispose()

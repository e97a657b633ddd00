"""`dialbot fleet status|check` against a virtual bank of its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from dialbot.carrier import CarrierProfile
from dialbot.cli import cli
from dialbot.db.engine import open_database
from dialbot.db.models import EvidenceEvent
from dialbot.db.received import DbPduStore, to_stored, unrecorded
from dialbot.fleet import Fleet, FleetSettings, load_inventories
from dialbot.flows.watch import Watch
from dialbot.sim.bank import VirtualBank
from dialbot.sim.worldfile import load_world

WORLD = """
bank:
  name: cli-01
  modems: 4
  dialect: generic
  slots:
    2: {dialect: huawei, faults: {sim_missing: true}}
    3: {dialect: zte, faults: {stop_after_commands: 8}}
    4: {dialect: quectel}
sps: []
"""


@pytest.fixture
def bank(tmp_path: Path) -> Iterator[VirtualBank]:
    (tmp_path / "world.yaml").write_text(WORLD, encoding="utf-8")
    world = load_world(tmp_path / "world.yaml")
    with VirtualBank(world, tmp_path / "ports", tmp_path / "hardware" / "cli-01.toml") as vbank:
        yield vbank


def test_cli_status_and_check(bank: VirtualBank, tmp_path: Path) -> None:
    config = tmp_path / "dialbot.toml"
    config.write_text(f'[paths]\nhardware = "{bank.inventory_path.parent}"\n', encoding="utf-8")
    runner = CliRunner()
    status = runner.invoke(
        cli, ["--config", str(config), "fleet", "status", "--format", "json", "--timeout", "1"]
    )
    assert status.exit_code == 0, status.output
    rows = json.loads(status.stdout)
    assert len(rows) == 4
    by_slot = {row["slot"]: row for row in rows}
    assert set(by_slot[1]) >= {
        "bank",
        "slot",
        "port",
        "state",
        "imsi",
        "iccid",
        "imei",
        "msisdn",
        "signal",
        "manufacturer",
        "model",
        "balance_fen",
        "data",
        "error",
    }
    assert by_slot[1]["state"] == "ready" and by_slot[1]["error"] is None
    assert (by_slot[1]["data"], by_slot[4]["data"]) == ("none", "http")
    assert by_slot[2]["state"] == "no_sim"
    assert by_slot[3]["state"] != "ready" and by_slot[3]["error"]
    check = runner.invoke(
        cli,
        [
            "--config",
            str(config),
            "fleet",
            "check",
            "--format",
            "json",
            "--timeout",
            "1",
            "--reply-timeout",
            "5",
        ],
    )
    assert check.exit_code == 1, check.output
    checked = {row["slot"]: row for row in json.loads(check.stdout)}
    assert checked[1]["balance_fen"] == 10000 and checked[1]["state"] == "ready"


def test_cli_config_error_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "dialbot.toml"
    config.write_text("[paths]\nhardwar = 'x'\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "fleet", "status"])
    assert result.exit_code == 2
    assert "paths.hardwar" in result.output and "Traceback" not in result.output


def test_status_keeps_what_it_reads_for_the_next_recorder(
    bank: VirtualBank, tmp_path: Path
) -> None:
    """A status check that sweeps a modem's storage commits the message before deleting
    it; the next process with the receipt log records it as evidence, once."""
    database = tmp_path / "dialbot.sqlite"
    config = tmp_path / "dialbot.toml"
    config.write_text(
        f'[paths]\nhardware = "{bank.inventory_path.parent}"\n'
        f'[database]\nurl = "sqlite:///{database}"\n',
        encoding="utf-8",
    )
    device = bank.devices[0]
    text = "【某某信息】您已成功订购，回复TD退订"  # an SP's message, waiting on the SIM
    bank.call(lambda: device.deliver_sms("1065800101", text, datetime.now(UTC)))
    status = CliRunner().invoke(
        cli, ["--config", str(config), "fleet", "status", "--format", "json", "--timeout", "1"]
    )
    assert status.exit_code == 0, status.output
    db = open_database(f"sqlite:///{database}")
    kept = unrecorded(db)
    assert [to_stored(row).text for row in kept] == [text]

    watch = Watch(db, CarrierProfile(), (), grace_s=0)
    fleet = Fleet(
        load_inventories(bank.inventory_path.parent),
        settings=FleetSettings(command_timeout=1.0, backoff_initial=0.2, check_interval=60),
        unsolicited=watch.put_from_port,
        stores=lambda slot: DbPduStore(db, slot.source, slot.entry.msisdn),
    )
    with fleet:
        fleet.open(timeout=10)
        first = fleet.slots[0].modem
        assert first is not None
        first.sweep()
    watch.judge_all()
    with db() as session:
        texts = session.scalars(
            select(EvidenceEvent.text).where(EvidenceEvent.kind == "sms_in")
        ).all()
    assert list(texts) == [text] and unrecorded(db) == []

"""`dialbot fleet status|check` against a virtual bank of its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dialbot.cli import cli
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

"""dialbot.toml and hardware/*.toml: typed values, errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialbot.config import load_config
from dialbot.errors import ConfigError
from dialbot.fleet import load_inventories, load_inventory


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_relative_to_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIALBOT_DATABASE_URL", raising=False)
    cfg = write(tmp_path / "dialbot.toml", '[carrier]\nbalance_query = "ussd:*125#"\n')
    config = load_config(cfg)
    assert config.paths.hardware == tmp_path / "hardware"
    assert config.paths.reports == tmp_path / "reports"
    assert config.database_url == f"sqlite:///{tmp_path / 'dialbot.db'}"
    assert config.carrier.balance_by_ussd and config.carrier.ussd_code == "*125#"
    assert config.probe.time_scale == 1.0
    assert config.source == cfg.resolve()


def test_found_in_cwd_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIALBOT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert load_config().source is None
    write(tmp_path / "dialbot.toml", '[paths]\nhardware = "banks"\n[probe]\ntime_scale = 0.01\n')
    config = load_config()
    assert config.paths.hardware == tmp_path / "banks" and config.probe.time_scale == 0.01
    other = tmp_path / "etc"
    other.mkdir()
    write(other / "x.toml", '[database]\nurl = "postgresql://u@h/db"\n')
    monkeypatch.setenv("DIALBOT_CONFIG", str(other / "x.toml"))
    assert load_config().database_url == "postgresql://u@h/db"
    monkeypatch.setenv("DIALBOT_DATABASE_URL", "sqlite:///:memory:")
    assert load_config().database_url == "sqlite:///:memory:"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[databse]\nurl = 'x'\n", "databse"),
        ("[paths]\nhardwar = 'x'\n", "paths.hardwar"),
        ("[paths]\nhardware = 3\n", "paths.hardware"),
        ("[probe]\ntime_scale = 0\n", "probe.time_scale"),
        ("[probe]\ntime_scale = 'fast'\n", "probe.time_scale"),
        ("[carrier]\nmo_sms_fee_fen = 'x'\n", "carrier.mo_sms_fee_fen"),
        ("[carrier]\nfoo = 1\n", "carrier.foo"),
        ("database = 1\n", "database"),
    ],
)
def test_config_errors_name_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    cfg = write(tmp_path / "dialbot.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_config(cfg)
    assert caught.value.where == key and caught.value.file == str(cfg)


BANK = """
[bank]
name = "bj-01"
region = "北京"
driver = "serial"

[[modem]]
slot = 1
port = "/dev/ttyUSB0"

[[modem]]
slot = 2
port = "/dev/ttyUSB1"
baud = 9600
pin = "1234"
msisdn = "13800138000"
"""


def test_inventory_loaded(tmp_path: Path) -> None:
    write(tmp_path / "bj.toml", BANK)
    write(tmp_path / "ignored.toml.sample", "not toml at all")
    [bank] = load_inventories(tmp_path)
    assert (bank.name, bank.region, bank.driver) == ("bj-01", "北京", "serial")
    assert bank.modems[0].baud == 115200 and bank.modems[1].pin == "1234"
    assert bank.modems[1].msisdn == "13800138000"


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('name = "bj-01"', 'name = "bj 01"', "bank.name"),
        ('name = "bj-01"', 'name = "' + "b" * 65 + '"', "bank.name"),
        ('driver = "serial"', 'driver = "usb"', "bank.driver"),
        ("slot = 2", "slot = 1", "modem[2].slot"),
        ("slot = 2", 'slot = "2"', "modem[2].slot"),
        ("baud = 9600", "baud = -1", "modem[2].baud"),
        ('pin = "1234"', "pin = 1234", "modem[2].pin"),
        ('msisdn = "13800138000"', 'msisdn = "138\\r"', "modem[2].msisdn"),
        ('port = "/dev/ttyUSB1"', 'port = "/dev/ttyUSB0"', "modem[2].port"),
        ('port = "/dev/ttyUSB1"', 'prot = "/dev/ttyUSB1"', "modem[2].prot"),
        ("[bank]", "[bnak]", "bnak"),
    ],
)
def test_inventory_errors_name_file_and_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    assert old in BANK
    path = write(tmp_path / "bj.toml", BANK.replace(old, new, 1))
    with pytest.raises(ConfigError) as caught:
        load_inventory(path)
    assert caught.value.where == key and caught.value.file == str(path)


def test_duplicate_bank_names(tmp_path: Path) -> None:
    write(tmp_path / "a.toml", BANK)
    write(tmp_path / "b.toml", BANK)
    with pytest.raises(ConfigError, match="already defined"):
        load_inventories(tmp_path)


def test_shipped_example_inventory_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "hardware" / "example.toml.sample"
    bank = load_inventory(example)
    assert bank.name == "bj-01" and [m.slot for m in bank.modems] == [1, 2]

"""Modem bank inventories (`hardware/*.toml`, spec/formats.md §2), validated.

Every mistake names the file and the key (`modem[2].port`), because the
person fixing it is standing at a rack with the file open.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dialbot.errors import ConfigError

DRIVERS = ("serial", "sim")
BANK_KEYS = {"name", "region", "driver"}
MODEM_KEYS = {"slot", "port", "baud", "pin", "msisdn", "retired", "data"}
DATA = ("http", "none")
_MSISDN = re.compile(r"\+?\d{5,20}")
_PIN = re.compile(r"\d{4,8}")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # the database keeps 64 characters


@dataclass(frozen=True)
class ModemEntry:
    slot: int
    port: str
    baud: int = 115200
    pin: str | None = None
    msisdn: str | None = None
    retired: bool = False  # kept in the inventory for the record, never opened
    data: str | None = None  # "http" / "none" declared; None: asked of the modem


@dataclass(frozen=True)
class Bank:
    name: str
    region: str | None
    driver: str
    modems: tuple[ModemEntry, ...]
    source: Path


def load_inventories(folder: Path) -> list[Bank]:
    """Every *.toml in folder (sorted by name); bank names must be unique."""
    if not folder.is_dir():
        raise ConfigError(str(folder), "", "hardware folder not found")
    banks: list[Bank] = []
    seen: dict[str, Path] = {}
    for path in sorted(folder.glob("*.toml")):
        bank = load_inventory(path)
        if bank.name in seen:
            raise ConfigError(
                str(path), "bank.name", f"{bank.name!r} already defined in {seen[bank.name]}"
            )
        seen[bank.name] = path
        banks.append(bank)
    return banks


def partition(banks: list[Bank], index: int, count: int) -> list[Bank]:
    """Part ``index`` of ``count`` of the banks' modems in service: a contiguous run of
    them in inventory order (a bank's neighbouring slots stay together), the parts as
    even as the modems allow. Retired modems (never opened, kept for the record) go
    with part 0; banks with no modem in the part are left out."""
    if not 0 <= index < count:
        raise ValueError(f"part {index} of {count}")
    working = [m for b in banks for m in b.modems if not m.retired]
    start, end = index * len(working) // count, (index + 1) * len(working) // count
    mine = {id(m) for m in working[start:end]}
    part: list[Bank] = []
    for bank in banks:
        modems = tuple(m for m in bank.modems if id(m) in mine or (m.retired and index == 0))
        if modems:
            part.append(replace(bank, modems=modems))
    return part


def load_inventory(path: Path) -> Bank:
    """One inventory file."""
    file = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "", f"not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(file, "", f"cannot read: {exc}") from exc
    for key in data:
        if key not in ("bank", "modem"):
            raise ConfigError(file, key, "unknown key (expected [bank] and [[modem]])")
    bank = data.get("bank")
    if not isinstance(bank, dict):
        raise ConfigError(file, "bank", "missing [bank] table")
    _known(bank, BANK_KEYS, "bank", file)
    name = _str(bank, "name", "bank", file, required=True)
    assert name is not None
    if not _NAME.fullmatch(name):
        raise ConfigError(
            file, "bank.name", "1 to 64 letters, digits, '-', '_' or '.' (it names a queue)"
        )
    driver = _str(bank, "driver", "bank", file) or "serial"
    if driver not in DRIVERS:
        raise ConfigError(file, "bank.driver", f"must be one of {', '.join(DRIVERS)}")
    modems = data.get("modem", [])
    if not isinstance(modems, list) or not modems:
        raise ConfigError(file, "modem", "at least one [[modem]] entry is required")
    entries = tuple(_modem(m, i, file) for i, m in enumerate(modems, start=1))
    _unique(entries, file)
    return Bank(name, _str(bank, "region", "bank", file), driver, entries, path)


def _modem(raw: Any, index: int, file: str) -> ModemEntry:
    where = f"modem[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(file, where, "must be a table")
    _known(raw, MODEM_KEYS, where, file)
    slot = raw.get("slot")
    if isinstance(slot, bool) or not isinstance(slot, int) or slot < 1:
        raise ConfigError(file, f"{where}.slot", "must be a positive integer")
    port = _str(raw, "port", where, file, required=True)
    baud = raw.get("baud", 115200)
    if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
        raise ConfigError(file, f"{where}.baud", "must be a positive integer")
    pin = _str(raw, "pin", where, file)
    if pin is not None and not _PIN.fullmatch(pin):
        raise ConfigError(file, f"{where}.pin", "must be 4 to 8 digits")
    msisdn = _str(raw, "msisdn", where, file)
    if msisdn is not None and not _MSISDN.fullmatch(msisdn):
        raise ConfigError(file, f"{where}.msisdn", "must be digits, optionally with a leading +")
    retired = raw.get("retired", False)
    if not isinstance(retired, bool):
        raise ConfigError(file, f"{where}.retired", "must be true or false")
    data = _str(raw, "data", where, file)
    if data is not None and data not in DATA:
        raise ConfigError(file, f"{where}.data", f"must be one of {', '.join(DATA)}")
    assert port is not None
    return ModemEntry(slot, port, baud, pin, msisdn, retired, data)


def _unique(entries: tuple[ModemEntry, ...], file: str) -> None:
    slots: set[int] = set()
    ports: set[str] = set()
    for index, entry in enumerate(entries, start=1):
        if entry.slot in slots:
            raise ConfigError(file, f"modem[{index}].slot", f"slot {entry.slot} listed twice")
        if entry.port in ports:
            raise ConfigError(file, f"modem[{index}].port", f"port {entry.port} listed twice")
        slots.add(entry.slot)
        ports.add(entry.port)


def _known(table: dict[str, Any], allowed: set[str], where: str, file: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(file, f"{where}.{key}", "unknown key")


def _str(
    table: dict[str, Any], key: str, where: str, file: str, required: bool = False
) -> str | None:
    value = table.get(key)
    if value is None:
        if required:
            raise ConfigError(file, f"{where}.{key}", "required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(file, f"{where}.{key}", "must be a non-empty string")
    return value

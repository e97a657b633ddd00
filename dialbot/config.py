"""dialbot.toml: typed, validated, found the same way by every command.

Where it comes from, first match wins: an explicit path (`--config`, which
click also fills from DIALBOT_CONFIG), else DIALBOT_CONFIG, else
./dialbot.toml when present, else the defaults. Relative paths in the file
are relative to the file's folder, so a config works from any working
directory. DIALBOT_DATABASE_URL overrides `[database] url` (deployments keep
secrets out of files). Unknown keys and wrong types name the file and key.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialbot.carrier import CarrierProfile
from dialbot.errors import ConfigError

CONFIG_NAME = "dialbot.toml"
PATH_KEYS = ("hardware", "probes", "schedules", "reports")
SECTIONS = {"database", "paths", "carrier", "probe", "alerts", "broker", "modem", "fleet"}
# [modem]: every timing of the modem driver (seconds; quarantine_after is a count).
MODEM_KEYS = ("command_timeout", "send_timeout", "ussd_timeout", "concat_timeout",
              "check_interval", "backoff_initial", "backoff_max", "quarantine_after")  # fmt: skip


@dataclass(frozen=True)
class Paths:
    hardware: Path
    probes: Path
    schedules: Path
    reports: Path


@dataclass(frozen=True)
class ProbeSettings:
    time_scale: float = 1.0  # < 1 runs probe waits faster (demo, tests)
    follow_days: float = 0.0  # the month after: follow each order this many days (0: don't)


@dataclass(frozen=True)
class ModemTimings:
    """`[modem]`: the driver's timings; None keeps the built-in default.

    command_timeout: one AT command; send_timeout: one SMS (a long multipart
    send may need more); ussd_timeout: one USSD session; concat_timeout: how
    long the parts of a multipart message are awaited; check_interval: the
    idle health check; backoff_initial/backoff_max: reconnect delays;
    quarantine_after: failed reconnects before a modem is quarantined.
    """

    command_timeout: float | None = None
    send_timeout: float | None = None
    ussd_timeout: float | None = None
    concat_timeout: float | None = None
    check_interval: float | None = None
    backoff_initial: float | None = None
    backoff_max: float | None = None
    quarantine_after: int | None = None


@dataclass(frozen=True)
class Config:
    database_url: str
    paths: Paths
    # [database] outage_limit_s: how long a lost PostgreSQL is waited for (dialbot.db.outage)
    database_outage_limit_s: float = 300.0
    carrier: CarrierProfile = field(default_factory=CarrierProfile)
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    modem: ModemTimings = field(default_factory=ModemTimings)
    source: Path | None = None
    # [alerts] (validated by dialbot.scheduling.alerts.parse_alerts) and
    # [broker] url (Celery, distributed mode); DIALBOT_BROKER_URL overrides.
    alerts: Any = None
    broker_url: str | None = None
    # [fleet] processes: how many processes drive this host's modems (None: "auto",
    # chosen by dialbot.flows.parts from the modems and the CPUs)
    fleet_processes: int | None = None


def find_config(path: Path | None = None) -> Path | None:
    """The file to read: explicit path, else DIALBOT_CONFIG, else ./dialbot.toml if it exists."""
    if path is not None:
        return Path(path)
    env = os.environ.get("DIALBOT_CONFIG")
    if env:
        return Path(env)
    local = Path.cwd() / CONFIG_NAME
    return local if local.is_file() else None


def load_config(path: Path | None = None) -> Config:
    """Read and validate the configuration (defaults when there is no file)."""
    source = find_config(path)
    data: dict[str, Any] = {}
    if source is not None:
        data = _read_toml(source)
    name = str(source) if source is not None else CONFIG_NAME
    base = (source.resolve().parent if source is not None else Path.cwd()).absolute()
    for key in data:
        if key not in SECTIONS:
            raise ConfigError(name, key, "unknown section")
    return Config(
        database_url=_database_url(_table(data, "database", name), name, base),
        database_outage_limit_s=_outage_limit(_table(data, "database", name), name),
        paths=_paths(_table(data, "paths", name), name, base),
        carrier=CarrierProfile.from_mapping(data.get("carrier"), name),
        probe=_probe(_table(data, "probe", name), name),
        modem=_modem(_table(data, "modem", name), name),
        source=source.resolve() if source is not None else None,
        alerts=_alerts(data.get("alerts"), name),
        broker_url=_broker(_table(data, "broker", name), name),
        fleet_processes=_fleet(_table(data, "fleet", name), name),
    )


def _fleet(table: dict[str, Any], name: str) -> int | None:
    _only(table, ("processes",), "fleet", name)
    value = table.get("processes", "auto")
    if value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(name, "fleet.processes", 'must be "auto" or a whole number from 1')
    return value


def _alerts(table: Any, name: str) -> Any:
    from dialbot.scheduling.alerts import parse_alerts  # the alert module owns its keys

    return parse_alerts(table, name)


# timings are validated by dialbot.scheduling.celery_app.broker_settings
BROKER_KEYS = ("url", "heartbeat_s", "stale_after_s", "claim_timeout_s", "visibility_timeout_s")


def _broker(table: dict[str, Any], name: str) -> str | None:
    _only(table, BROKER_KEYS, "broker", name)
    return os.environ.get("DIALBOT_BROKER_URL") or _string(table, "url", "broker", name)


def _read_toml(source: Path) -> dict[str, Any]:
    try:
        text = source.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise ConfigError(str(source), "", "file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(source), "", f"cannot read: {exc}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(source), "", f"not valid TOML: {exc}") from exc


def _table(data: dict[str, Any], key: str, name: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(name, key, "must be a table")
    return value


def _only(table: dict[str, Any], allowed: tuple[str, ...], section: str, name: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(name, f"{section}.{key}", "unknown key")


def _string(table: dict[str, Any], key: str, section: str, name: str) -> str | None:
    value = table.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(name, f"{section}.{key}", "must be a non-empty string")
    return value


def _database_url(table: dict[str, Any], name: str, base: Path) -> str:
    _only(table, ("url", "outage_limit_s"), "database", name)
    url = os.environ.get("DIALBOT_DATABASE_URL") or _string(table, "url", "database", name)
    if url is None:
        return f"sqlite:///{base / 'dialbot.db'}"
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        rest = url[len(prefix) :]
        if rest:
            return prefix + str(base / rest)
    return url


def _outage_limit(table: dict[str, Any], name: str) -> float:
    value = table.get("outage_limit_s", 300.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(name, "database.outage_limit_s", "must be a number of seconds")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(name, "database.outage_limit_s", "must be greater than 0")
    return float(value)


def _paths(table: dict[str, Any], name: str, base: Path) -> Paths:
    _only(table, PATH_KEYS, "paths", name)
    resolved: dict[str, Path] = {}
    for key in PATH_KEYS:
        value = _string(table, key, "paths", name)
        path = Path(value).expanduser() if value is not None else Path(key)
        resolved[key] = path if path.is_absolute() else base / path
    return Paths(**resolved)


def _probe(table: dict[str, Any], name: str) -> ProbeSettings:
    _only(table, ("time_scale", "follow_days"), "probe", name)
    value = table.get("time_scale", 1.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(name, "probe.time_scale", "must be a number")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(name, "probe.time_scale", "must be greater than 0")
    days = table.get("follow_days", 0.0)
    if isinstance(days, bool) or not isinstance(days, int | float) or not math.isfinite(days):
        raise ConfigError(name, "probe.follow_days", "must be a number of days")
    if days < 0:
        raise ConfigError(name, "probe.follow_days", "must not be negative")
    return ProbeSettings(time_scale=float(value), follow_days=float(days))


def _modem(table: dict[str, Any], name: str) -> ModemTimings:
    _only(table, MODEM_KEYS, "modem", name)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(name, f"modem.{key}", "must be a number")
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(name, f"modem.{key}", "must be greater than 0")
        if key == "quarantine_after":
            if not isinstance(value, int):
                raise ConfigError(name, "modem.quarantine_after", "must be a whole number")
            values[key] = value
        else:
            values[key] = float(value)
    return ModemTimings(**values)

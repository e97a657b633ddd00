"""The Celery app that carries probes from the controller to the probe hosts.

Celery is only the transport. Each bank has a queue of its own, named after
the bank, consumed by the one ``dialbot worker --bank NAME`` on the host
that owns it. Messages are acknowledged late (after the probe ended, so a
worker killed mid-probe does not lose the message) and prefetched one at a
time (a modem's next probe waits in the broker, not in a dead worker's
memory). There is no result backend: every outcome goes to the central
database, where the controller waits for it, so a lost worker can be
detected from its heartbeat and its probe resolved exactly once.

Broker settings: ``[broker]`` in dialbot.toml, each key overridden by the
environment (``DIALBOT_BROKER_URL``, ``DIALBOT_BROKER_HEARTBEAT_S``, ...);
Redis (``redis://``) and RabbitMQ (``amqp://``) both work.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dialbot.config import Config
from dialbot.errors import ConfigError

if TYPE_CHECKING:  # celery is needed to send or serve probes, not to import dialbot
    from celery import Celery

BROKER_ENV = "DIALBOT_BROKER_URL"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
QUEUE_PREFIX = "dialbot.bank."
PROBE_TASK = "dialbot.probe"
CLEANUP_TASK = "dialbot.cleanup"
HYGIENE_TASK = "dialbot.hygiene"
_NUMBER_KEYS = (
    "heartbeat_s",
    "stale_after_s",
    "claim_timeout_s",
    "visibility_timeout_s",
    "hygiene_timeout_s",
)


@dataclass(frozen=True)
class BrokerSettings:
    """Where the broker is, and the timings of liveness detection.

    ``stale_after_s``: a worker (and its running probe) whose heartbeat is
    older is dead. ``claim_timeout_s``: a probe no worker took within it is
    given up (its bank has no live worker). ``visibility_timeout_s`` (Redis
    only): when an unacknowledged message is delivered again; longer than
    any probe, since the database, not redelivery, resolves lost probes.
    ``hygiene_timeout_s``: how long a distributed night waits for a bank's hygiene
    check (dialbot.scheduling.remote_hygiene); a bank past it is logged as not checked.
    """

    url: str = DEFAULT_BROKER
    heartbeat_s: float = 5.0
    stale_after_s: float = 30.0
    claim_timeout_s: float = 600.0
    visibility_timeout_s: float = 6 * 3600.0
    hygiene_timeout_s: float = 3600.0


def queue_name(bank: str) -> str:
    """The queue a bank's worker consumes."""
    return QUEUE_PREFIX + bank


def broker_settings(config: Config) -> BrokerSettings:
    """``[broker]`` of dialbot.toml (url and timings), with DIALBOT_BROKER_URL over the url."""
    table = _broker_table(config.source)
    name = str(config.source) if config.source is not None else "dialbot.toml"
    for key in table:
        if key != "url" and key not in _NUMBER_KEYS:
            raise ConfigError(name, f"broker.{key}", "unknown key")
    values: dict[str, Any] = {}
    url = os.environ.get(BROKER_ENV) or table.get("url")
    if url is not None:
        if not isinstance(url, str) or "://" not in url:
            raise ConfigError(name, "broker.url", "must be a broker URL like redis://host:6379/0")
        values["url"] = url
    for key in _NUMBER_KEYS:
        env = f"{BROKER_ENV.removesuffix('URL')}{key.upper()}"
        where, value = (env, os.environ[env]) if env in os.environ else (name, table.get(key))
        if value is not None:
            values[key] = _seconds(value, where, f"broker.{key}")
    return BrokerSettings(**values)


def _seconds(value: object, where: str, key: str) -> float:
    """A positive number of seconds, from TOML (a number) or the environment (text)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(where, key, "must be a number of seconds > 0") from None
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:  # type: ignore[arg-type,operator]
        raise ConfigError(where, key, "must be a number of seconds > 0")
    return float(value)  # type: ignore[arg-type]


def _broker_table(source: Path | None) -> dict[str, Any]:
    if source is None or not source.is_file():
        return {}
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8-sig"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(source), "", f"cannot read: {exc}") from exc
    table = data.get("broker", {})
    if not isinstance(table, dict):
        raise ConfigError(str(source), "broker", "must be a table")
    return table


def make_app(settings: BrokerSettings) -> Celery:
    """A Celery app for dialbot: acks late, prefetch 1, no result backend."""
    from celery import Celery

    app = Celery("dialbot", broker=settings.url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=QUEUE_PREFIX + "default",
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app

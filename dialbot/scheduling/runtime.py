"""Finding the runtime (dispatcher, cleanup, fleet view) a night runs with.

A runtime is named ``module:callable``; the callable takes the Config and
the session factory and returns a :class:`~dialbot.scheduling.dispatch.Runtime`.
The default is the local fleet with the flow runner; a deployment that
dispatches through Celery, or a test with a virtual bank, names its own
(``--runtime`` or ``DIALBOT_RUNTIME``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import cast

from sqlalchemy.orm import Session, sessionmaker

from dialbot.config import Config
from dialbot.errors import ConfigError, DialbotError
from dialbot.scheduling.dispatch import Runtime

RUNTIME_ENV = "DIALBOT_RUNTIME"
DEFAULT_RUNTIME = "dialbot.scheduling.runtime:local_runtime"
RuntimeFactory = Callable[[Config, sessionmaker[Session]], Runtime]


def resolve_runtime(spec: str | None) -> RuntimeFactory:
    """Import ``module:callable`` (default: env DIALBOT_RUNTIME, else the local fleet)."""
    name = spec or os.environ.get(RUNTIME_ENV) or DEFAULT_RUNTIME
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise ConfigError("--runtime", name, "must look like package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError("--runtime", name, f"cannot import {module_name}: {exc}") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError("--runtime", name, f"{module_name} has no callable {attr}")
    return cast(RuntimeFactory, factory)


def local_runtime(config: Config, db: sessionmaker[Session]) -> Runtime:
    """This host's banks with the flow runner.

    Plugs in ``dialbot.flows.sweep.local_runtime(config, db)`` when the sweep
    module provides it (a Dispatcher that leases a SIM by id and runs the
    flow, a Cleanup over ``dialbot.flows.cleanup``, and a FleetView).
    """
    try:
        sweep = importlib.import_module("dialbot.flows.sweep")
    except ImportError as exc:
        raise DialbotError(f"the local fleet runtime is not available: {exc}") from exc
    factory = getattr(sweep, "local_runtime", None)
    if not callable(factory):
        raise DialbotError(
            "the local fleet runtime is not available yet: dialbot.flows.sweep has no "
            "local_runtime(config, db); pass --runtime module:function"
        )
    return cast(Runtime, factory(config, db))

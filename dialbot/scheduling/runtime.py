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
from dialbot.errors import ConfigError
from dialbot.scheduling.dispatch import Runtime

RUNTIME_ENV = "DIALBOT_RUNTIME"
DEFAULT_RUNTIME = "dialbot.flows.runtime:local_runtime"  # this host's banks, the flow runner
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

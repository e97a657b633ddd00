"""Helpers every command group shares."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console

from dialbot.config import Config, load_config
from dialbot.errors import ConfigError


def get_config(ctx: click.Context) -> Config:
    """The configuration for this invocation; a bad file ends the command with exit 2."""
    root = ctx.find_root()
    obj = root.obj if isinstance(root.obj, dict) else {}
    cached = obj.get("config")
    if isinstance(cached, Config):
        return cached
    try:
        config = load_config(obj.get("config_path"))
    except ConfigError as exc:
        click.echo(f"Error: configuration: {exc}", err=True)
        ctx.exit(2)
    obj["config"] = config
    return config


def output_console() -> Console:
    """The console for a command's output: the terminal's width, or wide enough when
    piped to a file or a log that a findings table is not wrapped to 80 columns."""
    return Console(width=None if sys.stdout.isatty() else 200)


LOG_NAME = "dialbot.log"


class OneLine(logging.Formatter):
    """A console line per record: the message's first line, never a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        lines = record.getMessage().strip().splitlines()
        return f"{record.levelname.lower()}: {lines[0] if lines else ''}"


def command_log(config: Config, console: bool = False) -> Path:
    """Send this command's log (warnings and the details of any error, tracebacks
    included) to ``dialbot.log`` beside dialbot.toml; returns its path.

    The console stays for the user: one line per error, never a traceback. With
    ``console`` a long-running command also says its warnings there (an outage
    waited for, a lane that broke), one line each.
    """
    folder = config.source.parent if config.source is not None else Path.cwd()
    path = folder / LOG_NAME
    root = logging.getLogger("dialbot")
    if not any(getattr(h, "baseFilename", None) == str(path) for h in root.handlers):
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s pid %(process)d: %(message)s")
        )
        handler.setLevel(logging.INFO)
        root.addHandler(handler)
        if root.level == logging.NOTSET or root.level > logging.INFO:
            root.setLevel(logging.INFO)
        # SQLAlchemy's own errors (a pooled connection that cannot be reset while the
        # database restarts) go to the log too: with no handler Python's last resort would
        # print them, traceback and all, on the console
        logging.getLogger("sqlalchemy").addHandler(handler)
    if console and not any(isinstance(h.formatter, OneLine) for h in root.handlers):
        stream = logging.StreamHandler()
        stream.setFormatter(OneLine())
        stream.setLevel(logging.WARNING)
        root.addHandler(stream)
    return path


def fail(ctx: click.Context, exc: BaseException, code: int, log_path: Path | None) -> NoReturn:
    """End the command after an unexpected error: one line, the details in the log."""
    logging.getLogger("dialbot.cli").error("command failed", exc_info=exc)
    first = (str(exc).strip().splitlines() or [""])[0] or type(exc).__name__
    where = f" (details in {log_path})" if log_path is not None else ""
    click.echo(f"Error: {type(exc).__name__}: {first}{where}", err=True)
    ctx.exit(code)
    raise AssertionError("unreachable")  # ctx.exit raises

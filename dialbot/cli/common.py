"""Helpers every command group shares."""

from __future__ import annotations

import click

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

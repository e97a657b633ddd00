"""The `dialbot` command: one click group, one module per command group.

The root group only records where the configuration lives (`--config`,
else `DIALBOT_CONFIG`, else ./dialbot.toml); commands load it when they need
it, so `dialbot --help` works with a broken dialbot.toml.
"""

from __future__ import annotations

from pathlib import Path

import click

from dialbot import __version__
from dialbot.cli.sim import sim


@click.group()
@click.version_option(__version__, prog_name="dialbot")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="DIALBOT_CONFIG",
    default=None,
    help="dialbot.toml to use (default: ./dialbot.toml when present).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """Automated dial-testing of mobile value-added services."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


cli.add_command(sim)


def main() -> None:
    cli(prog_name="dialbot")

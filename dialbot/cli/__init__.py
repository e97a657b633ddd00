"""The `dialbot` command: one click group, one module per command group."""

from __future__ import annotations

import click

from dialbot import __version__
from dialbot.cli.sim import sim


@click.group()
@click.version_option(__version__, prog_name="dialbot")
def cli() -> None:
    """Automated dial-testing of mobile value-added services."""


cli.add_command(sim)


def main() -> None:
    cli(prog_name="dialbot")

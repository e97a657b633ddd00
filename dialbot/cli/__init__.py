"""The `dialbot` command: one click group, one module per command group.

The root group only records where the configuration lives (`--config`,
else `DIALBOT_CONFIG`, else ./dialbot.toml); commands load it when they need
it, so `dialbot --help` works with a broken dialbot.toml.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dialbot import __version__
from dialbot.cli._db import EXIT_DATABASE
from dialbot.cli.catalog import catalog
from dialbot.cli.daemon import daemon
from dialbot.cli.demo import demo
from dialbot.cli.evidence import evidence
from dialbot.cli.findings import findings
from dialbot.cli.fleet import fleet
from dialbot.cli.probe import probe_cmd
from dialbot.cli.report import rank_cmd, report_cmd
from dialbot.cli.schedule import schedule
from dialbot.cli.sim import sim
from dialbot.cli.sweep import sweep_cmd
from dialbot.cli.worker import worker_cmd
from dialbot.db.outage import DatabaseUnavailable


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
cli.add_command(demo)
cli.add_command(schedule)
cli.add_command(daemon)
cli.add_command(fleet)
cli.add_command(catalog)
cli.add_command(evidence)
cli.add_command(findings)
cli.add_command(probe_cmd)
cli.add_command(sweep_cmd)
cli.add_command(worker_cmd)
cli.add_command(rank_cmd)
cli.add_command(report_cmd)


def main() -> None:
    """The console script. A database that stayed away past ``[database] outage_limit_s``
    ends any command with one line and exit status 3, wherever it was noticed."""
    try:
        cli(prog_name="dialbot")
    except DatabaseUnavailable as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_DATABASE)

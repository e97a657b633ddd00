"""`dialbot daemon`: run the schedules unattended (see docs/daemon.md)."""

from __future__ import annotations

import logging

import click

from dialbot.cli._db import EXIT_DATABASE, open_db
from dialbot.cli.common import get_config
from dialbot.errors import ConfigError, DialbotError
from dialbot.scheduling.daemon import Daemon
from dialbot.scheduling.logs import setup_json_logging
from dialbot.scheduling.runtime import resolve_runtime
from dialbot.scheduling.schedules import load_schedules


@click.command("daemon")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=9464,
    show_default=True,
    help="Port of the Prometheus endpoint (0: any free port).",
)
@click.option(
    "--metrics-addr",
    default="127.0.0.1",
    show_default=True,
    help="Address the endpoint listens on.",
)
@click.option("--no-metrics", is_flag=True, help="Do not serve metrics.")
@click.option(
    "--housekeeping",
    "housekeeping_s",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds between alert scans and deliveries.",
)
@click.option(
    "--runtime",
    "runtime_spec",
    default=None,
    help="module:function giving the dispatcher (default: this host's fleet).",
)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning"]), default="info")
@click.pass_context
def daemon(
    ctx: click.Context,
    metrics_port: int,
    metrics_addr: str,
    no_metrics: bool,
    housekeeping_s: float,
    runtime_spec: str | None,
    log_level: str,
) -> None:
    """Run every schedule at its time until SIGTERM; JSON-lines logs on stderr."""
    setup_json_logging(getattr(logging, log_level.upper()))
    config = get_config(ctx)
    try:
        schedules = load_schedules(config.paths.schedules)
        alerts = config.alerts
    except ConfigError as exc:
        click.echo(f"Error: configuration: {exc}", err=True)
        ctx.exit(2)
    db = open_db(ctx)
    try:
        runtime = resolve_runtime(runtime_spec)(config, db)
    except DialbotError as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(2)
    daemon = Daemon(
        db,
        schedules,
        runtime,
        alerts=alerts,
        metrics_port=None if no_metrics else metrics_port,
        metrics_addr=metrics_addr,
        housekeeping_s=housekeeping_s,
    )
    daemon.serve()
    if daemon.fatal is not None:
        click.echo(f"Error: {daemon.fatal}", err=True)
        ctx.exit(EXIT_DATABASE)

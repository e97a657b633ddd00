"""`dialbot sweep`: every catalogued service once, over every ready modem.

Exit status: 0 when every service the fleet can reach was probed with all
its flows (findings or not), 2 on a usage or configuration error, 3 when
some probes could not be completed (no ready modem, modems failing, an
internal error: one line on the console, the details in dialbot.log beside
dialbot.toml). However it ends, the sweep's watch is judged and closed.
"""

from __future__ import annotations

import click

from dialbot.cli._db import open_db
from dialbot.cli.common import command_log, fail, get_config, output_console
from dialbot.db.catalogue import list_services
from dialbot.errors import ConfigError, FlowError
from dialbot.flows.loader import load_flows
from dialbot.flows.summary import ProgressListener, print_report
from dialbot.flows.sweep import FleetSink, Sweep, open_fleet

EXIT_USAGE, EXIT_INCOMPLETE = 2, 3


@click.command("sweep")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Seconds a modem may take to answer one command (default: [modem] command_timeout, else 5).",
)
@click.pass_context
def sweep_cmd(ctx: click.Context, timeout: float | None) -> None:
    """Probe every catalogued service with the standard flows for its billing type."""
    config = get_config(ctx)
    db = open_db(ctx)
    console = output_console()
    services = list_services(db)
    if not services:
        click.echo("Error: the catalogue is empty (dialbot catalog import FILE.csv)", err=True)
        ctx.exit(EXIT_USAGE)
    try:
        flows = load_flows(config.paths.probes)
    except FlowError as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(EXIT_USAGE)
    sink = FleetSink()
    log_path = command_log(config)
    try:
        fleet = open_fleet(config, sink, timeout, db=db)
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(EXIT_USAGE)
    except Exception as exc:  # the modems could not be opened: nothing was probed
        fail(ctx, exc, EXIT_INCOMPLETE, log_path)
    try:
        sweep = Sweep(db, config, fleet, flows, services)
        sink.bind(sweep.watch)
        if not sweep.ready_slots():
            sweep.station.close()
            click.echo("Error: no ready modem in hardware/ (dialbot fleet status)", err=True)
            ctx.exit(EXIT_INCOMPLETE)
        with ProgressListener(console) as progress:
            sweep.listener = progress
            report = sweep.run()
    except click.exceptions.Exit:
        raise
    except KeyboardInterrupt:
        click.echo("Error: interrupted; the sweep was not completed", err=True)
        ctx.exit(EXIT_INCOMPLETE)
    except Exception as exc:
        fail(ctx, exc, EXIT_INCOMPLETE, log_path)
    finally:
        fleet.close()
    print_report(console, report)
    ctx.exit(0 if report.complete else EXIT_INCOMPLETE)

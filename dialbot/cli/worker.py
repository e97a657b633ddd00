"""`dialbot worker --bank NAME`: serve one bank's probe queue on this host.

Run one per bank, on the host the bank is plugged into (see
docs/deployment.md). The bank must be in this host's ``hardware/``; its
modems run through the local runtime (``--runtime`` names another, e.g. a
test double). Exits 0 on SIGTERM/SIGINT after the running probes ended.
"""

from __future__ import annotations

import logging

import click

from dialbot.cli._db import EXIT_DATABASE, open_db
from dialbot.cli.common import get_config
from dialbot.errors import ConfigError, DialbotError
from dialbot.fleet import load_inventories
from dialbot.scheduling.celery_app import broker_settings, make_app
from dialbot.scheduling.logs import setup_json_logging
from dialbot.scheduling.runtime import DEFAULT_RUNTIME, resolve_runtime
from dialbot.scheduling.worker import (
    BankWorker,
    register_tasks,
    start_celery,
    wait_for_predecessor,
)


@click.command("worker")
@click.option("--bank", "bank_name", required=True, help="Bank (from hardware/) to serve.")
@click.option(
    "--runtime",
    "runtime_spec",
    envvar="DIALBOT_WORKER_RUNTIME",
    default=DEFAULT_RUNTIME,
    show_default=True,
    help="module:function building the local runtime that runs probes on this host.",
)
@click.option("--log-level", default="INFO", show_default=True)
@click.pass_context
def worker_cmd(ctx: click.Context, bank_name: str, runtime_spec: str, log_level: str) -> None:
    """Consume BANK's queue: one probe per modem at a time, results to the database."""
    config = get_config(ctx)
    setup_json_logging(logging.getLevelNamesMapping().get(log_level.upper(), logging.INFO))
    try:
        settings = broker_settings(config)
        banks = {b.name: b for b in load_inventories(config.paths.hardware)}
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from exc
    bank = banks.get(bank_name)
    if bank is None:
        raise click.ClickException(
            f"bank {bank_name!r} is not in {config.paths.hardware} "
            f"(known: {', '.join(sorted(banks)) or 'none'})"
        )
    db = open_db(ctx)
    try:
        wait_for_predecessor(db, bank.name, settings)  # before the ports are opened
        runtime = resolve_runtime(runtime_spec)(config, db)
    except DialbotError as exc:
        raise click.ClickException(str(exc)) from exc
    modems = sum(1 for m in bank.modems if not m.retired)
    worker = BankWorker(db, runtime, bank.name, bank.region, modems, settings)
    app = make_app(settings)
    register_tasks(app, worker)
    try:
        worker.start()
        start_celery(app, worker, loglevel=log_level)
    except DialbotError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        worker.stop()
        runtime.close()
        logging.getLogger("dialbot.worker").info("worker stopped", extra={"bank": bank.name})
    if worker.fatal is not None:
        click.echo(f"Error: {worker.fatal}", err=True)
        ctx.exit(EXIT_DATABASE)

"""`dialbot fleet status|check`: what every modem of every bank is doing.

Both open all modems concurrently and wait on one deadline, so a dead or
hung modem is listed with its error and never holds up the command longer
than its timeout. MSISDNs are shown in full: this is an operator's console,
not a publication.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from dialbot.cli.common import get_config
from dialbot.config import Config
from dialbot.errors import ConfigError, DialbotError
from dialbot.fleet import (
    CarrierServices,
    Fleet,
    FleetModem,
    SimState,
    load_inventories,
)

COLUMNS = (
    "bank",
    "slot",
    "port",
    "state",
    "imsi",
    "iccid",
    "imei",
    "msisdn",
    "signal",
    "manufacturer",
    "model",
    "balance_fen",
    "data",
    "error",
)


@click.group()
def fleet() -> None:
    """Modem banks: health, identity, balance and subscriptions of every SIM."""


def _open_fleet(ctx: click.Context, config: Config, timeout: float) -> Fleet:
    """The banks, opened with the durable receipt log: a message the modems hold is
    committed before it is deleted, and the next station or worker records it as
    evidence (store first, delete after — a status check must not eat an SP's message)."""
    from dialbot.cli._db import open_db
    from dialbot.db.received import DbPduStore

    db = open_db(ctx)
    try:
        banks = load_inventories(config.paths.hardware)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    from dialbot.flows.station import fleet_settings  # [modem] timings, --timeout over them

    settings = replace(
        fleet_settings(config, timeout), backoff_initial=timeout, check_interval=3600
    )
    fleet_ = Fleet(
        banks,
        config.carrier,
        settings,
        stores=lambda slot: DbPduStore(db, slot.source, slot.entry.msisdn),
    )
    fleet_.open(timeout=timeout * 3)
    fleet_.refresh(timeout=timeout * 4)
    return fleet_


def _row(slot: FleetModem, low_balance_fen: int) -> dict[str, Any]:
    ident = slot.identity
    health = slot.health
    state = slot.state_with_balance(low_balance_fen)
    error = slot.error
    if error is None and state == SimState.OFFLINE and slot.modem is not None:
        error = slot.modem.last_error or f"modem {slot.modem.state.value}"
    return {
        "bank": slot.bank.name,
        "slot": slot.entry.slot,
        "port": slot.entry.port,
        "state": state.value,
        "imsi": ident.imsi if ident else None,
        "iccid": ident.iccid if ident else None,
        "imei": ident.imei if ident else None,
        "msisdn": (ident.msisdn if ident else None) or slot.entry.msisdn,
        "signal": health.signal if health else None,
        "manufacturer": ident.manufacturer if ident else None,
        "model": ident.model if ident else None,
        "balance_fen": slot.balance_fen,
        "data": slot.data,
        "error": error,
    }


def _print(rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table(show_lines=False)
    for column in COLUMNS:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row[c] is None else str(row[c]) for c in COLUMNS))
    Console(width=220).print(table)


def _print_all_hosts(ctx: click.Context, fmt: str) -> None:
    """The banks registry (dialbot.scheduling.hosts): host, worker and last heartbeat."""
    from datetime import timedelta

    from dialbot.cli._db import open_db
    from dialbot.scheduling.celery_app import broker_settings
    from dialbot.scheduling.hosts import HOST_COLUMNS, fleet_status_rows, status_dicts

    stale = timedelta(seconds=broker_settings(get_config(ctx)).stale_after_s)
    rows = status_dicts(fleet_status_rows(open_db(ctx), stale))
    if fmt == "json":
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table(*HOST_COLUMNS)
    for row in rows:
        table.add_row(*("" if row[c] is None else str(row[c]) for c in HOST_COLUMNS))
    Console(width=220).print(table)


def _check_services(fleet_: Fleet, slot: FleetModem, reply_timeout: float) -> None:
    """Balance and subscription list of one ready SIM (the `check` pass)."""
    if slot.state != SimState.READY:
        return
    lease = fleet_.lease(bank=slot.bank.name, slot=slot.entry.slot)
    with lease:
        services = CarrierServices(lease, fleet_.carrier, reply_timeout)
        slot.balance_fen = services.balance().fen
        services.subscriptions()


format_option = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds a modem may take to answer one command.",
)


@fleet.command()
@format_option
@timeout_option
@click.option("--all-hosts", is_flag=True, help="Every bank of every host, from the database.")
@click.pass_context
def status(ctx: click.Context, fmt: str, timeout: float, all_hosts: bool) -> None:
    """Health and identity of every modem (--all-hosts: every bank, from the database)."""
    if all_hosts:
        _print_all_hosts(ctx, fmt)
        return
    config = get_config(ctx)
    fleet_ = _open_fleet(ctx, config, timeout)
    try:
        rows = [_row(slot, fleet_.settings.low_balance_fen) for slot in fleet_.slots]
    finally:
        fleet_.close()
    _print(rows, fmt)


@fleet.command()
@format_option
@timeout_option
@click.option("--reply-timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True)
@click.pass_context
def check(ctx: click.Context, fmt: str, timeout: float, reply_timeout: float) -> None:
    """A full pass: health, identity, balance and subscription list of every SIM.

    Exits 1 when any modem is unusable.
    """
    config = get_config(ctx)
    fleet_ = _open_fleet(ctx, config, timeout)
    try:

        def one(slot: FleetModem) -> None:
            try:
                _check_services(fleet_, slot, reply_timeout)
            except DialbotError as exc:
                slot.error = str(exc).splitlines()[0]

        fleet_.run_each(one, timeout=reply_timeout * 2 + timeout * 4)
        rows = [_row(slot, fleet_.settings.low_balance_fen) for slot in fleet_.slots]
    finally:
        fleet_.close()
    _print(rows, fmt)
    unusable = [r for r in rows if r["state"] not in ("ready", "retired") or r["error"]]
    if unusable:
        click.echo(f"{len(unusable)} of {len(rows)} modems unusable", err=True)
        ctx.exit(1)

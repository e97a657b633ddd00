"""`dialbot catalog …`: import and list the SP service catalogue (spec §1)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from dialbot.catalog import import_catalog
from dialbot.cli._db import open_db
from dialbot.db.catalogue import list_services
from dialbot.errors import CatalogError


def yuan(fen: int) -> str:
    """Integer fen as a yuan string (500 → 5.00), without floats."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def print_table(table: Table) -> None:
    """Print to the terminal's width, or unclipped when piped to a file."""
    wide = None if sys.stdout.isatty() else 240
    Console(width=wide).print(table)


@click.group()
def catalog() -> None:
    """The SP service catalogue: what dialbot probes and the tariffs it checks."""


@catalog.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def import_cmd(ctx: click.Context, file: Path) -> None:
    """Import FILE.csv; a file with any bad row imports nothing (exit 1)."""
    session_factory = open_db(ctx)
    try:
        result = import_catalog(session_factory, file)
    except CatalogError as exc:
        for line in str(exc).splitlines():
            click.echo(f"Error: {line}", err=True)
        click.echo(f"{file}: nothing imported", err=True)
        ctx.exit(1)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"{file}: {result.created} created, {result.updated} updated, {result.unchanged} unchanged"
    )


@catalog.command("list")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.pass_context
def list_cmd(ctx: click.Context, fmt: str) -> None:
    """List the catalogued services (current version of each)."""
    services = list_services(open_db(ctx))
    if fmt == "json":
        click.echo(json.dumps([asdict(s) for s in services], ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{len(services)} services")
    for column in (
        "SP",
        "SP name",
        "service",
        "name",
        "access",
        "billing",
        "price ¥",
        "order",
        "cancel",
        "v",
    ):
        table.add_column(column, overflow="fold")
    for s in services:
        table.add_row(
            s.sp_code, s.sp_name, s.service_code, s.service_name, s.access_number, s.billing,
            yuan(s.price_fen), s.subscribe_cmd, s.cancel_cmd or "", str(s.version),
        )  # fmt: skip
    print_table(table)

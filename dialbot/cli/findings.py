"""`dialbot findings`: export findings as a table, JSON or CSV (spec §5).

MSISDNs are masked; times are shown in the carrier's zone (Asia/Shanghai).
In CSV, ``evidence`` holds the event ids separated by spaces; the CSV starts with a
UTF-8 BOM and text cells are spreadsheet-safe (`dialbot.csvsafe`).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.table import Table

from dialbot.cli._db import open_db
from dialbot.cli.catalog import print_table, yuan
from dialbot.csvsafe import write_safe
from dialbot.db.findings import EXPORT_FIELDS, export_findings
from dialbot.errors import InputError
from dialbot.reporting.period import Period, parse_period


def _period(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Period | None:
    if value is None:
        return None
    try:
        return parse_period(value)
    except InputError as exc:
        raise click.BadParameter(exc.reason) from exc


@click.command("findings")
@click.option(
    "--period",
    callback=_period,
    metavar="P",
    help="YYYY-MM or YYYY-Qn (Asia/Shanghai); default: all findings.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@click.pass_context
def findings(ctx: click.Context, period: Period | None, fmt: str) -> None:
    """Findings of the period, oldest first."""
    rows = export_findings(open_db(ctx), period.bounds() if period else None)
    if fmt == "json":
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    elif fmt == "csv":
        _write_csv(rows)
    else:
        _print_table(rows, period)


def _write_csv(rows: list[dict[str, Any]]) -> None:
    """With a BOM and spreadsheet-safe cells (`dialbot.csvsafe`): details quote SP text."""
    out = []
    for row in rows:
        values = dict(row, evidence=" ".join(str(i) for i in row["evidence"]))
        out.append([values[name] for name in EXPORT_FIELDS])
    write_safe(sys.stdout, EXPORT_FIELDS, out)


def _print_table(rows: list[dict[str, Any]], period: Period | None) -> None:
    label = period.label if period else "all periods"
    table = Table(title=f"{len(rows)} findings ({label})")
    for name in (
        "run",
        "SP",
        "service",
        "code",
        "severity",
        "amount ¥",
        "observed",
        "SIM",
        "evidence",
    ):
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(
            str(row["run_id"]),
            row["sp_code"],
            row["service_code"] or "",
            row["code"],
            row["severity"],
            yuan(row["amount_fen"]),
            row["observed_at"][:16].replace("T", " "),
            row["sim"],
            " ".join(map(str, row["evidence"])),
        )
    print_table(table)

"""`dialbot evidence …`: prove the evidence log has not been altered.

`verify` recomputes the chain; with `--anchor FILE` it also checks the chain
still holds a head published or exported earlier (`anchor`), which is what
catches a chain rewritten and re-hashed after publication (docs/evidence.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from dialbot.cli._db import open_db
from dialbot.db.anchor import anchor_document, check_anchor, head_until, read_anchor
from dialbot.db.evidence import verify_chain
from dialbot.errors import InputError
from dialbot.reporting.period import Period, parse_period


def _period(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Period | None:
    if value is None:
        return None
    try:
        return parse_period(value)
    except InputError as exc:
        raise click.BadParameter(exc.reason) from exc


@click.group()
def evidence() -> None:
    """The append-only, hash-chained evidence log."""


@evidence.command("verify")
@click.option(
    "--anchor",
    "anchors",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An anchor file (from `dialbot evidence anchor` or a report); may be repeated.",
)
@click.pass_context
def verify_cmd(ctx: click.Context, anchors: tuple[Path, ...]) -> None:
    """Recompute the hash chain and check it against anchors; exit 0 when all hold, else 1."""
    try:
        heads = [(path, read_anchor(path)) for path in anchors]
    except InputError as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(2)
    db = open_db(ctx)
    result = verify_chain(db)
    if not result.ok:
        click.echo(
            f"evidence chain BROKEN at event {result.first_bad_id}: {result.reason} "
            f"({result.checked} events verified before it)",
            err=True,
        )
        ctx.exit(1)
    click.echo(f"evidence chain intact: {result.checked} events, head {result.head_hash}")
    failed = False
    with db() as session:
        for path, head in heads:
            problem = check_anchor(session, head)
            if problem is None:
                click.echo(f"anchor {path}: holds (event {head.last_id}, {head.hash})")
            else:
                failed = True
                click.echo(f"anchor {path} does NOT hold: {problem}", err=True)
    if failed:
        ctx.exit(1)


@evidence.command("anchor")
@click.option(
    "--period",
    callback=_period,
    metavar="P",
    help="YYYY-MM or YYYY-Qn: the head as it stood at the end of the period (default: now).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (default: standard output).",
)
@click.pass_context
def anchor_cmd(ctx: click.Context, period: Period | None, output: Path | None) -> None:
    """Export the chain head (hash, event count, last id, time) as a small JSON anchor."""
    db = open_db(ctx)
    with db() as session:
        head = head_until(session, period.bounds()[1] if period else None)
    text = json.dumps(anchor_document(head, period.label if period else None), indent=1) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    click.echo(f"anchor written to {output}: {head.events} events, head {head.hash}", err=True)

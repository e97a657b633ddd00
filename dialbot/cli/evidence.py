"""`dialbot evidence …`: prove the evidence log has not been altered."""

from __future__ import annotations

import click

from dialbot.cli._db import open_db
from dialbot.db.evidence import verify_chain


@click.group()
def evidence() -> None:
    """The append-only, hash-chained evidence log."""


@evidence.command("verify")
@click.pass_context
def verify_cmd(ctx: click.Context) -> None:
    """Recompute the hash chain; exit 0 when intact, 1 naming the first broken event."""
    result = verify_chain(open_db(ctx))
    if result.ok:
        click.echo(f"evidence chain intact: {result.checked} events, head {result.head_hash}")
        return
    click.echo(
        f"evidence chain BROKEN at event {result.first_bad_id}: {result.reason} "
        f"({result.checked} events verified before it)",
        err=True,
    )
    ctx.exit(1)

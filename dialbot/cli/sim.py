"""`dialbot sim …`: the virtual GSM network."""

from __future__ import annotations

import click


@click.group()
def sim() -> None:
    """Serve a virtual GSM network (modems on pseudo-terminals, a carrier, SPs)."""

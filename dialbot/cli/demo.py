"""`dialbot demo`: the README's main command — the whole system on a virtual bank."""

from __future__ import annotations

from pathlib import Path

import click

from dialbot.demo import DEFAULT_TIME_SCALE, DEFAULT_WORKDIR, run_demo


@click.command()
@click.option(
    "--world",
    "world_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="World file to serve (default: the demo world shipped with dialbot).",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_WORKDIR,
    show_default=True,
    help="Where the demo's config, database, bank and reports go.",
)
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0.001, max=1.0),
    default=DEFAULT_TIME_SCALE,
    show_default=True,
    help="Multiplier on every flow window ([probe] time_scale).",
)
def demo(world_file: Path | None, workdir: Path, time_scale: float) -> None:
    """Serve the demo world, import its catalogue, sweep it, print findings, publish rankings."""
    raise SystemExit(run_demo(world_file, workdir, time_scale))

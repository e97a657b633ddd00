"""`dialbot sim …`: the virtual GSM network."""

from __future__ import annotations

import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

import click

from dialbot.errors import WorldError
from dialbot.sim.world import World


def load_world_or_exit(path: Path) -> World:
    """The world file, or a click error naming file, key and reason (nothing starts)."""
    from dialbot.sim.worldfile import load_world

    try:
        return load_world(path)
    except WorldError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def sim() -> None:
    """Serve a virtual GSM network (modems on pseudo-terminals, a carrier, SPs)."""


@sim.command()
@click.argument("world_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the port symlinks (ttyGSM0…) and ground-truth.json go (default: a new temp dir).",
)
@click.option(
    "--bank-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the bank inventory TOML (default: DIR/<bank name>.toml).",
)
def serve(world_file: Path, directory: Path | None, bank_file: Path | None) -> None:
    """Serve WORLD_FILE's bank until SIGINT/SIGTERM, then write the ground truth."""
    from dialbot.sim.bank import VirtualBank

    world = load_world_or_exit(world_file)
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix=f"dialbot-sim-{world.bank_name}-"))
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    bank = VirtualBank(world, directory, bank_file)
    try:
        bank.start()
        click.echo(f"bank {world.bank_name}: inventory {bank.inventory_path}")
        for sim_card, port in zip(bank.cards, bank.ports, strict=True):
            click.echo(f"slot {sim_card.slot:>3}  {port}  {sim_card.dialect:<13} {sim_card.msisdn}")
        sys.stdout.flush()
        while not done.wait(0.5):
            pass
    finally:
        bank.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    click.echo(f"ground truth: {directory / 'ground-truth.json'}")


@sim.command()
@click.argument("world_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CSV file to write (default: standard output).",
)
def catalog(world_file: Path, output: Path | None) -> None:
    """Write the service catalogue CSV (spec §1) from WORLD_FILE's declared fields."""
    from dialbot.sim.catalog import write_catalog

    world = load_world_or_exit(world_file)
    if output is None:
        write_catalog(world, sys.stdout)
        return
    with output.open("w", encoding="utf-8", newline="") as stream:
        rows = write_catalog(world, stream)
    click.echo(f"{rows} services written to {output}", err=True)

"""`dialbot demo`: the whole system against a virtual network, in one command.

It serves a world (the shipped demo world by default) as a virtual modem
bank, writes a working dialbot.toml beside it (SQLite, a small time scale so
the flows' windows pass quickly), imports the catalogue the world declares,
sweeps every service, prints the findings and publishes the period's
rankings (HTML, PDF, CSV, JSON) under `workdir/reports/out/`. Everything it writes lives in
`workdir` (default ./var/demo), so the user can look at it afterwards:
`dialbot --config var/demo/dialbot.toml findings`, `… evidence verify`.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from dialbot.carrier import CarrierProfile
from dialbot.catalog import import_catalog
from dialbot.config import Config, load_config
from dialbot.db.engine import engine_of, open_database
from dialbot.db.evidence import verify_chain
from dialbot.flows.loader import load_flows
from dialbot.flows.summary import ProgressListener, print_report
from dialbot.flows.sweep import FleetSink, Sweep, SweepReport, open_fleet
from dialbot.reporting.period import period_of
from dialbot.reporting.publish import publish_period
from dialbot.sim.bank import VirtualBank
from dialbot.sim.catalog import write_catalog
from dialbot.sim.world import World
from dialbot.sim.worldfile import demo_world_path, load_world

DEFAULT_WORKDIR = Path("var/demo")
DEFAULT_TIME_SCALE = 0.05
EXIT_OK, EXIT_INCOMPLETE = 0, 3


def _toml_value(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # JSON escapes are TOML escapes


def write_config(workdir: Path, world: World, time_scale: float) -> Path:
    """A dialbot.toml for the demo: SQLite beside it, the bank's inventory, the carrier."""
    lines = [
        "# written by `dialbot demo`: a configuration for the virtual bank it serves",
        "[database]",
        'url = "sqlite:///dialbot.db"',
        "",
        "[paths]",
        'hardware = "hardware"',
        'probes = "probes"',
        "",
        "[probe]",
        f"time_scale = {time_scale!r}",
        "",
        "[carrier]",
    ]
    default = CarrierProfile()
    for f in fields(CarrierProfile):
        value = getattr(world.carrier, f.name)
        if value != getattr(default, f.name):
            lines.append(f"{f.name} = {_toml_value(value)}")
    path = workdir / "dialbot.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def prepare(workdir: Path, world: World, time_scale: float) -> Config:
    """A fresh demo folder: config, empty database (previous demo removed), catalogue."""
    # The demo's data is fake: it must never land in a database the environment
    # points at (DIALBOT_DATABASE_URL may name production). Its own SQLite only.
    os.environ.pop("DIALBOT_DATABASE_URL", None)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "hardware").mkdir(exist_ok=True)
    for old in workdir.glob("dialbot.db*"):
        old.unlink()
    config = load_config(write_config(workdir, world, time_scale))
    catalog = workdir / "catalog.csv"
    with catalog.open("w", encoding="utf-8") as stream:
        write_catalog(world, stream)
    return config


def sweep_world(
    world: World, workdir: Path, time_scale: float, console: Console
) -> tuple[Config, SweepReport]:
    """Serve the world, import its catalogue and sweep it; the bank stops afterwards."""
    config = prepare(workdir, world, time_scale)
    db = open_database(config.database_url)
    try:
        result = import_catalog(db, workdir / "catalog.csv")
        console.print(f"catalogue: {result.created} services imported from {world.source}")
        inventory = config.paths.hardware / f"{world.bank_name}.toml"
        with VirtualBank(world, workdir / "bank", inventory_path=inventory):
            sink = FleetSink()
            fleet = open_fleet(config, sink, db=db)
            try:
                ready = sum(1 for s in fleet.slots if s.state.value == "ready")
                console.print(f"bank {world.bank_name}: {ready} of {len(fleet.slots)} modems ready")
                sweep = Sweep(db, config, fleet, load_flows(config.paths.probes))
                sink.bind(sweep.watch)
                with ProgressListener(console) as progress:
                    sweep.listener = progress
                    report = sweep.run()
            finally:
                fleet.close()
        chain = verify_chain(db)
        console.print(
            f"evidence chain: {'intact' if chain.ok else 'BROKEN'}, {chain.checked} events"
        )
    finally:
        engine_of(db).dispose()
    return config, report


def publish_rankings(config: Config, console: Console) -> dict[str, Path]:
    """End the demo the way a real period ends: the rankings, published."""
    db = open_database(config.database_url)
    try:
        period = period_of(datetime.now(UTC))
        _, written = publish_period(db, period, config.paths.reports)
    finally:
        engine_of(db).dispose()
    console.print(f"rankings for {period.label} published:")
    for fmt, path in written.items():
        console.print(f"  {fmt:5} {path}")
    return written


def run_demo(
    world_path: Path | None = None,
    workdir: Path = DEFAULT_WORKDIR,
    time_scale: float = DEFAULT_TIME_SCALE,
    console: Console | None = None,
) -> int:
    """Serve, import, sweep, print; 0 when every reachable service was probed, else 3."""
    console = console or Console()
    world = load_world(world_path or demo_world_path())
    config, report = sweep_world(world, Path(workdir), time_scale, console)
    print_report(console, report)
    publish_rankings(config, console)
    console.print(
        f"Look closer: dialbot --config {config.source} findings --format json · "
        f"dialbot --config {config.source} evidence verify"
    )
    return EXIT_OK if report.complete else EXIT_INCOMPLETE

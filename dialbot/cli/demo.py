"""`dialbot demo`: serve the demo world's bank and show what the driver sees in it.

For now the driver is plain python-gsmmodem-new; every modem is connected at
once, so the slowest make (the Wavecom's +CPIN? without OK costs GsmModem a
15 s timeout) sets the pace, not the sum.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click
from gsmmodem.modem import GsmModem
from rich.console import Console
from rich.table import Table

from dialbot.cli.sim import load_world_or_exit


@dataclass
class ModemRow:
    slot: int
    port: Path
    msisdn: str
    manufacturer: str = "-"
    model: str = "-"
    imsi: str = "-"
    signal: str = "-"
    error: str = ""


def probe(row: ModemRow) -> ModemRow:
    """Connect with GsmModem and read what a robot would read first."""
    modem = GsmModem(str(row.port))
    try:
        modem.connect()
        if "^CURC" in (modem._commands or []):
            modem.write("AT^CURC=0")  # Huawei: stop ^RSSI/^MODE/^BOOT before reading anything
        row.manufacturer = modem.manufacturer.strip()
        row.model = modem.model.strip()
        row.imsi = modem.imsi
        row.signal = str(modem.signalStrength)
    except Exception as exc:  # a faulty modem is shown, not fatal
        row.error = f"{type(exc).__name__}: {exc}"
    finally:
        if getattr(modem, "alive", False):
            modem.close()
    return row


@click.command()
@click.option(
    "--world",
    "world_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="World file to serve (default: the demo world shipped with dialbot).",
)
def demo(world_file: Path | None) -> None:
    """Start a virtual modem bank, connect to every modem, and show them."""
    from dialbot.sim.bank import VirtualBank
    from dialbot.sim.worldfile import demo_world_path

    world = load_world_or_exit(world_file or demo_world_path())
    console = Console(width=120)
    with tempfile.TemporaryDirectory(prefix="dialbot-demo-") as tmp:
        with VirtualBank(world, Path(tmp)) as bank:
            rows = [
                ModemRow(card.slot, port, card.msisdn)
                for card, port in zip(bank.cards, bank.ports, strict=True)
            ]
            with console.status(f"connecting to {len(rows)} virtual modems…"):
                with ThreadPoolExecutor(max_workers=min(64, len(rows))) as pool:
                    rows = list(pool.map(probe, rows))
    console.print(modem_table(world.bank_name, rows))


def modem_table(bank: str, rows: list[ModemRow]) -> Table:
    """One row per modem; the error column only when some modem failed."""
    table = Table(title=f"bank {bank} ({len(rows)} modems)")
    columns = ["slot", "port", "manufacturer", "model", "IMSI", "signal", "msisdn"]
    with_errors = any(r.error for r in rows)
    for column in columns + (["error"] if with_errors else []):
        table.add_column(column, no_wrap=column != "error")
    for r in rows:
        cells = [str(r.slot), r.port.name, r.manufacturer, r.model, r.imsi, r.signal, r.msisdn]
        table.add_row(*cells, *([r.error] if with_errors else []))
    return table

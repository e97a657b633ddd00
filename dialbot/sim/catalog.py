"""The service catalogue (spec/formats.md §1) derived from a world.

Only the declared fields reach the CSV: what an operator's register would
hold. The `behaviour` blocks are ground truth and never leave the network
side of the simulator, so this module deliberately never touches them.
"""

from __future__ import annotations

from typing import TextIO

from dialbot.csvsafe import write_safe
from dialbot.sim.world import World

COLUMNS = (
    "sp_code",
    "sp_name",
    "sp_hotline",
    "service_code",
    "service_name",
    "access_number",
    "billing",
    "price",
    "subscribe_cmd",
    "cancel_cmd",
    "use_cmd",
    "region",
    "channel",
    "url",
)


def yuan(fen: int) -> str:
    """Integer fen as the catalogue's yuan notation (``500`` -> ``5.00``)."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def catalog_rows(world: World) -> list[dict[str, str]]:
    """One row per service, columns of spec §1, empty string for an absent value."""
    rows = []
    for sp in world.sps:
        for svc in sp.services:
            rows.append(
                {
                    "sp_code": sp.code,
                    "sp_name": sp.name,
                    "sp_hotline": sp.hotline or "",
                    "service_code": svc.code,
                    "service_name": svc.name,
                    "access_number": svc.access,
                    "billing": svc.billing,
                    "price": yuan(svc.price_fen),
                    "subscribe_cmd": svc.subscribe,
                    "cancel_cmd": svc.cancel or "",
                    "use_cmd": svc.use or "",
                    "region": svc.region or "",
                    "channel": svc.channel,
                    "url": svc.url or "",
                }
            )
    return rows


def write_catalog(world: World, stream: TextIO) -> int:
    """Write the catalogue CSV (BOM, header, rows; spreadsheet-safe cells, see
    `dialbot.csvsafe`) to stream; return the row count."""
    rows = catalog_rows(world)
    return write_safe(stream, COLUMNS, ([row[c] for c in COLUMNS] for row in rows))

"""Two virtual banks of different regions, served by the test process, for real workers.

The banks (and their ground truth) live in the test process, so they
outlive a worker killed with SIGKILL; each worker opens its bank's ptys
through the inventory the bank writes into that worker's ``hardware/``.
Bank A serves region north, bank B region south; both reach the
nationwide SPs. The catalogue is the union of both worlds.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml

from dialbot.catalog import import_catalog
from dialbot.db.engine import engine_of, open_database
from dialbot.sim.bank import VirtualBank
from dialbot.sim.catalog import COLUMNS, catalog_rows
from dialbot.sim.worldfile import load_world

LATENCY = [5, 40]


def _sp(index: int, region: str | None) -> dict[str, Any]:
    service: dict[str, Any] = {
        "code": f"S{index:02d}", "name": f"业务{index}号", "access": f"10658{index:05d}",
        "billing": "monthly", "price_fen": 500, "subscribe": f"DG{index}", "cancel": f"TD{index}",
        "behaviour": {"latency_ms": LATENCY},
    }  # fmt: skip
    if region is not None:
        service["region"] = region
    return {"code": f"93{index:04d}", "name": f"测试{index}公司", "hotline": f"40080{index:05d}",
            "services": [service]}  # fmt: skip


def world_data(
    bank: str, region: str, sps: list[dict[str, Any]], modems: int, seed: int
) -> dict[str, Any]:
    return {
        "seed": seed,
        "order_notices": True,
        "bank": {"name": bank, "region": region, "modems": modems, "balance_fen": 100000},
        "sps": sps,
    }


@contextmanager
def serve_two_banks(
    root: Path, db_url: str, names: tuple[str, str], per_region: int = 4, nationwide: int = 4
) -> Iterator[dict[str, VirtualBank]]:
    """Banks A (north) and B (south) on ptys; inventories in root/hostA|hostB/hardware."""
    north = [_sp(i, "north") for i in range(per_region)]
    south = [_sp(100 + i, "south") for i in range(per_region)]
    everywhere = [_sp(200 + i, None) for i in range(nationwide)]
    plan = {"A": (names[0], "north", north + everywhere), "B": (names[1], "south",
                                                              south + everywhere)}  # fmt: skip
    rows: dict[tuple[str, str], dict[str, str]] = {}
    with ExitStack() as stack:
        banks: dict[str, VirtualBank] = {}
        for letter, (name, region, sps) in plan.items():
            folder = root / f"host{letter}"
            (folder / "hardware").mkdir(parents=True, exist_ok=True)
            path = folder / "world.yaml"
            path.write_text(
                yaml.safe_dump(
                    world_data(name, region, sps, 3, 7 + ord(letter)), allow_unicode=True
                )
            )
            world = load_world(path)
            for row in catalog_rows(world):
                rows[(row["sp_code"], row["service_code"])] = row
            bank = VirtualBank(world, folder / "bank", folder / "hardware" / f"{name}.toml")
            banks[letter] = stack.enter_context(bank)
        catalogue = root / "catalog.csv"
        with catalogue.open("w", encoding="utf-8", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(COLUMNS), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows.values())
        db = open_database(db_url)
        import_catalog(db, catalogue)
        engine_of(db).dispose()
        yield banks


def subscribed(bank: VirtualBank) -> dict[str, list[Any]]:
    """Ground truth: every SIM of the bank that is still subscribed to something."""
    truth = bank.call(bank.network.ground_truth)
    return {m: s["subscriptions"] for m, s in truth["sims"].items() if s["subscriptions"]}

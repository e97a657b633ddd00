"""Generated worlds and a rig that serves one to the real robot stack.

A world is built from a seed: some honest services and one service per
deterministic misbehaviour knob (spec/formats.md §4), spread over SPs whose
position picks their phrasing (price notation, confirmation token), with
modem dialects mixed. `EXPECTED` says which finding each knob must produce;
anything else against any service is a false finding.

Databases: a test that takes the `flow_db` fixture (tests/flows/conftest.py)
runs twice, on the SQLite file beside dialbot.toml and on a PostgreSQL
database created for that test alone and dropped after it (the URL is
written into the rig's dialbot.toml, so the CLI and the killed subprocess
use it too; DIALBOT_TEST_PG=0 skips these). Running every flow test twice
would add about two minutes, so PostgreSQL gets the subset that covers its
code paths: the every-knob sweep repeated on one network (test_sweep), the
watch with spam and a silent subscription (test_sweep), the kill -9 and
restart (test_kill), and `dialbot probe` with its exit codes
(test_probe_cli), about 55 s extra. The fault-injection sweep, the second
world and `dialbot demo` stay on SQLite: they exercise the modems, retries
and the demo's own set-up, and add no database path the subset lacks.
test_flows_postgres covers what only PostgreSQL's strict columns catch.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session, sessionmaker

from dialbot.catalog import import_catalog
from dialbot.config import Config, load_config
from dialbot.db.catalogue import list_services
from dialbot.db.engine import engine_of, open_database
from dialbot.demo import write_config
from dialbot.fleet import Fleet
from dialbot.flows.loader import standard_flows
from dialbot.flows.sweep import FleetSink, Sweep, SweepListener, SweepReport, open_fleet
from dialbot.sim.bank import VirtualBank
from dialbot.sim.catalog import write_catalog
from dialbot.sim.world import World
from dialbot.sim.worldfile import load_world

# knob name -> (billing, behaviour, the finding codes it must produce)
KNOBS: dict[str, tuple[str, dict[str, Any], set[str]]] = {
    "no_prompt": ("monthly", {"confirm_prompt": False}, {"UNCONFIRMED_CHARGE", "UNCONFIRMED_SUBSCRIPTION"}),
    "charge_first": ("per_use", {"charges_without_confirm": True}, {"UNCONFIRMED_CHARGE"}),
    "prompt_price": ("monthly", {"prompt_price_fen": 100}, {"PRICE_MISMATCH"}),
    "prompt_omits": ("monthly", {"prompt_omits": ["hotline"]}, {"PROMPT_INCOMPLETE"}),
    "overcharge": ("monthly", {"charge_factor": 2.0}, {"OVERCHARGE"}),
    "double": ("per_use", {"double_charge": True}, {"DUPLICATE_CHARGE"}),
    "cancel_broken": ("monthly", {"cancel_works": False}, {"CANCEL_FAILED"}),
    "late_charge": ("monthly", {"charge_after_cancel": True, "charge_after_cancel_delay_ms": 100}, {"CHARGE_AFTER_CANCEL"}),
    "late_messages": ("monthly", {"messages_after_cancel": 1}, {"MESSAGE_AFTER_CANCEL"}),
    "no_content": ("monthly", {"delivers_content": False}, {"CONTENT_NOT_DELIVERED"}),
    "silent": ("per_use", {"responds": 0.0}, {"NO_RESPONSE"}),
}  # fmt: skip
DIALECTS = ("generic", "huawei", "simcom", "wavecom", "zte")
LATENCY = [5, 40]


def generate(
    seed: int,
    knobs: list[str] | None = None,
    honest: int = 3,
    modems: int = 4,
    faults: dict[int, dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], dict[tuple[str, str], set[str]]]:
    """A world (as YAML data) and the findings each (sp_code, service_code) must produce."""
    rng = random.Random(seed)
    chosen = list(KNOBS) if knobs is None else knobs
    entries: list[tuple[str, dict[str, Any], set[str]]] = [
        (rng.choice(["monthly", "per_use"]), {}, set()) for _ in range(honest)
    ]
    entries += [KNOBS[k] for k in chosen]
    rng.shuffle(entries)
    sps: list[dict[str, Any]] = []
    expected: dict[tuple[str, str], set[str]] = {}
    for index, (billing, behaviour, codes) in enumerate(entries):
        sp_code = f"9{seed % 100:02d}{index:03d}"
        code = f"S{index:02d}"
        price = rng.choice([100, 200, 300, 500, 800])
        if "prompt_price_fen" in behaviour:
            behaviour = {**behaviour, "prompt_price_fen": price + 100}  # never the real price
        service: dict[str, Any] = {
            "code": code,
            "name": f"测试业务{index}号",
            "access": f"10658{seed % 100:02d}{index:03d}",
            "billing": billing,
            "price_fen": price,
            "subscribe": f"DG{index}",
            "behaviour": {"latency_ms": LATENCY, **behaviour},
        }
        if billing == "monthly":
            service.update({"cancel": f"TD{index}", "use": f"KK{index}"})
        sps.append(
            {
                "code": sp_code,
                "name": f"测试{'甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳'[index % 16]}公司",
                "hotline": f"40080{index:05d}",
                "services": [service],
            }
        )
        expected[(sp_code, code)] = codes
    slots: dict[int, dict[str, Any]] = {}
    for slot in range(1, modems + 1):
        slots[slot] = {"dialect": DIALECTS[(slot + seed) % len(DIALECTS)]}
        if faults and slot in faults:
            slots[slot]["faults"] = faults[slot]
    world = {
        "seed": seed,
        "order_notices": True,
        "bank": {"name": f"t{seed}", "modems": modems, "balance_fen": 100000, "slots": slots},
        "sps": sps,
    }
    return world, expected


def write_world(folder: Path, data: dict[str, Any]) -> Path:
    path = folder / "world.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Rig:
    """A served world with a configured, catalogued robot beside it."""

    world: World
    bank: VirtualBank
    config: Config
    db: sessionmaker[Session]

    def truth(self) -> dict[str, Any]:
        return self.bank.call(self.bank.network.ground_truth)

    def subscribed(self) -> dict[str, list[Any]]:
        return {
            m: s["subscriptions"] for m, s in self.truth()["sims"].items() if s["subscriptions"]
        }

    @contextmanager
    def fleet(self) -> Iterator[tuple[Fleet, FleetSink]]:
        sink = FleetSink()
        fleet = open_fleet(self.config, sink, timeout=3.0, db=self.db)
        try:
            yield fleet, sink
        finally:
            fleet.close()

    def sweep(
        self,
        skip: frozenset[str] = frozenset(),
        listener: SweepListener | None = None,
    ) -> SweepReport:
        """Sweep every catalogued service (but those whose SP code is in `skip`)."""
        with self.fleet() as (fleet, sink):
            services = [s for s in list_services(self.db) if s.sp_code not in skip]
            sweep = Sweep(self.db, self.config, fleet, standard_flows(), services, listener)
            sink.bind(sweep.watch)
            return sweep.run()


def use_database(config_path: Path, url: str) -> None:
    """Point a written dialbot.toml at another database (every process reads it from there)."""
    text = config_path.read_text(encoding="utf-8")
    default = 'url = "sqlite:///dialbot.db"'
    assert default in text, f"{config_path} no longer names the default database"
    config_path.write_text(text.replace(default, f"url = {json.dumps(url)}"), encoding="utf-8")


@contextmanager
def serve(
    folder: Path, data: dict[str, Any], time_scale: float = 0.02, db_url: str | None = None
) -> Iterator[Rig]:
    """Serve the world from `folder`, with dialbot.toml and catalogue there.

    The database is the SQLite file beside dialbot.toml, or `db_url` (a fresh
    PostgreSQL database from the `flow_db` fixture).
    """
    folder.mkdir(parents=True, exist_ok=True)
    world = load_world(write_world(folder, data))
    (folder / "hardware").mkdir(exist_ok=True)
    config_path = write_config(folder, world, time_scale)
    if db_url is not None:
        use_database(config_path, db_url)
    config = load_config(config_path)
    with (folder / "catalog.csv").open("w", encoding="utf-8") as stream:
        write_catalog(world, stream)
    db = open_database(config.database_url)
    assert engine_of(db).dialect.name == ("sqlite" if db_url is None else "postgresql")
    import_catalog(db, folder / "catalog.csv")
    inventory = config.paths.hardware / f"{world.bank_name}.toml"
    try:
        with VirtualBank(world, folder / "bank", inventory_path=inventory) as bank:
            yield Rig(world, bank, config, db)
    finally:
        engine_of(db).dispose()


def by_service(report: SweepReport) -> dict[tuple[str, str], set[str]]:
    """The finding codes of a sweep per (sp_code, service_code)."""
    out: dict[tuple[str, str], set[str]] = {}
    for f in report.findings:
        out.setdefault((f.sp_code, f.service_code), set()).add(f.code)
    return out

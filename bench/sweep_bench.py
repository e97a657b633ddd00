"""Sweep of the demo world on 8 virtual modems: wall time against the ideal, CPU per probe.

    .venv/bin/python bench/sweep_bench.py [--time-scale 0.05] [--repeat 3]

The bank runs in this process; the robot (`Sweep` over the real fleet, driver
and database) runs in a child process, so its CPU time is measured alone
(`RUSAGE_CHILDREN`). The ideal is what no scheduler can beat: the sum of the
flows' unavoidable waits (their `observe` windows × time_scale) over all
probes, divided by the number of modems. Goal: wall ≤ 1.2 × ideal.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, sys, time
from dialbot.config import load_config
from dialbot.db.engine import open_database
from dialbot.flows.loader import standard_flows
from dialbot.flows.sweep import FleetSink, Sweep, open_fleet, plan
from dialbot.db.catalogue import list_services
config = load_config(sys.argv[1])
db = open_database(config.database_url)
sink = FleetSink()
fleet = open_fleet(config, sink, db=db)
flows = standard_flows()
services = list_services(db)
sweep = Sweep(db, config, fleet, flows, services)
sink.bind(sweep.watch)
ready = len(sweep.ready_slots())
tasks = [t for t in plan(services, flows) if t.service.region is None]
report = sweep.run()
fleet.close()
print(json.dumps({
    "wall_s": report.wall_s, "modems": ready, "probes": len(report.outcomes),
    "hygiene": len(report.hygiene), "findings": len(report.findings),
    "unavoidable_s": sum(t.cost for t in tasks) * config.probe.time_scale,
    "complete": report.complete,
}))
"""


def one(time_scale: float) -> dict[str, float]:
    from dialbot.catalog import import_catalog
    from dialbot.db.engine import engine_of, open_database
    from dialbot.demo import prepare
    from dialbot.sim.bank import VirtualBank
    from dialbot.sim.worldfile import demo_world_path, load_world

    world = load_world(demo_world_path())
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        config = prepare(workdir, world, time_scale)
        db = open_database(config.database_url)
        import_catalog(db, workdir / "catalog.csv")
        engine_of(db).dispose()
        inventory = config.paths.hardware / f"{world.bank_name}.toml"
        with VirtualBank(world, workdir / "bank", inventory_path=inventory) as bank:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.monotonic()
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(config.source)],
                check=True,
                capture_output=True,
                text=True,
            )
            elapsed = time.monotonic() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            truth = bank.call(bank.network.ground_truth)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        result["process_s"] = elapsed
        result["cpu_s"] = cpu
        result["ideal_s"] = result["unavoidable_s"] / result["modems"]
        result["ratio"] = result["wall_s"] / result["ideal_s"]
        result["cpu_per_probe_ms"] = 1000 * cpu / max(1, result["probes"] + result["hygiene"])
        result["left_subscribed"] = sum(1 for s in truth["sims"].values() if s["subscriptions"])
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for i in range(args.repeat):
        r = one(args.time_scale)
        rows.append(r)
        print(
            f"run {i + 1}: wall {r['wall_s']:.1f} s, ideal {r['ideal_s']:.1f} s "
            f"(ratio {r['ratio']:.2f}), {r['probes']} probes + {r['hygiene']} hygiene on "
            f"{r['modems']} modems, CPU {r['cpu_s']:.1f} s ({r['cpu_per_probe_ms']:.0f} ms/probe, "
            f"process incl. start-up {r['process_s']:.1f} s), {r['findings']} findings, "
            f"complete={r['complete']}, SIMs left subscribed={r['left_subscribed']}"
        )
    ratios = sorted(r["ratio"] for r in rows)
    print(f"median ratio {ratios[len(ratios) // 2]:.2f} (goal ≤ 1.2)")


if __name__ == "__main__":
    main()

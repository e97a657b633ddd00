"""Restart after a crash: time from `dialbot sweep` starting to its first probe (issue 13).

The state a kill -9 leaves: a bank of N virtual modems (256 by default), every
SIM owing a cleanup obligation (an order that may have gone out), and a
`running` run per SIM owned by a process that is gone. The restarted sweep
must open the fleet, take over and judge the dead process's runs, and
discharge each SIM's obligation (the carrier's list, then a cancel if it is
still listed) before that SIM probes anything. Measured: seconds from the
command's start to the first service run that starts, and to the last
obligation discharged. The bank runs in its own process (`dialbot sim serve`).

    .venv/bin/python bench/restart_bench.py --modems 256 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from dialbot.catalog import import_catalog
from dialbot.config import load_config
from dialbot.db.engine import engine_of, open_database
from dialbot.db.models import CleanupObligation, Run, RunState, Service
from dialbot.db.obligations import create_obligation
from dialbot.db.runs import create_run, transition, upsert_sim
from dialbot.demo import write_config
from dialbot.sim.worldfile import load_world

WORLD = """seed: 7
night_s: 3600
bank: {{name: bench, modems: {modems}, balance_fen: 100000, dialect: generic}}
sps:
  - code: "901001"
    name: 星河科技
    hotline: "4008001001"
    services:
      - {{code: XHXH, name: 星河笑话, access: "1065800101", billing: monthly, price_fen: 500,
         subscribe: DG, cancel: TD, use: XH}}
"""
DEAD_PID = 2**22 + 17  # above the default pid_max: no process has it


def _dialbot(*args: str, cwd: Path) -> list[str]:
    return [sys.executable, "-m", "dialbot", "--config", str(cwd / "dialbot.toml"), *args]


def _wait(predicate, what: str, timeout: float) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - start


def one(root: Path, modems: int) -> tuple[float, float]:
    world_path = root / "world.yaml"
    world_path.write_text(WORLD.format(modems=modems), encoding="utf-8")
    world = load_world(world_path)
    write_config(root, world, 0.02)
    bank_file = root / "hardware" / "bench.toml"
    bank = subprocess.Popen(
        _dialbot("sim", "serve", str(world_path), "--dir", str(root / "ports"),
                 "--bank-file", str(bank_file), cwd=root),
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    sweep = None
    try:
        _wait(bank_file.exists, "the bank", 120)
        subprocess.run(_dialbot("sim", "catalog", str(world_path), "-o", "catalog.csv", cwd=root),
                       cwd=root, check=True, capture_output=True)  # fmt: skip
        config = load_config(root / "dialbot.toml")
        db = open_database(config.database_url)
        import_catalog(db, root / "catalog.csv")
        for slot in range(1, modems + 1):  # what the killed process left on every SIM
            msisdn = _msisdn_of(bank_file, slot)
            sim_id = upsert_sim(db, msisdn, bank="bench", slot=slot)
            with db() as session:
                service_id = session.scalar(select(Service.id))
            run = create_run(db, "monthly", service_id=service_id, sim_id=sim_id)
            transition(db, run.id, RunState.RUNNING)
            with db.begin() as session:
                row = session.get(Run, run.id)
                assert row is not None
                row.owner_host, row.owner_pid = os.uname().nodename, DEAD_PID
            create_obligation(db, sim=msisdn, sp_code="901001", service_code="XHXH",
                              access_number="1065800101", cancel_cmd="TD", run_id=run.id)  # fmt: skip
        start = time.monotonic()
        sweep = subprocess.Popen(_dialbot("sweep", cwd=root), cwd=root,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

        def first_probe() -> bool:
            with db() as session:
                return bool(session.scalar(
                    select(func.count()).select_from(Run)
                    .where(Run.service_id.is_not(None), Run.owner_pid == sweep.pid)
                ))  # fmt: skip

        def all_discharged() -> bool:
            with db() as session:
                return not session.scalar(
                    select(func.count()).select_from(CleanupObligation)
                    .where(CleanupObligation.discharged_at.is_(None))
                )  # fmt: skip

        _wait(first_probe, "the first probe", 600)
        first = time.monotonic() - start
        _wait(all_discharged, "every obligation discharged", 600)
        clean = time.monotonic() - start
        engine_of(db).dispose()
        return first, clean
    finally:
        for proc in (sweep, bank):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)


def _msisdn_of(bank_file: Path, slot: int) -> str:
    """The SIM number the inventory declares for a slot."""
    import tomllib

    data = tomllib.loads(bank_file.read_text(encoding="utf-8"))
    entry = next(m for m in data["modem"] if int(m["slot"]) == slot)
    return str(entry["msisdn"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modems", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    firsts, cleans = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="dialbot-restart-") as tmp:
            first, clean = one(Path(tmp), args.modems)
        firsts.append(first)
        cleans.append(clean)
        print(f"first probe after {first:.2f} s; every obligation discharged after {clean:.2f} s")
    print(f"{args.modems} modems, {args.repeat} runs: first probe median "
          f"{statistics.median(firsts):.2f} s, all clean median {statistics.median(cleans):.2f} s, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()

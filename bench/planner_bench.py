"""Planner speed: one night's plan over a generated catalogue of 100,000 services
and their flows (two applicable flows each: 200,000 (service, flow) pairs).

Usage: .venv/bin/python bench/planner_bench.py [--services N] [--sims M] [--runs R]
       [--against REV]

Prints the median and the spread of R runs (goal: median under 1 s for
100,000 services and 300 SIMs), with the plan's figures so a fast but
useless plan would show. With ``--against REV`` it also runs the planner of
that git revision (e.g. d06962f, before lazy ranking), turn about with
today's, and prints both medians, their ratio and whether the plans agree.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

from dialbot.scheduling.planner import NightSpec, ServiceInfo, SimInfo, plan_night

SH = ZoneInfo("Asia/Shanghai")
FLOW_BILLING = {"decline": ("monthly", "per_use"), "monthly": ("monthly",), "per_use": ("per_use",)}
FLOWS_OF = {"monthly": ("decline", "monthly"), "per_use": ("decline", "per_use")}


def catalogue(rng: random.Random, n: int, start: datetime) -> list[ServiceInfo]:
    """2,000 SPs; 20 % regional; each (service, flow) never probed 10 %, else probed 1-60
    days ago; 5 % with recent findings; some changed."""
    services = []
    for i in range(n):
        billing = rng.choice(("monthly", "per_use"))
        probed = {
            flow: start - timedelta(days=rng.randrange(1, 60))
            for flow in FLOWS_OF[billing]
            if rng.random() >= 0.1
        }
        changed = start - timedelta(days=rng.randrange(1, 10)) if rng.random() < 0.03 else None
        services.append(
            ServiceInfo(
                service_id=i,
                sp_code=f"SP{rng.randrange(2000):04d}",
                billing=billing,
                region=None if rng.random() < 0.8 else rng.choice(("GD", "BJ", "SH")),
                flow_probed=probed,
                changed_at=changed,
                recent_findings=2 if rng.random() < 0.05 else 0,
            )
        )
    return services


def module_at(rev: str, path: str) -> ModuleType | None:
    """The module at ``path`` as it was at git revision ``rev`` (loaded under a name of
    its own, so two versions run in one process on the same catalogue); None if the
    file did not exist then."""
    root = Path(__file__).resolve().parent.parent
    shown = subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, text=True
    )
    if shown.returncode:
        return None
    name = f"{Path(path).stem}_at_{rev.replace('/', '_').replace('-', '_')}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(shown.stdout, f"{rev}:{path}", "exec"), module.__dict__)
    return module


def planner_at(rev: str) -> ModuleType:
    """The planner of git revision ``rev``, with the ranking module of that revision
    if it had one (bound while the planner imports it)."""
    ranking = module_at(rev, "dialbot/scheduling/ranking.py")
    today = sys.modules.get("dialbot.scheduling.ranking")
    if ranking is not None:
        sys.modules["dialbot.scheduling.ranking"] = ranking
    try:
        planner = module_at(rev, "dialbot/scheduling/planner.py")
    finally:
        if today is not None:
            sys.modules["dialbot.scheduling.ranking"] = today
    if planner is None:
        raise SystemExit(f"no dialbot/scheduling/planner.py at {rev}")
    return planner


def figures(plan: Any) -> tuple[Any, ...]:
    """What two plans must share to be the same plan (their classes may differ)."""
    return (
        [dataclasses.astuple(item) for item in plan.items],
        plan.notes,
        plan.due, plan.due_quota, plan.due_planned, plan.pairs, plan.covered_before,
        plan.busy_s, plan.skipped_sims,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=100_000)
    parser.add_argument("--sims", type=int, default=300)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--against", metavar="REV", help="also time the planner of this git revision"
    )
    args = parser.parse_args()
    rng = random.Random(20261126)
    start = datetime(2026, 11, 10, 1, 0, tzinfo=SH)
    services = catalogue(rng, args.services, start)
    sims = [
        SimInfo(i, f"1380000{i:04d}", None if i % 4 else "GD", 20 if i % 50 == 0 else 5000,
                f"SP{rng.randrange(2000):04d}")
        for i in range(args.sims)
    ]  # fmt: skip
    spec = NightSpec(
        start=start,
        end=start + timedelta(hours=4, minutes=30),
        period_start=datetime(2026, 11, 1, tzinfo=SH),
        nights_left=21,
        flows=("decline", "monthly", "per_use"),
        flow_billing=FLOW_BILLING,
        flow_seconds={"decline": 300.0, "monthly": 480.0, "per_use": 390.0},
        per_sp_concurrency=2,
        balance_floor_fen=500,
    )
    planners: dict[str, Callable[..., Any]] = {"planner": plan_night}
    if args.against:
        planners[args.against] = planner_at(args.against).plan_night
    times: dict[str, list[float]] = {name: [] for name in planners}
    plans: dict[str, Any] = {}
    for _ in range(args.runs):  # turn about, so both see the same load
        for name, plan_of in planners.items():
            began = time.perf_counter()
            plans[name] = plan_of(services, sims, spec)
            times[name].append(time.perf_counter() - began)
    print(f"services {args.services}  SIMs {args.sims}  runs {args.runs}")
    for name, runs in times.items():
        print(f"{name} median {statistics.median(runs):.3f} s  min {min(runs):.3f}  "
              f"max {max(runs):.3f}")  # fmt: skip
    if args.against:
        ratio = statistics.median(times[args.against]) / statistics.median(times["planner"])
        same = figures(plans["planner"]) == figures(plans[args.against])
        print(f"{args.against} / planner: {ratio:.2f}x  same plan: {'yes' if same else 'NO'}")
    plan = plans["planner"]
    print(f"plan: {len(plan.items)} probes on {plan.lanes} SIMs ({len(plan.skipped_sims)} below "
          f"floor), {plan.pairs} (service, flow) pairs, due {plan.due}, quota {plan.due_quota}, "
          f"due placed {plan.due_planned}, utilisation {plan.utilisation:.1%}")  # fmt: skip
    print(plan.coverage_note())


if __name__ == "__main__":
    main()

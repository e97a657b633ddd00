"""Planner speed: one night's plan over a generated catalogue of 100,000 services
and their flows (two applicable flows each: 200,000 (service, flow) pairs).

Usage: .venv/bin/python bench/planner_bench.py [--services N] [--sims M] [--runs R]

Prints the median and the spread of R runs (goal: median under 1 s for
100,000 services and 300 SIMs), with the plan's figures so a fast but
useless plan would show.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import datetime, timedelta
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=100_000)
    parser.add_argument("--sims", type=int, default=300)
    parser.add_argument("--runs", type=int, default=7)
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
    times = []
    for _ in range(args.runs):
        began = time.perf_counter()
        plan = plan_night(services, sims, spec)
        times.append(time.perf_counter() - began)
    print(f"services {args.services}  SIMs {args.sims}  runs {args.runs}")
    print(f"planner median {statistics.median(times):.3f} s  min {min(times):.3f}  "
          f"max {max(times):.3f}")  # fmt: skip
    print(f"plan: {len(plan.items)} probes on {plan.lanes} SIMs ({len(plan.skipped_sims)} below "
          f"floor), {plan.pairs} (service, flow) pairs, due {plan.due}, quota {plan.due_quota}, "
          f"due placed {plan.due_planned}, utilisation {plan.utilisation:.1%}")  # fmt: skip
    print(plan.coverage_note())


if __name__ == "__main__":
    main()

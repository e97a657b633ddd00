"""A scheduled night over a generated catalogue on a virtual bank: wall time vs the ideal.

    .venv/bin/python bench/night_bench.py [--services 1000] [--modems 64]
        [--time-scale 0.05] [--repeat 3] [--mix wap=0.3]

The bank (one world: `--services` services of `--services`/4 SPs, a few of
them misbehaving, on `--modems` virtual modems) runs in this process; the
robot is `dialbot schedule run night` with the default runtime (the local
fleet with the flow runner) in a child process, as a QA engineer runs it.
The schedule probes every applicable flow of every never-probed service
tonight (its window is long enough for the whole catalogue), so the night is
the whole catalogue times its flows: `decline` and the service's own
billing flow (`monthly` or `per_use`), two (service, flow) pairs each.

Measured from the stored plan items (start and end of every probe):

- *wall*: first probe start to last probe end;
- *ideal*: the sum of the planned flows' unavoidable waits (their `observe`
  windows × time_scale) ÷ modems — what no scheduler can beat;
- *utilisation*: Σ probe durations ÷ (modems × wall) — how busy the modems
  were while the night ran;
- *moved*: probes an idle modem took from the busiest lane (work stealing);
- *robot CPU*: the robot process's user and system CPU time (it drives every
  modem from one Python process: past one core it waits on itself).

Goals (issue 5): wall ≤ 1.15 × ideal, utilisation ≥ 90 %.

`--mix wap=0.3` (issue 10: a night mixing SMS and WAP services, same goal):
that share of the services are WAP services (an entry page behind the WAP
gateway, no SMS side), probed by the `wap` flow (one pair each: browse,
order with the carrier's confirmation, use, cancel); the schedule adds
`wap`, and the bank's modems speak SIMCom and Quectel (odd and even slots)
so every modem browses. The ideal counts the `wap` flow's own observe window
like any other. Per flow, the mean time per probe beyond its unavoidable
waits is printed as well.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

SCHEDULE = """
name = "night"
cron = "0 1 * * *"
window_end = "05:30"
flows = ["decline", "monthly", "per_use"]
coverage = "month"
per_sp_concurrency = 2
"""
# One service in MISBEHAVING_EVERY misbehaves (so the night also judges and records findings).
MISBEHAVING_EVERY = 20
MISBEHAVIOURS: list[dict[str, Any]] = [
    {"prompt_omits": ["hotline"]},
    {"charges_without_confirm": True},
    {"responds": 0.0},
]


def world(services: int, modems: int, seed: int = 5, wap_share: float = 0.0) -> dict[str, Any]:
    """`services` services, four per SP, on one nationwide bank of `modems` modems;
    `wap_share` of them WAP services (then every modem browses: SIMCom and Quectel)."""
    rng = random.Random(seed)
    wap_rng = random.Random(seed + 1)  # apart, so the SMS services stay those of a plain night
    sps: list[dict[str, Any]] = []
    for index in range(services):
        sp, k = divmod(index, 4)
        if k == 0:
            sps.append({"code": f"8{sp:05d}", "name": f"基准{sp}公司",
                        "hotline": f"40090{sp:05d}", "services": []})  # fmt: skip
        billing = rng.choice(["monthly", "per_use"])
        behaviour: dict[str, Any] = {"latency_ms": [5, 40]}
        if index % MISBEHAVING_EVERY == MISBEHAVING_EVERY - 1:
            behaviour.update(rng.choice(MISBEHAVIOURS))
        service: dict[str, Any] = {
            "code": f"S{k}", "name": f"基准业务{index}号", "access": f"1065{sp:05d}{k}",
            "billing": billing, "price_fen": rng.choice([100, 200, 500]),
            "subscribe": f"DG{k}", "behaviour": behaviour,
        }  # fmt: skip
        if billing == "monthly":
            service.update({"cancel": f"TD{k}", "use": f"KK{k}"})
        if wap_rng.random() < wap_share:
            # A WAP service: its entry page instead of an access number and keywords.
            for key in ("access", "cancel", "use"):
                service.pop(key, None)
            service.update({"channel": "wap", "url": f"http://wap.b{sp}.example/s{k}",
                            "subscribe": "订购", "use": "查看内容"})  # fmt: skip
        sps[-1]["services"].append(service)
    bank: dict[str, Any] = {"name": "bench", "modems": modems, "balance_fen": 1_000_000}
    if wap_share > 0:
        bank["dialect"] = "simcom"
        bank["slots"] = {n: {"dialect": "quectel"} for n in range(2, modems + 1, 2)}
    return {"seed": seed, "order_notices": True, "bank": bank, "sps": sps}


def one(
    services: int, modems: int, time_scale: float, wap_share: float = 0.0, processes: str = "auto"
) -> dict[str, Any]:
    from sqlalchemy import select

    from dialbot.catalog import import_catalog
    from dialbot.config import load_config
    from dialbot.db.engine import engine_of, open_database
    from dialbot.db.models import Finding
    from dialbot.db.obligations import sims_with_pending
    from dialbot.demo import write_config
    from dialbot.flows.loader import standard_flows
    from dialbot.scheduling.models import NightPlan, PlanItemRow
    from dialbot.sim.bank import VirtualBank
    from dialbot.sim.catalog import write_catalog
    from dialbot.sim.worldfile import load_world

    flows = standard_flows()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "hardware").mkdir()
        (folder / "schedules").mkdir()
        schedule = SCHEDULE
        if wap_share > 0:
            schedule = schedule.replace('"per_use"]', '"per_use", "wap"]')
        (folder / "schedules" / "night.toml").write_text(schedule, encoding="utf-8")
        path = folder / "world.yaml"
        data = world(services, modems, wap_share=wap_share)
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        loaded = load_world(path)
        written = write_config(folder, loaded, time_scale)
        fleet = f"processes = {processes}" if processes.isdigit() else 'processes = "auto"'
        written.write_text(written.read_text(encoding="utf-8") + f"\n[fleet]\n{fleet}\n",
                           encoding="utf-8")  # fmt: skip
        config = load_config(written)
        with (folder / "catalog.csv").open("w", encoding="utf-8") as stream:
            write_catalog(loaded, stream)
        db = open_database(config.database_url)
        import_catalog(db, folder / "catalog.csv")
        inventory = config.paths.hardware / f"{loaded.bank_name}.toml"
        with VirtualBank(loaded, folder / "bank", inventory_path=inventory) as bank:
            start = time.monotonic()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            child = subprocess.run(
                [sys.executable, "-m", "dialbot", "--config", str(config.source),
                 "schedule", "run", "night", "--window", "240"],
                cwd=folder, capture_output=True, text=True,
            )  # fmt: skip
            process_s = time.monotonic() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            robot_cpu = {
                "user": after.ru_utime - before.ru_utime,
                "sys": after.ru_stime - before.ru_stime,
            }
            truth = bank.call(bank.network.ground_truth)
        if child.returncode != 0:
            raise SystemExit(f"schedule run failed:\n{child.stderr[-3000:]}")
        with db() as session:
            night = session.scalars(select(NightPlan)).one()
            items = session.scalars(select(PlanItemRow)).all()
            findings = len(session.scalars(select(Finding.id)).all())
        pending = len(sims_with_pending(db))
        engine_of(db).dispose()
    ran = [i for i in items if i.started_at is not None and i.ended_at is not None]
    lanes = len({i.sim_id for i in items})
    first = min(i.started_at for i in ran if i.started_at is not None)
    last = max(i.ended_at for i in ran if i.ended_at is not None)
    wall = (last - first).total_seconds()
    busy = sum((i.ended_at - i.started_at).total_seconds() for i in ran)  # type: ignore[operator]
    unavoidable = sum(flows[i.flow].unavoidable_wait_s() for i in ran) * time_scale
    ideal = unavoidable / lanes
    states: dict[str, int] = {}
    per_lane: dict[int, list[float]] = {}
    for item in items:
        states[item.state] = states.get(item.state, 0) + 1
    for item in ran:
        assert item.started_at is not None and item.ended_at is not None
        per_lane.setdefault(item.sim_id, []).append((item.ended_at - first).total_seconds())
    by_flow: dict[str, list[float]] = {}
    for item in ran:
        assert item.started_at is not None and item.ended_at is not None
        beyond = (item.ended_at - item.started_at).total_seconds()
        beyond -= flows[item.flow].unavoidable_wait_s() * time_scale
        by_flow.setdefault(item.flow, []).append(beyond)
    idle = idle_per_lane(ran, first, last)
    counts = sorted(len(v) for v in per_lane.values())
    ends = sorted(max(v) for v in per_lane.values())
    return {
        "night": night.state, "items": len(items), "states": states, "lanes": lanes,
        "wall_s": wall, "ideal_s": ideal, "ratio": wall / ideal,
        "utilisation": busy / (lanes * wall), "process_s": process_s,
        "findings": findings, "pending": pending,
        "moved": sum(1 for i in items if i.reason.endswith("+moved")),
        "lane_probes": (counts[0], counts[-1]), "lane_ends": (ends[0], ends[-1]),
        "overhead_s": (busy - unavoidable) / len(ran),
        "left_subscribed": sum(1 for s in truth["sims"].values() if s["subscriptions"]),
        "robot_cpu": robot_cpu,
        "idle": idle,
        "flows": {f: (len(v), statistics.fmean(v)) for f, v in sorted(by_flow.items())},
    }  # fmt: skip


def idle_per_lane(ran: list[Any], first: Any, last: Any) -> tuple[float, float, float]:
    """Mean seconds a modem stood idle before its first probe, between its probes and
    after its last one (what utilisation misses, by where)."""
    lanes: dict[int, list[Any]] = {}
    for item in ran:
        lanes.setdefault(item.sim_id, []).append(item)
    before = between = after = 0.0
    for items in lanes.values():
        items.sort(key=lambda i: i.started_at)
        before += (items[0].started_at - first).total_seconds()
        after += (last - max(i.ended_at for i in items)).total_seconds()
        between += sum(
            max(0.0, (b.started_at - a.ended_at).total_seconds())
            for a, b in zip(items, items[1:], strict=False)
        )
    n = len(lanes)
    return before / n, between / n, after / n


def mix_share(mix: str) -> float:
    """`wap=0.3` -> 0.3; "" -> 0 (the only channel mixed in so far is WAP)."""
    if not mix:
        return 0.0
    channel, _, share = mix.partition("=")
    if channel.strip() != "wap" or not share:
        raise SystemExit(f"--mix: expected wap=<share>, not {mix!r}")
    value = float(share)
    if not 0.0 <= value <= 1.0:
        raise SystemExit("--mix: the share is between 0 and 1")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--modems", type=int, default=64)
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--mix", default="", help="share of WAP services, e.g. wap=0.3 (default: SMS only)"
    )
    parser.add_argument(
        "--processes", default="auto", help="[fleet] processes of the robot (default: auto)"
    )
    args = parser.parse_args()
    wap_share = mix_share(args.mix)
    rows = []
    for n in range(args.repeat):
        r = one(args.services, args.modems, args.time_scale, wap_share, args.processes)
        rows.append(r)
        print(
            f"run {n + 1}: night {r['night']}, {r['items']} probes {r['states']} on "
            f"{r['lanes']} modems; wall {r['wall_s']:.1f} s, ideal {r['ideal_s']:.1f} s "
            f"(ratio {r['ratio']:.3f}), utilisation {r['utilisation']:.1%}; "
            f"process incl. start-up {r['process_s']:.1f} s; probes per modem "
            f"{r['lane_probes'][0]}–{r['lane_probes'][1]}, modems done after "
            f"{r['lane_ends'][0]:.1f}–{r['lane_ends'][1]:.1f} s, mean time per probe beyond its "
            f"unavoidable waits {r['overhead_s']:.2f} s; {r['findings']} findings, "
            f"{r['pending']} SIMs owing cleanup, {r['left_subscribed']} SIMs left subscribed; "
            f"{r['moved']} probes moved to idle modems",
            flush=True,
        )
        per_flow = ", ".join(f"{f} {n_} probes {m:.2f} s" for f, (n_, m) in r["flows"].items())
        print(f"  beyond unavoidable waits, per flow: {per_flow}", flush=True)
        idle = r["idle"]
        print(
            f"  idle per modem: {idle[0]:.2f} s before its first probe, {idle[1]:.2f} s "
            f"between probes, {idle[2]:.2f} s after its last",
            flush=True,
        )
        cpu = r["robot_cpu"]
        print(
            f"  robot process CPU: user {cpu['user']:.1f} s, system {cpu['sys']:.1f} s "
            f"({(cpu['user'] + cpu['sys']) / r['items'] * 1000:.0f} ms per probe, "
            f"{(cpu['user'] + cpu['sys']) / r['process_s']:.0%} of a core)",
            flush=True,
        )
    ratio = statistics.median(r["ratio"] for r in rows)
    util = statistics.median(r["utilisation"] for r in rows)
    wall = statistics.median(r["wall_s"] for r in rows)
    ideal = statistics.median(r["ideal_s"] for r in rows)
    print(
        f"median: wall {wall:.1f} s, ideal {ideal:.1f} s, ratio {ratio:.3f} (goal ≤ 1.15), "
        f"utilisation {util:.1%} (goal ≥ 90 %)"
    )


if __name__ == "__main__":
    main()

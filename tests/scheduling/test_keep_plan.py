"""A schedule that lists `keep`: the flow tables have it, and a plan runs it last on its SIM.

A `keep` probe leaves a monthly subscription on until the follow-up's horizon;
any later probe of an SP on that SIM would cancel it first. So whatever the
planner decides, the stored plan must have at most one keep per SIM, after
the SIM's other probes, never as a second look (risk, rotation), with a SIM
still never probing one SP twice in a row, and every probe inside the window.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialbot.flows.loader import load_flows, scheduled_flows, standard_flows
from dialbot.scheduling.inputs import flow_tables
from dialbot.scheduling.keeping import keep_last
from dialbot.scheduling.planner import NightSpec, Plan, PlanItem, ServiceInfo, SimInfo, plan_night
from dialbot.scheduling.schedules import period_bounds

SH = ZoneInfo("Asia/Shanghai")
FLOWS = ("decline", "monthly", "keep")
FLOW_BILLING = {"decline": ("monthly", "per_use"), "monthly": ("monthly",), "keep": ("monthly",)}


def test_flow_tables_of_the_runtimes_have_keep(tmp_path: Path) -> None:
    """`scheduled_flows` (what the local and distributed runtimes and the worker plan and run
    with) adds `keep` to the standard flows; a sweep's `load_flows` does not."""
    assert "keep" not in load_flows(None) and "keep" not in standard_flows()
    flows = scheduled_flows(None)
    billing, seconds = flow_tables(flows, 0.02)
    assert billing["keep"] == ("monthly",) and seconds["keep"] > 0
    assert set(flows) == {*load_flows(None), "keep"}
    (tmp_path / "keep.yaml").write_text(
        "name: keep\nkind: keep\nbilling: [monthly]\nsteps:\n  - balance: {label: before}\n",
        encoding="utf-8",
    )
    assert len(scheduled_flows(tmp_path)["keep"].steps) == 1, "probes/keep.yaml wins"


def item(seq: int, sim: int, sp: str, flow: str, start: float, reason: str = "due") -> PlanItem:
    return PlanItem(seq, 100 + seq, sp, flow, sim, start, 10.0, reason)


def test_keep_moves_last_and_what_cannot_follow_it_waits() -> None:
    plan = Plan(
        items=[
            item(0, 1, "A", "keep", 0.0),
            item(1, 1, "B", "decline", 10.0),
            item(2, 1, "C", "keep", 20.0),  # a second keep on the SIM: another night
            item(3, 1, "D", "monthly", 30.0),
            item(4, 2, "A", "decline", 0.0),
            item(5, 2, "B", "keep", 10.0),  # B would follow... A: fine, it goes last
            item(6, 2, "A", "monthly", 20.0),  # A twice in a row once the keep moved
            item(7, 3, "E", "keep", 0.0, reason="risk"),  # never a second look
            item(8, 3, "F", "decline", 10.0),
            item(9, 4, "G", "keep", 0.0),
            item(10, 4, "H", "decline", 10.0),  # H was the SIM's last SP before tonight
            item(11, 4, "I", "decline", 20.0),
        ],
        notes=["covers 9/9 due (service, flow) pairs; period coverage 100% (9/9)"],
    )
    keep_last(plan, {4: "H"})
    lanes: dict[int, list[tuple[str, str, float]]] = defaultdict(list)
    for it in sorted(plan.items, key=lambda i: i.seq):
        lanes[it.sim_id].append((it.sp_code, it.flow, it.start_s))
    assert lanes[1] == [("B", "decline", 0.0), ("D", "monthly", 20.0), ("A", "keep", 30.0)]
    assert lanes[2] == [("A", "decline", 0.0), ("B", "keep", 10.0)]
    assert lanes[3] == [("F", "decline", 10.0)]
    assert lanes[4] == [("I", "decline", 10.0), ("G", "keep", 20.0)]
    assert [i.seq for i in plan.items] == list(range(len(plan.items)))
    assert "1 keep probes not planned as a second look" in plan.notes[-2]
    assert "3 probes left for another night" in plan.notes[-1]
    assert plan.notes[0].startswith("covers 8/")


def test_a_plan_without_keep_is_left_alone() -> None:
    items = [item(0, 1, "A", "decline", 0.0), item(1, 1, "B", "monthly", 10.0)]
    plan = Plan(items=list(items))
    assert keep_last(plan).items == items


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(5, 120),
    sps=st.integers(2, 10),
    lanes=st.integers(1, 8),
    hours=st.floats(0.05, 2.0),
)
def test_every_plan_keeps_last_once_per_sim(
    seed: int, n: int, sps: int, lanes: int, hours: float
) -> None:
    rng = random.Random(seed)
    start = datetime(2026, 11, 3, 1, 0, tzinfo=SH)
    services = [
        ServiceInfo(
            service_id=i,
            sp_code=f"SP{rng.randrange(sps):02d}",
            billing=rng.choice(("monthly", "monthly", "per_use")),
            flow_probed={"keep": start - timedelta(days=1)} if rng.random() < 0.3 else {},
            recent_findings=rng.choice((0, 0, 2)),
        )
        for i in range(n)
    ]
    sims = [
        SimInfo(i, f"1380013{i:04d}", None, 5000, last_sp=f"SP{rng.randrange(sps):02d}")
        for i in range(lanes)
    ]
    spec = NightSpec(
        start=start,
        end=start + timedelta(hours=hours),
        period_start=period_bounds("month", start, SH)[0],
        nights_left=rng.choice((1, 3, 28)),
        flows=FLOWS,
        flow_billing=FLOW_BILLING,
        flow_seconds={"decline": 120.0, "monthly": 300.0, "keep": 200.0},
        per_sp_concurrency=rng.choice((1, 2)),
    )
    before = plan_night(services, sims, spec)
    original = {(i.service_id, i.flow, i.sim_id): i for i in before.items}
    last_sp = {sim.sim_id: sim.last_sp for sim in sims}
    plan = keep_last(before, last_sp)
    assert [i.seq for i in plan.items] == list(range(len(plan.items)))
    by_sim: dict[int, list[PlanItem]] = defaultdict(list)
    for it in plan.items:
        was = original[(it.service_id, it.flow, it.sim_id)]  # nothing new, nothing moved SIM
        assert it.reason == was.reason and it.start_s <= was.start_s + spec.window_s
        assert 0 <= it.start_s and it.start_s + it.duration_s <= spec.window_s + 1e-6
        by_sim[it.sim_id].append(it)
    for sim_id, items in by_sim.items():
        assert items == sorted(items, key=lambda i: i.start_s)
        assert items[0].sp_code != last_sp[sim_id], "the SP it probed last, first again"
        keeps = [i for i in items if i.flow == "keep"]
        assert len(keeps) <= 1 and (not keeps or items[-1] is keeps[0]), items
        assert all(k.reason not in ("risk", "rotation") for k in keeps)
        for a, b in zip(items, items[1:], strict=False):
            assert a.sp_code != b.sp_code, "one SP twice in a row"
            assert b.start_s >= a.start_s + a.duration_s - 1e-6, "two probes at once"
    left = set(original) - {(i.service_id, i.flow, i.sim_id) for i in plan.items}
    kept_lanes = {sim for (_, flow, sim) in original if flow == "keep"}
    assert all(sim in kept_lanes for (_, _, sim) in left), "only lanes with a keep change"
    assert plan.due_planned == sum(1 for i in plan.items if i.reason == "due")

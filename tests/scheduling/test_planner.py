"""The planner over many simulated nights on generated catalogues.

Each example is a catalogue and a fleet; the test plays a whole month of
nights (and the first nights of the next), applying each plan as if every
probe ran, and checks the promises: coverage of every (service, flow) pair
per period, SIM rotation across nights, balance floor, per-SP concurrency,
window end, no (service, flow) twice a night and no service twice on one
SIM in a night.
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialbot.scheduling.planner import NightSpec, Plan, ServiceInfo, SimInfo, plan_night
from dialbot.scheduling.schedules import period_bounds

SH = ZoneInfo("Asia/Shanghai")
FLOW_BILLING = {"decline": ("monthly", "per_use"), "monthly": ("monthly",), "per_use": ("per_use",)}
FLOWS = ("decline", "monthly", "per_use")


def catalogue(rng: random.Random, n: int, sps: int) -> list[ServiceInfo]:
    return [
        ServiceInfo(
            service_id=i,
            sp_code=f"SP{i % sps if i < sps else rng.randrange(sps):02d}",  # every SP present
            billing=rng.choice(("monthly", "per_use")),
            region=None if rng.random() < 0.7 else rng.choice(("GD", "BJ")),
        )
        for i in range(n)
    ]


def fleet(rng: random.Random, lanes: int) -> list[SimInfo]:
    sims = [SimInfo(i, f"1380013{i:04d}", None, rng.choice((50, 900, 5000))) for i in range(lanes)]
    # always two rich nationwide SIMs: enough for a month's quota whatever the others hold
    # (250 services' 500 pairs over 30 nights is 17 a night; two SIMs hold 24 of 600 s)
    rich = [SimInfo(lanes + k, f"1380013999{k}", None, 10_000) for k in range(2)]
    return [*sims, *rich]


def spec(start: datetime, nights_left: int, seconds: dict[str, float], conc: int) -> NightSpec:
    return NightSpec(
        start=start,
        end=start + timedelta(hours=2),
        period_start=period_bounds("month", start, SH)[0],
        nights_left=nights_left,
        flows=FLOWS,
        flow_billing=FLOW_BILLING,
        flow_seconds=seconds,
        per_sp_concurrency=conc,
        balance_floor_fen=100,
    )


def check_night(
    plan: Plan, night: NightSpec, sims: dict[int, SimInfo], last_sp: dict[int, str]
) -> None:
    """Every rule a single plan must keep."""
    pairs = {(i.service_id, i.flow) for i in plan.items}
    assert len(pairs) == len(plan.items)  # no (service, flow) twice
    assert len({(i.service_id, i.sim_id) for i in plan.items}) == len(plan.items)  # other SIMs
    for item in plan.items:
        assert item.flow in night.flow_billing and item.sp_code
    by_sim: dict[int, list] = defaultdict(list)
    for item in plan.items:
        assert item.start_s >= 0 and item.start_s + item.duration_s <= night.window_s + 1e-9
        assert sims[item.sim_id].balance_fen >= night.balance_floor_fen  # type: ignore[operator]
        by_sim[item.sim_id].append(item)
    for sim_id, items in by_sim.items():
        items.sort(key=lambda i: i.start_s)
        previous = last_sp.get(sim_id)
        end = 0.0
        for item in items:
            assert item.sp_code != previous, "a SIM probed the same SP twice in a row"
            assert item.start_s >= end - 1e-9, "a SIM ran two probes at once"
            previous, end = item.sp_code, item.start_s + item.duration_s
        last_sp[sim_id] = previous  # type: ignore[assignment]
    events = sorted(
        [(i.start_s, 1, i.sp_code) for i in plan.items]
        + [(i.start_s + i.duration_s, -1, i.sp_code) for i in plan.items]
    )
    running: dict[str, int] = defaultdict(int)
    for _, delta, sp in events:  # ends sort before starts at the same instant
        running[sp] += delta
        assert running[sp] <= night.per_sp_concurrency
    assert plan.due_planned == plan.due_quota, plan.notes


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(30, 250),
    sps=st.integers(3, 15),
    lanes=st.integers(3, 10),
    conc=st.integers(1, 3),
)
def test_month_after_month_coverage_and_rotation(
    seed: int, n: int, sps: int, lanes: int, conc: int
) -> None:
    rng = random.Random(seed)
    services = {s.service_id: s for s in catalogue(rng, n, sps)}
    sims = {s.sim_id: s for s in fleet(rng, lanes)}
    seconds = {f: float(rng.randrange(300, 600)) for f in FLOWS}
    last_sp: dict[int, str] = {}
    probed_in_period: set[tuple[int, str]] = set()
    every_pair = {(s.service_id, f) for s in services.values() for f in FLOWS
                  if s.billing in FLOW_BILLING[f]}  # fmt: skip
    first = datetime(2026, 11, 1, 1, 0, tzinfo=SH)
    for day in range(33):  # all of November and into December
        start = first + timedelta(days=day)
        period_start, period_end = period_bounds("month", start, SH)
        if start.date() == period_start.date() and day:
            assert probed_in_period == every_pair, "a (service, flow) missed its month"
            probed_in_period = set()
        nights_left = (period_end - start).days + 1
        lanes_now = [dataclasses.replace(s, last_sp=last_sp.get(s.sim_id)) for s in sims.values()]
        night = spec(start, nights_left, seconds, conc)
        plan = plan_night(list(services.values()), lanes_now, night)
        check_night(plan, night, sims, last_sp)
        for item in plan.items:
            at = start + timedelta(seconds=item.start_s)
            service = services[item.service_id]
            services[item.service_id] = dataclasses.replace(
                service, flow_probed={**service.flow_probed, item.flow: at}
            )
            probed_in_period.add((item.service_id, item.flow))
        if rng.random() < 0.2:  # a finding raises an SP's risk for a while
            sp = f"SP{rng.randrange(sps):02d}"
            services = {
                k: dataclasses.replace(v, recent_findings=1 if v.sp_code == sp else 0)
                for k, v in services.items()
            }


def probed_all(billing: str, at: datetime) -> dict[str, datetime]:
    return {f: at for f in FLOWS if billing in FLOW_BILLING[f]}


def test_floor_notes_and_remaining_flows_before_risk() -> None:
    start = datetime(2026, 11, 10, 1, 0, tzinfo=SH)
    probed = start - timedelta(days=2)  # already covered this month
    services = [
        ServiceInfo(1, "A", "monthly", flow_probed=probed_all("monthly", probed)),  # nothing new
        ServiceInfo(2, "B", "monthly", flow_probed=probed_all("monthly", probed),
                    recent_findings=2),  # risk
        ServiceInfo(3, "C", "per_use", flow_probed={"decline": probed}),  # per_use flow due
        ServiceInfo(4, "D", "monthly", region="GD"),  # due, but no GD or nationwide SIM
    ]  # fmt: skip
    sims = [
        SimInfo(1, "13800138000", region="BJ", balance_fen=10_000, last_sp=None),
        SimInfo(2, "13800138001", region=None, balance_fen=99, last_sp=None),
    ]
    plan = plan_night(services, sims, spec(start, 21, {f: 600.0 for f in FLOWS}, 1))
    assert plan.skipped_sims == [2]
    assert any("138****8001" in n and "below the floor" in n for n in plan.notes)
    assert all("13800138001" not in n for n in plan.notes)  # MSISDNs masked
    assert [(i.service_id, i.flow, i.reason) for i in plan.items] == [
        (3, "per_use", "due"), (2, "decline", "risk"),
    ]  # fmt: skip
    assert plan.due == 3 and plan.pairs == 8 and plan.covered_before == 5
    assert not any("coverage at risk" in n for n in plan.notes)  # C stands in for D (GD)
    assert "covers 1/3 due (service, flow) pairs; period coverage 75% (6/8)" in plan.notes


def test_every_flow_of_every_service_on_an_idle_fleet() -> None:
    """The night measured on main: 16 services, daily coverage, six SIMs."""
    start = datetime(2026, 11, 10, 1, 0, tzinfo=SH)
    services = [
        ServiceInfo(i, f"SP{i % 8}", "monthly" if i % 2 else "per_use",
                    flow_probed=probed_all("monthly", start - timedelta(days=1)))
        for i in range(16)
    ]  # fmt: skip
    sims = [SimInfo(i, f"1380013800{i}", balance_fen=10_000) for i in range(6)]
    night = dataclasses.replace(spec(start, 1, {f: 60.0 for f in FLOWS}, 1),
                                period_start=period_bounds("day", start, SH)[0])  # fmt: skip
    plan = plan_night(services, sims, night)
    assert sorted((i.service_id, i.flow) for i in plan.items) == sorted(
        (s.service_id, f) for s in services for f in FLOWS if s.billing in FLOW_BILLING[f]
    )
    check_night(plan, night, {s.sim_id: s for s in sims}, {})
    assert "covers 32/32 due (service, flow) pairs; period coverage 100% (32/32)" in plan.notes


def test_flows_of_one_service_run_on_different_sims() -> None:
    start = datetime(2026, 11, 10, 1, 0, tzinfo=SH)
    services = [ServiceInfo(1, "A", "monthly"), ServiceInfo(2, "B", "monthly")]
    one = [SimInfo(1, "13800138000", balance_fen=10_000)]
    plan = plan_night(services, one, spec(start, 1, {f: 60.0 for f in FLOWS}, 1))
    # one SIM: each service once (A, B), never a second flow of A or B on it
    assert sorted(i.service_id for i in plan.items) == [1, 2]
    assert any("coverage at risk: 2 of tonight's 4" in n for n in plan.notes)
    two = [*one, SimInfo(2, "13800138001", balance_fen=10_000)]
    plan = plan_night(services, two, spec(start, 1, {f: 60.0 for f in FLOWS}, 1))
    assert len(plan.items) == 4
    for service in (1, 2):
        assert len({i.sim_id for i in plan.items if i.service_id == service}) == 2


def test_pair_cut_after_ordering_goes_to_another_sim() -> None:
    start = datetime(2026, 11, 10, 1, 0, tzinfo=SH)
    done = start - timedelta(days=1)
    services = [ServiceInfo(1, "A", "monthly", flow_probed={"decline": done},
                            interrupted_on={"monthly": 1})]  # fmt: skip
    sims = [SimInfo(1, "13800138000", balance_fen=10_000),
            SimInfo(2, "13800138001", balance_fen=10_000)]  # fmt: skip
    plan = plan_night(services, sims, spec(start, 21, {f: 60.0 for f in FLOWS}, 1))
    assert [(i.flow, i.sim_id) for i in plan.items] == [("monthly", 2)]
    plan = plan_night(services, sims[:1], spec(start, 21, {f: 60.0 for f in FLOWS}, 1))
    assert plan.items == []


def test_no_sims_or_window_too_short() -> None:
    start = datetime(2026, 11, 10, 1, 0, tzinfo=SH)
    services = [ServiceInfo(1, "A", "monthly")]
    assert plan_night(services, [], spec(start, 1, {f: 60.0 for f in FLOWS}, 1)).items == []
    long = {f: 3 * 3600.0 for f in FLOWS}
    plan = plan_night(services, [SimInfo(1, "13800138000")], spec(start, 1, long, 1))
    assert plan.items == []
    assert any("coverage at risk" in n for n in plan.notes)


def test_wap_services_get_the_wap_flow_on_modems_that_browse() -> None:
    start = datetime(2026, 11, 3, 1, 0, tzinfo=SH)
    night = dataclasses.replace(
        spec(start, 20, {"decline": 60, "monthly": 60, "per_use": 60, "wap": 60}, 4),
        flows=(*FLOWS, "wap"),
        flow_billing={**FLOW_BILLING, "wap": ("monthly", "per_use")},
    )
    services = [
        ServiceInfo(1, "SP01", "monthly"),
        ServiceInfo(2, "SP02", "monthly", channel="wap"),
        ServiceInfo(3, "SP03", "per_use", channel="wap"),
    ]
    sims = [
        SimInfo(1, "13800130001", None, 5000),
        SimInfo(2, "13800130002", None, 5000, data="http"),
    ]
    plan = plan_night(services, sims, night)
    flows = {i.service_id: (i.flow, i.sim_id) for i in plan.items}
    assert flows[2] == ("wap", 2) and flows[3] == ("wap", 2)
    assert flows[1][0] in ("decline", "monthly")
    no_browser = plan_night(services, sims[:1], night)
    assert {i.service_id for i in no_browser.items} == {1}

"""The lazily ranking planner makes the very plan the planner made when it ranked every
pair up front (planner_reference.py, the code of commit d06962f): same items in the
same order, same figures, same notes, on random catalogues that exercise every rule
(regions, channels and browsing modems, cut probes, rotation, per-SP concurrency,
window end, ties in every sort key, duplicate service ids, flows of zero seconds).
"""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planner_reference import reference_plan_night

from dialbot.scheduling import planner, ranking
from dialbot.scheduling.planner import NightSpec, ServiceInfo, SimInfo, plan_night

SH = ZoneInfo("Asia/Shanghai")
FLOW_BILLING = {
    "decline": ("monthly", "per_use"),
    "monthly": ("monthly",),
    "per_use": ("per_use",),
    "wap": ("monthly", "per_use"),
    "ivr": ("per_minute",),
}
FLOWS = ("decline", "monthly", "per_use", "wap", "ivr")
# what a service may have been probed by (MMS services: the MMS content flows)
PROBED_BY = ("decline", "monthly", "per_use", "wap", "ivr", "mms", "mms_per_use")
START = datetime(2026, 11, 20, 1, 0, tzinfo=SH)
PERIOD_START = datetime(2026, 11, 1, tzinfo=SH)


def _when(rng: random.Random) -> datetime:
    """Coarse (many ties) or fine, before or inside the period."""
    days = rng.randrange(1, 50)
    seconds = rng.choice((0, 0, rng.randrange(86_400)))
    return START - timedelta(days=days, seconds=seconds)


def catalogue(rng: random.Random, n: int, sps: int) -> list[ServiceInfo]:
    services: list[ServiceInfo] = []
    for i in range(n):
        if services and rng.random() < 0.04:  # a twin: same id and probes, other billing
            twin = rng.choice(services)
            billing = "per_use" if twin.billing == "monthly" else "monthly"
            services.append(dataclasses.replace(twin, billing=billing, channel="sms"))
            continue
        channel = rng.choice(("sms", "sms", "sms", "wap", "mms", "ivr"))
        billing = "per_minute" if channel == "ivr" else rng.choice(("monthly", "per_use"))
        if rng.random() < 0.03:
            billing = "yearly"  # no scheduled flow probes it
        probed = {flow: _when(rng) for flow in PROBED_BY if rng.random() < 0.6}
        if rng.random() < 0.15:
            probed = {}
        cut = {rng.choice(PROBED_BY): rng.randrange(8) for _ in range(rng.choice((0, 0, 0, 1, 2)))}
        services.append(
            ServiceInfo(
                service_id=rng.randrange(n // 3 + 1) if rng.random() < 0.05 else 1000 + i,
                sp_code=f"SP{rng.randrange(sps):02d}",
                billing=billing,
                region=rng.choice((None, None, None, "GD", "BJ")),
                flow_probed=probed,
                changed_at=_when(rng) if rng.random() < 0.2 else None,
                recent_findings=rng.choice((0, 0, 0, 0, 1, 2, 12)),
                interrupted_on=cut,
                channel=channel,
            )
        )
    return services


def fleet(rng: random.Random, lanes: int, sps: int) -> list[SimInfo]:
    return [
        SimInfo(
            sim_id=i,
            msisdn=f"1380013{i:04d}",
            region=rng.choice((None, None, "GD", "BJ")),
            balance_fen=rng.choice((None, 50, 900, 5000)),
            last_sp=rng.choice((None, f"SP{rng.randrange(sps):02d}")),
            data=rng.choice((None, "http", "http")),
        )
        for i in range(lanes)
    ]


def night(rng: random.Random) -> NightSpec:
    seconds = {
        flow: rng.choice((60.0, 90.0, 200.0, 420.0)) for flow in (*FLOWS, "mms", "mms_per_use")
    }
    for flow in rng.sample(sorted(seconds), rng.choice((0, 0, 0, 1))):
        del seconds[flow]  # unknown duration: zero seconds
    return NightSpec(
        start=START,
        end=START + timedelta(minutes=rng.choice((3, 30, 90, 240))),
        period_start=PERIOD_START,
        nights_left=rng.randrange(1, 6),
        flows=tuple(rng.sample(FLOWS, rng.randrange(1, len(FLOWS) + 1))),
        flow_billing=FLOW_BILLING,
        flow_seconds=seconds,
        per_sp_concurrency=rng.randrange(1, 4),
        balance_floor_fen=100,
    )


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 400),
    sps=st.integers(1, 12),
    lanes=st.integers(0, 12),
)
def test_same_plan_as_ranking_every_pair(seed: int, n: int, sps: int, lanes: int) -> None:
    rng = random.Random(seed)
    services = catalogue(rng, n, sps)
    sims = fleet(rng, lanes, sps)
    spec = night(rng)
    plan = plan_night(iter(services), sims, spec)  # any iterable, read once
    reference = reference_plan_night(services, sims, spec)
    assert plan.items == reference.items
    assert plan == reference


def test_a_short_night_ranks_a_fraction_of_a_large_catalogue(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The point of ranking lazily, checked as an outcome: a night that can place a
    few dozen probes ranks far fewer pairs than the catalogue has, and plans the same."""
    made: list[ranking.RankedPairs] = []

    class Recorded(ranking.RankedPairs):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(planner, "RankedPairs", Recorded)
    rng = random.Random(14)
    services = catalogue(rng, 6000, 40)
    sims = [SimInfo(i, f"1380013{i:04d}", None, 5000, None, "http") for i in range(6)]
    spec = NightSpec(
        start=START,
        end=START + timedelta(hours=1),
        period_start=PERIOD_START,
        nights_left=3,
        flows=FLOWS,
        flow_billing=FLOW_BILLING,
        flow_seconds={flow: 300.0 for flow in (*FLOWS, "mms", "mms_per_use")},
        per_sp_concurrency=1,
    )
    plan = plan_night(services, sims, spec)
    assert plan == reference_plan_night(services, sims, spec)
    (pairs,) = made
    assert 0 < len(plan.items) <= 6 * 12 and pairs.total > 5000
    assert pairs.ranked < pairs.total // 10, (pairs.ranked, pairs.total)


def test_first_night_of_a_new_catalogue_every_pair_never_probed() -> None:
    """All pairs never probed and of equal risk: one long tie, broken by service id and
    flow as before (ids out of input order)."""
    rng = random.Random(3)
    services = [
        ServiceInfo(service_id=rng.randrange(10_000), sp_code=f"SP{i % 7}", billing="monthly")
        for i in range(500)
    ]
    sims = [SimInfo(i, f"1380013{i:04d}", None, 5000, "SP0") for i in range(5)]
    spec = NightSpec(
        start=START,
        end=START + timedelta(hours=2),
        period_start=PERIOD_START,
        nights_left=2,
        flows=FLOWS,
        flow_billing=FLOW_BILLING,
        flow_seconds={"decline": 100.0, "monthly": 250.0},
        per_sp_concurrency=2,
    )
    plan = plan_night(services, sims, spec)
    assert plan == reference_plan_night(services, sims, spec)
    assert plan.due == 1000 and plan.items


@pytest.mark.parametrize("findings", [0, 1])  # 0: both last probed before the period; 1: risky
def test_pairs_tied_up_to_the_service_id_go_by_the_flows_place(findings: int) -> None:
    """Two catalogue rows with one id (and one probe time) tie on every key but the
    flow's place among the row's flows: the later row's ``decline`` comes first
    (its place is 0, the first row's 1) and takes the one probe a short night has
    room for."""
    probed = START - timedelta(days=40 if findings == 0 else 2)
    lately = START - timedelta(days=1)  # the first row's monthly: no candidate before these
    first = ServiceInfo(7, "SP1", "monthly", flow_probed={"decline": probed, "monthly": lately},
                        recent_findings=findings)  # fmt: skip
    second = ServiceInfo(7, "SP2", "per_use", flow_probed={"decline": probed},
                         recent_findings=findings)  # fmt: skip
    spec = NightSpec(
        start=START,
        end=START + timedelta(minutes=5),
        period_start=PERIOD_START,
        nights_left=1,
        flows=("monthly", "decline"),  # monthly rows: [monthly, decline]; per_use rows: [decline]
        flow_billing=FLOW_BILLING,
        flow_seconds={"decline": 200.0, "monthly": 400.0},
    )
    sims = [SimInfo(1, "13800130001", None, 5000)]
    plan = plan_night([first, second], sims, spec)
    assert plan == reference_plan_night([first, second], sims, spec)
    assert [(i.service_id, i.sp_code, i.flow) for i in plan.items] == [(7, "SP2", "decline")]
    assert plan.due == (2 if findings == 0 else 0)

"""Nights plan MMS and WAP services with their own flows, on modems that browse only."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dialbot.flows.channels import channel_flow
from dialbot.scheduling.planner import NightSpec, ServiceInfo, SimInfo, plan_night
from dialbot.scheduling.schedules import period_bounds

SH = ZoneInfo("Asia/Shanghai")
FLOW_BILLING = {"decline": ("monthly", "per_use"), "monthly": ("monthly",), "per_use": ("per_use",)}
SECONDS = {"decline": 60.0, "monthly": 200.0, "per_use": 120.0, "mms": 260.0,
           "mms_per_use": 150.0, "wap": 90.0}  # fmt: skip


def night(flows: tuple[str, ...]) -> NightSpec:
    start = datetime(2026, 11, 29, 1, 0, tzinfo=SH)
    return NightSpec(
        start=start,
        end=start + timedelta(hours=2),
        period_start=period_bounds("month", start, SH)[0],
        nights_left=1,
        flows=flows,
        flow_billing=FLOW_BILLING,
        flow_seconds=SECONDS,
        per_sp_concurrency=4,
        balance_floor_fen=100,
    )


def test_channel_flow_translates_the_scheduled_flows() -> None:
    assert channel_flow("monthly", "mms", "monthly") == "mms"
    assert channel_flow("per_use", "mms", "per_use") == "mms_per_use"
    assert channel_flow("decline", "mms", "monthly") == "decline"
    assert channel_flow("monthly", "wap", "monthly") == "wap"
    assert channel_flow("monthly", "sms", "monthly") == "monthly"


def test_mms_services_get_mms_flows_on_browsing_modems_only() -> None:
    services = [
        ServiceInfo(1, "SP1", "monthly", channel="mms"),
        ServiceInfo(2, "SP2", "per_use", channel="mms"),
        ServiceInfo(3, "SP3", "monthly"),
    ]
    sims = [SimInfo(10, "13800130010", None, 5000, data="none"),
            SimInfo(11, "13800130011", None, 5000, data="http")]  # fmt: skip
    plan = plan_night(services, sims, night(("monthly", "per_use")))
    items = {i.service_id: i for i in plan.items}
    assert (items[1].flow, items[2].flow, items[3].flow) == ("mms", "mms_per_use", "monthly")
    assert items[1].sim_id == items[2].sim_id == 11
    assert items[1].duration_s == SECONDS["mms"]


def test_no_browsing_modem_leaves_mms_unplanned() -> None:
    services = [ServiceInfo(1, "SP1", "monthly", channel="mms"), ServiceInfo(2, "SP2", "monthly")]
    plan = plan_night(services, [SimInfo(10, "13800130010", None, 5000, data="none")],
                      night(("decline", "monthly")))  # fmt: skip
    assert [i.service_id for i in plan.items] == [2]


def test_the_controller_learns_from_heartbeats_which_sims_browse(session_factory) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from dialbot.db.runs import upsert_sim
    from dialbot.scheduling.distributed import RegistryFleet
    from dialbot.scheduling.hosts import beat, register_worker

    worker = register_worker(session_factory, host="h", pid=1, bank="A", region=None, modems=2)
    one = upsert_sim(session_factory, "13900000001", bank="A", slot=1, state="ready")
    two = upsert_sim(session_factory, "13900000002", bank="A", slot=2, state="ready")
    beat(session_factory, worker, "A", sims=[
        {"sim_id": one, "msisdn": "13900000001", "balance_fen": 900, "data": "http"},
        {"sim_id": two, "msisdn": "13900000002", "balance_fen": 900, "data": "none"},
    ])  # fmt: skip
    sims = RegistryFleet(session_factory, timedelta(minutes=5)).ready_sims()
    assert sorted((s.msisdn, s.data) for s in sims) == [
        ("13900000001", "http"),
        ("13900000002", "none"),
    ]

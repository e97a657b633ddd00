"""The month after, on the virtual bank: a simulated month at a small time scale.

The world's calendar runs at 1.5e-5 (a simulated day lasts 1.296 s) from
2026-01-01, so the first month boundary (Feb 1) is ~40 s after the bank
starts, and nothing is due before ~22 s (the trial's reminder). Six SIMs each order one monthly service at once (in parallel), five
with the `keep` flow (the subscription is kept for the follow-up's horizon),
one with the standard monthly flow (cancelled at once). Follow-up nights:

1. right after the orders: nothing has happened yet, nothing is found;
2. once the renewals, the trial's conversion and the late charge are on the
   carrier's ledger: each behaviour is found on this night, with the later
   evidence (the itemized bill); the honest renewal, reminded, gives nothing;
   the bill tells the duplicate from the overcharge;
3. past the horizon: the kept subscriptions are cancelled (no SIM is left
   subscribed) and, past the follow-up's end, nothing is followed any more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from flowrig import Rig, serve
from sqlalchemy import select

from dialbot.db.catalogue import list_services
from dialbot.db.models import Run
from dialbot.db.obligations import orders_of_sim, sims_following
from dialbot.fleet import Fleet
from dialbot.flows.follow import FollowOutcome
from dialbot.flows.loader import keep_flow, load_flows, standard_flows
from dialbot.flows.record import now
from dialbot.flows.runner import RunOutcome, SimRef, service_info
from dialbot.flows.runtime import LocalFleet
from dialbot.flows.station import FleetSink, Station

DAY_S = 1.296  # a simulated day at calendar time_scale 1.5e-5
FOLLOW_DAYS = 40.0  # the horizon: past Feb 1 (and the night after it), before Mar 1

# name -> (flow, service keys, behaviour, findings on night 2)
CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any], set[str]]] = {
    "honest": ("keep", {}, {}, set()),
    "no_reminder": ("keep", {}, {"renews_without_reminder": True}, {"RENEWAL_WITHOUT_REMINDER"}),
    "silent_trial": ("keep", {"trial_days": 20}, {"trial_converts_silently": True},
                     {"TRIAL_CONVERTED_SILENTLY"}),
    "after_cancel": ("monthly", {}, {"charge_after_cancel": True,
                                     "charge_after_cancel_delay_ms": 25000},
                     {"CHARGE_AFTER_CANCEL"}),
    "double": ("keep", {}, {"double_charge": True}, {"DUPLICATE_CHARGE"}),
    "twice_price": ("keep", {}, {"charge_factor": 2.0}, {"OVERCHARGE"}),
}  # fmt: skip
# What each order's own run finds (judged then, never again on a later night).
AT_ORDER = {"double": {"DUPLICATE_CHARGE"}, "twice_price": {"OVERCHARGE"}}


def world() -> dict[str, Any]:
    services = []
    for i, (_, keys, behaviour, _) in enumerate(CASES.values()):
        services.append(
            {
                "code": f"M{i}",
                "name": f"月{'甲乙丙丁戊己'[i]}资讯",
                "access": f"10658011{i:02d}",
                "billing": "monthly",
                "price_fen": 500,
                "subscribe": f"DG{i}",
                "cancel": f"TD{i}",
                "use": f"KS{i}",
                "behaviour": {"latency_ms": [5, 40], **behaviour},
                **keys,
            }
        )
    return {
        "seed": 14,
        "calendar": {"time_scale": 0.000015, "start": "2026-01-01T00:00:00+08:00"},
        "carrier": {"detail_query": "CXXD"},
        "bank": {"name": "month-bank", "modems": len(CASES), "balance_fen": 10000},
        "sps": [{"code": "902001", "name": "月度传媒", "hotline": "4008002001",
                 "services": services}],
    }  # fmt: skip


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def in_parallel(fn: Callable[[int], Any], n: int) -> list[Any]:
    out: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            out[i] = fn(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return out


class Month:
    """The robot's side: one station, one SIM per case."""

    def __init__(self, rig: Rig, fleet: Fleet, sink: FleetSink) -> None:
        self.rig, self.fleet = rig, fleet
        self.station = Station(rig.db, rig.config, fleet, self._catalogue())
        self.station.env = replace(self.station.env, follow_days=FOLLOW_DAYS, follow_day_s=DAY_S)
        sink.bind(self.station.watch)
        self.slots = sorted(fleet.slots, key=lambda s: s.entry.slot)
        self.sims: list[SimRef] = [self.station.enrol(s) for s in self.slots]  # type: ignore[misc]
        self.views = {v.service_code: v for v in list_services(rig.db)}

    def _catalogue(self) -> tuple:
        return tuple(service_info(v) for v in list_services(self.rig.db))

    def lease(self, i: int) -> Any:
        return self.fleet.lease(bank=self.slots[i].bank.name, slot=self.slots[i].entry.slot)

    def order(self, i: int) -> RunOutcome:
        flow_name = list(CASES.values())[i][0]
        flow = keep_flow() if flow_name == "keep" else standard_flows()[flow_name]
        with self.lease(i) as lease:
            return self.station.probe(lease, self.sims[i], flow, self.views[f"M{i}"])

    def night(self) -> list[FollowOutcome | None]:
        def one(i: int) -> FollowOutcome | None:
            with self.lease(i) as lease:
                return self.station.follow(lease, self.sims[i])

        return in_parallel(one, len(CASES))


def ledger_has(rig: Rig, reasons: dict[int, str]) -> Callable[[], bool]:
    """Whether SIM slot i's ledger holds an entry with reason r, for every (i, r)."""

    def check() -> bool:
        sims = rig.truth()["sims"]
        by_slot = {s["slot"]: [e["reason"] for e in s["ledger"]] for s in sims.values()}
        return all(r in by_slot.get(i + 1, []) for i, r in reasons.items())

    return check


def calendar_passed(rig: Rig, when: datetime) -> Callable[[], bool]:
    network: Any = rig.bank.network
    calendar = network.renewals.calendar

    def check() -> bool:
        return bool(rig.bank.call(lambda: calendar.date_at(network.clock.elapsed()) >= when))

    return check


def test_a_simulated_month(tmp_path: Path) -> None:
    with serve(tmp_path / "month", world()) as rig, rig.fleet() as (fleet, sink):
        month = Month(rig, fleet, sink)
        orders = in_parallel(month.order, len(CASES))
        for name, outcome in zip(CASES, orders, strict=True):
            assert outcome.completed and outcome.cleanup_error is None, (name, outcome.error)
            assert {f.code for f in outcome.findings} == AT_ORDER.get(name, set()), name
        kept = {m: s for m, s in rig.subscribed().items()}
        assert len(kept) == 5, "the keep probes leave their subscriptions on"

        first = month.night()
        assert all(o is not None and o.state.value == "done" for o in first)
        assert [f.code for o in first if o for f in o.findings] == []
        assert len(rig.subscribed()) == 5, "a follow-up night spares what is kept"

        wait_until(
            ledger_has(rig, {0: "renewal", 1: "renewal", 2: "trial_conversion",
                             3: "after_cancel", 4: "renewal", 5: "renewal"}),
            90.0, "the renewals, the conversion and the late charge",
        )  # fmt: skip
        second = month.night()
        for i, (name, (_, _, _, want)) in enumerate(CASES.items()):
            out = second[i]
            assert out is not None and out.state.value == "done", name
            assert {f.code for f in out.findings} == want, (name, out.findings)
            for f in out.findings:
                assert f.service_code == f"M{i}" and f.evidence, name
                assert f.amount_fen == 500, (name, f)

        horizon = max(ob.keep_until for s in month.sims for ob in
                      orders_of_sim(rig.db, s.msisdn, ["902001"]) if ob.keep_until)  # fmt: skip
        wait_until(lambda: now() > horizon, 60.0, "the follow-up's horizon")
        month.night()
        assert rig.subscribed() == {}, "no SIM left subscribed beyond its horizon"
        for sim in month.sims:
            assert all(ob.discharged_at for ob in orders_of_sim(rig.db, sim.msisdn, ["902001"]))
        follow_end = max(ob.follow_until for s in month.sims for ob in
                         orders_of_sim(rig.db, s.msisdn, ["902001"]) if ob.follow_until)  # fmt: skip
        wait_until(lambda: now() > follow_end, 30.0, "the follow-up's end")
        last = month.night()
        assert sims_following(rig.db) == []
        assert [f.code for o in last if o for f in o.findings] == []


def test_kept_subscription_spared_by_hygiene_ended_by_any_other_use(tmp_path: Path) -> None:
    """Only a follow-up, a hygiene check and the keep probe's own cleanup spare a kept
    subscription; a probe of another SP on that SIM ends it at once (fail closed), and the
    follow-up then judges the order as cancelled."""
    data = world()
    data["bank"]["modems"] = 1
    with serve(tmp_path / "keep", data) as rig, rig.fleet() as (fleet, sink):
        month = Month(rig, fleet, sink)
        with month.lease(0) as lease:
            kept = month.station.probe(lease, month.sims[0], keep_flow(), month.views["M0"])
            assert kept.completed and kept.cleanup_error is None
            check = month.station.hygiene(lease, month.sims[0], standard_flows()["hygiene"])
            assert check.error is None and check.findings == 0, "not a leak"
            assert len(rig.subscribed()) == 1
            [ob] = orders_of_sim(rig.db, month.sims[0].msisdn, ["902001"])
            assert ob.pending and ob.keep_until is not None and ob.keep_until > now()
            other = month.station.probe(
                lease, month.sims[0], standard_flows()["monthly"], month.views["M1"]
            )
            assert other.completed and other.cleanup_error is None
            assert rig.subscribed() == {}, "a probe of another SP ended the keeping"
            [ob, _] = orders_of_sim(rig.db, month.sims[0].msisdn, ["902001"])
            assert ob.discharged_at is not None
            follow = month.station.follow(lease, month.sims[0])
            assert follow is not None and follow.state.value == "done" and follow.findings == []


def test_a_night_looks_at_followed_sims_before_their_hygiene(tmp_path: Path) -> None:
    """The scheduler's recovery pass spares a kept subscription, its hygiene hook
    (LocalFleet.hygiene) follows the SIM's orders first, and the hygiene after it spares
    the kept subscription too."""
    data = world()
    data["bank"]["modems"] = 1
    with serve(tmp_path / "night", data) as rig, rig.fleet() as (fleet, sink):
        config = replace(rig.config, probe=replace(rig.config.probe, follow_days=FOLLOW_DAYS))
        local = LocalFleet(rig.db, config, fleet, load_flows(None))
        sink.bind(local.station.watch)
        assert local.station.env.follow_days == FOLLOW_DAYS
        [info] = local.ready_sims()
        slot = fleet.slots[0]
        with fleet.lease(bank=slot.bank.name, slot=slot.entry.slot) as lease:
            sim = SimRef(info.sim_id, info.msisdn)
            views = {v.service_code: v for v in list_services(rig.db)}
            assert local.station.probe(lease, sim, keep_flow(), views["M0"]).completed
        assert local.discharge_pending() == 0  # the night's recovery pass spares the keeping
        assert len(rig.subscribed()) == 1
        local.hygiene([info.sim_id])
        with rig.db() as session:
            follows = session.scalars(select(Run).where(Run.flow == "follow")).all()
            assert [r.state for r in follows] == ["done"]
        [ob] = orders_of_sim(rig.db, info.msisdn, ["902001"])
        assert ob.followed_at is not None and ob.pending
        assert len(rig.subscribed()) == 1, "kept: the horizon is weeks away"


def test_a_defect_in_a_follow_up_ends_it_and_its_orders_stay_to_follow(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A defect ends the follow-up (aborted), never the night; the next one judges."""
    import dialbot.flows.follow as follow_module

    data = world()
    data["bank"]["modems"] = 1
    with serve(tmp_path / "defect", data) as rig, rig.fleet() as (fleet, sink):
        month = Month(rig, fleet, sink)
        with month.lease(0) as lease:
            kept = month.station.probe(lease, month.sims[0], keep_flow(), month.views["M0"])
            assert kept.completed
            real = follow_module.look

            def broken(*args: Any, **kwargs: Any) -> datetime:
                raise RuntimeError("a defect")

            monkeypatch.setattr(follow_module, "look", broken)
            out = month.station.follow(lease, month.sims[0])
            assert out is not None and out.state.value == "aborted"
            assert "a defect" in (out.error or "")
            assert sims_following(rig.db) == [month.sims[0].msisdn]
            monkeypatch.setattr(follow_module, "look", real)
            again = month.station.follow(lease, month.sims[0])
            assert again is not None and again.state.value == "done"

"""The month after, planned: a schedule lists `keep` with a `follow_days` horizon.

Nights of the schedule run one after another (``run_night`` with this host's
real runtime: the local fleet over real ptys, the flow runner, the watch)
on a virtual bank whose calendar runs at 4e-5 (a simulated day lasts
3.456 s) from 2026-01-20: Feb 1, the first month boundary, comes ~41 s
after the bank starts, Mar 1 ~138 s. Three monthly services, one per SP:
an honest one (reminded from 10086901 before its renewal), one that renews
without a reminder, and a free trial that turns paid silently.

1. The first night plans a `keep` probe of each service (the planner does,
   as due coverage: nothing is injected), each on its own SIM; the orders
   carry the schedule's horizon (keep_until = order + follow_days) and stay
   subscribed.
2. Once the renewals and the conversion are on the carrier's ledger, the
   next night (its SIMs all owe a kept cleanup, so it plans nothing) looks
   at every followed SIM first: each behaviour is found on this night, with
   its evidence and the tariff; the honest renewal gives nothing.
3. Past the horizon, a last night cancels the kept subscriptions, finds
   nothing new and plans no keep again (covered this period; a kept
   subscription is never a second look): no SIM stays subscribed and no
   obligation is pending.

The horizon is in the probe's days (``[probe] time_scale`` 0.02: a day is
1728 s), so ``follow_days = 0.05`` keeps the orders ~86 s: past Feb 1 and
the night after it (~40 s to spare), and cancelled before Mar 1 (~40 s).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flows.flowrig import Rig, serve
from sqlalchemy import select

from dialbot.db.evidence import verify_chain
from dialbot.db.models import CleanupObligation, Finding, Run, Service, Sim
from dialbot.db.obligations import sims_with_pending
from dialbot.db.types import utcnow
from dialbot.flows.record import now
from dialbot.flows.runtime import local_runtime
from dialbot.scheduling.models import NightPlan, PlanItemRow
from dialbot.scheduling.schedules import parse_schedule
from dialbot.scheduling.service import NightResult, run_night

FOLLOW_DAYS = 0.05
PROBE_DAY_S = 86400 * 0.02  # a day of [probe] time_scale 0.02
# service code -> (sp code, service keys, behaviour, findings on the night after Feb 1)
CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any], set[str]]] = {
    "HONEST": ("903001", {}, {}, set()),
    "NOREM": ("903002", {}, {"renews_without_reminder": True}, {"RENEWAL_WITHOUT_REMINDER"}),
    "TRIAL": ("903003", {"trial_days": 5}, {"trial_converts_silently": True},
              {"TRIAL_CONVERTED_SILENTLY"}),
}  # fmt: skip
# What must be on the carrier's ledger before the night after the boundary.
LEDGER = {"HONEST": "renewal", "NOREM": "renewal", "TRIAL": "trial_conversion"}
SCHEDULE = {
    "name": "month",
    "cron": "0 1 1 * *",  # once a month: tonight is the period's only night, all of it is due
    "window_end": "05:30",
    "flows": ["keep"],
    "coverage": "month",
    "follow_days": FOLLOW_DAYS,
    "selection": {"billing": ["monthly"]},
}


def world() -> dict[str, Any]:
    sps = []
    for i, (code, (sp, keys, behaviour, _)) in enumerate(CASES.items()):
        service = {"code": code, "name": f"月度{'甲乙丙'[i]}讯", "access": f"106580300{i}",
                   "billing": "monthly", "price_fen": 500, "subscribe": f"DG{i}",
                   "cancel": f"TD{i}", "use": f"KS{i}",
                   "behaviour": {"latency_ms": [5, 40], **behaviour}, **keys}  # fmt: skip
        sps.append({"code": sp, "name": f"月度传媒{i}", "hotline": f"400800300{i}",
                    "services": [service]})  # fmt: skip
    return {
        "seed": 15,
        "calendar": {"time_scale": 0.00004, "start": "2026-01-20T00:00:00+08:00"},
        "carrier": {"detail_query": "CXXD"},
        "bank": {"name": "keep-bank", "modems": len(CASES), "balance_fen": 10000},
        "sps": sps,
    }


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def on_ledger(rig: Rig) -> Callable[[], bool]:
    """Whether every renewal and the conversion is on the carrier's ledger."""

    def check() -> bool:
        sims = rig.truth()["sims"].values()
        seen = {(e["service_code"], e["reason"]) for s in sims for e in s["ledger"]}
        return all((code, reason) in seen for code, reason in LEDGER.items())

    return check


def follow_findings(rig: Rig, since: datetime) -> dict[str, set[str]]:
    """Finding codes per service of the follow-ups that ran since ``since``."""
    with rig.db() as session:
        rows = session.execute(
            select(Finding.service_code, Finding.code)
            .join(Run, Finding.run_id == Run.id)
            .where(Run.flow == "follow", Run.created_at >= since)
        ).all()
    out: dict[str, set[str]] = {}
    for service, code in rows:
        out.setdefault(service or "", set()).add(code)
    return out


def test_a_schedule_keeps_and_follows_through_a_month(tmp_path: Path) -> None:
    schedule = parse_schedule(SCHEDULE, "schedules/month.toml")
    with serve(tmp_path, world()) as rig:
        runtime = local_runtime(rig.config, rig.db)
        nights = 0

        def night() -> NightResult:
            nonlocal nights
            nights += 1  # each night opens a minute after the previous one's key
            start = utcnow() + timedelta(minutes=nights)
            return run_night(rig.db, schedule, runtime, now=start, window=timedelta(minutes=10))

        try:
            first = night()
            assert first.finished and first.counts == {"done": 3}, first.counts
            with rig.db() as session:
                items = session.scalars(select(PlanItemRow)).all()
                services = dict(session.execute(select(Service.id, Service.code)).all())
                obligations = session.scalars(select(CleanupObligation)).all()
                runs = {r.id: r for r in session.scalars(select(Run).where(Run.flow == "keep"))}
            assert sorted((services[i.service_id], i.flow, i.reason) for i in items) == [
                (code, "keep", "due") for code in sorted(CASES)
            ], "the planner plans a keep probe of every monthly service"
            assert len({i.sim_id for i in items}) == 3
            assert len(obligations) == 3 and all(ob.discharged_at is None for ob in obligations)
            for ob in obligations:
                assert ob.keep_until is not None and ob.follow_until is not None
                ordered = runs[ob.run_id].started_at
                assert ordered is not None
                held = (ob.keep_until - ordered).total_seconds()
                assert abs(held - FOLLOW_DAYS * PROBE_DAY_S) < 30, "the schedule's horizon"
                after = (ob.follow_until - ob.keep_until).total_seconds()
                assert after == 3 * PROBE_DAY_S, "followed three days past the cancellation"
            assert len(rig.subscribed()) == 3, "the keep probes leave their orders on"

            wait_until(on_ledger(rig), 90.0, "the renewals and the trial's conversion")
            since = utcnow()
            second = night()
            assert second.counts == {}, "every SIM owes its kept cleanup: nothing planned"
            soonest = min(ob.keep_until for ob in obligations if ob.keep_until)
            assert len(rig.subscribed()) == 3, f"kept until the horizon ({soonest - now()} left)"
            found = follow_findings(rig, since)
            assert found == {c: w for c, (_, _, _, w) in CASES.items() if w}, found
            with rig.db() as session:
                rows = session.scalars(select(Finding).where(Finding.created_at >= since)).all()
            assert rows and all(f.evidence and f.amount_fen == 500 for f in rows)
            assert second.hygiene_findings >= len(rows), "the night counts what it followed"

            horizon = max(ob.keep_until for ob in obligations if ob.keep_until)
            wait_until(lambda: now() > horizon, 90.0, "the horizon")
            since = utcnow()
            third = night()
            assert follow_findings(rig, since) == {}, "nothing new after the boundary"
            with rig.db() as session:
                plan = session.get(NightPlan, third.night.id)
                assert plan is not None
                later = session.scalars(select(PlanItemRow).where(PlanItemRow.plan_id == plan.id))
                assert [i.flow for i in later] == [], "a kept order is never a second look"
                notes = list(plan.notes)
                ended = session.scalars(select(CleanupObligation)).all()
                sims = session.scalars(select(Sim.msisdn)).all()
                every = session.scalars(select(Finding)).all()
            # the SPs found out the night before are risky, yet their orders are not kept
            # again (and the honest one is not kept as a rotation filler either, when a SIM
            # holds only pairs of the SP it probed last)
            dropped = [
                re.match(r"(\d+) keep probes not planned as a second look", n) for n in notes
            ]
            counts = [int(m.group(1)) for m in dropped if m]
            assert counts and counts[0] in (2, 3), (
                notes,
                [(f.sp_code, f.service_code, f.code) for f in every],
            )
            assert rig.subscribed() == {}, "nothing stays subscribed past the horizon"
            assert sims_with_pending(rig.db) == []
            assert len(ended) == 3 and all(ob.discharged_at is not None for ob in ended)
            truth = rig.truth()["sims"]
            assert all(truth[m]["subscriptions"] == [] for m in sims)
            assert verify_chain(rig.db).ok
        finally:
            runtime.close()

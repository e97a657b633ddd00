"""The real stack across processes: two workers driving two virtual banks (real ptys,
python-gsmmodem-new, the flow runner) for a controller, over Redis and PostgreSQL.

A worker is killed with SIGKILL while one of its SIMs is subscribed by a
probe (monthly flow: order, confirm, use, cancel); a new
worker for its bank starts. The night must complete with no SIM subscribed
(the virtual network's ground truth), no service ordered twice and no run
counted twice, and the work spread by region.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cluster import Cluster, wait_for
from dbfixtures import reset_pg_schema
from sqlalchemy import select
from vbanks import serve_two_banks, subscribed

from dialbot.db.engine import engine_of, open_database
from dialbot.db.models import CleanupObligation, Run, Service, Sim
from dialbot.scheduling.hosts import Dispatch, fleet_status_rows
from dialbot.scheduling.models import FINAL_ITEM_STATES, NightPlan, PlanItemRow

REDIS = "redis://127.0.0.1:6379/0"
SERVICES = 12  # 4 north, 4 south, 4 nationwide


@pytest.fixture
def cluster(pg_database: str, tmp_path: Path) -> Iterator[Cluster]:
    if importlib.util.find_spec("dialbot.flows.runtime") is None:
        pytest.skip("dialbot.flows.runtime (the local runtime) is not available yet")
    reset_pg_schema(pg_database)
    c = Cluster(tmp_path, pg_database, REDIS, time_scale=0.02, flows='"monthly"',
                worker_runtime="dialbot.flows.runtime:local_runtime")  # fmt: skip
    yield c
    c.stop()


def test_real_workers_killed_mid_probe(cluster: Cluster) -> None:
    names = (cluster.bank("A"), cluster.bank("B"))
    with serve_two_banks(cluster.root, cluster.db_url, names) as banks:
        for letter in "AB":
            cluster.host_config(f"host{letter}", "")
            cluster.start_worker(letter)
        db = open_database(cluster.db_url)

        def both_alive() -> bool:
            rows = fleet_status_rows(db, timedelta(seconds=3))
            return len([r for r in rows if r.alive and r.ready_sims == 3]) == 2

        try:
            wait_for(both_alive, 60, "both workers to register")
        except AssertionError:
            raise AssertionError(cluster.logs()) from None
        controller = cluster.controller()
        with db() as session:
            a_sims = list(session.scalars(select(Sim.msisdn).where(Sim.bank == names[0])))

        def a_ordered_in_flight() -> bool:
            with db() as session:
                running = session.scalar(
                    select(Dispatch.id).where(Dispatch.bank == names[0],
                                              Dispatch.state == "running")
                )  # fmt: skip
                pending = session.scalar(
                    select(CleanupObligation.id).where(
                        CleanupObligation.discharged_at.is_(None),
                        CleanupObligation.sim.in_(a_sims),
                    )
                )
            return running is not None and pending is not None

        # killed while a SIM of bank A really is subscribed (the network's ground truth)
        wait_for(lambda: a_ordered_in_flight() and bool(subscribed(banks["A"])), 90,
                 "a probe of bank A to subscribe")  # fmt: skip
        cluster.workers["A0"].send_signal(signal.SIGKILL)
        cluster.workers["A0"].wait(10)
        cluster.start_worker("A")
        try:
            _, err = controller.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            controller.kill()
            _, err = controller.communicate()
        assert controller.returncode == 0, err.decode()[-3000:] + cluster.logs()
        wait_for(lambda: not any(subscribed(b) for b in banks.values()), 30,
                 "every SIM unsubscribed")  # fmt: skip

        def all_discharged() -> bool:  # the network acts before the worker records it
            with db() as session:
                return session.scalar(select(CleanupObligation.id).where(
                    CleanupObligation.discharged_at.is_(None))) is None  # fmt: skip

        wait_for(all_discharged, 30, "every cleanup obligation recorded as discharged")

        with db() as session:
            assert session.scalar(select(NightPlan.state)) == "done"
            items = session.scalars(select(PlanItemRow)).all()
            runs = session.execute(
                select(Run.service_id, Run.state, Sim.bank, Service.region)
                .join(Sim, Run.sim_id == Sim.id)
                .join(Service, Run.service_id == Service.id)
            ).all()
            obligations = session.scalars(select(CleanupObligation)).all()
            lost = session.scalars(select(Dispatch).where(Dispatch.state == "lost")).all()
        engine_of(db).dispose()
    assert len(items) == SERVICES and all(i.state in FINAL_ITEM_STATES for i in items)
    assert lost and {d.bank for d in lost} == {names[0]}
    done = Counter(service for service, state, _, _ in runs if state == "done")
    assert max(done.values()) == 1, "a run was counted twice"
    for _, _, bank, region in runs:
        assert region is None or bank == names[0 if region == "north" else 1]
    ordered = Counter((o.sp_code, o.service_code) for o in obligations)
    assert max(ordered.values()) == 1, "a service was ordered twice"
    assert all(o.discharged_at is not None for o in obligations)

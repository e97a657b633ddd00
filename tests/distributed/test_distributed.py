"""Two probe hosts and a controller on loopback, over real Redis / RabbitMQ and PostgreSQL.

Each host runs `dialbot worker --bank NAME` for one bank of its own region;
the controller runs a night with the distributed runtime. The sweep must
complete with the work spread by region; with a worker killed (SIGKILL)
mid-probe and a new one started for its bank, it must still complete with
no SIM left subscribed, no service ordered twice and no run counted twice.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cluster import Cluster, populate, wait_for
from dbfixtures import reset_pg_schema
from sqlalchemy import select

from dialbot.db.engine import engine_of, open_database
from dialbot.db.models import CleanupObligation, Run, Service, Sim
from dialbot.scheduling.hosts import Dispatch, fleet_status_rows
from dialbot.scheduling.models import FINAL_ITEM_STATES, NightPlan, PlanItemRow

REDIS = "redis://127.0.0.1:6379/0"
RABBIT = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture
def cluster(pg_database: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    reset_pg_schema(pg_database)
    c = Cluster(tmp_path, pg_database, getattr(request, "param", REDIS))
    yield c
    c.stop()


def start_two_banks(c: Cluster) -> None:
    c.add_bank("A", "north", 3, 13900000000)
    c.add_bank("B", "south", 3, 13900000100)
    db = open_database(c.db_url)
    populate(db)
    c.start_worker("A")
    c.start_worker("B")

    def both_alive() -> bool:
        rows = fleet_status_rows(db, timedelta(seconds=3))
        return len([r for r in rows if r.alive and r.ready_sims == 3]) == 2

    try:
        wait_for(both_alive, 90, "both workers to register")
    except AssertionError:
        raise AssertionError(c.logs()) from None
    engine_of(db).dispose()


def finish_controller(c: Cluster, proc: subprocess.Popen[bytes]) -> None:
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    assert proc.returncode == 0, err.decode()[-3000:] + c.logs()


def check_night(c: Cluster) -> dict[str, int]:
    """Every item final, no service ordered or counted twice, nothing left subscribed."""
    db = open_database(c.db_url)
    try:
        with db() as session:
            assert session.scalar(select(NightPlan.state)) == "done"
            items = session.scalars(select(PlanItemRow)).all()
            assert len(items) == 24
            assert all(i.state in FINAL_ITEM_STATES for i in items)
            runs = session.execute(
                select(Run.service_id, Run.state, Sim.bank, Service.region)
                .join(Sim, Run.sim_id == Sim.id)
                .join(Service, Run.service_id == Service.id)
            ).all()
            pending = session.scalars(
                select(CleanupObligation).where(CleanupObligation.discharged_at.is_(None))
            ).all()
        done = Counter(service for service, state, _, _ in runs if state == "done")
        assert max(done.values()) == 1, "a run was counted twice"
        assert not [r for r in runs if r.state in ("planned", "running", "judging")]
        for _, _, bank, region in runs:  # spread by region
            if region == "north":
                assert bank == c.bank("A")
            elif region == "south":
                assert bank == c.bank("B")
        assert {bank for _, _, bank, _ in runs} == {c.bank("A"), c.bank("B")}
        assert not pending
        assert c.still_subscribed() == set()
        assert max(c.orders().values()) == 1, "a service was ordered twice"
        return Counter(i.state for i in items)
    finally:
        engine_of(db).dispose()


def test_sweep_spreads_work_by_region(cluster: Cluster) -> None:
    start_two_banks(cluster)
    status = subprocess.run(
        [sys.executable, "-m", "dialbot", "fleet", "status", "--all-hosts", "--format", "json"],
        env=cluster.env(cluster.host_config("controller", "")), capture_output=True, check=True,
    )  # fmt: skip
    banks = {row["bank"]: row for row in json.loads(status.stdout)}
    assert set(banks) == {cluster.bank("A"), cluster.bank("B")}
    assert all(r["alive"] and r["host"] == socket.gethostname() for r in banks.values())
    assert banks[cluster.bank("A")]["region"] == "north" and banks[cluster.bank("A")]["modems"] == 3
    finish_controller(cluster, cluster.controller())
    counts = check_night(cluster)
    assert counts == {"done": 24}
    worker_b = cluster.workers["B1"]
    worker_b.send_signal(signal.SIGTERM)
    assert worker_b.wait(30) == 0, cluster.logs()
    db = open_database(cluster.db_url)
    alive = {r.bank: r.alive for r in fleet_status_rows(db, timedelta(seconds=3))}
    engine_of(db).dispose()
    assert alive == {cluster.bank("A"): True, cluster.bank("B"): False}


@pytest.mark.parametrize("cluster", [REDIS, RABBIT], indirect=True, ids=["redis", "rabbitmq"])
def test_worker_killed_mid_probe(cluster: Cluster) -> None:
    cluster.delay = 0.6
    cluster.extra_env["DIALBOT_BROKER_VISIBILITY_TIMEOUT_S"] = "4"
    start_two_banks(cluster)
    controller = cluster.controller()
    bank_a = cluster.bank("A")

    def a_mid_probe() -> set[str]:
        lines = cluster.lines()
        ordered = {ln[1] for ln in lines if ln[0] == "ORDER" and ln[3] == bank_a}
        return ordered - {ln[1] for ln in lines if ln[0] == "CANCEL"}

    wait_for(lambda: len({ln[1] for ln in cluster.lines() if ln[0] == "ORDER"}) >= 4
             and bool(a_mid_probe()), 60, "bank A mid-probe")  # fmt: skip
    cluster.workers["A0"].send_signal(signal.SIGKILL)
    cluster.workers["A0"].wait(10)
    in_flight = a_mid_probe()
    assert in_flight
    cluster.start_worker("A")  # the bank's next worker
    finish_controller(cluster, controller)
    counts = check_night(cluster)

    db = open_database(cluster.db_url)
    with db() as session:
        lost = session.scalars(select(Dispatch).where(Dispatch.state == "lost")).all()
        killed = session.scalars(select(Run).where(Run.state == "infra_failed")).all()
        obligations = session.scalars(select(CleanupObligation)).all()
        items = session.scalars(select(PlanItemRow)).all()
    engine_of(db).dispose()
    assert lost and all(d.bank == bank_a for d in lost)
    # the probes killed after ordering are infrastructure failures, cleaned by the next worker
    assert {str(r.service_id) for r in killed} >= in_flight
    by_run = {o.run_id: o for o in obligations}
    assert all(by_run[r.id].method == "cancel_all" for r in killed if r.id in by_run)
    infra_items = {str(i.service_id) for i in items if i.state == "infra_failed"}
    assert in_flight <= infra_items
    assert counts["done"] + counts.get("infra_failed", 0) == 24

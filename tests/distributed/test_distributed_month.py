"""The month after, distributed: kept orders are followed by a bank's worker on later nights.

The world of tests/scheduling/test_night_month.py (a virtual bank whose
calendar runs a month in about 100 s; an honest renewal, a renewal without
reminder, a trial that converts silently) is served for one real worker
(`dialbot worker`, the local runtime, real ptys) over Redis and PostgreSQL.
The controller's nights run in this process with the distributed runtime
(``run_night`` with ``dialbot.scheduling.distributed:runtime``, as
`dialbot schedule run --runtime ...` does):

1. the first night plans a `keep` probe of each service; the worker runs
   them and the orders stay subscribed;
2. once the renewals and the conversion are on the carrier's ledger, the
   next night (nothing planned: every SIM owes its kept cleanup) sends the
   bank's worker a hygiene task for the followed SIMs, whose follow-ups find
   RENEWAL_WITHOUT_REMINDER and TRIAL_CONVERTED_SILENTLY (nothing for the
   honest one);
3. past the horizon, a last night (the worker's cleanup pass) cancels the
   kept subscriptions: nothing stays subscribed, nothing is pending.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from cluster import Cluster, wait_for
from dbfixtures import reset_pg_schema
from flows.flowrig import Rig, use_database
from scheduling.test_night_month import CASES, SCHEDULE, follow_findings, on_ledger, world
from sqlalchemy import select

from dialbot.catalog import import_catalog
from dialbot.config import load_config
from dialbot.db.engine import engine_of, open_database
from dialbot.db.models import CleanupObligation
from dialbot.db.obligations import sims_with_pending
from dialbot.db.types import utcnow
from dialbot.demo import write_config
from dialbot.flows.record import now
from dialbot.scheduling.distributed import runtime as distributed_runtime
from dialbot.scheduling.hosts import fleet_status_rows
from dialbot.scheduling.remote_hygiene import HygieneTask
from dialbot.scheduling.schedules import parse_schedule
from dialbot.scheduling.service import NightResult, run_night
from dialbot.sim.bank import VirtualBank
from dialbot.sim.catalog import write_catalog
from dialbot.sim.worldfile import load_world

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def cluster(pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    if importlib.util.find_spec("dialbot.flows.runtime") is None:
        pytest.skip("dialbot.flows.runtime (the local runtime) is not available yet")
    reset_pg_schema(pg_database)
    c = Cluster(tmp_path, pg_database, REDIS, time_scale=0.02,
                worker_runtime="dialbot.flows.runtime:local_runtime")  # fmt: skip
    for key, value in c.env(tmp_path / "unused.toml").items():  # the controller is this process
        if key.startswith("DIALBOT_BROKER_"):
            monkeypatch.setenv(key, value)
    yield c
    c.stop()


@pytest.fixture
def served(cluster: Cluster) -> Iterator[Rig]:
    """The month's world as bank A, served for its worker; a Rig over the shared database."""
    folder = cluster.root / "hostA"
    (folder / "hardware").mkdir(parents=True, exist_ok=True)
    data = world()
    data["bank"]["name"] = cluster.bank("A")
    path = folder / "world.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    loaded = load_world(path)
    config_path = write_config(folder, loaded, cluster.time_scale)
    use_database(config_path, cluster.db_url)
    config = load_config(config_path)
    with (folder / "catalog.csv").open("w", encoding="utf-8") as stream:
        write_catalog(loaded, stream)
    db = open_database(cluster.db_url)
    import_catalog(db, folder / "catalog.csv")
    inventory = folder / "hardware" / f"{loaded.bank_name}.toml"
    try:
        with VirtualBank(loaded, folder / "bank", inventory_path=inventory) as bank:
            yield Rig(loaded, bank, config, db)
    finally:
        engine_of(db).dispose()


def test_a_distributed_month_follows_kept_orders(cluster: Cluster, served: Rig) -> None:
    rig = served
    schedule = parse_schedule(SCHEDULE, "schedules/month.toml")
    cluster.start_worker("A")

    def alive() -> bool:
        rows = fleet_status_rows(rig.db, timedelta(seconds=3))
        return [(r.alive, r.ready_sims) for r in rows] == [(True, len(CASES))]

    try:
        wait_for(alive, 60, "the worker to register")
    except AssertionError:
        raise AssertionError(cluster.logs()) from None
    controller = load_config(cluster.host_config("controller", ""))
    runtime = distributed_runtime(controller, rig.db)
    nights = 0

    def night() -> NightResult:
        nonlocal nights
        nights += 1  # each night opens a minute after the previous one's key
        start = utcnow() + timedelta(minutes=nights)
        return run_night(rig.db, schedule, runtime, now=start, window=timedelta(minutes=10))

    try:
        first = night()
        assert first.finished and first.counts == {"done": 3}, (first.counts, cluster.logs())
        with rig.db() as session:
            obligations = session.scalars(select(CleanupObligation)).all()
        assert len(obligations) == 3 and all(ob.keep_until for ob in obligations)
        assert len(rig.subscribed()) == 3, "the keep probes leave their orders on"

        wait_for(on_ledger(rig), 90.0, "the renewals and the trial's conversion")
        since = utcnow()
        second = night()
        assert second.counts == {}, "every SIM owes its kept cleanup: nothing planned"
        assert len(rig.subscribed()) == 3, "kept until the horizon"
        found = follow_findings(rig, since)
        assert found == {c: w for c, (_, _, _, w) in CASES.items() if w}, (found, cluster.logs())
        with rig.db() as session:
            tasks = session.scalars(
                select(HygieneTask).where(HygieneTask.created_at >= since)
            ).all()
        assert tasks and {(t.bank, t.state) for t in tasks} == {(cluster.bank("A"), "done")}
        assert len(tasks[0].sim_ids) == 3, "the followed SIMs, though none is in the plan"
        assert tasks[0].checked == tasks[0].sim_ids

        horizon = max(ob.keep_until for ob in obligations if ob.keep_until)
        wait_for(lambda: now() > horizon, 90.0, "the horizon")
        since = utcnow()
        night()
        assert follow_findings(rig, since) == {}, "nothing new after the boundary"
        wait_for(lambda: rig.subscribed() == {}, 30, "the kept subscriptions cancelled")
        assert sims_with_pending(rig.db) == []
    finally:
        runtime.close()

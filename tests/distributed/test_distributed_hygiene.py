"""A distributed night checks its SIMs' hygiene through the banks' workers.

Two workers drive two virtual banks (real ptys, python-gsmmodem-new, the
local runtime) for a controller (`dialbot schedule run --runtime
dialbot.scheduling.distributed:runtime`), over Redis and PostgreSQL. Before
the night, an SP of bank A's world silently subscribes one of its SIMs
(nobody ordered it). The night must find that subscription in its first
hygiene check (UNSOLICITED_SUBSCRIPTION against that service, on that SIM,
before its first probe, nothing else against anyone), clean it (the
network's ground truth lists nothing at the end), check every SIM again
after its last probe, and record one finished hygiene task per bank and check.
"""

from __future__ import annotations

import importlib.util
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cluster import Cluster, wait_for
from dbfixtures import reset_pg_schema
from sqlalchemy import select
from vbanks import serve_two_banks, subscribed

from dialbot.config import load_config
from dialbot.db.engine import engine_of, open_database
from dialbot.db.models import CleanupObligation, Finding, Run, Service, Sim
from dialbot.scheduling.celery_app import broker_settings, make_app
from dialbot.scheduling.dispatch import ProbeJob, ProbeOutcome
from dialbot.scheduling.distributed import DistributedDispatcher
from dialbot.scheduling.hosts import fleet_status_rows
from dialbot.scheduling.models import PlanItemRow
from dialbot.scheduling.remote_hygiene import DistributedHygiene, HygieneTask
from dialbot.sim.bank import VirtualBank

REDIS = "redis://127.0.0.1:6379/0"
SILENT_SP = "930000"  # bank A's first SP (region north), one monthly service


@pytest.fixture
def cluster(pg_database: str, tmp_path: Path) -> Iterator[Cluster]:
    if importlib.util.find_spec("dialbot.flows.runtime") is None:
        pytest.skip("dialbot.flows.runtime (the local runtime) is not available yet")
    reset_pg_schema(pg_database)
    c = Cluster(tmp_path, pg_database, REDIS, time_scale=0.02, flows='"monthly"',
                worker_runtime="dialbot.flows.runtime:local_runtime")  # fmt: skip
    yield c
    c.stop()


def subscribe_silently(bank: VirtualBank, sp_code: str) -> str:
    """The SP bills and subscribes one SIM of the bank as its silent nights do; its number."""
    network: Any = bank.network

    def silent() -> str:
        msisdn = sorted(network.accounts)[0]
        agent = network.agents[sp_code]
        agent._silent_once(network.accounts[msisdn], agent.sp.services[0])()
        return msisdn

    return bank.call(silent)


def test_a_distributed_night_finds_and_cleans_a_silent_subscription(cluster: Cluster) -> None:
    names = (cluster.bank("A"), cluster.bank("B"))
    with serve_two_banks(cluster.root, cluster.db_url, names) as banks:
        victim = subscribe_silently(banks["A"], SILENT_SP)
        assert list(subscribed(banks["A"])) == [victim] and not subscribed(banks["B"])
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
        try:
            _, err = controller.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            controller.kill()
            _, err = controller.communicate()
        assert controller.returncode == 0, err.decode()[-3000:] + cluster.logs()
        wait_for(lambda: not any(subscribed(b) for b in banks.values()), 30,
                 "every SIM unsubscribed")  # fmt: skip

        with db() as session:
            findings = session.scalars(select(Finding)).all()
            runs = {r.id: r for r in session.scalars(select(Run))}
            items = session.scalars(select(PlanItemRow)).all()
            sims = {s.id: s for s in session.scalars(select(Sim))}
            tasks = session.scalars(select(HygieneTask).order_by(HygieneTask.id)).all()
            pending = session.scalars(
                select(CleanupObligation).where(CleanupObligation.discharged_at.is_(None))
            ).all()
        engine_of(db).dispose()
    assert {i.state for i in items} == {"done"}
    assert not pending
    assert [(f.code, f.sp_code, f.sim) for f in findings] == [
        ("UNSOLICITED_SUBSCRIPTION", SILENT_SP, victim)
    ], "the silent SP's subscription and nothing else"
    found = runs[findings[0].run_id]
    assert found.flow == "hygiene" and sims[found.sim_id].bank == names[0]
    probes = [i.run_id for i in items if sims[i.sim_id].msisdn == victim and i.run_id]
    assert not probes or found.id < min(probes), "found before the SIM's first probe"
    # one task per bank at the start of the night and one at its end, both finished
    assert [(t.bank, t.state) for t in tasks] == [(n, "done") for n in names] * 2
    assert [t.findings for t in tasks] == [1, 0, 0, 0]
    assert all(t.sim_ids and t.checked == t.sim_ids for t in tasks), "each SIM really checked"
    for sim_id in {i.sim_id for i in items}:  # every probed SIM checked before and after
        mine = sorted(r.id for r in runs.values() if r.sim_id == sim_id)
        first, last = runs[mine[0]], runs[mine[-1]]
        assert first.flow == last.flow == "hygiene" and first.id != last.id
        assert {first.state, last.state} == {"done"}


def test_a_check_and_a_probe_on_one_modem_never_overlap(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hygiene task arriving while its SIM is in a probe (as a late one would) waits for
    the worker's lease of the modem or skips the SIM: the two never drive it at once, and
    a skipped SIM is not counted as checked."""
    for key, value in cluster.env(cluster.root / "unused.toml").items():  # controller: here
        if key.startswith("DIALBOT_BROKER_"):
            monkeypatch.setenv(key, value)
    names = (cluster.bank("A"), cluster.bank("B"))
    with serve_two_banks(cluster.root, cluster.db_url, names) as banks:
        cluster.host_config("hostA", "")
        cluster.start_worker("A")
        db = open_database(cluster.db_url)
        wait_for(lambda: [r.alive for r in fleet_status_rows(db, timedelta(seconds=3))]
                 == [True], 60, "the worker to register")  # fmt: skip
        with db() as session:
            sim_id, msisdn = session.execute(
                select(Sim.id, Sim.msisdn).where(Sim.bank == names[0]).order_by(Sim.id)
            ).first()  # type: ignore[misc]
            service = session.scalars(
                select(Service).where(Service.region == "north").order_by(Service.id)
            ).first()
            assert service is not None
            sp_code = service.sp.code
        settings = broker_settings(load_config(cluster.host_config("controller", "")))
        app = make_app(settings)
        job = ProbeJob(0, 0, service.id, sp_code, "monthly", sim_id)
        outcome: list[ProbeOutcome] = []
        probe = threading.Thread(target=lambda: outcome.append(
            DistributedDispatcher(db, app, settings).run(job)))  # fmt: skip
        probe.start()
        try:
            wait_for(lambda: bool(subscribed(banks["A"])), 60, "the probe to subscribe its SIM")
            hook = DistributedHygiene(db, app, settings)
            found = hook([sim_id])
        finally:
            probe.join(120)
            app.close()
        assert outcome and outcome[0].status == "done", outcome
        with db() as session:
            runs = session.scalars(select(Run).where(Run.sim_id == sim_id)).all()
            task = session.scalars(select(HygieneTask)).one()
        engine_of(db).dispose()
    assert task.state == "done" and found == 0
    spans = sorted((r.started_at, r.ended_at, r.flow) for r in runs if r.started_at)
    assert {flow for _, _, flow in spans} >= {"monthly"}
    for (_, end, _), (start, _, _) in zip(spans, spans[1:], strict=False):
        assert end is not None and end <= start, f"runs on one modem overlap: {spans}"
    checked = [r for r in runs if r.flow == "hygiene" and r.state == "done"]
    assert task.checked == ([sim_id] if checked else [])
    assert (sim_id in hook.last.unchecked) == (not checked), msisdn

"""The controller's dispatcher against the real database, with the broker replaced
by a recorder and the workers played by the test (SQLite and PostgreSQL).

Covers what the subprocess tests cannot force: a worker lost *before* it
ordered (retried on another SIM of the right region), a redelivered message
(never run twice), and a bank with no live worker (given up, not waited on
for ever).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import write_session
from dialbot.db.models import Service, Sp
from dialbot.db.obligations import create_obligation
from dialbot.db.runs import upsert_sim
from dialbot.db.types import utcnow
from dialbot.scheduling.celery_app import PROBE_TASK, BrokerSettings, queue_name
from dialbot.scheduling.dispatch import NoCleanupNeeded, ProbeJob, ProbeOutcome, Runtime
from dialbot.scheduling.distributed import (
    DistributedCleanup,
    DistributedDispatcher,
    claim,
    create_dispatch,
    finish,
    get_dispatch,
)
from dialbot.scheduling.hosts import beat, fleet_status_rows, register_worker
from dialbot.scheduling.worker import BankWorker, register_tasks

SETTINGS = BrokerSettings(url="memory://", heartbeat_s=0.1, stale_after_s=0.6,
                          claim_timeout_s=1.0)  # fmt: skip


@dataclass
class RecordingApp:
    """Stands in for Celery: records what was sent and hands it to a handler thread."""

    handler: Any
    sent: list[tuple[int, str]] = field(default_factory=list)

    def send_task(self, name: str, args: list[int], queue: str) -> None:
        self.sent.append((args[0], queue))
        threading.Thread(target=self.handler, args=(args[0], queue), daemon=True).start()


def setup(db: sessionmaker[Session]) -> tuple[int, dict[str, int], dict[str, int]]:
    """Banks A (north, its worker will die), C (north), B (south); one SIM each."""
    with write_session(db) as session:
        sp = Sp(code="920001", name="SP", hotline=None)
        session.add(sp)
        session.flush()
        service = Service(sp_id=sp.id, code="S1", name="s", access_number="10660001",
                          billing="monthly", price_fen=500, subscribe_cmd="DG",
                          cancel_cmd="TD", use_cmd=None, region="north", version=1)  # fmt: skip
        session.add(service)
        session.flush()
        service_id = service.id
    sims, workers = {}, {}
    for bank, region, msisdn in (("A", "north", "13900000001"), ("C", "north", "13900000002"),
                                 ("B", "south", "13900000003")):  # fmt: skip
        sims[bank] = upsert_sim(db, msisdn, bank=bank, slot=1, state="ready")
        workers[bank] = register_worker(db, host=f"host-{bank}", pid=1, bank=bank,
                                        region=region, modems=1)  # fmt: skip
        beat(db, workers[bank], bank, sims=[{"sim_id": sims[bank], "msisdn": msisdn,
                                             "balance_fen": 1000}])  # fmt: skip
    return service_id, sims, workers


def test_lost_before_ordering_is_retried_on_another_sim_of_its_region(
    session_factory: sessionmaker[Session],
) -> None:
    db = session_factory
    service_id, sims, workers = setup(db)
    stop = threading.Event()

    def keep_c_and_b_alive() -> None:
        while not stop.wait(0.1):
            for bank in ("B", "C"):
                beat(db, workers[bank], bank)

    threading.Thread(target=keep_c_and_b_alive, daemon=True).start()

    def handle(dispatch_id: int, queue: str) -> None:
        if queue == queue_name("A"):  # claimed, then the worker dies before ordering
            assert claim(db, dispatch_id, workers["A"]) is not None
            return
        assert claim(db, dispatch_id, workers["C"]) is not None
        assert claim(db, dispatch_id, workers["C"]) is None  # a redelivery is not run again
        finish(db, dispatch_id, workers["C"], ProbeOutcome("done", ordered=True))

    app = RecordingApp(handle)
    dispatcher = DistributedDispatcher(db, app, SETTINGS, poll_s=0.05)
    try:
        outcome = dispatcher.run(ProbeJob(1, 1, service_id, "920001", "decline", sims["A"]))
    finally:
        stop.set()
    assert outcome.status == "done"
    assert [q for _, q in app.sent] == [queue_name("A"), queue_name("C")]
    first = get_dispatch(db, app.sent[0][0])
    assert (first.state, first.ordered) == ("lost", False)
    assert get_dispatch(db, app.sent[1][0]).retry_of_id == first.id
    rows = {r.bank: r for r in fleet_status_rows(db, timedelta(seconds=0.6))}
    assert not rows["A"].alive and rows["C"].alive and rows["C"].host == "host-C"


def test_lost_after_ordering_is_not_ordered_again(session_factory: sessionmaker[Session]) -> None:
    db = session_factory
    service_id, sims, workers = setup(db)

    def handle(dispatch_id: int, queue: str) -> None:
        assert claim(db, dispatch_id, workers["A"]) is not None
        create_obligation(db, sim="13900000001", sp_code="920001", service_code="S1",
                          access_number="10660001", cancel_cmd="TD")  # fmt: skip

    app = RecordingApp(handle)
    dispatcher = DistributedDispatcher(db, app, SETTINGS, poll_s=0.05)
    outcome = dispatcher.run(ProbeJob(1, 1, service_id, "920001", "decline", sims["A"]))
    assert (outcome.status, outcome.ordered) == ("infra_failed", True)
    assert len(app.sent) == 1


def test_a_bank_nobody_serves_is_given_up(session_factory: sessionmaker[Session]) -> None:
    db = session_factory
    service_id, sims, _ = setup(db)
    app = RecordingApp(lambda _d, _q: None)  # no worker takes anything
    dispatcher = DistributedDispatcher(db, app, SETTINGS, poll_s=0.05)
    outcome = dispatcher.run(ProbeJob(1, 1, service_id, "920001", "decline", sims["B"]))
    assert (outcome.status, outcome.ordered) == ("infra_failed", False)
    states = {get_dispatch(db, d).state for d, _ in app.sent}
    assert states == {"expired"}
    assert queue_name("B") in {q for _, q in app.sent}


def test_the_schedules_horizon_travels_with_the_probe_and_a_kept_order_is_not_waited_for(
    session_factory: sessionmaker[Session],
) -> None:
    """The probe's message carries the schedule's follow_days (the worker hands it to the
    probe); the night's cleanup waits for every bank's obligations but the subscriptions
    `keep` probes keep until their horizon (those sit the night out instead)."""
    db = session_factory
    service_id, sims, workers = setup(db)
    sent: list[dict[str, Any]] = []

    class KwargsApp:
        def send_task(self, name: str, args: list[int], queue: str, **extra: Any) -> None:
            sent.append(extra)
            assert claim(db, args[0], workers["A"]) is not None
            finish(db, args[0], workers["A"], ProbeOutcome("done", ordered=True))

    dispatcher = DistributedDispatcher(db, KwargsApp(), SETTINGS, poll_s=0.05)
    job = ProbeJob(1, 1, service_id, "920001", "keep", sims["A"], follow_days=35.0)
    assert dispatcher.run(job).status == "done"
    dispatcher.run(ProbeJob(2, 1, service_id, "920001", "decline", sims["A"]))
    assert sent == [{"kwargs": {"follow_days": 35.0}}, {}]

    class IdleApp:  # the workers' cleanup tasks do nothing: what is left is counted
        def send_task(self, name: str, queue: str, **extra: Any) -> None:
            pass

    later = utcnow() + timedelta(days=35)
    create_obligation(db, sim="13900000001", sp_code="920001", service_code="S1",
                      access_number="10660001", cancel_cmd="TD", follow_until=later,
                      keep_until=later)  # fmt: skip
    cleanup = DistributedCleanup(db, IdleApp(), SETTINGS, poll_s=0.05)
    beat(db, workers["A"], "A")  # bank A is live: its obligations are waited for
    assert cleanup.discharge_pending() == 0, "a kept order is not waited for"
    create_obligation(db, sim="13900000001", sp_code="920001", service_code="S1",
                      access_number="10660001", cancel_cmd="TD")  # fmt: skip
    beat(db, workers["A"], "A")
    assert cleanup.discharge_pending() == 1, "an order to cancel is"


def test_the_worker_hands_the_horizon_to_its_probe(session_factory: sessionmaker[Session]) -> None:
    """The probe task's follow_days reaches the local runtime's job (None: not given)."""
    db = session_factory
    service_id, sims, workers = setup(db)
    jobs: list[ProbeJob] = []

    class Recorder:
        def run(self, job: ProbeJob) -> ProbeOutcome:
            jobs.append(job)
            return ProbeOutcome("done", ordered=True)

    runtime = Runtime(dispatcher=Recorder(), cleanup=NoCleanupNeeded(), fleet=None,  # type: ignore[arg-type]
                      flow_billing={}, flow_seconds={})  # fmt: skip
    worker = BankWorker(db, runtime, "A", "north", 1, SETTINGS, worker_id=workers["A"])
    tasks: dict[str, Any] = {}

    class TaskApp:
        def task(self, name: str, acks_late: bool) -> Any:
            return lambda fn: tasks.setdefault(name, fn)

    register_tasks(TaskApp(), worker)
    for days in (35, None):
        job = ProbeJob(1, 1, service_id, "920001", "keep", sims["A"])
        dispatch_id = create_dispatch(db, job, sims["A"], "A", None)
        extra = {} if days is None else {"follow_days": days}
        assert tasks[PROBE_TASK](dispatch_id, **extra) == "done"
    assert [j.follow_days for j in jobs] == [35.0, None]

"""The controller's hygiene hook against the real database, with the broker replaced by a
recorder and the workers played by the test (SQLite and PostgreSQL).

Covers what the subprocess tests cannot force: a bank with no live worker (its
SIMs named, not checked, nothing sent), a redelivered task (never run twice), a
worker lost mid-check and a bank nobody serves (given up, not fatal: the other
banks' findings still count), and a task that fails on the worker.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.models import RunState
from dialbot.db.runs import create_run, transition, upsert_sim
from dialbot.scheduling.celery_app import HYGIENE_TASK, BrokerSettings, queue_name
from dialbot.scheduling.dispatch import NoCleanupNeeded, Runtime
from dialbot.scheduling.hosts import beat, register_worker, worker_alive
from dialbot.scheduling.remote_hygiene import DistributedHygiene, claim_task, get_task
from dialbot.scheduling.worker import BankWorker, register_tasks

SETTINGS = BrokerSettings(url="memory://", heartbeat_s=0.1, stale_after_s=0.6,
                          claim_timeout_s=1.0)  # fmt: skip
BANKS = (("A", "north"), ("B", "south"), ("C", "north"))


@dataclass
class Host:
    """One played worker: its runtime's hygiene hook records what it was asked and leaves
    a finished hygiene run for each SIM it checks (``busy``: SIMs it cannot lease now)."""

    worker: BankWorker
    findings: int
    asked: list[list[int]] = field(default_factory=list)
    fail: bool = False
    busy: set[int] = field(default_factory=set)

    def hygiene(self, sim_ids: Collection[int]) -> int:
        self.asked.append(sorted(sim_ids))
        if self.fail:
            raise RuntimeError("the modem's port went away")
        for sim_id in sorted(set(sim_ids) - self.busy):
            run = create_run(self.worker.db, "hygiene", sim_id=sim_id)
            for state in (RunState.RUNNING, RunState.JUDGING, RunState.DONE):
                transition(self.worker.db, run.id, state)
        return self.findings


def setup(db: sessionmaker[Session]) -> tuple[dict[str, list[int]], dict[str, Host]]:
    """Banks A, B, C with two SIMs each, a worker each (findings 1, 2, 4 per check)."""
    sims: dict[str, list[int]] = {}
    hosts: dict[str, Host] = {}
    for n, (bank, region) in enumerate(BANKS):
        sims[bank] = [upsert_sim(db, f"139000000{n}{k}", bank=bank, slot=k, state="ready")
                      for k in (1, 2)]  # fmt: skip
        worker_id = register_worker(db, host=f"host-{bank}", pid=1, bank=bank, region=region,
                                    modems=2)  # fmt: skip
        beat(db, worker_id, bank)
        runtime = Runtime(dispatcher=None, cleanup=NoCleanupNeeded(), fleet=None,  # type: ignore[arg-type]
                          flow_billing={}, flow_seconds={})  # fmt: skip
        worker = BankWorker(db, runtime, bank, region, 2, SETTINGS, worker_id=worker_id)
        host = Host(worker, findings=1 << n)
        runtime.hygiene = host.hygiene
        hosts[bank] = host
    return sims, hosts


def served_tasks(hosts: dict[str, Host]) -> dict[str, Any]:
    """The worker's registered tasks (bank A's worker object; each call names its worker)."""
    tasks: dict[str, Any] = {}

    class TaskApp:
        def task(self, name: str, acks_late: bool) -> Any:
            assert acks_late
            return lambda fn: tasks.setdefault(name, fn)

    register_tasks(TaskApp(), hosts["A"].worker)  # type: ignore[arg-type]
    return tasks


@dataclass
class RecordingApp:
    """Stands in for Celery: records what was sent and hands it to a handler thread."""

    handler: Any
    sent: list[tuple[int, str]] = field(default_factory=list)

    def send_task(self, name: str, args: list[int], queue: str) -> None:
        assert name == HYGIENE_TASK
        self.sent.append((args[0], queue))
        threading.Thread(target=self.handler, args=(args[0], queue), daemon=True).start()


def keep_alive(db: sessionmaker[Session], hosts: dict[str, Host], banks: str) -> threading.Event:
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.1):
            for bank in banks:
                beat(db, hosts[bank].worker.worker_id, bank)

    threading.Thread(target=loop, daemon=True).start()
    return stop


def wait_stale(db: sessionmaker[Session], worker_id: int) -> None:
    """Until the worker's heartbeat is stale (a deadline, not a sleep)."""
    done = threading.Event()
    for _ in range(100):
        if not worker_alive(db, worker_id, timedelta(seconds=SETTINGS.stale_after_s)):
            return
        done.wait(0.05)
    pytest.fail("the worker stayed alive")


def test_one_task_per_live_bank_and_a_dead_banks_sims_are_not_checked(
    session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    db = session_factory
    sims, hosts = setup(db)
    stop = keep_alive(db, hosts, "AB")
    wait_stale(db, hosts["C"].worker.worker_id)  # bank C's worker is gone
    tasks = served_tasks(hosts)
    hosts["B"].busy = {sims["B"][0]}  # in a probe when the check came: not checked

    def handle(task_id: int, queue: str) -> None:
        bank = queue.removeprefix(queue_name(""))
        assert hosts[bank].worker.run_hygiene(task_id) == hosts[bank].findings
        assert hosts[bank].worker.run_hygiene(task_id) == 0  # a redelivery runs nothing
        assert tasks[HYGIENE_TASK](task_id) == 0  # nor does the registered task, late

    app = RecordingApp(handle)
    hook = DistributedHygiene(db, app, SETTINGS, poll_s=0.05)  # type: ignore[arg-type]
    asked = sims["A"] + sims["B"][:1] + sims["C"]
    try:
        assert hook(asked) == 1 + 2
    finally:
        stop.set()
    assert sorted(q for _, q in app.sent) == [queue_name("A"), queue_name("B")]
    assert hosts["A"].asked == [sims["A"]] and hosts["B"].asked == [sims["B"][:1]]
    assert hosts["C"].asked == []
    assert sorted(hook.last.checked) == sims["A"]
    assert set(hook.last.unchecked) == set(sims["C"] + sims["B"][:1]), "never counted as checked"
    assert "no live worker" in hook.last.unchecked[sims["C"][0]]
    assert "not checked by its worker" in hook.last.unchecked[sims["B"][0]]
    named = [r.getMessage() for r in caplog.records if "not checked" in r.getMessage()]
    assert named and "1390000002" not in named[0], "named, masked"
    assert {get_task(db, t).state for t, _ in app.sent} == {"done"}


def test_a_lost_a_failed_and_an_untaken_task_are_not_fatal(
    session_factory: sessionmaker[Session],
) -> None:
    db = session_factory
    sims, hosts = setup(db)
    stop = keep_alive(db, hosts, "BC")  # A beats no more once it has claimed
    hosts["C"].fail = True

    def handle(task_id: int, queue: str) -> None:
        bank = queue.removeprefix(queue_name(""))
        if bank == "A":  # claims, then dies mid-check
            assert claim_task(db, task_id, hosts["A"].worker.worker_id) is not None
        elif bank == "C":
            assert hosts["C"].worker.run_hygiene(task_id) == 0
        # bank B's worker never takes its task (its queue is stuck)

    app = RecordingApp(handle)
    hook = DistributedHygiene(db, app, SETTINGS, poll_s=0.05)  # type: ignore[arg-type]
    try:
        assert hook(sims["A"] + sims["B"] + sims["C"]) == 0
    finally:
        stop.set()
    states = {q.removeprefix(queue_name("")): get_task(db, t) for t, q in app.sent}
    assert {b: r.state for b, r in states.items()} == {"A": "lost", "B": "expired",
                                                      "C": "failed"}  # fmt: skip
    assert "port went away" in (states["C"].error or "")
    assert hook.last.checked == [] and len(hook.last.unchecked) == 6
    # a late delivery of the expired task finds it final: nothing runs on B's modems
    assert hosts["B"].worker.run_hygiene(states["B"].id) == 0 and hosts["B"].asked == []


def test_a_check_past_the_deadline_is_not_waited_for(
    session_factory: sessionmaker[Session],
) -> None:
    db = session_factory
    sims, hosts = setup(db)
    stop = keep_alive(db, hosts, "ABC")
    release = threading.Event()

    def handle(task_id: int, queue: str) -> None:
        bank = queue.removeprefix(queue_name(""))
        if bank == "A":
            assert claim_task(db, task_id, hosts["A"].worker.worker_id) is not None
            release.wait(30)  # still checking when the night moves on
        else:
            hosts[bank].worker.run_hygiene(task_id)

    app = RecordingApp(handle)
    hook = DistributedHygiene(db, app, SETTINGS, poll_s=0.05, deadline_s=1.0)  # type: ignore[arg-type]
    try:
        assert hook(sims["A"] + sims["B"]) == 2
    finally:
        release.set()
        stop.set()
    assert set(hook.last.unchecked) == set(sims["A"])
    assert "not ended within" in hook.last.unchecked[sims["A"][0]]

"""Run state machine and heartbeat: illegal moves are refused and leave the run as it was."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.models import IllegalTransition, Run, RunState
from dialbot.db.runs import create_run, get_run, heartbeat, stale_runs, transition, upsert_sim
from dialbot.db.types import utcnow


def test_a_run_goes_planned_running_judging_done(session_factory: sessionmaker[Session]) -> None:
    sim_id = upsert_sim(session_factory, "13800000001", bank="sim-01", slot=1, state="ready")
    run = create_run(session_factory, "order-and-decline")
    assert run.state is RunState.PLANNED and run.attempt == 1
    running = transition(session_factory, run.id, RunState.RUNNING, modem="sim-01:1", sim_id=sim_id)
    assert running.started_at is not None and running.heartbeat_at is not None
    assert (running.modem, running.sim_id) == ("sim-01:1", sim_id)
    transition(session_factory, run.id, RunState.JUDGING)
    done = transition(session_factory, run.id, RunState.DONE)
    assert done.state is RunState.DONE and done.ended_at is not None
    assert get_run(session_factory, run.id).state is RunState.DONE


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([], RunState.DONE),
        ([], RunState.JUDGING),
        ([RunState.RUNNING], RunState.DONE),
        ([RunState.RUNNING], RunState.PLANNED),
        ([RunState.RUNNING, RunState.JUDGING], RunState.RUNNING),
        ([RunState.RUNNING, RunState.JUDGING, RunState.DONE], RunState.RUNNING),
        ([RunState.RUNNING, RunState.INFRA_FAILED], RunState.JUDGING),
        ([RunState.ABORTED], RunState.RUNNING),
    ],
)
def test_illegal_transitions_are_refused(
    session_factory: sessionmaker[Session], path: list[RunState], illegal: RunState
) -> None:
    run = create_run(session_factory, "monthly")
    for state in path:
        transition(session_factory, run.id, state)
    before = get_run(session_factory, run.id)
    with pytest.raises(IllegalTransition) as info:
        transition(session_factory, run.id, illegal, error="should not stick")
    assert info.value.new == illegal.value
    after = get_run(session_factory, run.id)
    assert after == before  # nothing of the refused move was stored


def test_direct_assignment_is_checked_too(session_factory: sessionmaker[Session]) -> None:
    run = create_run(session_factory, "monthly")
    with session_factory() as session:
        row = session.get(Run, run.id)
        assert row is not None
        with pytest.raises(IllegalTransition):
            row.state = RunState.DONE.value
    with pytest.raises(IllegalTransition):
        Run(flow="monthly", state=RunState.RUNNING.value)


def test_infra_failure_keeps_its_error_and_a_retry_counts_attempts(
    session_factory: sessionmaker[Session],
) -> None:
    run = create_run(session_factory, "monthly")
    transition(session_factory, run.id, RunState.RUNNING)
    failed = transition(session_factory, run.id, RunState.INFRA_FAILED, error="AT timeout")
    assert failed.error == "AT timeout" and failed.ended_at is not None
    retry = create_run(session_factory, "monthly", retry_of=run.id)
    assert (retry.attempt, retry.retry_of_id, retry.state) == (2, run.id, RunState.PLANNED)


def test_stale_runs_are_those_without_a_recent_heartbeat(
    session_factory: sessionmaker[Session],
) -> None:
    now = utcnow()
    alive = create_run(session_factory, "monthly")
    dead = create_run(session_factory, "monthly")
    idle = create_run(session_factory, "monthly")  # planned: never stale
    for run in (alive, dead):
        transition(session_factory, run.id, RunState.RUNNING, at=now - timedelta(minutes=10))
    heartbeat(session_factory, alive.id, at=now)
    stale = stale_runs(session_factory, timedelta(minutes=2), now=now)
    assert [r.id for r in stale] == [dead.id]
    assert idle.id not in [r.id for r in stale]


def test_upsert_sim_updates_and_moves_between_slots(
    session_factory: sessionmaker[Session],
) -> None:
    first = upsert_sim(session_factory, "13800000001", bank="b", slot=1, imsi="460001")
    again = upsert_sim(session_factory, "13800000001", state="ready")
    assert first == again
    other = upsert_sim(session_factory, "13800000002", bank="b", slot=1)  # the SIM was swapped
    assert other != first


def test_racing_starts_of_one_run_let_exactly_one_through(
    session_factory: sessionmaker[Session],
) -> None:
    """The move is checked on the run as read and written only if its state is unchanged:
    of workers starting the same run at once, one starts it and every other is refused,
    whether it lost before reading or between its read and its write."""
    for _ in range(5):
        run = create_run(session_factory, "monthly")
        results = race_to_start(session_factory, run.id, 8)
        assert sorted(results) == ["refused"] * 7 + ["started"]
        assert get_run(session_factory, run.id).state is RunState.RUNNING


def race_to_start(session_factory: sessionmaker[Session], run_id: int, workers: int) -> list[str]:
    barrier = threading.Barrier(workers)
    results: list[str] = []

    def start() -> None:
        barrier.wait()
        try:
            transition(session_factory, run_id, RunState.RUNNING, modem="bank:1")
            results.append("started")
        except IllegalTransition:
            results.append("refused")

    threads = [threading.Thread(target=start) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results

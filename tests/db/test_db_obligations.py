"""Cleanup obligations: durable before the order, pending until discharged, idempotent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import engine_of, open_database
from dialbot.db.obligations import (
    create_obligation,
    discharge,
    discharge_all_for_sim,
    followed_of_sim,
    mark_followed,
    pending_for_sim,
    record_attempt,
    sims_following,
    sims_with_pending,
)

SIM = "13800000001"


def oblige(session_factory: sessionmaker[Session], service: str, sim: str = SIM) -> int:
    return create_obligation(
        session_factory,
        sim=sim,
        sp_code="901001",
        service_code=service,
        access_number="1065800101",
        cancel_cmd="TD",
    ).id


def test_obligation_survives_a_restart_until_discharged(db_url: str) -> None:
    first = open_database(db_url)
    ob = oblige(first, "XHXH")
    engine_of(first).dispose()  # the process dies here

    second = open_database(db_url)
    try:
        assert sims_with_pending(second) == [SIM]
        (pending,) = pending_for_sim(second, SIM)
        assert (pending.id, pending.cancel_cmd, pending.pending) == (ob, "TD", True)
        after = record_attempt(second, ob, "no acknowledgement")
        assert (after.attempts, after.last_error) == (1, "no acknowledgement")
        done = discharge(second, ob, "cancel_all")
        assert done.method == "cancel_all" and not done.pending
        assert pending_for_sim(second, SIM) == []
        assert sims_with_pending(second) == []
    finally:
        engine_of(second).dispose()


def test_discharge_twice_keeps_the_first_record(session_factory: sessionmaker[Session]) -> None:
    ob = oblige(session_factory, "XHXH")
    first = discharge(session_factory, ob, "sp_keyword")
    second = discharge(session_factory, ob, "cancel_all")
    assert (second.method, second.discharged_at) == ("sp_keyword", first.discharged_at)


def test_cancel_all_discharges_only_that_sims_obligations(
    session_factory: sessionmaker[Session],
) -> None:
    oblige(session_factory, "A")
    oblige(session_factory, "B")
    other = oblige(session_factory, "A", sim="13800000002")
    assert discharge_all_for_sim(session_factory, SIM, "cancel_all") == 2
    assert pending_for_sim(session_factory, SIM) == []
    assert [o.id for o in pending_for_sim(session_factory, "13800000002")] == [other]


def test_bad_input_is_refused(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError, match="digits"):
        create_obligation(
            session_factory,
            sim=SIM,
            sp_code="901001",
            service_code="X",
            access_number="1065\r",
            cancel_cmd="TD",
        )
    ob = oblige(session_factory, "XHXH")
    with pytest.raises(ValueError, match="method"):
        discharge(session_factory, ob, "hope")
    assert [o.id for o in pending_for_sim(session_factory, SIM)] == [ob]


def test_followed_and_kept_until_their_horizons(session_factory: sessionmaker[Session]) -> None:
    """The month after: an order is followed until a look after `follow_until`; a kept one is
    kept (still pending) until `keep_until`, never past its follow-up."""
    t0 = datetime(2026, 11, 29, tzinfo=UTC)
    ob = create_obligation(
        session_factory, sim=SIM, sp_code="901001", service_code="XHXH",
        access_number="1065800101", cancel_cmd="TD",
        follow_until=t0 + timedelta(days=30), keep_until=t0 + timedelta(days=40),
    )  # fmt: skip
    oblige(session_factory, "PLAIN")  # not followed
    assert ob.keep_until == ob.follow_until, "kept no longer than followed"
    assert ob.kept(t0) and not ob.kept(t0 + timedelta(days=30))
    assert [o.id for o in followed_of_sim(session_factory, SIM)] == [ob.id]
    assert sims_following(session_factory) == [SIM]
    mark_followed(session_factory, [ob.id], t0 + timedelta(days=10))
    assert [o.id for o in followed_of_sim(session_factory, SIM)] == [ob.id]
    mark_followed(session_factory, [ob.id], t0 + timedelta(days=31))
    assert followed_of_sim(session_factory, SIM) == [] and sims_following(session_factory) == []
    assert {o.id for o in pending_for_sim(session_factory, SIM)} >= {ob.id}, "still owed a clean"
    assert not discharge(session_factory, ob.id, "cancel_all").kept(t0)

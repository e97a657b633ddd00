"""Evidence log: hash chain verifies, tampering is detected and named, appends stay linear."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import engine_of, open_database
from dialbot.db.evidence import (
    NewEvent,
    append_event,
    append_events,
    event_hash,
    events_by_id,
    events_for_run,
    verify_chain,
)
from dialbot.db.models import GENESIS_HASH
from dialbot.db.runs import create_run

SIM = "13800000001"


def record_some(session_factory: sessionmaker[Session], n: int = 5) -> list[int]:
    run = create_run(session_factory, "monthly")
    ids = []
    for i in range(n):
        row = append_event(
            session_factory,
            "sms_in" if i % 2 else "sms_out",
            sim=SIM,
            run_id=run.id,
            peer="1065800101",
            text=f"尊敬的用户，第{i}条",
            raw="0791683108200105F0",
            data={"i": i},
        )
        ids.append(row.id)
    return ids


def drop_append_only_guard(session_factory: sessionmaker[Session]) -> None:
    """What an intruder with DDL rights would do before editing evidence."""
    with session_factory.begin() as session:
        if session.get_bind().dialect.name == "sqlite":
            session.execute(text("DROP TRIGGER evidence_events_no_update"))
            session.execute(text("DROP TRIGGER evidence_events_no_delete"))
        else:
            session.execute(text("DROP TRIGGER evidence_events_append_only ON evidence_events"))


def test_chain_of_appended_events_verifies(session_factory: sessionmaker[Session]) -> None:
    ids = record_some(session_factory)
    assert ids == [1, 2, 3, 4, 5]
    events = events_by_id(session_factory, ids)
    assert events[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))
    result = verify_chain(session_factory)
    assert result.ok and result.checked == 5 and result.head_hash == events[-1].hash


def test_stored_event_reads_back_verbatim(session_factory: sessionmaker[Session]) -> None:
    at = datetime(2026, 11, 24, 1, 13, 7, 123456, tzinfo=timezone(timedelta(hours=8)))
    run = create_run(session_factory, "per_use")
    row = append_event(
        session_factory,
        "balance",
        sim=SIM,
        run_id=run.id,
        at=at,
        peer="10086",
        text="尊敬的客户，您的账户余额为12.34元。【中国移动】",
        data={"balance_fen": 1234},
    )
    (back,) = events_for_run(session_factory, run.id)
    assert back == row
    assert back.at == at and back.at.tzinfo is not None
    assert back.data == {"balance_fen": 1234}


def test_unstorable_characters_do_not_lose_the_event(
    session_factory: sessionmaker[Session],
) -> None:
    row = append_event(session_factory, "sms_in", sim=SIM, text="a\x00b", raw="00410000")
    (back,) = events_by_id(session_factory, [row.id])
    assert back.text == "a\ufffdb" and back.raw == "00410000"
    assert verify_chain(session_factory).ok


def test_append_only_guard_refuses_update_and_delete(
    session_factory: sessionmaker[Session],
) -> None:
    record_some(session_factory, 2)
    for statement in (
        "UPDATE evidence_events SET text = 'x' WHERE id = 1",
        "DELETE FROM evidence_events WHERE id = 2",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            with session_factory.begin() as session:
                session.execute(text(statement))
    assert verify_chain(session_factory).ok


def test_altered_text_is_detected_naming_the_event(
    session_factory: sessionmaker[Session],
) -> None:
    record_some(session_factory, 6)
    drop_append_only_guard(session_factory)
    with session_factory.begin() as session:
        session.execute(text("UPDATE evidence_events SET text = '您已成功退订' WHERE id = 4"))
    result = verify_chain(session_factory)
    assert not result.ok
    assert result.first_bad_id == 4
    assert result.reason is not None and "altered" in result.reason
    assert result.checked == 3


def test_rehashed_alteration_breaks_the_next_link(
    session_factory: sessionmaker[Session],
) -> None:
    """A forger who also recomputes the altered event's hash is caught by the next event."""
    record_some(session_factory, 4)
    (original,) = events_by_id(session_factory, [2])
    forged = dataclasses.replace(original, text="您已成功退订")
    forged_hash = event_hash(forged.id, forged.prev_hash, forged)
    drop_append_only_guard(session_factory)
    with session_factory.begin() as session:
        session.execute(
            text("UPDATE evidence_events SET text = :t, hash = :h WHERE id = 2"),
            {"t": forged.text, "h": forged_hash},
        )
    result = verify_chain(session_factory)
    assert (result.ok, result.first_bad_id) == (False, 3)
    assert result.reason is not None and "prev_hash" in result.reason and "event 2" in result.reason


def test_deleted_event_is_detected(session_factory: sessionmaker[Session]) -> None:
    record_some(session_factory, 5)
    drop_append_only_guard(session_factory)
    with session_factory.begin() as session:
        session.execute(text("DELETE FROM evidence_events WHERE id = 3"))
    result = verify_chain(session_factory)
    assert (result.ok, result.first_bad_id) == (False, 4)
    assert result.reason is not None and "event 3" in result.reason and "missing" in result.reason


def test_events_cut_off_the_end_are_detected(session_factory: sessionmaker[Session]) -> None:
    record_some(session_factory, 5)
    drop_append_only_guard(session_factory)
    with session_factory.begin() as session:
        session.execute(text("DELETE FROM evidence_events WHERE id >= 4"))
    result = verify_chain(session_factory)
    assert (result.ok, result.first_bad_id) == (False, 4)
    assert result.reason is not None and "end" in result.reason


def test_rejects_naive_times_and_unknown_kinds(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError, match="aware"):
        append_event(session_factory, "note", at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="kind"):
        append_event(session_factory, "rumour")
    assert verify_chain(session_factory).checked == 0


def test_concurrent_appends_keep_one_linear_chain(db_url: str) -> None:
    """Eight threads over two engines (as two processes would) append at once."""
    factories = [open_database(db_url), open_database(db_url)]
    threads, per_thread = 8, 15
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        factory = factories[n % 2]
        try:
            start.wait(timeout=30)
            for i in range(per_thread):
                if i % 5 == 4:
                    batch = [NewEvent("note", sim=f"w{n}", text=f"{i}.{k}") for k in range(2)]
                    append_events(factory, batch)
                else:
                    append_event(factory, "note", sim=f"w{n}", text=str(i))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    try:
        assert errors == []
        expected = threads * (per_thread + per_thread // 5)
        result = verify_chain(factories[0])
        assert result.ok, result.reason
        assert result.checked == result.head_id == expected
        events = events_by_id(factories[0], range(1, expected + 1))
        assert [e.id for e in events] == list(range(1, expected + 1))
        for n in range(threads):  # each writer's own events stay in its order
            mine = [e.text for e in events if e.sim == f"w{n}"]
            assert mine == sorted(mine, key=lambda t: tuple(int(p) for p in t.split(".")))
    finally:
        for factory in factories:
            engine_of(factory).dispose()


def test_times_are_stored_in_utc(session_factory: sessionmaker[Session]) -> None:
    at = datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=8)))
    row = append_event(session_factory, "note", at=at)
    assert row.at.tzinfo == UTC and row.at == at


def test_channel_event_kinds_are_stored_and_chained(
    session_factory: sessionmaker[Session],
) -> None:
    for kind in ("http", "wap_push", "mms", "call"):
        append_event(session_factory, kind, sim=SIM, text=kind, data={"k": kind})
    assert verify_chain(session_factory).ok


def test_every_json_shape_and_awkward_text_come_back_as_hashed(
    session_factory: sessionmaker[Session],
) -> None:
    """PostgreSQL receives a batch as one JSON document: whatever an event holds (JSON
    scalars, nesting, astral and control characters, quotes, text PostgreSQL cannot
    store) must come back exactly as it was hashed, or the chain would not verify."""
    values = ["abc", "", 5, 1.5, True, None, [1, "二", None, 2**70],
              {"k": "😀 \u2028 \\ \" '", "n": {"x": []}}, "line\nbreak\ttab\x01\x00"]  # fmt: skip
    events = [
        NewEvent("note", text=f"t{i}\x00\ud800", peer="p\udfff", raw="00\n01", data=v)
        for i, v in enumerate(values)
    ]
    rows = append_events(session_factory, events)
    back = events_by_id(session_factory, [r.id for r in rows])
    assert [dataclasses.astuple(r) for r in back] == [dataclasses.astuple(r) for r in rows]
    assert back[-1].data == "line\nbreak\ttab\x01\ufffd" and back[0].text == "t0\ufffd\ufffd"
    assert verify_chain(session_factory).ok


@pytest.mark.parametrize(
    "data",
    [None, "abc", 5, 1.5, True, [1, "二", None, 2**70], {"z": 1, "a": {"y": [], "b": "😀"}}],
)
def test_a_staged_event_hashes_exactly_as_the_chain_defines(data: object) -> None:
    """SQLite appends build each event's hashed document before the chain's lock and
    fill in only the id and the previous hash under it: the bytes must be
    `event_hash`'s, or every chain written that way would fail `evidence verify`."""
    from dialbot.db.evidence import _prepare, _stage  # the SQLite append's own step

    engine = engine_of(open_database("sqlite://", migrate_schema=False))
    at = datetime(2026, 11, 29, 8, 30, 1, 250, tzinfo=timezone(timedelta(hours=8)))
    ev = _prepare(NewEvent("sms_in", sim=SIM, run_id=7, at=at, peer="106\"58",
                           text="退订\u2028'x'\\", raw="0791", data=data))  # fmt: skip
    staged = _stage(ev, engine.dialect)
    for event_id, prev in [(1, GENESIS_HASH), (123456789, "ab" * 32)]:
        assert staged.digest(event_id, prev) == event_hash(event_id, prev, ev)

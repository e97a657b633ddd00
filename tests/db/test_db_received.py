"""The receipt log (`dialbot.db.received`): stored once, recorded once, left over when not.

On SQLite and PostgreSQL: a PDU read again before its delete was confirmed
is the same receipt (also by a new store object: a restarted process); once
deleted, an identical PDU is a new message; an evidence event that names
receipts marks them recorded in its own transaction; `left_over` is what no
event records.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.evidence import NewEvent, append_events, verify_chain
from dialbot.db.received import DbPduStore, unrecorded
from dialbot.modem.inbox import read_pdu

TZ = ZoneInfo("Asia/Shanghai")
# A real SMS-DELIVER (AOSP's GsmSmsTest, "Test" from +16505551111) and a malformed one.
PDU = "07914151551512F2040B916105551511F100006060605130308A04D4F29C0E"
BAD = "0BD0ABD9CC86CBC16034180C1616000AD0D770BB5D0700F9FF080074006500730074"


def _read(pdu: str, index: int = 1) -> object:
    return read_pdu("/dev/ttyX", "SM", index, pdu, datetime.now(TZ))


def test_read_twice_is_one_receipt_even_after_a_restart(
    session_factory: sessionmaker[Session],
) -> None:
    store = DbPduStore(session_factory, "bank/1", "13800000001")
    first = store.store(_read(PDU))  # type: ignore[arg-type]
    again = DbPduStore(session_factory, "bank/1").store(_read(PDU))  # type: ignore[arg-type]
    assert first.new and not again.new and again.id == first.id
    other_modem = DbPduStore(session_factory, "bank/2").store(_read(PDU))  # type: ignore[arg-type]
    assert other_modem.new
    store.deleted(first.id)
    after_delete = store.store(_read(PDU))  # type: ignore[arg-type]
    assert after_delete.new and after_delete.id != first.id  # the SP sent it twice


def test_an_undecodable_pdu_is_kept_raw_with_its_problem(
    session_factory: sessionmaker[Session],
) -> None:
    store = DbPduStore(session_factory, "bank/1")
    store.store(_read(BAD, 4))  # type: ignore[arg-type]
    (row,) = unrecorded(session_factory)
    assert row.pdu == BAD and row.kind == "undecodable" and row.problem
    assert (row.memory, row.slot_index, row.text) == ("SM", 4, None)


def test_recording_claims_receipts_and_left_over_is_what_no_event_records(
    session_factory: sessionmaker[Session],
) -> None:
    store = DbPduStore(session_factory, "bank/1")
    a = store.store(_read(PDU, 1))  # type: ignore[arg-type]
    b = store.store(_read(BAD, 2))  # type: ignore[arg-type]
    assert [r for r, _ in store.left_over()] == [a.id, b.id]
    item = dict(store.left_over())[a.id]
    assert item.text == "Test" and item.sender == "+16505551111"
    assert item.scts is not None and item.scts.utcoffset() == timedelta(hours=-7)
    (row,) = append_events(session_factory, [NewEvent("sms_in", text="Test", receipts=(a.id,))])
    assert [r for r, _ in store.left_over()] == [b.id]
    assert [r.event_id for r in unrecorded(session_factory)] == [None]
    assert verify_chain(session_factory).ok
    assert row.id == 1


def test_one_append_claims_each_event_its_own_receipts(
    session_factory: sessionmaker[Session],
) -> None:
    store = DbPduStore(session_factory, "bank/3")
    a, b, c = (store.store(_read(PDU, i)) for i in (1, 2, 3))  # type: ignore[arg-type]
    rows = append_events(
        session_factory,
        [
            NewEvent("sms_in", text="two parts", receipts=(a.id, b.id)),
            NewEvent("sms_out", text="TD"),
            NewEvent("sms_in", text="one", receipts=(c.id,)),
        ],
    )
    with session_factory() as session:
        from dialbot.db.models import ReceivedPdu

        owners = {r.id: r.event_id for r in session.query(ReceivedPdu).all()}
    assert owners == {a.id: rows[0].id, b.id: rows[0].id, c.id: rows[2].id}
    assert store.left_over() == []

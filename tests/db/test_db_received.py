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


def test_after_an_empty_first_listing_an_identical_pdu_is_a_new_message(
    session_factory: sessionmaker[Session],
) -> None:
    """A carrier's reply byte-identical to the one the previous process read and deleted
    (same text, same SCTS second, same slot) is a new message once this process has
    listed the memory empty: nothing of an earlier process can be there any more."""
    earlier = DbPduStore(session_factory, "bank/1")
    (first,) = earlier.store_many([_read(PDU)])  # type: ignore[list-item]
    earlier.deleted(first.id)
    restarted = DbPduStore(session_factory, "bank/1")
    restarted.listed("SM")
    (reply,) = restarted.store_many([_read(PDU)])  # type: ignore[list-item]
    assert reply.new and reply.id != first.id
    unlisted = DbPduStore(session_factory, "bank/1")  # a re-read after a crash stays one
    (again,) = unlisted.store_many([_read(PDU)])  # type: ignore[list-item]
    assert not again.new


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


def _push_parts() -> list[str]:
    """A Service Indication WAP PUSH (port 2948) in two concatenated 8-bit PDUs."""
    from dialbot.modem.wsp import encode_push, encode_si

    wsp = encode_push(0x2E, encode_si("http://wap.zsly.example/joke", "免费笑话", si_id="Z-1"))
    ports = bytes.fromhex("05040B8423F0")
    half = len(wsp) // 2
    parts = []
    for number, chunk in ((1, wsp[:half]), (2, wsp[half:])):
        udh = bytes([0x00, 0x03, 0x2A, 0x02, number]) + ports
        user_data = bytes([len(udh)]) + udh + chunk
        # SMS-DELIVER with UDHI from 1065800, 8-bit data, SCTS 2026-11-21 03:00:01 +08:00
        tpdu = bytes.fromhex("44" + "0781" + "015608F0" + "0004" + "62111230001023")
        parts.append(("00" + (tpdu + bytes([len(user_data)]) + user_data).hex()).upper())
    return parts


def test_a_wap_push_is_stored_before_delivery_and_decoded_after_a_restart(
    session_factory: sessionmaker[Session],
) -> None:
    """Store first for pushes too: both PDUs are receipts before anything is delivered; a
    process that died before recording them leaves them over, and the next one decodes
    the push from the stored raw PDUs and records it (kind wap_push) claiming both."""
    from dialbot.modem.inbox import Inbox

    store = DbPduStore(session_factory, "bank/1")
    items = [_read(pdu, i) for i, pdu in enumerate(_push_parts(), start=1)]
    receipts = [store.store(item).id for item in items]  # type: ignore[arg-type]
    assert all(item.wap for item in items)  # type: ignore[attr-defined]
    inbox = Inbox("/dev/ttyX")  # the restarted process
    out = [m for r, item in DbPduStore(session_factory, "bank/1").left_over()
           for m in inbox.add(item, r, recovered=True)]  # fmt: skip
    (message,) = out
    push = message.wap_push
    assert push is not None and push.error is None
    assert (push.href, push.text, push.si_id) == ("http://wap.zsly.example/joke", "免费笑话", "Z-1")
    assert message.receipts == tuple(receipts) and message.recovered
    append_events(
        session_factory, [NewEvent("wap_push", text=message.text, receipts=message.receipts)]
    )
    assert store.left_over() == []


def test_a_later_listing_maps_each_new_receipt_to_its_own_pdu(
    session_factory: sessionmaker[Session],
) -> None:
    """After a memory's first listing its new PDUs go in one statement: each receipt id
    must still name the row of its own PDU (slot, bytes, decoded text), in order."""
    from dialbot.sim.smscodec import encode_deliver

    store = DbPduStore(session_factory, "bank/4", "13800000004")
    store.store(_read(PDU, 1))  # type: ignore[arg-type]  # the memory's first listing
    sent = datetime(2026, 11, 29, 10, 0, 0, tzinfo=TZ)
    texts = [f"第{i}条 message {i}" for i in range(7)]
    pdus = [encode_deliver("1065800101", t, sent, "+8613800100500", 1)[0].pdu for t in texts]
    items = [_read(pdu, 10 + i) for i, pdu in enumerate(pdus)]
    receipts = store.store_many(items)  # type: ignore[arg-type]
    assert all(r.new for r in receipts) and len({r.id for r in receipts}) == len(items)
    by_id = {row.id: row for row in unrecorded(session_factory, "bank/4")}
    for receipt, pdu, text, index in zip(receipts, pdus, texts, range(10, 17), strict=True):
        row = by_id[receipt.id]
        assert (row.pdu, row.text, row.slot_index, row.sim) == (pdu, text, index, "13800000004")
        item = items[index - 10]
        assert row.read_at == item.read_at and row.kind == item.kind  # type: ignore[attr-defined]


def test_a_failed_append_claims_nothing_and_a_claimed_receipt_stays_with_its_event(
    session_factory: sessionmaker[Session],
) -> None:
    """The append and its claims commit together or not at all (PostgreSQL sends them
    with the COMMIT in one round trip): a statement that fails leaves the chain head and
    the receipts as they were; an event naming a receipt already recorded by another
    does not take it over."""
    import pytest
    from sqlalchemy.exc import DBAPIError

    from dialbot.db.evidence import EvidenceHead

    store = DbPduStore(session_factory, "bank/5")
    a, b = (store.store(_read(PDU, i)) for i in (1, 2))  # type: ignore[arg-type]
    (first,) = append_events(session_factory, [NewEvent("sms_in", text="a", receipts=(a.id,))])
    if session_factory.kw["bind"].dialect.name == "postgresql":  # SQLite does not check lengths
        with pytest.raises(DBAPIError):
            append_events(
                session_factory,
                [
                    NewEvent("sms_in", text="b", receipts=(b.id,)),
                    NewEvent("sms_out", peer="1" * 40, text="TD"),
                ],
            )
        assert [r for r, _ in store.left_over()] == [b.id]
        with session_factory() as session:
            head = session.get(EvidenceHead, 1)
            assert head is not None and (head.last_id, head.last_hash) == (first.id, first.hash)
    rows = append_events(
        session_factory,
        [
            NewEvent("sms_in", text="b", receipts=(b.id,)),
            NewEvent("sms_in", text="a again", receipts=(a.id,)),
        ],
    )
    with session_factory() as session:
        from dialbot.db.models import ReceivedPdu

        owners = {r.id: r.event_id for r in session.query(ReceivedPdu).all()}
    assert owners == {a.id: first.id, b.id: rows[0].id}
    assert store.left_over() == []
    assert verify_chain(session_factory).ok

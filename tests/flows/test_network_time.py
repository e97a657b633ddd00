"""Network time: a message read late is judged at the network's time stamp (SCTS).

The evidence keeps the SCTS (with its own UTC offset) beside the host's read
time; the judge orders a message read late (a lost +CMTI, a periodic sweep)
by the network's time, so the late read neither creates a finding (a message
sent before the cancellation) nor hides one (an acknowledgement read late).
Messages read promptly keep the host's time: on the probe's own clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from dialbot.carrier import CarrierProfile
from dialbot.db.evidence import EventRow
from dialbot.db.obligations import Obligation
from dialbot.flows.history import past_order
from dialbot.flows.record import Recorder, network_time, to_judge_event
from dialbot.judge import judge
from dialbot.judge.model import PastOrder, RunRecord, ServiceInfo
from dialbot.modem import IncomingMessage
from dialbot.modem.inbox import event_time

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 11, 24, 1, 0, 0, tzinfo=SHANGHAI)
XHXH = ServiceInfo(
    sp_code="901001",
    sp_name="星河科技",
    sp_hotline="4008001001",
    service_code="XHXH",
    service_name="星河笑话",
    access_number="1065800101",
    billing="monthly",
    price_fen=500,
    subscribe_cmd="DG",
    cancel_cmd="TD",
)
CONTENT = "【星河科技】星河笑话第3期：小明问爸爸：为什么月亮跟着我走？"
ACK = "【星河科技】您已成功退订星河笑话业务，感谢使用。"


def test_event_time_believes_the_network_only_for_a_late_read() -> None:
    read = T0 + timedelta(minutes=5)
    assert event_time(read, None) == read
    assert event_time(read, read - timedelta(seconds=2)) == read  # prompt: the host's clock
    late = read - timedelta(minutes=4)
    assert event_time(read, late) == late
    # the same instant written in another zone (the SCTS carries its own offset)
    assert event_time(read, late.astimezone(BERLIN)) == late
    assert event_time(read, read + timedelta(minutes=3)) == read  # network clock ahead
    assert event_time(read, read - timedelta(days=400)) == read  # a wrong network clock


def _message(text: str, read: datetime, scts: datetime) -> IncomingMessage:
    return IncomingMessage("1065800101", text, scts, read, "/dev/ttyGSM0", scts=scts)


def _watch_findings(db: sessionmaker[Session], message: IncomingMessage) -> set[str]:
    """Record the message as the watch does and judge it against an acknowledged cancel."""
    row = Recorder(db, "13800000001").sms_in(message, watch="judged")
    assert row.data["scts"] == message.scts.isoformat()  # type: ignore[union-attr]
    assert row.at == message.received_at  # the host's read time stays the event's time
    order = PastOrder(
        "901001", "XHXH", T0 - timedelta(hours=1), ended_at=T0, cancel_acked_at=T0, evidence=(1,)
    )
    record = RunRecord(
        run_id=1,
        flow="watch",
        events=(to_judge_event(row),),
        observed_until=message.received_at,
        catalogue=(XHXH,),
        history=(order,),
    )
    return {f.code for f in judge(record)}


def test_a_message_read_late_that_was_sent_before_the_cancel_is_not_after_it(
    session_factory: sessionmaker[Session],
) -> None:
    sent = (T0 - timedelta(seconds=30)).astimezone(BERLIN)  # before the acknowledgement
    message = _message(CONTENT, T0 + timedelta(minutes=10), sent)
    assert _watch_findings(session_factory, message) == set()


def test_a_message_read_late_that_was_sent_after_the_cancel_is_after_it(
    session_factory: sessionmaker[Session],
) -> None:
    sent = T0 + timedelta(seconds=30)
    message = _message(CONTENT, T0 + timedelta(minutes=10), sent)
    assert _watch_findings(session_factory, message) == {"MESSAGE_AFTER_CANCEL"}


def _row(event_id: int, kind: str, text: str, at: datetime, scts: datetime | None) -> EventRow:
    data = {"scts": scts.isoformat() if scts else None}
    return EventRow(event_id, None, "13800000001", at, kind, "1065800101", text, "", data, "", "")


@pytest.mark.parametrize("ack_read_late", [False, True])
def test_an_acknowledgement_read_late_dates_the_cancel_by_the_network(
    ack_read_late: bool,
) -> None:
    """The SP acknowledged at T0 and wrote again at T0+60 s (read at once); the
    acknowledgement was read only at T0+5 min. By the host's clocks the later message
    came before the acknowledgement (hidden); by the network's it is after it."""
    acked = T0
    ack_read = T0 + timedelta(minutes=5) if ack_read_late else T0 + timedelta(seconds=1)
    ob = Obligation(
        1, "13800000001", "901001", "XHXH", "1065800101", "TD", 1,
        T0 - timedelta(hours=1), T0 + timedelta(minutes=6), "sp_keyword", 1, None,
    )  # fmt: skip
    events = [_row(7, "sms_in", ACK, ack_read, acked)]
    order = past_order(ob, events, CarrierProfile())
    assert order.cancel_acked_at == (acked if ack_read_late else ack_read)
    # read promptly, before the late acknowledgement was: host time, on the probe's clock
    later = _row(8, "sms_in", CONTENT, T0 + timedelta(seconds=61), T0 + timedelta(seconds=60))
    assert network_time(later) == T0 + timedelta(seconds=61)
    record = RunRecord(
        run_id=2,
        flow="watch",
        events=(to_judge_event(later),),
        observed_until=T0 + timedelta(minutes=7),
        catalogue=(XHXH,),
        history=(order,),
    )
    assert {f.code for f in judge(record)} == {"MESSAGE_AFTER_CANCEL"}

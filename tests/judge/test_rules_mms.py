"""The MMS judge on hand-built runs: the SMS monthly flow's messages, with notifications
(WAP PUSH from the SP) and the `mms` events of their fetches."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from dialbot.carrier import CarrierProfile
from dialbot.judge import judge
from dialbot.judge.model import ActionKind, Event, PastOrder, RunRecord

from .scenarios import T0, XHXH, Knobs, monthly

PUSH_TEXT = "[WAP PUSH application/vnd.wap.mms-message]"


def mms_run(outcomes: list[str | None], traffic_fen: int = 0, fee: int = 0) -> RunRecord:
    """A monthly MMS run; `outcomes[i]` is what the notification after the i-th occasion
    (confirmation, use) fetched: "ok", "empty", "404", "bad" (undecodable), None (no push)."""
    b = monthly(Knobs(delivers_content=False))
    if traffic_fen:
        confirm_at = next(at for kind, _, _, at in b.actions if kind is ActionKind.CONFIRM)
        b.ledger.append((confirm_at + timedelta(seconds=3), traffic_fen))
    run = b.record()
    occasions = [a for a in run.actions if a.kind in (ActionKind.CONFIRM, ActionKind.USE)]
    events = list(run.events)
    next_id = 1000
    for action, outcome in zip(occasions, outcomes, strict=True):
        if outcome is None:
            continue
        at = action.at + timedelta(seconds=0.6)
        push = Event(next_id, at, "sms_in", run.service.access_number, PUSH_TEXT)  # type: ignore[union-attr]
        data: dict[str, object] = {"push_event": next_id, "notified_at": at.isoformat()}
        if outcome == "bad":
            data.update(delivered=False, error="notification: truncated")
        else:
            status = 404 if outcome == "404" else 200
            size = {"ok": 300, "empty": 60, "404": 17}[outcome]
            data.update(status=status, size=size, delivered=outcome == "ok")
        fetch = Event(next_id + 1, at + timedelta(seconds=1), "mms", str(data.get("status", "")),
                      "", data=data)  # fmt: skip
        events += [push, fetch]
        next_id += 2
    carrier = CarrierProfile(data_fee_fen_per_kb=fee)
    return dataclasses.replace(run, flow="mms", events=tuple(events), carrier=carrier)


def codes(run: RunRecord) -> set[str]:
    return {f.code for f in judge(run)}


def test_every_notification_delivered_is_clean() -> None:
    assert codes(mms_run(["ok", "ok"])) == set()


def test_empty_refused_undecodable_or_missing_content_is_not_delivered() -> None:
    for outcomes in (["ok", "empty"], ["404", "ok"], ["ok", "bad"], ["ok", None], ["empty", "404"]):
        run = mms_run(outcomes)  # type: ignore[arg-type]
        findings = judge(run)
        assert {f.code for f in findings} == {"CONTENT_NOT_DELIVERED"}, outcomes
        (finding,) = findings
        assert finding.amount_fen == 500 and finding.service_code == "XHXH"
        assert (
            any(e.kind == "mms" and e.id in finding.evidence for e in run.events)
            or None in outcomes
        )


def test_a_push_alone_is_no_content_for_mms_though_it_would_be_for_sms() -> None:
    run = mms_run(["empty", "empty"])
    assert codes(run) == {"CONTENT_NOT_DELIVERED"}
    assert "CONTENT_NOT_DELIVERED" not in codes(dataclasses.replace(run, flow="monthly"))


def test_infrastructure_failure_is_never_judged() -> None:
    assert codes(dataclasses.replace(mms_run(["empty", None]), infra_failed=True)) == set()


def test_the_carriers_traffic_fee_for_fetches_is_not_an_sp_charge() -> None:
    assert codes(mms_run(["ok", "ok"], traffic_fen=2, fee=1)) == set()
    assert codes(mms_run(["ok", "ok"], traffic_fen=2, fee=0)) == {"OVERCHARGE"}
    assert codes(mms_run(["ok", "ok"], traffic_fen=90, fee=1)) == {"OVERCHARGE"}


def _watch(history: tuple[PastOrder, ...] = ()) -> RunRecord:
    """A watch run that saw one MMS notification from XHXH's access number."""
    push = Event(7, T0 + timedelta(hours=2), "sms_in", XHXH.access_number, PUSH_TEXT)
    return RunRecord(
        run_id=5,
        flow="watch",
        events=(push,),
        observed_until=T0 + timedelta(hours=3),
        catalogue=(XHXH,),
        history=history,
    )


def test_an_mms_notification_is_a_message_like_an_sms() -> None:
    found = judge(_watch())
    assert [(f.code, f.sp_code, f.evidence) for f in found] == [
        ("UNSOLICITED_MESSAGE", "901001", [7])
    ]
    cancelled = PastOrder("901001", "XHXH", T0, T0 + timedelta(minutes=2),
                          T0 + timedelta(minutes=1), (3,))  # fmt: skip
    assert {f.code for f in judge(_watch((cancelled,)))} == {"MESSAGE_AFTER_CANCEL"}


def test_notifications_after_the_cancellation_in_the_run() -> None:
    run = mms_run(["ok", "ok"])
    ack = max(e.at for e in run.events if "退订" in e.text)
    late = Event(2000, ack + timedelta(seconds=2), "sms_in", XHXH.access_number, PUSH_TEXT)
    assert codes(dataclasses.replace(run, events=(*run.events, late))) == {"MESSAGE_AFTER_CANCEL"}


def test_a_cut_mms_run_is_judged_only_on_what_was_seen() -> None:
    """A run cut short (its process died) may have stopped before the content came: it is
    judged by SEEN_RULES only, so no CONTENT_NOT_DELIVERED."""
    run = mms_run(["ok", "empty"])
    assert "CONTENT_NOT_DELIVERED" in codes(run)
    assert "CONTENT_NOT_DELIVERED" not in codes(dataclasses.replace(run, cut=True))

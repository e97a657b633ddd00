"""The watch judges an SP's message by the SIM's history with that SP, read from the database.

A message arriving outside a probe of its SP, past the grace window of the
last contact, is:
- MESSAGE_AFTER_CANCEL (minor) against the service when the SIM had a
  subscription of that SP whose cancellation was acknowledged before;
- UNSOLICITED_MESSAGE (major) when the SIM never had one with that SP;
- nothing while a subscription of that SP may still be active (a failed
  cancel is CANCEL_FAILED's business).
The history is derived from obligations and evidence, so it also holds for a
fresh watch (a restarted process) that never saw the probe.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flowrig import Rig, by_service, generate, serve
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.carrier import CarrierProfile
from dialbot.db.catalogue import list_services
from dialbot.db.evidence import append_event, events_of_sim
from dialbot.db.models import EvidenceEvent, Run, Sim
from dialbot.db.models import Finding as FindingRow
from dialbot.db.obligations import create_obligation, discharge
from dialbot.fleet import Fleet
from dialbot.flows.history import past_orders
from dialbot.flows.loader import standard_flows
from dialbot.flows.record import now
from dialbot.flows.runner import service_info
from dialbot.flows.station import FleetSink, sim_msisdn
from dialbot.flows.sweep import Sweep
from dialbot.flows.watch import Watch
from dialbot.judge import judge
from dialbot.judge.history import Standing, standing
from dialbot.judge.model import Event, Finding, PastOrder, RunRecord, ServiceInfo
from dialbot.sim.world import Sp

GRACE_S = 120.0  # the watch's grace window before time_scale (run end + 120 s × time_scale)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def monthly_sim(rig: Rig) -> str:
    """The SIM whose (only) monthly probe subscribed and cancelled."""
    with rig.db() as session:
        return session.execute(
            select(Sim.msisdn)
            .join(Run, Run.sim_id == Sim.id)
            .where(Run.flow == "monthly", Run.state == "done")
        ).scalar_one()


def send_from(rig: Rig, sp: Sp, msisdn: str, text: str) -> None:
    """The SP's network side sends one message now."""
    network: Any = rig.bank.network
    rig.bank.call(lambda: network.send(msisdn, sp.services[0].access, text, 0.0))


def last_event_id(rig: Rig) -> int:
    with rig.db() as session:
        return session.scalar(select(func.max(EvidenceEvent.id))) or 0


def arrived(rig: Rig, msisdn: str, after_id: int, count: int) -> Callable[[], bool]:
    """Whether `count` messages to the SIM were recorded after event `after_id`."""

    def check() -> bool:
        with rig.db() as session:
            seen = session.scalar(
                select(func.count())
                .select_from(EvidenceEvent)
                .where(
                    EvidenceEvent.sim == msisdn,
                    EvidenceEvent.kind == "sms_in",
                    EvidenceEvent.id > after_id,
                )
            )
        return (seen or 0) >= count

    return check


def late_and_spam(rig: Rig, late: Sp, spammer: Sp, msisdn: str) -> None:
    """The cancelled SP writes again, and an SP the SIM never dealt with writes too."""
    network: Any = rig.bank.network
    late_text = network.agents[late.code].words.after_cancel(late.services[0], 7)
    spam_text = network.agents[spammer.code].words.spam(spammer.services[0], 0)
    before = last_event_id(rig)
    send_from(rig, late, msisdn, late_text)
    send_from(rig, spammer, msisdn, spam_text)
    wait_until(arrived(rig, msisdn, before, 2), 15.0, "the two messages to reach the watch")


def stored_findings(rig: Rig) -> list[FindingRow]:
    with rig.db() as session:
        return list(session.scalars(select(FindingRow).order_by(FindingRow.id)))


def codes(findings: list[Finding]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for f in findings:
        out.setdefault((f.sp_code, f.service_code), set()).add(f.code)
    return out


def fresh_watch(rig: Rig, fleet: Fleet, sink: FleetSink) -> Watch:
    """What a restarted process has: a watch that never saw the probes."""
    catalogue = tuple(service_info(s) for s in list_services(rig.db))
    scale = rig.config.probe.time_scale
    watch = Watch(rig.db, rig.config.carrier, catalogue, grace_s=scale * GRACE_S)
    for slot in fleet.slots:
        msisdn = sim_msisdn(slot)
        if msisdn:
            watch.register(msisdn, None, slot.entry.port)
    sink.bind(watch)
    return watch


def test_message_after_cancel_past_the_grace_window_and_after_a_restart(tmp_path: Path) -> None:
    data, _ = generate(seed=31, knobs=["late_messages"], honest=1, modems=2)
    with serve(tmp_path, data) as rig:
        late = next(sp for sp in rig.world.sps if sp.services[0].behaviour.messages_after_cancel)
        spammer = next(sp for sp in rig.world.sps if sp is not late)
        key = (late.code, late.services[0].code)
        spam_key = (spammer.code, spammer.services[0].code)
        grace = timedelta(seconds=rig.config.probe.time_scale * GRACE_S)
        with rig.fleet() as (fleet, sink):
            services = [s for s in list_services(rig.db) if s.sp_code == late.code]
            sweep = Sweep(rig.db, rig.config, fleet, standard_flows(), services)
            sink.bind(sweep.watch)
            report = sweep.run()
            assert by_service(report) == {key: {"MESSAGE_AFTER_CANCEL"}}  # the probe's own
            msisdn = monthly_sim(rig)
            past = now() + grace
            wait_until(lambda: now() > past, 30.0, "the grace window to pass")
            known = stored_findings(rig)
            late_and_spam(rig, late, spammer, msisdn)
            # the sweep's watch was closed at its end: each later message is judged at once
            wait_until(lambda: len(stored_findings(rig)) >= len(known) + 2, 15.0, "judgement")
            fresh = [f for f in stored_findings(rig) if f.id not in {k.id for k in known}]
            assert {f.sim for f in fresh} == {msisdn}
            assert {(f.sp_code, f.service_code or ""): {f.code} for f in fresh} == {
                key: {"MESSAGE_AFTER_CANCEL"},
                spam_key: {"UNSOLICITED_MESSAGE"},
            }
            after = next(f for f in fresh if f.code == "MESSAGE_AFTER_CANCEL")
            assert after.severity == "minor" and len(after.evidence) >= 2  # ack + message
        with rig.fleet() as (fleet, sink):  # a restarted process: nothing in memory
            watch = fresh_watch(rig, fleet, sink)
            late_and_spam(rig, late, spammer, msisdn)
            (result,) = watch.judge_all()
            assert codes(result.findings) == {
                key: {"MESSAGE_AFTER_CANCEL"},
                spam_key: {"UNSOLICITED_MESSAGE"},
            }


# --- the decision, without modems ------------------------------------------------------------

SIM = "13800000001"
CATALOGUE = tuple(
    ServiceInfo(f"90{n}", f"测试{n}公司", f"S{n}", f"测试业务{n}", f"106580{n}0{n}", "monthly", 500,
                f"DG{n}", cancel_cmd=f"TD{n}")
    for n in range(1, 7)
)  # fmt: skip
A, B, C, D, E, F = CATALOGUE
ACK = "您已成功退订{}，感谢使用。"
LIST_NONE = "尊敬的客户，您目前没有订购任何增值业务。【中国移动】"


def test_standing_of_a_message() -> None:
    t0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    at = lambda s: t0 + timedelta(seconds=s)  # noqa: E731
    history = (
        PastOrder(A.sp_code, A.service_code, at(0), ended_at=at(20), cancel_acked_at=at(10)),
        PastOrder(C.sp_code, C.service_code, at(0), ended_at=at(20)),  # declined
        PastOrder(D.sp_code, D.service_code, at(0)),  # still pending: may be active
    )
    assert standing(history, A.sp_code, A.service_code, at(5)).standing is Standing.ACTIVE
    after = standing(history, A.sp_code, "OTHER", at(11))
    assert after.standing is Standing.CANCELLED and after.order == history[0]
    assert standing(history, C.sp_code, C.service_code, at(30)).standing is Standing.NEVER
    assert standing(history, C.sp_code, C.service_code, at(19)).standing is Standing.ACTIVE
    assert standing(history, D.sp_code, D.service_code, at(999)).standing is Standing.ACTIVE
    assert standing(history, F.sp_code, F.service_code, at(30)).standing is Standing.NEVER
    assert standing(history, D.sp_code, D.service_code, at(-1)).standing is Standing.NEVER


class Story:
    """Writes a SIM's orders and evidence straight into the database."""

    def __init__(self, db: sessionmaker[Session]) -> None:
        self.db = db
        self.t0 = datetime.now(UTC)

    def at(self, s: float) -> datetime:
        return self.t0 + timedelta(seconds=s)

    def order(self, service: ServiceInfo) -> int:
        return create_obligation(
            self.db, sim=SIM, sp_code=service.sp_code, service_code=service.service_code,
            access_number=service.access_number, cancel_cmd=service.cancel_cmd,
        ).id  # fmt: skip

    def sms(self, s: float, peer: str, text: str) -> int:
        return append_event(self.db, "sms_in", sim=SIM, at=self.at(s), peer=peer, text=text).id

    def listing(self, s: float, text: str = LIST_NONE) -> int:
        return append_event(
            self.db, "subscriptions", sim=SIM, at=self.at(s), peer="10086", text=text,
            data={"items": []},
        ).id  # fmt: skip


def test_history_from_the_database_decides_each_sender(
    session_factory: sessionmaker[Session],
) -> None:
    story = Story(session_factory)
    db = session_factory
    # A: the probe cancelled with the SP keyword; the SP acknowledged; the list showed it gone
    a = story.order(A)
    a_ack = story.sms(10, A.access_number, ACK.format(A.service_name))
    a_list = story.listing(12)
    discharge(db, a, "not_subscribed", at=story.at(13))
    # B: the SP said 成功退订 but kept the subscription; the carrier's cancel-all ended it
    b = story.order(B)
    story.sms(20, B.access_number, ACK.format(B.service_name))
    b_ack = story.sms(25, "10086", "尊敬的客户，您已成功退订全部增值业务。【中国移动】")
    b_list = story.listing(27)
    discharge(db, b, "cancel_all", at=story.at(28))
    # C: ordered and declined: never active, nothing to acknowledge
    discharge(db, story.order(C), "not_subscribed", at=story.at(30))
    # D: its cancellation failed: still pending
    story.order(D)
    # E: the SP keyword worked silently: only the list shows the cancellation
    e = story.order(E)
    e_list = story.listing(39)
    discharge(db, e, "sp_keyword", at=story.at(40))

    orders = {
        o.sp_code: o for o in past_orders(db, SIM, CarrierProfile(), [s.sp_code for s in CATALOGUE])
    }
    assert set(orders) == {A.sp_code, B.sp_code, C.sp_code, D.sp_code, E.sp_code}
    assert (orders[A.sp_code].cancel_acked_at, orders[A.sp_code].evidence) == (
        story.at(10),
        (a_ack, a_list),
    )
    assert (orders[B.sp_code].cancel_acked_at, orders[B.sp_code].evidence) == (
        story.at(25),
        (b_ack, b_list),
    )
    assert orders[C.sp_code].cancel_acked_at is None and orders[C.sp_code].ended_at == story.at(30)
    assert orders[D.sp_code].ended_at is None
    assert (orders[E.sp_code].cancel_acked_at, orders[E.sp_code].evidence) == (
        story.at(40),
        (e_list,),
    )

    early = story.sms(22, B.access_number, "星河笑话：今天的笑话来了。")  # B still active then
    later = {
        s.sp_code: story.sms(50, s.access_number, f"{s.service_name}：今天的内容来了。")
        for s in CATALOGUE
    }
    events = tuple(
        Event(row.id, row.at, "sms_in", row.peer or "", row.text or "")
        for row in events_of_sim(db, SIM, ["sms_in"], story.at(21))
        if row.id in {early, *later.values()}
    )
    run = RunRecord(1, "watch", events, story.at(60), catalogue=CATALOGUE,
                    history=tuple(orders.values()))  # fmt: skip
    found = {(f.sp_code, f.code): f for f in judge(run)}
    assert set(found) == {
        (A.sp_code, "MESSAGE_AFTER_CANCEL"),
        (B.sp_code, "MESSAGE_AFTER_CANCEL"),
        (C.sp_code, "UNSOLICITED_MESSAGE"),
        (E.sp_code, "MESSAGE_AFTER_CANCEL"),
        (F.sp_code, "UNSOLICITED_MESSAGE"),
    }
    a_found = found[(A.sp_code, "MESSAGE_AFTER_CANCEL")]
    assert (a_found.service_code, a_found.severity) == (A.service_code, "minor")
    assert a_found.evidence == sorted([a_ack, a_list, later[A.sp_code]])
    assert found[(B.sp_code, "MESSAGE_AFTER_CANCEL")].evidence == sorted(
        [b_ack, b_list, later[B.sp_code]]
    )
    assert found[(C.sp_code, "UNSOLICITED_MESSAGE")].severity == "major"

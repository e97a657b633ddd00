"""Run owners: only the runs of a dead process are taken over, and they are judged once.

Owners are real processes of this host (this test process, a live child, a
child that exited, a pid reused by another process) and runs of another host
with a fresh or a stale heartbeat. Recovery must abort exactly the dead
ones, judge them on what they saw (a watch run's spam becomes
UNSOLICITED_MESSAGE, stored with that run), leave every live one alone, and
judge nothing twice — on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.carrier import CarrierProfile
from dialbot.db.engine import write_session
from dialbot.db.evidence import append_event, events_for_run
from dialbot.db.models import Finding, Run, RunState
from dialbot.db.owner import Owner, owner_alive, process_start, this_process
from dialbot.db.runs import create_run, get_run, transition, upsert_sim
from dialbot.db.types import utcnow
from dialbot.flows.recovery import DEAD, Recovery
from dialbot.flows.watch import Watch
from dialbot.judge.model import ServiceInfo
from dialbot.modem import IncomingMessage
from dialbot.modem.inbox import DEFAULT_TZ

SIM = "13800000001"
SPAMMER = ServiceInfo("900001", "某某科技", "S01", "天气", "1065800001", "monthly", 500, "DG")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process of this host that is not us."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def dead_owner() -> Owner:
    """A process of this host that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_start(proc.pid)
    proc.wait()
    return Owner(this_process().host, proc.pid, started)


def running_run(db: sessionmaker[Session], sim_id: int, owner: Owner, flow: str = "watch") -> int:
    run = create_run(db, flow, sim_id=sim_id, owner=owner)
    transition(db, run.id, RunState.RUNNING)
    return run.id


def spam_in(db: sessionmaker[Session], run_id: int) -> int:
    now = utcnow().astimezone(DEFAULT_TZ)
    return append_event(
        db, "sms_in", sim=SIM, run_id=run_id, at=now, peer=SPAMMER.access_number,
        text="【天气】今日特价，回复1订购", data={"watch": "judged"},
    ).id  # fmt: skip


def test_owner_alive_tells_live_from_dead(sleeper: subprocess.Popen[bytes]) -> None:
    me = this_process()
    assert owner_alive(me.host, me.pid, me.started_at, None)
    live = process_start(sleeper.pid)
    assert owner_alive(me.host, sleeper.pid, live, None)
    gone = dead_owner()
    assert not owner_alive(gone.host, gone.pid, gone.started_at, None)
    assert live is not None  # a reused pid: alive, but not the process that started the run
    assert not owner_alive(me.host, sleeper.pid, live - timedelta(hours=1), None)
    fresh, stale = utcnow(), utcnow() - timedelta(hours=1)
    assert owner_alive("elsewhere", 4242, None, fresh)
    assert not owner_alive("elsewhere", 4242, None, stale)
    assert not owner_alive(None, None, None, stale)  # written before owners existed


def test_recovery_takes_over_only_dead_runs_and_judges_their_spam(
    session_factory: sessionmaker[Session], sleeper: subprocess.Popen[bytes]
) -> None:
    db = session_factory
    sim_id = upsert_sim(db, SIM, bank="b", slot=1)
    me = this_process()
    mine = running_run(db, sim_id, me)
    live = running_run(db, sim_id, Owner(me.host, sleeper.pid, process_start(sleeper.pid)))
    far_live = running_run(db, sim_id, Owner("elsewhere", 4242, None))
    far_dead = running_run(db, sim_id, Owner("elsewhere", 4343, None))
    with write_session(db) as session:
        session.get_one(Run, far_dead).heartbeat_at = utcnow() - timedelta(hours=1)
    dead = running_run(db, sim_id, dead_owner())
    spam = spam_in(db, dead)
    for run_id in (mine, live):
        spam_in(db, run_id)  # what live processes saw is theirs to judge

    recovery = Recovery(db, CarrierProfile(), (SPAMMER,))
    judged = recovery.recover(sim_id)

    assert {j.run_id for j in judged} == {dead, far_dead}
    for run_id in (mine, live, far_live):
        assert get_run(db, run_id).state is RunState.RUNNING
    for run_id in (dead, far_dead):
        info = get_run(db, run_id)
        assert info.state is RunState.ABORTED and info.judged_at is not None
        assert info.error is not None and info.error.startswith(DEAD)
    with db() as session:
        findings = session.scalars(select(Finding)).all()
    assert [(f.run_id, f.code, f.sp_code) for f in findings] == [
        (dead, "UNSOLICITED_MESSAGE", SPAMMER.sp_code)
    ]
    assert findings[0].evidence == [spam]
    assert recovery.recover(sim_id) == []  # judged once


def test_a_run_aborted_before_owners_existed_is_judged_on_restart(
    session_factory: sessionmaker[Session],
) -> None:
    """What the old code left: a watch run set aborted by 'the process ended before the run'
    while it held spam. It is judged now, once."""
    db = session_factory
    sim_id = upsert_sim(db, SIM, bank="b", slot=1)
    run_id = running_run(db, sim_id, this_process())
    spam_in(db, run_id)
    with write_session(db) as session:
        row = session.get_one(Run, run_id)
        row.owner_host = row.owner_pid = row.owner_started_at = None
        row.move_to(RunState.ABORTED, at=utcnow(), error=DEAD)
    judged = Recovery(db, CarrierProfile(), (SPAMMER,)).recover(sim_id)
    assert [(j.run_id, [f.code for f in j.findings]) for j in judged] == [
        (run_id, ["UNSOLICITED_MESSAGE"])
    ]


def test_watch_judges_a_run_another_process_closed_without_raising(
    session_factory: sessionmaker[Session],
) -> None:
    """The crash of issue 15: another process aborted the watch's open run. judge_all must
    not raise IllegalTransition; the run's spam is judged (once) all the same."""
    db = session_factory
    sim_id = upsert_sim(db, SIM, bank="b", slot=1)
    watch = Watch(db, CarrierProfile(), (SPAMMER,), grace_s=0.0)
    watch.register(SIM, sim_id, "/dev/ttyX")
    at = utcnow().astimezone(DEFAULT_TZ)
    watch.put(SIM, IncomingMessage(SPAMMER.access_number, "【天气】特价", at, at, "/dev/ttyX"))
    with db() as session:
        (run_id,) = session.scalars(select(Run.id).where(Run.flow == "watch"))
    transition(db, run_id, RunState.ABORTED, error=DEAD)  # what the old abort_unfinished did
    (result,) = watch.close()
    assert [f.code for f in result.findings] == ["UNSOLICITED_MESSAGE"]
    assert get_run(db, run_id).judged_at is not None
    later = utcnow().astimezone(DEFAULT_TZ)  # after close: recorded and judged at once
    watch.put(
        SIM, IncomingMessage(SPAMMER.access_number, "【天气】再来", later, later, "/dev/ttyX")
    )
    with db() as session:
        states = session.scalars(select(Run.state).where(Run.flow == "watch")).all()
        codes = session.scalars(select(Finding.code)).all()
    assert sorted(states) == ["aborted", "done"]
    assert codes == ["UNSOLICITED_MESSAGE", "UNSOLICITED_MESSAGE"]


def test_a_killed_probe_is_judged_on_what_it_saw(session_factory: sessionmaker[Session]) -> None:
    """A probe run whose process died after its order: its actions are read back from the
    purposes its messages were stored with; a charge before any confirmation is found,
    the prompt never answered (no window was watched to its end) is not NO_RESPONSE."""
    from dialbot.db.models import Service, Sp
    from dialbot.db.obligations import create_obligation

    db = session_factory
    with write_session(db) as session:
        sp = Sp(code=SPAMMER.sp_code, name=SPAMMER.sp_name, hotline="4008001001")
        sp.services.append(
            Service(
                code=SPAMMER.service_code,
                name=SPAMMER.service_name,
                access_number=SPAMMER.access_number,
                billing="monthly",
                price_fen=500,
                subscribe_cmd="DG",
                cancel_cmd="TD",
                version=1,
            )  # fmt: skip
        )
        session.add(sp)
        session.flush()
        service_id = sp.services[0].id
    sim_id = upsert_sim(db, SIM, bank="b", slot=1)
    run = create_run(db, "monthly", service_id=service_id, sim_id=sim_id, owner=dead_owner())
    transition(db, run.id, RunState.RUNNING)
    t0 = utcnow().astimezone(DEFAULT_TZ)
    create_obligation(db, sim=SIM, sp_code=SPAMMER.sp_code, service_code=SPAMMER.service_code,
                      access_number=SPAMMER.access_number, cancel_cmd="TD", run_id=run.id)  # fmt: skip

    def event(kind: str, seconds: float, **values: object) -> int:
        at = t0 + timedelta(seconds=seconds)
        return append_event(db, kind, sim=SIM, run_id=run.id, at=at, **values).id  # type: ignore[arg-type]

    event("balance", 0, peer="10086", text="余额100.00元", data={"balance_fen": 10000})
    event("sms_out", 1, peer=SPAMMER.access_number, text="DG", data={"purpose": "order"})
    event("sms_in", 2, peer=SPAMMER.access_number,
          text="【天气】您将订购天气，5元/月，回复Y确认。客服4008001001")  # fmt: skip
    charged = event("balance", 30, peer="10086", text="余额95.00元", data={"balance_fen": 9500})

    (judged,) = Recovery(db, CarrierProfile(), (SPAMMER,)).recover(sim_id)
    assert judged.run_id == run.id
    found = {f.code: f for f in judged.findings}
    assert "UNCONFIRMED_CHARGE" in found and "NO_RESPONSE" not in found
    assert charged in found["UNCONFIRMED_CHARGE"].evidence
    assert get_run(db, run.id).state is RunState.ABORTED


WAP_SVC = ServiceInfo(
    "902001", "掌上乐园", "W0", "掌上业务", "", "monthly", 500, "订购",
    use_cmd="查看内容", channel="wap", url="http://wap.sp0.example/s0",
)  # fmt: skip


def _wap_rows(db: sessionmaker[Session], run_id: int, confirmed: bool) -> list[int]:
    """A WAP run cut after its order: balance, entry page, order link, (confirm,) balance."""
    start = utcnow()

    def at(s: int) -> datetime:
        return start + timedelta(seconds=s)

    def page(s: int, how: str, text: str, url: str, carrier_page: bool = False) -> int:
        led = {"how": how, "text": text, "chain": s, "hop": 0, "root": how}
        data = {"url": url, "size": 0, "led_by": led, "carrier_page": carrier_page,
                "price_shown": True, "links": []}  # fmt: skip
        return append_event(db, "http", sim=SIM, run_id=run_id, at=at(s), peer="200",
                            text="page", data=data).id  # fmt: skip

    def balance(s: int, fen: int) -> int:
        return append_event(db, "balance", sim=SIM, run_id=run_id, at=at(s), text=f"{fen}",
                            data={"balance_fen": fen}).id  # fmt: skip

    ids = [balance(0, 10000), page(1, "open", "", WAP_SVC.url)]
    ids.append(page(2, "link", "订购", "http://gw.example/confirm", carrier_page=True))
    if confirmed:
        ids.append(page(3, "confirm", "确认订购", "http://gw.example/ok"))
    ids.append(balance(4, 10000 - WAP_SVC.price_fen))
    return ids


@pytest.mark.parametrize("confirmed", [True, False])
def test_a_cut_wap_run_is_judged_by_the_wap_rules_with_its_clicks(
    session_factory: sessionmaker[Session], confirmed: bool
) -> None:
    """A cut WAP run is judged as WAP (not as an SMS run), its order and confirmation taken
    from the clicks that led to its pages: a confirmed order's charge is no finding."""
    from dialbot.judge import judge
    from dialbot.judge.model import ActionKind

    db = session_factory
    sim_id = upsert_sim(db, SIM, bank="b", slot=1)
    run_id = running_run(db, sim_id, this_process(), flow="wap")
    _wap_rows(db, run_id, confirmed)
    rows = events_for_run(db, run_id)
    record = Recovery(db, CarrierProfile(), (WAP_SVC,))._record(
        run_id, "wap", rows, None, WAP_SVC, has_order=True
    )
    assert record.flow == "wap" and record.cut and record.service == WAP_SVC
    kinds = [a.kind for a in record.actions]
    assert kinds == [ActionKind.ORDER, *([ActionKind.CONFIRM] if confirmed else [])]
    codes = {f.code for f in judge(record)}
    assert codes == (set() if confirmed else {"UNCONFIRMED_CHARGE"})

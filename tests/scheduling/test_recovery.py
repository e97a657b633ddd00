"""The shared crash rule (issue 17), item by item, against the real database.

A night's items left ``running``: the one that had not ordered runs again
tonight; the one whose SIM got an obligation since its claim, the one a
worker may still be running, and the one another host claimed are
re-planned; the one a live process of this host claimed is left to it.
The crash report says what that cost, and why.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from test_daemon import populate

from dialbot.db.engine import write_session
from dialbot.db.models import Service, Sim
from dialbot.db.obligations import create_obligation
from dialbot.db.types import utcnow
from dialbot.scheduling.hosts import Dispatch
from dialbot.scheduling.models import NightPlan, PlanItemRow
from dialbot.scheduling.recovery import (
    CUT_AFTER_ORDER,
    CUT_BEFORE_ORDER,
    CUT_ELSEWHERE,
    Recovery,
    crash_report,
    decide,
    owner_tag,
    recover_running,
)


def dead_owner() -> str:
    """host:pid of a process of this host that has ended."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    return f"{socket.gethostname()}:{child.stdout.strip()}"


def test_the_rule() -> None:
    assert decide(False) is Recovery.RERUN
    assert decide(True) is Recovery.REPLAN


def test_cut_items_rerun_or_replanned(session_factory: sessionmaker[Session]) -> None:
    db = session_factory
    populate(db, sps=2, per_sp=3, sims=6)
    now = utcnow()
    with db() as session:
        services = session.execute(select(Service.id, Service.code, Service.access_number)).all()
        sims = session.execute(select(Sim.id, Sim.msisdn).order_by(Sim.id)).all()
    owners = {
        "not_ordered": dead_owner(),
        "ordered": dead_owner(),
        "live": owner_tag(),
        "elsewhere": "another-host:123",
        "dispatched": dead_owner(),
        "done": dead_owner(),
    }
    with write_session(db) as session:
        night = NightPlan(schedule="s", night="n", window_start=now, window_end=now +
                          timedelta(hours=1), notes=[])  # fmt: skip
        session.add(night)
        session.flush()
        ids: dict[str, int] = {}
        for index, (name, owner) in enumerate(owners.items()):
            item = PlanItemRow(plan_id=night.id, seq=index, service_id=services[index][0],
                               sp_code="x", flow="decline", sim_id=sims[index][0],
                               reason="due", est_start_s=0.0, est_duration_s=1.0,
                               state="done" if name == "done" else "running", attempts=1,
                               started_at=now - timedelta(seconds=5), owner=owner)  # fmt: skip
            session.add(item)
            session.flush()
            ids[name] = item.id
        plan_id = night.id
        session.add(Dispatch(item_id=ids["dispatched"], plan_id=plan_id,
                             service_id=services[4][0], sp_code="x", flow="decline",
                             sim_id=sims[4][0], bank="b", state="running"))  # fmt: skip
    # the "ordered" item's SIM got its obligation after the claim; an older one elsewhere
    # (before the claim of "not_ordered") proves nothing
    create_obligation(db, sim=sims[1][1], sp_code="x", service_code=services[1][1],
                      access_number=services[1][2], cancel_cmd="TD")  # fmt: skip

    done = recover_running(db, plan_id, rerun=True)
    assert (done.rerun, done.replanned, done.left) == (1, 3, 1)
    with db() as session:
        rows = {i.id: i for i in session.scalars(select(PlanItemRow))}
    state = {name: (rows[i].state, rows[i].error, rows[i].reruns) for name, i in ids.items()}
    assert state["not_ordered"] == ("pending", CUT_BEFORE_ORDER, 1)
    assert state["ordered"] == ("interrupted", CUT_AFTER_ORDER, 0)
    assert state["dispatched"] == ("interrupted", CUT_AFTER_ORDER, 0)
    assert state["elsewhere"] == ("interrupted", CUT_ELSEWHERE, 0)
    assert state["live"][0] == "running"  # a thread of this process may be running it
    assert state["done"][0] == "done"

    report = crash_report(db, plan_id, later_night=True)
    assert (report.rerun, report.rerun_done, report.replanned, report.lost) == (1, 0, 3, 0)
    assert report.reasons == {"cut after its order may have gone out": 2,
                              "cut while another host ran it": 1}  # fmt: skip
    # the window closed: whatever still runs is re-planned, whoever claimed it
    assert recover_running(db, plan_id, rerun=False).replanned == 1
    last = crash_report(db, plan_id, later_night=False)
    assert last.replanned == 0 and last.lost == 4
    assert "0 re-planned, 4 lost" in last.line()
    assert "no later night in the coverage period" in last.line()

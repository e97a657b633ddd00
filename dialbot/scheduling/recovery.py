"""What a crash costs a night: re-run the probes that never ordered, re-plan the rest.

One rule, shared by the local runtime (a night resumed after its process
died) and the distributed one (a worker lost mid-probe): a probe whose
order may have gone out is never ordered again that night; one whose order
certainly did not go out is run again, at once. "May have gone out" is read
from the cleanup obligations, which are stored *before* the order: a SIM
with an obligation created since the probe was claimed may have ordered.
When in doubt (no claim time, a dispatch of the item still queued or
running on a worker that may be alive) the answer is "may have ordered"
(fail closed: nothing is ordered twice; the pair is re-planned).

- :func:`decide` is the rule; :func:`may_have_ordered` reads the evidence.
- :func:`recover_running` applies it to a night's items left ``running``:
  those that had not ordered go back to ``pending`` (``reruns`` + 1) and
  run again that night (on their SIM's lane); the others become
  ``interrupted`` and the planner plans them on a later night of the
  coverage period on another SIM (an interrupted item is not coverage).
  Items claimed by a process that is still alive on this host are left to it.
- :func:`crash_report` says at the end of a night what the crashes cost.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import write_session
from dialbot.db.models import CleanupObligation, Sim
from dialbot.db.outage import survives_outage
from dialbot.db.types import utcnow
from dialbot.scheduling.hosts import FINAL_DISPATCH_STATES, Dispatch
from dialbot.scheduling.models import ItemState, PlanItemRow

log = logging.getLogger("dialbot.scheduling.recovery")

CUT_AFTER_ORDER = "cut after its order may have gone out: re-planned on a later night"
CUT_BEFORE_ORDER = "cut before its order went out: run again tonight"
CUT_WINDOW_OVER = "cut before its order went out, window over: re-planned on a later night"
CUT_ELSEWHERE = "cut while another host ran it: re-planned on a later night"


class Recovery(StrEnum):
    RERUN = "rerun"  # no order went out: run it again, the same night
    REPLAN = "replan"  # an order may have gone out: never again tonight, a later night


def decide(may_have_ordered: bool) -> Recovery:
    """The rule, for every runtime: only a probe that certainly did not order runs again."""
    return Recovery.REPLAN if may_have_ordered else Recovery.RERUN


def owner_tag() -> str:
    """Who claims an item: this host and process (read at each claim: forks differ)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool:
    """Whether the item's claimer is a live process of this host (this one included: a
    lane thread of ours may be running it).

    Another host's process cannot be checked from here: it counts as dead, and
    its item is re-planned rather than re-run (never ordered twice).
    """
    if not owner:
        return False
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def order_went_out(session: Session, sim_ids: Collection[int], since: datetime) -> bool:
    """Whether any of these SIMs got a cleanup obligation since ``since``."""
    if not sim_ids:
        return False
    msisdns = select(Sim.msisdn).where(Sim.id.in_(list(sim_ids))).scalar_subquery()
    count = session.scalar(
        select(func.count())
        .select_from(CleanupObligation)
        .where(CleanupObligation.sim.in_(msisdns), CleanupObligation.created_at >= since)
    )
    return bool(count)


def may_have_ordered(session: Session, item: PlanItemRow) -> bool:
    """The evidence for one cut item: its SIM's (and its dispatches' SIMs') obligations
    since its claim; a dispatch still queued or running may yet order."""
    if item.started_at is None:
        return True
    dispatches = session.execute(
        select(Dispatch.sim_id, Dispatch.state).where(Dispatch.item_id == item.id)
    ).all()
    if any(state not in FINAL_DISPATCH_STATES for _, state in dispatches):
        return True
    sims = {item.sim_id, *(sim_id for sim_id, _ in dispatches)}
    return order_went_out(session, sims, item.started_at)


@dataclass
class Recovered:
    """What :func:`recover_running` did to a night's cut items."""

    rerun: int = 0
    replanned: int = 0
    left: int = 0  # still running in a live process of this host


@survives_outage
def recover_running(db: sessionmaker[Session], plan_id: int, *, rerun: bool) -> Recovered:
    """Resolve the night's items left ``running`` by a dead process (see the module doc).

    ``rerun`` False (the window is over): every item still running is re-planned,
    whoever claimed it (a live claimer's late result is then refused).
    """
    done = Recovered()
    with db() as session:
        items = list(
            session.scalars(
                select(PlanItemRow).where(
                    PlanItemRow.plan_id == plan_id, PlanItemRow.state == ItemState.RUNNING.value
                )
            )
        )
        verdicts = {}
        for item in items:
            if rerun and owner_alive(item.owner):  # window over: nobody may still run it
                done.left += 1
                continue
            ordered = may_have_ordered(session, item)
            local = item.owner is None or item.owner.rpartition(":")[0] == socket.gethostname()
            verdicts[item.id] = (decide(ordered or not local), ordered, local)
    for item_id, (verdict, ordered, local) in verdicts.items():
        if verdict is Recovery.RERUN and rerun:
            values: dict[str, object] = {"state": ItemState.PENDING.value, "error": CUT_BEFORE_ORDER,
                                         "reruns": PlanItemRow.reruns + 1}  # fmt: skip
            done.rerun += 1
        else:
            why = CUT_AFTER_ORDER if ordered else CUT_ELSEWHERE if not local else CUT_WINDOW_OVER
            values = {"state": ItemState.INTERRUPTED.value, "error": why, "ended_at": utcnow()}
            done.replanned += 1
        with write_session(db) as session:
            session.execute(
                update(PlanItemRow)
                .where(PlanItemRow.id == item_id, PlanItemRow.state == ItemState.RUNNING.value)
                .values(**values)
            )
    if items:
        log.info("cut items resolved", extra={"plan_id": plan_id, "rerun": done.rerun,
                                              "replanned": done.replanned, "left": done.left})  # fmt: skip
    return done


@dataclass
class CrashReport:
    """What crashes cost one night: counts, and why, for ``schedule run`` and the daemon."""

    rerun: int = 0  # items run again after a cut before their order
    rerun_done: int = 0  # of those, how many finished tonight
    replanned: int = 0  # cut items planned again on a later night of the period
    lost: int = 0  # cut items whose coverage period ends with this night
    reasons: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        text = (
            f"after crashes: {self.rerun} re-run ({self.rerun_done} done), "
            f"{self.replanned} re-planned, {self.lost} lost"
        )
        if self.reasons:
            text += " — " + "; ".join(f"{n} {why}" for why, n in sorted(self.reasons.items()))
        return text


@survives_outage
def crash_report(db: sessionmaker[Session], plan_id: int, later_night: bool) -> CrashReport:
    """Count the night's items a crash touched. ``later_night``: whether the coverage
    period has a night after this one (if not, what was not done is lost for it)."""
    report = CrashReport()
    with db() as session:
        rows = session.execute(
            select(PlanItemRow.state, PlanItemRow.reruns, PlanItemRow.error).where(
                PlanItemRow.plan_id == plan_id,
                (PlanItemRow.reruns > 0) | (PlanItemRow.state == ItemState.INTERRUPTED.value),
            )
        ).all()
    for state, reruns, error in rows:
        if reruns:
            report.rerun += 1
            if state in (ItemState.DONE.value, ItemState.FAILED.value):
                report.rerun_done += 1
                continue
        if state in (ItemState.PENDING.value, ItemState.RUNNING.value):
            continue  # still to run (a paused night)
        why = error or state
        if state == ItemState.INTERRUPTED.value:
            why = why.split(":")[0]
        elif reruns:
            why = f"re-run not finished ({state}: {why})"
        if later_night:
            report.replanned += 1
        else:
            report.lost += 1
            why += ", no later night in the coverage period"
        report.reasons[why] = report.reasons.get(why, 0) + 1
    return report

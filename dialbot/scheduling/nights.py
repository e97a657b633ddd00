"""A night, durably: its plan is stored before the first probe, and every
item is claimed, run and recorded through the database.

Crash safety comes from three rules:

- an item is *claimed* (``pending → running``) by a conditional UPDATE before
  the dispatcher is called, so a service whose order may have gone out is
  always marked, whatever happens next;
- when a night is opened again (restart, or ``schedule run`` twice) items
  still ``running`` in a dead process are resolved by the shared rule of
  :mod:`dialbot.scheduling.recovery`: those whose order had not gone out run
  again that night, the others become ``interrupted``, are never ordered
  again that night and are re-planned on a later night (the database
  refuses a second item for the same (service, flow) anyway);
- the caller discharges cleanup obligations before it resumes (see
  :mod:`dialbot.scheduling.service`), so an interrupted order leaves no SIM
  subscribed.

Each SIM's items run in plan order on a thread of their own; a SIM never
runs the same SP twice in a row, also when items in between were skipped.
A SIM done with its own items takes the last ones of the busiest lanes
(:mod:`dialbot.scheduling.stealing`), so lanes whose probes took longer than
estimated do not keep the night going while others sit idle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import count

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import write_connection, write_session
from dialbot.db.outage import DatabaseUnavailable, survives_outage
from dialbot.db.types import utcnow
from dialbot.scheduling.dispatch import Dispatcher, ProbeJob, ProbeOutcome
from dialbot.scheduling.keeping import KEEP_FLOWS
from dialbot.scheduling.models import ItemState, NightPlan, NightState, PlanItemRow
from dialbot.scheduling.planner import Plan, SimInfo
from dialbot.scheduling.recovery import owner_tag, recover_running
from dialbot.scheduling.stealing import (
    NOTHING_LEFT,
    Board,
    Lane,
    claim_moved,
    load_facts,
    moved_reason,
    next_seq,
)

log = logging.getLogger("dialbot.scheduling.nights")
Clock = Callable[[], datetime]
Progress = Callable[[int, str], None]  # (item id, new state)
ROTATION = "rotation: previous probe on this SIM was the same SP"
WAIT_S = 0.5  # longest a lane waits (for its SP, or for work to steal) before looking at stop


@dataclass(frozen=True)
class NightInfo:
    id: int
    schedule: str
    night: str
    state: str
    window_start: datetime
    window_end: datetime
    resumed: bool
    interrupted: int  # cut after their order may have gone out: re-planned later
    rerun: int = 0  # cut before their order went out: run again tonight


def open_night(
    db: sessionmaker[Session],
    schedule: str,
    night: str,
    window: tuple[datetime, datetime],
    build: Callable[[], Plan],
) -> NightInfo:
    """The night's stored plan: created from ``build()`` the first time, resumed after."""
    existing = _find(db, schedule, night)
    if existing is None:
        plan = build()
        try:
            return _store(db, schedule, night, window, plan)
        except IntegrityError:  # another process stored it first: resume theirs
            log.info("night stored concurrently", extra={"schedule": schedule, "night": night})
            existing = _find(db, schedule, night)
            assert existing is not None
    recovered = recover_running(db, existing.id, rerun=True)
    return NightInfo(
        existing.id, schedule, night, existing.state, existing.window_start,
        existing.window_end, True, recovered.replanned, recovered.rerun,
    )  # fmt: skip


@survives_outage
def _find(db: sessionmaker[Session], schedule: str, night: str) -> NightPlan | None:
    with db() as session:
        return session.scalars(
            select(NightPlan).where(NightPlan.schedule == schedule, NightPlan.night == night)
        ).one_or_none()


@survives_outage
def _store(
    db: sessionmaker[Session],
    schedule: str,
    night: str,
    window: tuple[datetime, datetime],
    plan: Plan,
) -> NightInfo:
    with write_session(db) as session:
        row = NightPlan(
            schedule=schedule,
            night=night,
            state=NightState.RUNNING.value,
            window_start=window[0],
            window_end=window[1],
            lanes=plan.lanes,
            capacity_s=plan.capacity_s,
            due=plan.due,
            due_quota=plan.due_quota,
            notes=list(plan.notes),
        )
        session.add(row)
        session.flush()
        if plan.items:
            session.execute(
                insert(PlanItemRow),
                [
                    {
                        "plan_id": row.id, "seq": i.seq, "service_id": i.service_id,
                        "sp_code": i.sp_code, "flow": i.flow, "sim_id": i.sim_id,
                        "reason": i.reason, "est_start_s": i.start_s,
                        "est_duration_s": i.duration_s, "state": ItemState.PENDING.value,
                        "attempts": 0,
                    }
                    for i in plan.items
                ],
            )  # fmt: skip
        return NightInfo(row.id, schedule, night, row.state, window[0], window[1], False, 0)


@survives_outage
def _claim(db: sessionmaker[Session], item_id: int) -> bool:
    # plain statements on a connection (no ORM session) for the lanes' every probe: on
    # SQLite every writer of every process waits while one holds the write lock
    claim = (
        update(PlanItemRow)
        .where(PlanItemRow.id == item_id, PlanItemRow.state == ItemState.PENDING.value)
        .values(
            state=ItemState.RUNNING.value,
            attempts=PlanItemRow.attempts + 1,
            started_at=utcnow(),
            owner=owner_tag(),
        )
    )
    with write_connection(db) as conn:
        return int(conn.execute(claim).rowcount) == 1


@survives_outage
def _set(
    db: sessionmaker[Session],
    item_ids: list[int],
    state: ItemState,
    *,
    only_from: ItemState,
    run_id: int | None = None,
    error: str | None = None,
) -> None:
    values: dict[str, object] = {"state": state.value, "error": error}
    if state is not ItemState.PENDING:
        values["ended_at"] = utcnow()
    if run_id is not None:
        values["run_id"] = run_id
    change = (
        update(PlanItemRow)
        .where(PlanItemRow.id.in_(item_ids), PlanItemRow.state == only_from.value)
        .values(**values)
    )
    with write_connection(db) as conn:
        conn.execute(change)


@survives_outage
def progress(db: sessionmaker[Session], plan_id: int) -> dict[str, int]:
    """How many of the night's items are in each state."""
    with db() as session:
        rows = session.execute(
            select(PlanItemRow.state, func.count())
            .where(PlanItemRow.plan_id == plan_id)
            .group_by(PlanItemRow.state)
        )
        return {state: int(count) for state, count in rows}


@survives_outage
def finish_night(db: sessionmaker[Session], plan_id: int) -> bool:
    """Mark the night done when nothing is left pending or running."""
    counts = progress(db, plan_id)
    if counts.get(ItemState.PENDING.value) or counts.get(ItemState.RUNNING.value):
        return False
    with write_session(db) as session:
        session.execute(
            update(NightPlan)
            .where(NightPlan.id == plan_id, NightPlan.state == NightState.RUNNING.value)
            .values(state=NightState.DONE.value, finished_at=utcnow())
        )
    return True


@survives_outage
def _load(db: sessionmaker[Session], plan_id: int) -> tuple[NightPlan, list[PlanItemRow]]:
    """A stored night and its items, in lane order."""
    with db() as session:
        night = session.get(NightPlan, plan_id)
        if night is None:
            raise LookupError(f"no night plan {plan_id}")
        items = session.scalars(
            select(PlanItemRow)
            .where(PlanItemRow.plan_id == plan_id)
            .order_by(PlanItemRow.sim_id, PlanItemRow.seq)
        )
        return night, list(items)


class NightExecutor:
    """Runs a stored night's pending items, one thread per SIM.

    With ``per_sp_concurrency`` (the schedule's) no more probes of one SP run at
    once than it allows, whatever the lanes' real durations; with ``sims`` too
    (the fleet's ready SIMs: their regions and modems), a lane with nothing
    of its own it may start steals the last items of the busiest lanes (see
    :mod:`dialbot.scheduling.stealing`).
    """

    def __init__(
        self,
        db: sessionmaker[Session],
        dispatcher: Dispatcher,
        *,
        retries: int = 0,
        stop: threading.Event | None = None,
        clock: Clock = utcnow,
        on_item: Progress | None = None,
        follow_days: float | None = None,
        per_sp_concurrency: int | None = None,
        sims: Mapping[int, SimInfo] | None = None,
    ) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self.retries = retries
        self.follow_days = follow_days  # the schedule's horizon, handed to every probe
        self.stop = stop or threading.Event()
        self.clock = clock
        self.on_item = on_item or (lambda _id, _state: None)
        self.per_sp_concurrency = per_sp_concurrency
        self.sims = sims
        self.moved = 0  # items this executor moved to another SIM
        self._seq: Iterator[int] = iter(())

    def run(self, plan_id: int) -> dict[str, int]:
        """Run until every item is final, the window closes or ``stop`` is set."""
        night, items = _load(self.db, plan_id)
        by_sim: dict[int, list[PlanItemRow]] = defaultdict(list)
        for item in items:
            by_sim[item.sim_id].append(item)
        lanes = {
            sim: Lane(sim, [i for i in lane if i.state == ItemState.PENDING.value],
                      _last_sp_run(lane), {i.service_id for i in lane},
                      kept=any(i.flow in KEEP_FLOWS and i.state != ItemState.PENDING.value
                               for i in lane))
            for sim, lane in by_sim.items()
        }  # fmt: skip
        facts = None
        if self.sims is not None and self.per_sp_concurrency is not None:
            facts = load_facts(self.db, plan_id, self.sims)
            self._seq = count(next_seq(self.db, plan_id))
        board = Board(lanes, self.per_sp_concurrency, facts)
        threads = [
            threading.Thread(target=self._lane, args=(lane, board, night.window_end),
                             name=f"lane-{sim}", daemon=True)
            for sim, lane in lanes.items()
        ]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if not self.stop.is_set():
            finish_night(self.db, plan_id)
        return progress(self.db, plan_id)

    def _lane(self, lane: Lane, board: Board, window_end: datetime) -> None:
        try:
            self._run_lane(lane, board, window_end)
        except DatabaseUnavailable as exc:  # the night ends on it too; one line is enough
            log.error("lane stopped: %s", exc, extra={"sim_id": lane.sim_id})
        except Exception:  # a broken lane must not take the night down with it
            log.exception("lane failed", extra={"sim_id": lane.sim_id})
        finally:
            board.close(lane)

    def _run_lane(self, lane: Lane, board: Board, window_end: datetime) -> None:
        while not self.stop.is_set():
            now = self.clock()
            if now >= window_end:
                self._skip([i.id for i in board.drop(lane)], "window over")
                return
            picked = board.pick(lane, now, window_end)
            if picked is NOTHING_LEFT:
                return
            if isinstance(picked, list):
                self._skip([i.id for i in picked], ROTATION)
                continue
            if not isinstance(picked, PlanItemRow):
                board.wait(lane, WAIT_S)  # nothing may start now: after the next change
                continue
            item = picked
            started = time.monotonic()
            try:  # the board counts its probe as running until this ends, however it ends
                moved = item.sim_id != lane.sim_id
                if moved and not self._move(item, lane):
                    continue  # finalised or claimed elsewhere meanwhile
                outcome = self._run_item(item, claimed=moved)
            finally:
                board.release(item.sp_code, item.id)
            if outcome is None:
                continue
            if outcome.ordered:
                board.took_s(item.flow, time.monotonic() - started)
            if outcome.status != "infra_failed" or outcome.ordered:
                lane.last_sp = item.sp_code
            if outcome.sim_unusable:
                rest = [i.id for i in board.drop(lane)]
                self._skip(rest, f"SIM out of service: {outcome.error or 'unusable'}")
                return

    def _move(self, item: PlanItemRow, lane: Lane) -> bool:
        """Claim another lane's item for this one, moving it to this SIM."""
        reason = moved_reason(item.reason)
        if not claim_moved(self.db, item.id, lane.sim_id, next(self._seq), reason):
            return False
        victim = item.sim_id
        item.sim_id, item.reason = lane.sim_id, reason
        self.moved += 1
        log.info(
            "probe moved to an idle SIM",
            extra={"item_id": item.id, "service_id": item.service_id, "flow": item.flow,
                   "sp_code": item.sp_code, "from_sim_id": victim, "sim_id": lane.sim_id,
                   "why": "its lane had the most work left; this SIM had none it could run"},
        )  # fmt: skip
        return True

    def _run_item(self, item: PlanItemRow, claimed: bool = False) -> ProbeOutcome | None:
        attempt = item.attempts
        while True:
            if claimed:
                claimed = False  # the caller claimed it (and moved it) already
            elif not _claim(self.db, item.id):
                return None  # someone else took it (or it was finalised meanwhile)
            attempt += 1
            self.on_item(item.id, ItemState.RUNNING.value)
            job = ProbeJob(item.id, item.plan_id, item.service_id, item.sp_code, item.flow,
                           item.sim_id, attempt, self.follow_days)  # fmt: skip
            try:
                outcome = self.dispatcher.run(job)
            except DatabaseUnavailable:
                raise  # nothing can be recorded: not an outcome of the probe
            except Exception as exc:  # the dispatcher broke: count it as infrastructure
                log.exception("dispatcher raised", extra={"item_id": item.id})
                outcome = ProbeOutcome("infra_failed", ordered=True, error=repr(exc))
            retry = (
                outcome.status == "infra_failed"
                and not outcome.ordered
                and not outcome.sim_unusable
                and attempt <= self.retries
                and not self.stop.is_set()
            )
            if retry:
                _set(self.db, [item.id], ItemState.PENDING, only_from=ItemState.RUNNING,
                     run_id=outcome.run_id, error=outcome.error)  # fmt: skip
                continue
            state = ItemState(outcome.status)
            _set(self.db, [item.id], state, only_from=ItemState.RUNNING,
                 run_id=outcome.run_id, error=outcome.error)  # fmt: skip
            self.on_item(item.id, state.value)
            log.info(
                "probe finished",
                extra={"item_id": item.id, "service_id": item.service_id, "flow": item.flow,
                       "sim_id": item.sim_id, "status": outcome.status, "attempt": attempt},
            )  # fmt: skip
            return outcome

    def _skip(self, item_ids: list[int], reason: str) -> None:
        if not item_ids:
            return
        _set(self.db, item_ids, ItemState.SKIPPED, only_from=ItemState.PENDING, error=reason)
        for item_id in item_ids:
            self.on_item(item_id, ItemState.SKIPPED.value)


def _last_sp_run(items: list[PlanItemRow]) -> str | None:
    """The SP this SIM last probed in this night (items already started), if any."""
    last: str | None = None
    for item in items:
        if item.started_at is not None and item.state not in (
            ItemState.PENDING.value, ItemState.SKIPPED.value,
        ):  # fmt: skip
            last = item.sp_code
    return last


@survives_outage
def close_expired(db: sessionmaker[Session], schedule: str, now: datetime) -> int:
    """Nights left running past their window (the process was down): close them.

    Their running items are re-planned (interrupted), their pending items skipped, and the
    night ``aborted``, so the metrics and the next plan see what really happened.
    """
    with db() as session:
        ids = list(
            session.scalars(
                select(NightPlan.id).where(
                    NightPlan.schedule == schedule,
                    NightPlan.state == NightState.RUNNING.value,
                    NightPlan.window_end <= now,
                )
            )
        )
    for plan_id in ids:
        recover_running(db, plan_id, rerun=False)
        with write_session(db) as session:
            session.execute(
                update(PlanItemRow)
                .where(PlanItemRow.plan_id == plan_id, PlanItemRow.state == ItemState.PENDING.value)
                .values(state=ItemState.SKIPPED.value, error="window over (process was down)")
            )
            session.execute(
                update(NightPlan)
                .where(NightPlan.id == plan_id)
                .values(state=NightState.ABORTED.value, finished_at=now)
            )
    return len(ids)

"""Work stealing between a night's lanes, under the planner's constraints.

The plan is made from *estimates* (every wait taken in full), so lanes end at
different times: a lane of silent services takes its full ``expect`` windows,
one of quick services runs ahead. Run back to back, the first lanes to end
would sit idle while the last ones drag the night on. So a lane that has no
pending item of its own left (or none it may start now) takes the **last**
pending item of the lane with the most work left (the victim's own sequence
is unaffected: it just ends sooner) and moves the plan item to its SIM, in
the transaction that claims it (:func:`claim_moved`); a victim that reaches
an item stolen by another process finds it claimed and goes on. Work left
counts each item at tonight's mean duration of its flow once one has ended:
the plan's estimates are upper bounds, 2 to 9 times the real duration
depending on the flow, and would point at the wrong lane.

Per-SP concurrency is counted for every probe, so it holds also when lanes
drift from the plan's estimated times; a lane whose next item's SP is at its
limit runs a later item of its own meanwhile (one that leaves no SP twice in
a row in what remains), or steals, rather than wait.

Every planner constraint holds for the thief (see
:mod:`dialbot.scheduling.planner`); what cannot be checked is not stolen:

- its last SP tonight is not the item's SP (rotation; a thief that has run
  nothing tonight does not steal: its last SP is in an earlier night);
- a SIM probes a service once a night (whatever the flow);
- at most ``per_sp_concurrency`` probes of one SP run at once (counted by
  the :class:`Board` for every probe of the night, own or stolen);
- a regional SIM only takes its region's (or nationwide) services, and a
  WAP or MMS probe only a SIM whose modem browses (the fleet's view of the
  SIMs, passed in once per night; an unknown SIM or service is not stolen
  for);
- never the (service, flow) on a SIM a probe of it was cut on after ordering
  (read once per night from the interrupted plan items of tonight's services);
- the estimated end is before the window's end.

A moved item keeps its plan reason with :data:`MOVED` appended (so operators
and the night's summary see it) and gets a sequence number after every
planned one, so a night resumed after a crash runs it at the end of its new
lane.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import write_session
from dialbot.db.models import Service
from dialbot.db.outage import survives_outage
from dialbot.db.types import utcnow
from dialbot.flows.channels import can_probe
from dialbot.scheduling.keeping import KEEP_FLOWS
from dialbot.scheduling.models import ItemState, PlanItemRow
from dialbot.scheduling.planner import SimInfo
from dialbot.scheduling.recovery import owner_tag

MOVED = "+moved"  # appended to a stolen item's reason
REASON_LENGTH = 16  # plan_items.reason is VARCHAR(16)


def moved_reason(reason: str) -> str:
    """The reason a moved item is stored with (its plan reason, marked as moved)."""
    if reason.endswith(MOVED):
        return reason
    return reason[: REASON_LENGTH - len(MOVED)] + MOVED


@dataclass(frozen=True)
class Facts:
    """What the executor does not otherwise know and stealing must check, read once a night."""

    sims: Mapping[int, SimInfo]  # the fleet's ready SIMs: region and data per SIM
    services: Mapping[int, tuple[str | None, str]]  # service id -> (region, channel)
    cut: frozenset[tuple[int, str, int]]  # (service, flow, SIM) cut after its order went out


@survives_outage
def load_facts(db: sessionmaker[Session], plan_id: int, sims: Mapping[int, SimInfo]) -> Facts:
    """Regions and channels of tonight's services, and where their probes were cut."""
    tonight = select(PlanItemRow.service_id).where(PlanItemRow.plan_id == plan_id)
    with db() as session:
        services = {
            sid: (region, channel or "sms")
            for sid, region, channel in session.execute(
                select(Service.id, Service.region, Service.channel).where(Service.id.in_(tonight))
            )
        }
        cut = frozenset(
            (sid, flow, sim)
            for sid, flow, sim in session.execute(
                select(PlanItemRow.service_id, PlanItemRow.flow, PlanItemRow.sim_id).where(
                    PlanItemRow.state == ItemState.INTERRUPTED.value,
                    PlanItemRow.service_id.in_(tonight),
                )
            )
        )
    return Facts(dict(sims), services, cut)


@survives_outage
def next_seq(db: sessionmaker[Session], plan_id: int) -> int:
    """A sequence number after every item of the plan (moved items are numbered from it)."""
    with db() as session:
        last = session.scalar(
            select(func.max(PlanItemRow.seq)).where(PlanItemRow.plan_id == plan_id)
        )
    return (last if last is not None else -1) + 1


@survives_outage
def claim_moved(
    db: sessionmaker[Session], item_id: int, sim_id: int, seq: int, reason: str
) -> bool:
    """Claim a pending item for another SIM: ``pending → running`` and moved, atomically."""
    with write_session(db) as session:
        result = session.execute(
            update(PlanItemRow)
            .where(PlanItemRow.id == item_id, PlanItemRow.state == ItemState.PENDING.value)
            .values(
                state=ItemState.RUNNING.value,
                attempts=PlanItemRow.attempts + 1,
                started_at=utcnow(),
                owner=owner_tag(),
                sim_id=sim_id,
                seq=seq,
                reason=reason,
            )
        )
        return int(result.rowcount) == 1  # type: ignore[attr-defined]


@dataclass
class Lane:
    """One SIM's own items not yet taken, in plan order, and its history tonight (guarded
    by the board's lock)."""

    sim_id: int
    pending: list[PlanItemRow]
    last_sp: str | None = None  # SP of its last probe tonight
    services: set[int] = field(default_factory=set)  # services on this SIM tonight
    closed: bool = False  # its thread has ended
    kept: bool = False  # it ran a keep probe tonight: nothing may follow it on this SIM
    seen: int = 0  # the board's change count when it last looked for work
    flows: Counter[str] = field(default_factory=Counter)  # flows of ``pending``, kept in step

    def __post_init__(self) -> None:
        self.flows = Counter(item.flow for item in self.pending)

    def take(self, index: int = -1) -> PlanItemRow:
        """Remove one of its pending items (by default the last)."""
        item = self.pending.pop(index)
        self.flows[item.flow] -= 1
        return item

    def clear(self) -> list[PlanItemRow]:
        """Remove all its pending items."""
        rest, self.pending = self.pending, []
        self.flows.clear()
        return rest

    def work_s(self, seconds: Callable[[str], float]) -> float:
        """Seconds of its own items not yet taken, each as ``seconds`` expects of its flow
        (per flow, not per item: a night of 100,000 services has thousands per lane)."""
        return sum(n * seconds(flow) for flow, n in self.flows.items() if n)


NOTHING_LEFT = "nothing left"  # no own item, nothing to steal: the lane's night is over
WAIT = "wait"  # nothing may start now: look again after the next change
LOOKAHEAD = 16  # own items a lane looks at when the next one may not start yet
# A service is slow tonight once a probe of it has run SLOW_FACTOR times its flow's mean
# (after SLOW_AFTER probes of the flow have ended: a mean to compare with).
SLOW_FACTOR = 1.5
SLOW_AFTER = 5


class Board:
    """The lanes of one night and the probes running per SP, shared by the lanes' threads.

    A lane asks :meth:`pick` for its next probe: one of its own items (within
    :data:`LOOKAHEAD`) that keeps rotation and per-SP concurrency and does not
    leave its remaining items stuck behind the same SP (so a lane whose next SP
    is at its limit runs a later item meanwhile rather than wait), else the
    last item of the lane with the most work left, if every constraint allows
    it on this SIM (see the module docstring). Among its own items the lane
    takes first (:meth:`_rank`) a service seen slow tonight (a probe of it ran
    1.5 times its flow's mean: the SP does not answer), then, near the lane's
    end, the longest, then a service not yet probed tonight (so a slow SP is
    found early), then the item whose SP has the most items left in the night;
    a slow service's item is also stolen from anywhere in its lane. On the
    mixed bench night (bench/night_bench.py) the night had ended on one such
    probe started in its last minutes, 1.18-1.23 times its unavoidable waits;
    1.13 with this order.
    """

    def __init__(self, lanes: Mapping[int, Lane], limit: int | None, facts: Facts | None) -> None:
        self.lanes = lanes
        self.limit = limit
        self.facts = facts if limit is not None else None  # stealing needs the limit
        self.running: dict[str, int] = {}
        self.cond = threading.Condition()
        self.changes = 0  # counts every change a waiting lane may care about
        self.took: dict[str, tuple[int, float]] = {}  # per flow: probes ended, their seconds
        # per SP: its items not yet taken, in every lane (its probes can run only
        # per_sp_concurrency at a time: an SP with many left is the night's critical path)
        self.sp_left: Counter[str] = Counter(
            item.sp_code for lane in lanes.values() for item in lane.pending
        )
        self.started: dict[int, tuple[PlanItemRow, float]] = {}  # running: item, its start
        self.slow: set[int] = set()  # services whose probe ran far past its flow's mean
        self.begun: set[int] = set()  # services with a probe taken tonight
        self.estimate: dict[str, float] = {}  # per flow: the plan's estimate
        for lane in lanes.values():
            for item in lane.pending:
                self.estimate[item.flow] = max(item.est_duration_s,
                                               self.estimate.get(item.flow, 0.0))  # fmt: skip

    def expected_s(self, flow: str) -> float:
        """How long a probe of ``flow`` should take: tonight's mean once one has ended, else
        the plan's estimate (an upper bound: every wait in full). Only for choosing whom to
        relieve; the window check keeps each item's upper bound."""
        count, total = self.took.get(flow, (0, 0.0))
        return total / count if count else self.estimate.get(flow, 0.0)

    def _learn_slow(self) -> None:
        """Services with a probe running (or run) far past its flow's mean tonight: an SP
        that does not answer makes every probe of it wait its windows in full, and one of
        them started in the night's last minutes would end the night alone."""
        now = time.monotonic()
        for item, began in self.started.values():
            count, total = self.took.get(item.flow, (0, 0.0))
            if count >= SLOW_AFTER and now - began > SLOW_FACTOR * total / count:
                self.slow.add(item.service_id)

    def took_s(self, flow: str, seconds: float) -> None:
        """A probe of ``flow`` ran ``seconds``."""
        with self.cond:
            count, total = self.took.get(flow, (0, 0.0))
            self.took[flow] = (count + 1, total + seconds)

    def pick(
        self, lane: Lane, now: datetime, window_end: datetime
    ) -> PlanItemRow | list[PlanItemRow] | str:
        """The lane's next probe, counted as running (a stolen one still carries its old
        SIM), or :data:`WAIT`, or :data:`NOTHING_LEFT`, or the lane's items that can never
        run on it (each of the SP it ran last, and nothing else runs that could change it)."""
        with self.cond:
            lane.seen = self.changes
            self._learn_slow()
            index = self._own(lane, strict=True)
            if index is None:
                index = self._own(lane, strict=False)
            if index is not None:
                item = lane.take(index)
                self.sp_left[item.sp_code] -= 1
                self.begun.add(item.service_id)
                lane.kept = lane.kept or item.flow in KEEP_FLOWS
                self._count(item)
                self.started[item.id] = (item, time.monotonic())
                return item
            stolen = self._steal(lane, now, window_end)
            if stolen is not None:
                self.begun.add(stolen.service_id)
                self.started[stolen.id] = (stolen, time.monotonic())
                return stolen
            others = self.facts is not None and any(
                o.pending for o in self.lanes.values() if o is not lane and not o.closed
            )
            if not lane.pending:
                return WAIT if others else NOTHING_LEFT
            rotation_only = all(item.sp_code == lane.last_sp for item in lane.pending)
            if (rotation_only and self.facts is None) or not any(self.running.values()):
                # stuck on rotation, and nothing that runs could change it
                stuck = self._clear(lane)
                self._changed()
                return stuck
            return WAIT

    def _clear(self, lane: Lane) -> list[PlanItemRow]:
        rest = lane.clear()
        self.sp_left.subtract(item.sp_code for item in rest)
        return rest

    def _own(self, lane: Lane, strict: bool) -> int | None:
        """Index of the own item the lane may start now whose SP has the most items left
        in the night (the first of them in plan order). Strict: taking it keeps its
        remaining items free of the same SP twice in a row (a later item is taken only if
        its neighbours differ and the lane's next item is of another SP).

        An SP's probes run at most per_sp_concurrency at a time, so one with many
        left bounds the night's end: the plan's order alone left the last SPs' probes
        queueing on that limit while lanes stood idle (bench/night_bench.py)."""
        items = lane.pending
        left_s = lane.work_s(self.expected_s)
        best: int | None = None
        for index, item in enumerate(items[: LOOKAHEAD if strict else 4 * LOOKAHEAD]):
            sp = item.sp_code
            if sp == lane.last_sp or not self._room(sp):
                continue
            if item.flow in KEEP_FLOWS and len(items) > 1:
                continue  # a keep runs last on its SIM (dialbot.scheduling.keeping)
            if strict and index > 0:
                if items[0].sp_code == sp:
                    continue
                if index + 1 < len(items) and items[index - 1].sp_code == items[index + 1].sp_code:
                    continue
            if best is None or self._rank(item, left_s) > self._rank(items[best], left_s):
                best = index
        return best

    def _rank(self, item: PlanItemRow, left_s: float) -> tuple[bool, bool, float, bool, int]:
        """Which of a lane's items goes first: a slow service's (see :meth:`_learn_slow`);
        then, once the lane has less work left than an item may take (its upper bound),
        the longest; then one of a service not yet probed tonight (its first probe tells
        whether its SP answers); then the one whose SP has the most items left (an SP's
        probes run only per_sp_concurrency at a time: one with many left bounds the
        night's end)."""
        late = item.est_duration_s >= left_s
        return (item.service_id in self.slow, late, item.est_duration_s if late else 0.0,
                item.service_id not in self.begun, self.sp_left[item.sp_code])  # fmt: skip

    def _room(self, sp: str) -> bool:
        return self.limit is None or self.running.get(sp, 0) < self.limit

    def _count(self, item: PlanItemRow) -> None:
        self.running[item.sp_code] = self.running.get(item.sp_code, 0) + 1

    def release(self, sp: str, item_id: int | None = None) -> None:
        """A probe of ``sp`` counted by :meth:`pick` ended (or never started)."""
        with self.cond:
            if item_id is not None:
                self.started.pop(item_id, None)
            self.running[sp] -= 1
            self._changed()

    def drop(self, lane: Lane) -> list[PlanItemRow]:
        """The lane stops (window over, SIM out of service): its own items left, which no
        other lane takes any more."""
        with self.cond:
            rest = self._clear(lane)
            lane.closed = True
            self._changed()
            return rest

    def close(self, lane: Lane) -> None:
        with self.cond:
            lane.closed = True
            self._changed()

    def _changed(self) -> None:
        self.changes += 1
        self.cond.notify_all()

    def wait(self, lane: Lane, timeout_s: float) -> None:
        """Until something changed since the lane's last look (a probe ended, a lane took
        an item or stopped), at most ``timeout_s``."""
        with self.cond:
            self.cond.wait_for(lambda: self.changes != lane.seen, timeout_s)

    # -- stealing ---------------------------------------------------------------------------

    def _steal(self, thief: Lane, now: datetime, window_end: datetime) -> PlanItemRow | None:
        """The last item of the lane with the most work left that the thief may run now
        (a thief with items of its own left only takes from a lane with more work left)."""
        if self.facts is None or thief.kept:
            return None  # after a keep nothing runs on its SIM: it would cancel the kept order
        own_s = thief.work_s(self.expected_s)
        tails: list[tuple[float, Lane]] = []
        for lane in self.lanes.values():
            if lane is not thief and lane.pending and not lane.closed:
                work = lane.work_s(self.expected_s)
                if work > own_s or not thief.pending:
                    tails.append((work, lane))
        tails.sort(key=lambda row: (-row[0], row[1].sim_id))
        for _, victim in tails:  # a slow service's item first, wherever it is in its lane
            for index, item in enumerate(victim.pending):
                if item.service_id in self.slow and item.flow not in KEEP_FLOWS:
                    if self._fits(thief, item, now, window_end):
                        victim.take(index)
                        self.sp_left[item.sp_code] -= 1
                        thief.services.add(item.service_id)
                        self._count(item)
                        return item
        for _, victim in tails:
            item = victim.pending[-1]
            if item.flow in KEEP_FLOWS:
                continue  # a keep stays last on its own SIM
            if self._fits(thief, item, now, window_end):
                victim.take()
                self.sp_left[item.sp_code] -= 1
                thief.services.add(item.service_id)
                self._count(item)
                return item
        return None

    def _fits(self, thief: Lane, item: PlanItemRow, now: datetime, window_end: datetime) -> bool:
        """Every planner constraint allows ``item`` on the thief's SIM now (see the module)."""
        facts = self.facts
        assert facts is not None and self.limit is not None
        sim = facts.sims.get(thief.sim_id)
        service = facts.services.get(item.service_id)
        if sim is None or service is None or thief.last_sp is None:
            return False  # a fact is missing: not stolen
        region, channel = service
        return (
            item.sp_code != thief.last_sp
            and (not thief.pending or item.sp_code != thief.pending[0].sp_code)
            and item.service_id not in thief.services
            and self.running.get(item.sp_code, 0) < self.limit
            and (region is None or sim.region in (None, region))
            and can_probe(channel, sim.data)
            and (item.service_id, item.flow, thief.sim_id) not in facts.cut
            and now + timedelta(seconds=item.est_duration_s) <= window_end
        )


@survives_outage
def moved_count(db: sessionmaker[Session], plan_id: int) -> int:
    """How many of the night's items were moved to an idle SIM (this run or an earlier one)."""
    with db() as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    PlanItemRow.plan_id == plan_id, PlanItemRow.reason.endswith(MOVED)
                )
            )
            or 0
        )

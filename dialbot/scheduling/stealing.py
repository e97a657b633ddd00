"""Work stealing between a night's lanes, under the planner's constraints.

The plan is made from *estimates* (every wait taken in full), so lanes end at
different times: a lane of silent services takes its full ``expect`` windows,
one of quick services runs ahead. Run back to back, the first lanes to end
would sit idle while the last ones drag the night on. So a lane that has no
pending item of its own left takes the **last** pending item of the lane with
the most estimated work left (the victim's own sequence is unaffected: it
just ends sooner) and moves the plan item to its SIM, in the transaction that
claims it (:func:`claim_moved`); a victim that reaches an item stolen by
another process finds it claimed and goes on.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import write_session
from dialbot.db.models import Service
from dialbot.db.outage import survives_outage
from dialbot.db.types import utcnow
from dialbot.flows.channels import can_probe
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
    """One SIM's items in plan order, and where its thread is (guarded by the board's lock)."""

    sim_id: int
    items: list[PlanItemRow]
    last_sp: str | None = None  # SP of its last probe tonight
    services: set[int] = field(default_factory=set)  # services on this SIM tonight
    at: int = -1  # index of the item the lane's thread is at
    closed: bool = False  # its thread stopped before its end: nothing to steal from it
    stolen: set[int] = field(default_factory=set)  # ids of its items other lanes took
    seen: int = 0  # the board's change count when it last looked for an item to steal

    def stealable(self) -> list[PlanItemRow]:
        """Its items the lane has not reached, still pending when loaded, not taken."""
        if self.closed:
            return []
        return [
            item
            for item in self.items[self.at + 1 :]
            if item.state == ItemState.PENDING.value and item.id not in self.stolen
        ]


NOTHING_LEFT = "nothing left"


class Board:
    """The lanes of one night and the probes running per SP, shared by the lanes' threads."""

    def __init__(self, lanes: Mapping[int, Lane], limit: int | None, facts: Facts | None) -> None:
        self.lanes = lanes
        self.limit = limit
        self.facts = facts
        self.running: dict[str, int] = {}
        self.cond = threading.Condition()
        self.changes = 0  # counts every change a waiting thief may care about

    # -- per-SP concurrency -----------------------------------------------------------------

    def acquire(self, sp: str, until: threading.Event, wait_s: float) -> bool:
        """Count a probe of ``sp`` as running, once fewer than the limit are; False if
        ``until`` was set first. Without a limit it counts and never waits."""
        with self.cond:
            while self.limit is not None and self.running.get(sp, 0) >= self.limit:
                if until.is_set():
                    return False
                self.cond.wait(wait_s)
            self.running[sp] = self.running.get(sp, 0) + 1
            return True

    def release(self, sp: str) -> None:
        with self.cond:
            self.running[sp] -= 1
            self._changed()

    def move_to(self, lane: Lane, index: int) -> None:
        """The lane's thread is at its item ``index`` (``len(items)``: at its end)."""
        with self.cond:
            lane.at = index
            self._changed()

    def close(self, lane: Lane) -> None:
        with self.cond:
            lane.closed = True
            self._changed()

    def _changed(self) -> None:
        self.changes += 1
        self.cond.notify_all()

    # -- stealing ---------------------------------------------------------------------------

    def steal(self, thief: Lane, now: datetime, window_end: datetime) -> PlanItemRow | str | None:
        """Take (in memory) the last item of the lane with the most work left that the thief
        may run now, counting its probe as running; :data:`NOTHING_LEFT` when no lane has
        anything left to take, None when nothing fits now (try again after the next change).
        """
        if self.facts is None or self.limit is None:
            return NOTHING_LEFT
        with self.cond:
            thief.seen = self.changes
            tails: list[tuple[float, Lane, PlanItemRow]] = []
            for lane in self.lanes.values():
                if lane is thief:
                    continue
                left = lane.stealable()
                if left:
                    tails.append((sum(i.est_duration_s for i in left), lane, left[-1]))
            if not tails:
                return NOTHING_LEFT
            tails.sort(key=lambda row: (-row[0], row[1].sim_id))
            for _, victim, item in tails:
                if self._fits(thief, item, now, window_end):
                    victim.stolen.add(item.id)
                    thief.services.add(item.service_id)
                    self.running[item.sp_code] = self.running.get(item.sp_code, 0) + 1
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
            and item.service_id not in thief.services
            and self.running.get(item.sp_code, 0) < self.limit
            and (region is None or sim.region in (None, region))
            and can_probe(channel, sim.data)
            and (item.service_id, item.flow, thief.sim_id) not in facts.cut
            and now + timedelta(seconds=item.est_duration_s) <= window_end
        )

    def wait(self, thief: Lane, timeout_s: float) -> None:
        """Until something changed since the thief's last look (a probe ended, a lane moved
        on), at most ``timeout_s``."""
        with self.cond:
            self.cond.wait_for(lambda: self.changes != thief.seen, timeout_s)


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

"""Tonight's plan: which (service, flow) is probed on which SIM, when.

Pure and fast (no database, no clock): the daemon gathers the facts, this
module decides. The unit of coverage is the (service, flow) pair: every
flow of the schedule that applies to a service's billing type is a promise
of its own (a monthly service is declined, ordered and cancelled, not only
declined). The decisions, in order of importance:

1. Coverage. Every applicable flow of every selected service must run once
   per coverage period. The pairs not yet probed this period are *due*;
   tonight takes at least ``ceil(due / nights left)`` of them (never-probed
   and longest-unprobed first), so the period's work is spread evenly and
   the last night is not a cliff.
2. Spare capacity goes first to the remaining due pairs (``ahead``: getting
   ahead is cheaper than falling behind), then to pairs worth a second look
   (``risk``): an SP with recent findings, a service never probed, a
   catalogue entry changed since its last probe.
3. Constraints, never broken: a night may run several flows of one service,
   but each on a different SIM; a SIM is not used on the same SP twice in a
   row (so SPs cannot learn the test numbers); a SIM below the balance
   floor is left out (and named in the notes); a pair whose probe was cut
   after its order went out is not planned on the SIM it was cut on. When a
   SIM could only take pairs of the SP it probed last, it first probes a
   pair of another SP that is already covered (reason ``rotation``), so
   rotation never starves coverage; at most ``per_sp_concurrency`` probes
   of one SP run at once; nothing starts if its estimated end is after the
   window's end; a regional bank only probes its region's (or nationwide)
   services.

Placement is list scheduling over lanes (one per usable SIM), in time
order: the earliest-free lane takes the highest-priority pair it may take.
Pairs are queued per (SP, region), with a heap of queue heads. A night
places far fewer pairs than a large catalogue has (some 13,000 of 200,000),
so a queue's pairs are ranked only when the placement reaches them
(ranking.py); the plan is the same as if all were ranked up front, and one
over 100,000 services and their flows takes about half a second.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from itertools import islice

from dialbot.flows.channels import can_probe
from dialbot.mask import mask_msisdn
from dialbot.scheduling.ranking import (
    DURATION,
    FILLER,
    FLOW,
    SERVICE,
    TIER,
    TIER_AHEAD,
    TIER_DUE,
    TIER_RISK,
    TIER_ROTATION,
    Head,
    Heads,
    Queue,
    Queues,
    RankedPairs,
    _Candidate,
)

# How many queue heads a free lane looks at before it waits for the next
# probe to end (bounds the cost when most SPs are blocked for that lane).
SCAN_LIMIT = 32
REASONS = {TIER_DUE: "due", TIER_RISK: "risk", TIER_AHEAD: "ahead", TIER_ROTATION: "rotation"}


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """What the planner needs to know about one selected service.

    ``flow_probed`` holds, per flow, when that flow last probed the service
    (coverage is counted per flow); ``interrupted_on`` names, per flow, the
    SIM a probe of it was cut on after its order went out (re-planned on
    another SIM).
    """

    service_id: int
    sp_code: str
    billing: str
    region: str | None = None
    flow_probed: Mapping[str, datetime] = field(default_factory=dict)
    changed_at: datetime | None = None  # last catalogue change
    recent_findings: int = 0  # recent findings against its SP
    interrupted_on: Mapping[str, int] = field(default_factory=dict)
    channel: str = "sms"  # sms | wap | mms | ivr: which flows probe it (see flows_by_billing)

    @property
    def last_probed(self) -> datetime | None:
        """The last probe of the service by any flow."""
        return max(self.flow_probed.values()) if self.flow_probed else None

    @property
    def flow_key(self) -> str:
        """The key of `flows_by_billing` whose flows apply to this service."""
        return flow_key(self.channel, self.billing)


@dataclass(frozen=True, slots=True)
class SimInfo:
    """A ready SIM (one modem, one lane)."""

    sim_id: int
    msisdn: str
    region: str | None = None  # its bank's region; None: nationwide
    balance_fen: int | None = None
    last_sp: str | None = None  # SP of the last probe this SIM ran
    data: str | None = None  # fleet `data`: "http" when its modem browses (WAP/MMS probes)


@dataclass(frozen=True)
class NightSpec:
    """The night's frame: window, period, flows and limits."""

    start: datetime
    end: datetime
    period_start: datetime
    nights_left: int
    flows: tuple[str, ...]
    flow_billing: Mapping[str, tuple[str, ...]]
    flow_seconds: Mapping[str, float]
    per_sp_concurrency: int = 1
    balance_floor_fen: int = 0

    @property
    def window_s(self) -> float:
        return max(0.0, (self.end - self.start).total_seconds())


@dataclass(frozen=True, slots=True)
class PlanItem:
    """One probe: start offset and duration are estimates in seconds from the window start."""

    seq: int
    service_id: int
    sp_code: str
    flow: str
    sim_id: int
    start_s: float
    duration_s: float
    reason: str


@dataclass
class Plan:
    """Tonight's probes and why, plus the figures behind them.

    Counts of ``due`` and coverage are of (service, flow) pairs.
    """

    items: list[PlanItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lanes: int = 0
    capacity_s: float = 0.0
    busy_s: float = 0.0
    due: int = 0
    due_quota: int = 0
    due_planned: int = 0
    pairs: int = 0  # applicable (service, flow) pairs of the selection
    covered_before: int = 0  # pairs already probed this period before tonight
    skipped_sims: list[int] = field(default_factory=list)

    @property
    def utilisation(self) -> float:
        return self.busy_s / self.capacity_s if self.capacity_s else 0.0

    @property
    def due_tonight(self) -> int:
        """Due pairs planned tonight (tonight's quota and those taken ahead)."""
        return sum(1 for item in self.items if item.reason in ("due", "ahead"))

    @property
    def period_coverage(self) -> float:
        """Share of the period's pairs covered once tonight's plan has run."""
        if not self.pairs:
            return 1.0
        return (self.covered_before + self.due_tonight) / self.pairs

    def coverage_note(self) -> str:
        """What coverage tonight reaches, in the words ``schedule list`` and the notes use."""
        return (
            f"covers {self.due_tonight}/{self.due} due (service, flow) pairs; period coverage "
            f"{self.period_coverage:.0%} ({self.covered_before + self.due_tonight}/{self.pairs})"
        )


@dataclass(slots=True)
class _Lane:
    sim: SimInfo
    last_sp: str | None
    services: set[int] = field(default_factory=set)  # services this SIM probes tonight


def plan_night(services: Iterable[ServiceInfo], sims: Sequence[SimInfo], spec: NightSpec) -> Plan:
    """Decide tonight's probes (see the module docstring for the rules)."""
    plan = Plan()
    lanes = _usable_lanes(sims, spec, plan)
    pairs = RankedPairs(services, flows_by_billing(spec), spec, flow_key)
    if pairs.no_flow:
        plan.notes.append(f"{pairs.no_flow} services have a billing type no scheduled flow probes")
    plan.due = pairs.due
    plan.pairs = pairs.due + pairs.covered
    plan.covered_before = pairs.covered
    plan.due_quota = math.ceil(pairs.due / max(1, spec.nights_left))
    plan.lanes = len(lanes)
    plan.capacity_s = len(lanes) * spec.window_s
    if not lanes:
        plan.notes.append("no usable SIM tonight: nothing planned")
    elif pairs.total:
        _place(pairs, lanes, spec, plan, _Fillers(pairs))
    plan.due_planned = sum(1 for item in plan.items if item.reason == "due")
    short = plan.due_quota - plan.due_planned
    if short > 0:
        plan.notes.append(
            f"coverage at risk: {short} of tonight's {plan.due_quota} due (service, flow) pairs "
            "could not be placed (capacity, per-SP concurrency, region or rotation)"
        )
    plan.notes.append(
        f"{len(plan.items)} probes on {plan.lanes} SIMs, {plan.due} (service, flow) pairs due "
        f"this period (quota {plan.due_quota} tonight, {spec.nights_left} night(s) left), "
        f"estimated utilisation {plan.utilisation:.0%}"
    )
    plan.notes.append(plan.coverage_note())
    return plan


def _usable_lanes(sims: Sequence[SimInfo], spec: NightSpec, plan: Plan) -> list[_Lane]:
    """SIMs at or above the balance floor; the others are named in the notes."""
    lanes: list[_Lane] = []
    for sim in sims:
        if sim.balance_fen is not None and sim.balance_fen < spec.balance_floor_fen:
            plan.skipped_sims.append(sim.sim_id)
            plan.notes.append(
                f"SIM {mask_msisdn(sim.msisdn)} skipped: balance {sim.balance_fen} fen is below "
                f"the floor of {spec.balance_floor_fen} fen"
            )
            continue
        if sim.balance_fen is None and spec.balance_floor_fen > 0:
            plan.notes.append(f"SIM {mask_msisdn(sim.msisdn)}: balance unknown, used anyway")
        lanes.append(_Lane(sim, sim.last_sp))
    return lanes


WAP_FLOW = "wap"
IVR_FLOW = "ivr"
# Channels probed only by the flow of that name, which probes nothing else.
CHANNEL_FLOWS = {"wap": WAP_FLOW, "ivr": IVR_FLOW}


def flow_key(channel: str, billing: str) -> str:
    """Flows are applicable per billing type, and a channel's own flow (WAP: browsing,
    ivr: calls) only to that channel's services."""
    return f"{channel}:{billing}" if channel in CHANNEL_FLOWS else billing


Pair = tuple[ServiceInfo, str]


def flows_by_billing(spec: NightSpec) -> dict[str, list[str]]:
    """The schedule's flows that apply to each billing type, in the schedule's order
    (keyed by `flow_key`: the `wap` and `ivr` flows apply only to their channel's
    services, the others never to those)."""
    by_billing: dict[str, list[str]] = {}
    for flow in spec.flows:
        channel = next((c for c, name in CHANNEL_FLOWS.items() if name == flow), "sms")
        for billing in spec.flow_billing.get(flow, ()):
            by_billing.setdefault(flow_key(channel, billing), []).append(flow)
    return by_billing


class _Fillers:
    """Covered pairs, handed out one by one to break a SIM's rotation deadlock (sorted
    the first time one is asked for: most nights need none)."""

    def __init__(self, pairs: RankedPairs) -> None:
        self.pairs = pairs
        self.queue: deque[tuple[ServiceInfo, str]] | None = None
        self.taken = 0

    def take(self, lane: _Lane, ok: Callable[[_Candidate], bool]) -> _Candidate | None:
        """The longest-unprobed covered pair of another SP this lane may run now."""
        if self.queue is None:
            self.queue = deque(self.pairs.covered_pairs())
        queue, seconds = self.queue, self.pairs.seconds
        for _ in range(min(SCAN_LIMIT, len(queue))):
            service, flow = queue.popleft()
            cand = (FILLER, self.taken, 0, 0, 0, 0, TIER_ROTATION, service, flow, seconds[flow])
            if service.sp_code != lane.last_sp and ok(cand):
                self.taken += 1
                return cand
            queue.append((service, flow))
        return None


def _place(
    pairs: RankedPairs, lanes: list[_Lane], spec: NightSpec, plan: Plan, fillers: _Fillers
) -> None:
    """List scheduling: the earliest-free lane takes the best queue head it may take.

    A queue's candidates are ranked as the placement reaches them (see ranking.py):
    its head from the start, more when the head is taken or a lane scans past the
    ranked ones."""
    window = spec.window_s
    limit = spec.per_sp_concurrency
    shortest = pairs.shortest()
    room = len(lanes) * (int(window // shortest) + 1) if shortest > 0 else pairs.total
    queues, heads = pairs.start(room)  # room: at most this many probes fit tonight
    free: list[tuple[float, int]] = [(0.0, i) for i in range(len(lanes))]
    running: dict[str, list[float]] = {}  # SP -> end times of its placed probes
    ends: list[float] = []  # every placed probe's end, for waking blocked lanes
    placed: list[tuple[float, int, _Candidate]] = []
    pop, push = heapq.heappop, heapq.heappush
    while free and heads:
        now, index = pop(free)
        if window - now < shortest:
            continue
        lane = lanes[index]
        chosen, rotation_blocked = _choose(pairs, heads, queues, lane, now, window, running, limit)
        if chosen is None and rotation_blocked:
            chosen = fillers.take(lane, partial(_fits, lane=lane, now=now, window=window,
                                                running=running, limit=limit))  # fmt: skip
        if chosen is None:
            while ends and ends[0] <= now:
                pop(ends)
            if ends and ends[0] + shortest <= window:
                push(free, (ends[0], index))
            continue
        service = chosen[SERVICE]
        duration = chosen[DURATION]
        end = now + duration
        sp = service.sp_code
        lane.last_sp = sp
        lane.services.add(service.service_id)
        sp_ends = running.get(sp)
        if sp_ends is None:
            sp_ends = running[sp] = []
        push(sp_ends, end)
        push(ends, end)
        push(free, (end, index))
        placed.append((now, index, chosen))
        plan.busy_s += duration
    due = sorted(cand for _, _, cand in placed if cand[TIER] == TIER_DUE)  # by rank
    quota = {id(cand) for cand in due[: plan.due_quota]}
    placed.sort(key=lambda row: (row[0], row[1]))
    for seq, (start, index, cand) in enumerate(placed):
        tier = cand[TIER]
        if tier == TIER_DUE and id(cand) not in quota:
            tier = TIER_AHEAD
        plan.items.append(
            PlanItem(
                seq=seq,
                service_id=cand[SERVICE].service_id,
                sp_code=cand[SERVICE].sp_code,
                flow=cand[FLOW],
                sim_id=lanes[index].sim.sim_id,
                start_s=start,
                duration_s=cand[DURATION],
                reason=REASONS[tier],
            )
        )


def _choose(
    pairs: RankedPairs,
    heads: Heads,
    queues: Queues,
    lane: _Lane,
    now: float,
    window: float,
    running: dict[str, list[float]],
    limit: int,
) -> tuple[_Candidate | None, bool]:
    """Pop the best candidate this lane may run at ``now``; put back what it passed over.

    Within a queue, a candidate the lane may not take (its service already ran
    on this SIM tonight) is passed for the next one of the same queue. Also says
    whether a candidate was passed over only because of rotation.
    """
    passed: list[Head] = []
    chosen: _Candidate | None = None
    rotation_blocked = False
    region = lane.sim.region
    last_sp = lane.last_sp
    pop = heapq.heappop
    while heads and len(passed) < SCAN_LIMIT:
        entry = pop(heads)
        key = entry[4]
        sp, queue_region = key
        if (queue_region is not None and region is not None and region != queue_region) or (
            _active(running.get(sp), now) >= limit
        ):  # the whole queue waits
            passed.append(entry)
            continue
        if sp == last_sp and rotation_blocked:  # its scan could only say rotation again
            passed.append(entry)
            continue
        queue = queues[key]
        at = _first_fit(queue, lane, now, window, pairs)
        if at is None or sp == last_sp:
            rotation_blocked = rotation_blocked or at is not None
            passed.append(entry)
            continue
        chosen = queue[at]
        del queue[at]
        if queue or pairs.fill(queue):
            heapq.heappush(heads, pairs.head(queue, key))
        break
    for entry in passed:
        heapq.heappush(heads, entry)
    return chosen, rotation_blocked


def _first_fit(
    queue: Queue, lane: _Lane, now: float, window: float, pairs: RankedPairs
) -> int | None:
    """Index of the first of a queue's first SCAN_LIMIT candidates this lane may start at
    ``now`` as far as the candidate alone decides (its service, its SIM, its duration);
    the queue's SP and region are checked by the caller, once for the whole queue; a
    WAP or MMS probe needs a SIM whose modem browses. The queue's next candidates are
    ranked when the scan reaches its ranked end."""
    sim_id = lane.sim.sim_id
    done = lane.services
    data = lane.sim.data
    start = 0
    while True:
        for at, cand in enumerate(islice(queue, start, SCAN_LIMIT), start):
            service = cand[SERVICE]
            if service.service_id in done or now + cand[DURATION] > window:
                continue
            if not can_probe(service.channel, data):
                continue  # WAP and MMS probes only on modems that can browse
            if service.interrupted_on and service.interrupted_on.get(cand[FLOW]) == sim_id:
                continue
            return at
        start = min(len(queue), SCAN_LIMIT)
        if start >= SCAN_LIMIT or not pairs.fill(queue):
            return None


def _fits(
    cand: _Candidate,
    *,
    lane: _Lane,
    now: float,
    window: float,
    running: dict[str, list[float]],
    limit: int,
) -> bool:
    """Region, window end, per-SP concurrency and the lane's history allow ``cand`` on
    ``lane`` at ``now`` (a SIM probes a service once a night, and never again the pair
    it was cut on after ordering)."""
    service = cand[SERVICE]
    if service.service_id in lane.services:
        return False
    if service.interrupted_on and service.interrupted_on.get(cand[FLOW]) == lane.sim.sim_id:
        return False
    region = service.region
    if region is not None and lane.sim.region not in (None, region):
        return False
    if not can_probe(service.channel, lane.sim.data):
        return False  # WAP and MMS probes only on modems that can browse
    if now + cand[DURATION] > window:
        return False
    return _active(running.get(cand[SERVICE].sp_code), now) < limit


def _active(ends: list[float] | None, now: float) -> int:
    """Probes of one SP still running at ``now`` (drops the finished ones)."""
    if not ends:
        return 0
    while ends and ends[0] <= now:
        heapq.heappop(ends)
    return len(ends)

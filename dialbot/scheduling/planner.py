"""Tonight's plan: which service is probed with which flow, on which SIM, when.

Pure and fast (no database, no clock): the daemon gathers the facts, this
module decides. The decisions, in order of importance:

1. Coverage. Every selected service must be probed once per coverage period.
   The services not yet probed this period are *due*; tonight takes at least
   ``ceil(due / nights left)`` of them (never-probed and longest-unprobed
   first), so the period's work is spread evenly and the last night is not
   a cliff.
2. Risk. Spare capacity goes to services worth a second look: an SP with
   recent findings, a service never probed, a catalogue entry changed since
   its last probe. After that, due services beyond tonight's quota (getting
   ahead is cheaper than falling behind).
3. Constraints, never broken: a SIM is not used on the same SP twice in a
   row (so SPs cannot learn the test numbers); a SIM below the balance floor
   is left out (and named in the notes). When a SIM could only take
   services of the SP it probed last, it first probes a service of another
   SP that is already covered (reason ``rotation``), so rotation never
   starves coverage; at most ``per_sp_concurrency``
   probes of one SP run at once; nothing starts if its estimated end is
   after the window's end; a regional bank only probes its region's (or
   nationwide) services.

Placement is list scheduling over lanes (one per usable SIM), in time
order: the earliest-free lane takes the highest-priority service it may
take. Services are queued per (SP, region), with a heap of queue heads, so
a plan over 100,000 services takes well under a second.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from dialbot.flows.channels import can_probe, channel_flows
from dialbot.mask import mask_msisdn

# How many queue heads a free lane looks at before it waits for the next
# probe to end (bounds the cost when most SPs are blocked for that lane).
SCAN_LIMIT = 32
TIER_DUE, TIER_RISK, TIER_AHEAD, TIER_ROTATION = 0, 1, 2, 3
REASONS = {TIER_DUE: "due", TIER_RISK: "risk", TIER_AHEAD: "ahead", TIER_ROTATION: "rotation"}


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """What the planner needs to know about one selected service."""

    service_id: int
    sp_code: str
    billing: str
    region: str | None = None
    last_probed: datetime | None = None
    last_flow: str | None = None
    changed_at: datetime | None = None  # last catalogue change
    recent_findings: int = 0  # recent findings against its SP
    channel: str = "sms"  # sms | wap | mms: which flow does what a scheduled flow does


@dataclass(frozen=True, slots=True)
class SimInfo:
    """A ready SIM (one modem, one lane)."""

    sim_id: int
    msisdn: str
    region: str | None = None  # its bank's region; None: nationwide
    balance_fen: int | None = None
    last_sp: str | None = None  # SP of the last probe this SIM ran
    data: str | None = None  # its modem browses ("http") or not ("none"); None: unknown


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
    """Tonight's probes and why, plus the figures behind them."""

    items: list[PlanItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lanes: int = 0
    capacity_s: float = 0.0
    busy_s: float = 0.0
    due: int = 0
    due_quota: int = 0
    due_planned: int = 0
    skipped_sims: list[int] = field(default_factory=list)

    @property
    def utilisation(self) -> float:
        return self.busy_s / self.capacity_s if self.capacity_s else 0.0


@dataclass(slots=True)
class _Candidate:
    rank: int
    service: ServiceInfo
    flow: str
    duration: float
    tier: int


@dataclass(slots=True)
class _Lane:
    sim: SimInfo
    last_sp: str | None


def plan_night(services: Iterable[ServiceInfo], sims: Sequence[SimInfo], spec: NightSpec) -> Plan:
    """Decide tonight's probes (see the module docstring for the rules)."""
    plan = Plan()
    lanes = _usable_lanes(sims, spec, plan)
    candidates, covered, by_billing = _candidates(services, spec, plan)
    plan.lanes = len(lanes)
    plan.capacity_s = len(lanes) * spec.window_s
    if not lanes:
        plan.notes.append("no usable SIM tonight: nothing planned")
    elif candidates:
        fillers = _Fillers(covered, by_billing, spec, len(candidates))
        _place(candidates, lanes, spec, plan, fillers)
    plan.due_planned = sum(1 for item in plan.items if item.reason == "due")
    short = plan.due_quota - plan.due_planned
    if short > 0:
        plan.notes.append(
            f"coverage at risk: {short} of tonight's {plan.due_quota} due services could not "
            "be placed (capacity, per-SP concurrency, region or rotation)"
        )
    plan.notes.append(
        f"{len(plan.items)} probes on {plan.lanes} SIMs, {plan.due} services due this period "
        f"(quota {plan.due_quota} tonight, {spec.nights_left} night(s) left), "
        f"estimated utilisation {plan.utilisation:.0%}"
    )
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


def _risk(service: ServiceInfo) -> float:
    """Why a service deserves a look beyond coverage (0: no reason)."""
    score = 3.0 * min(service.recent_findings, 10)
    if service.last_probed is None:
        score += 5.0
    elif service.changed_at is not None and service.changed_at > service.last_probed:
        score += 4.0
    return score


def _applicable(service: ServiceInfo, by_billing: dict[str, list[str]]) -> list[str]:
    """The scheduled flows of the service's billing type, as its channel runs them."""
    return channel_flows(by_billing[service.billing], service.channel, service.billing)


def _pick_flow(service: ServiceInfo, applicable: Sequence[str]) -> str:
    """The flow after the one used last time, so a service meets every flow in turn."""
    if service.last_flow in applicable:
        return applicable[(applicable.index(service.last_flow) + 1) % len(applicable)]
    return applicable[0]


def _candidates(
    services: Iterable[ServiceInfo], spec: NightSpec, plan: Plan
) -> tuple[list[_Candidate], list[ServiceInfo], dict[str, list[str]]]:
    """Every service worth probing tonight, ranked (rank 0 is the most urgent); the
    covered ones (rotation fillers); the flows per billing type."""
    by_billing: dict[str, list[str]] = {}
    for flow in spec.flows:
        for billing in spec.flow_billing.get(flow, ()):
            by_billing.setdefault(billing, []).append(flow)
    due: list[tuple[float, float, int, ServiceInfo]] = []
    risky: list[tuple[float, int, ServiceInfo]] = []
    no_flow = 0
    covered: list[ServiceInfo] = []
    for service in services:
        if service.billing not in by_billing:
            no_flow += 1
            continue
        risk = _risk(service)
        if service.last_probed is None or service.last_probed < spec.period_start:
            age = service.last_probed.timestamp() if service.last_probed else -math.inf
            due.append((age, -risk, service.service_id, service))
        elif risk > 0:
            risky.append((-risk, service.service_id, service))
        else:
            covered.append(service)
    if no_flow:
        plan.notes.append(f"{no_flow} services have a billing type no scheduled flow probes")
    due.sort(key=lambda row: row[:3])
    risky.sort(key=lambda row: row[:2])
    plan.due = len(due)
    plan.due_quota = math.ceil(len(due) / max(1, spec.nights_left))
    ordered: list[tuple[int, ServiceInfo]] = [(TIER_DUE, row[3]) for row in due[: plan.due_quota]]
    extra = due[plan.due_quota :]
    ordered += [(TIER_RISK, row[3]) for row in extra if row[1] < 0]
    ordered += [(TIER_RISK, row[2]) for row in risky]
    ordered += [(TIER_AHEAD, row[3]) for row in extra if row[1] >= 0]
    result: list[_Candidate] = []
    for rank, (tier, service) in enumerate(ordered):
        flow = _pick_flow(service, _applicable(service, by_billing))
        duration = float(spec.flow_seconds.get(flow, 0.0))
        result.append(_Candidate(rank, service, flow, duration, tier))
    return result, covered, by_billing


class _Fillers:
    """Covered services, handed out one by one to break a SIM's rotation deadlock."""

    def __init__(
        self,
        covered: list[ServiceInfo],
        by_billing: dict[str, list[str]],
        spec: NightSpec,
        first_rank: int,
    ) -> None:
        covered.sort(key=lambda s: s.last_probed.timestamp() if s.last_probed else 0.0)
        self.queue = deque(covered)
        self.by_billing = by_billing
        self.spec = spec
        self.rank = first_rank

    def take(self, lane: _Lane, ok: Callable[[_Candidate], bool]) -> _Candidate | None:
        """The longest-unprobed covered service of another SP this lane may run now."""
        for _ in range(min(SCAN_LIMIT, len(self.queue))):
            service = self.queue.popleft()
            flow = _pick_flow(service, _applicable(service, self.by_billing))
            cand = _Candidate(self.rank, service, flow,
                              float(self.spec.flow_seconds.get(flow, 0.0)), TIER_ROTATION)  # fmt: skip
            if service.sp_code != lane.last_sp and ok(cand):
                self.rank += 1
                return cand
            self.queue.append(service)
        return None


def _place(
    candidates: list[_Candidate],
    lanes: list[_Lane],
    spec: NightSpec,
    plan: Plan,
    fillers: _Fillers,
) -> None:
    """List scheduling: the earliest-free lane takes the best queue head it may take."""
    window = spec.window_s
    limit = spec.per_sp_concurrency
    queues: dict[tuple[str, str | None], deque[_Candidate]] = {}
    for cand in candidates:
        queues.setdefault((cand.service.sp_code, cand.service.region), deque()).append(cand)
    heads = [(q[0].rank, key) for key, q in queues.items()]
    heapq.heapify(heads)
    shortest = min(c.duration for c in candidates)
    free: list[tuple[float, int]] = [(0.0, i) for i in range(len(lanes))]
    running: dict[str, list[float]] = {}  # SP -> end times of its placed probes
    ends: list[float] = []  # every placed probe's end, for waking blocked lanes
    placed: list[tuple[float, int, _Candidate]] = []
    while free and heads:
        now, index = heapq.heappop(free)
        if window - now < shortest:
            continue
        lane = lanes[index]
        chosen, rotation_blocked = _choose(heads, queues, lane, now, window, running, limit)
        if chosen is None and rotation_blocked:
            chosen = fillers.take(lane, partial(_fits, lane=lane, now=now, window=window,
                                                running=running, limit=limit))  # fmt: skip
        if chosen is None:
            while ends and ends[0] <= now:
                heapq.heappop(ends)
            if ends and ends[0] + shortest <= window:
                heapq.heappush(free, (ends[0], index))
            continue
        end = now + chosen.duration
        lane.last_sp = chosen.service.sp_code
        heapq.heappush(running.setdefault(chosen.service.sp_code, []), end)
        heapq.heappush(ends, end)
        heapq.heappush(free, (end, index))
        placed.append((now, index, chosen))
        plan.busy_s += chosen.duration
    placed.sort(key=lambda row: (row[0], row[1]))
    for seq, (start, index, cand) in enumerate(placed):
        plan.items.append(
            PlanItem(
                seq=seq,
                service_id=cand.service.service_id,
                sp_code=cand.service.sp_code,
                flow=cand.flow,
                sim_id=lanes[index].sim.sim_id,
                start_s=start,
                duration_s=cand.duration,
                reason=REASONS[cand.tier],
            )
        )


def _choose(
    heads: list[tuple[int, tuple[str, str | None]]],
    queues: dict[tuple[str, str | None], deque[_Candidate]],
    lane: _Lane,
    now: float,
    window: float,
    running: dict[str, list[float]],
    limit: int,
) -> tuple[_Candidate | None, bool]:
    """Pop the best candidate this lane may run at ``now``; put back what it passed over.

    Also says whether a candidate was passed over only because of rotation.
    """
    passed: list[tuple[int, tuple[str, str | None]]] = []
    chosen: _Candidate | None = None
    rotation_blocked = False
    while heads and len(passed) < SCAN_LIMIT:
        rank, key = heapq.heappop(heads)
        head = queues[key][0]
        if head.service.sp_code == lane.last_sp:
            rotation_blocked = rotation_blocked or _fits(
                head, lane=lane, now=now, window=window, running=running, limit=limit
            )
            passed.append((rank, key))
            continue
        if not _fits(head, lane=lane, now=now, window=window, running=running, limit=limit):
            passed.append((rank, key))
            continue
        queue = queues[key]
        chosen = queue.popleft()
        if queue:
            heapq.heappush(heads, (queue[0].rank, key))
        break
    for entry in passed:
        heapq.heappush(heads, entry)
    return chosen, rotation_blocked


def _fits(
    cand: _Candidate,
    *,
    lane: _Lane,
    now: float,
    window: float,
    running: dict[str, list[float]],
    limit: int,
) -> bool:
    """Region, window end and per-SP concurrency allow ``cand`` on ``lane`` at ``now``."""
    region = cand.service.region
    if region is not None and lane.sim.region not in (None, region):
        return False
    if not can_probe(cand.service.channel, lane.sim.data):
        return False
    if now + cand.duration > window:
        return False
    return _active(running.get(cand.service.sp_code), now) < limit


def _active(ends: list[float] | None, now: float) -> int:
    """Probes of one SP still running at ``now`` (drops the finished ones)."""
    if not ends:
        return 0
    while ends and ends[0] <= now:
        heapq.heappop(ends)
    return len(ends)

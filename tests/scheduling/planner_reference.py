"""The planner as it was before candidates were ranked lazily (commit d06962f), kept as
the reference `test_planner_lazy.py` compares `plan_night` with: the same input must
give the same plan, item for item. Slow on purpose (it ranks every pair); not a module
of the package, so the package carries one planner only.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import partial
from itertools import islice
from typing import Final

from dialbot.flows.channels import can_probe, channel_flows
from dialbot.scheduling.planner import (
    NightSpec,
    Plan,
    PlanItem,
    ServiceInfo,
    SimInfo,
    _Lane,
    _usable_lanes,
    flows_by_billing,
)

SCAN_LIMIT = 32
TIER_DUE, TIER_RISK, TIER_AHEAD, TIER_ROTATION = 0, 1, 2, 3
REASONS = {TIER_DUE: "due", TIER_RISK: "risk", TIER_AHEAD: "ahead", TIER_ROTATION: "rotation"}

_Candidate = tuple[int, int, ServiceInfo, str, float]
RANK: Final = 0
TIER: Final = 1
SERVICE: Final = 2
FLOW: Final = 3
DURATION: Final = 4


def reference_plan_night(
    services: Iterable[ServiceInfo], sims: Sequence[SimInfo], spec: NightSpec
) -> Plan:
    """Decide tonight's probes (see the module docstring for the rules)."""
    plan = Plan()
    lanes = _usable_lanes(sims, spec, plan)
    candidates, covered = _candidates(services, spec, plan)
    plan.lanes = len(lanes)
    plan.capacity_s = len(lanes) * spec.window_s
    if not lanes:
        plan.notes.append("no usable SIM tonight: nothing planned")
    elif candidates:
        fillers = _Fillers(covered, spec, len(candidates))
        _place(candidates, lanes, spec, plan, fillers)
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


def _risk(service: ServiceInfo) -> float:
    """Why a service deserves a look beyond coverage (0: no reason)."""
    score = 3.0 * min(service.recent_findings, 10)
    last = service.last_probed
    if last is None:
        score += 5.0
    elif service.changed_at is not None and service.changed_at > last:
        score += 4.0
    return score


def _candidates(
    services: Iterable[ServiceInfo], spec: NightSpec, plan: Plan
) -> tuple[list[_Candidate], list[tuple[datetime, ServiceInfo, str]]]:
    """Every (service, flow) pair worth probing tonight, ranked (rank 0 is the most
    urgent), and the covered pairs (rotation fillers, longest-unprobed first)."""
    by_billing = flows_by_billing(spec)
    period_start = spec.period_start
    never: list[tuple[float, int, int, ServiceInfo, str]] = []
    old: list[tuple[datetime, float, int, int, ServiceInfo, str]] = []
    risky: list[tuple[float, datetime, int, int, ServiceInfo, str]] = []
    covered: list[tuple[datetime, ServiceInfo, str]] = []
    no_flow = 0
    for service in services:
        # as the service's channel runs them (an MMS service's content flow fetches MMS)
        scheduled = by_billing.get(service.flow_key)
        flows = channel_flows(scheduled, service.channel, service.billing) if scheduled else []
        if not flows:
            no_flow += 1
            continue
        risk = -_risk(service)
        probed = service.flow_probed
        sid = service.service_id
        for index, flow in enumerate(flows):
            when = probed.get(flow)
            if when is None:
                never.append((risk, sid, index, service, flow))
            elif when < period_start:
                old.append((when, risk, sid, index, service, flow))
            elif risk:
                risky.append((risk, when, sid, index, service, flow))
            else:
                covered.append((when, service, flow))
    if no_flow:
        plan.notes.append(f"{no_flow} services have a billing type no scheduled flow probes")
    never.sort(key=lambda row: row[:3])
    old.sort(key=lambda row: row[:4])
    risky.sort(key=lambda row: row[:4])
    due = [(r[3], r[4]) for r in never] + [(r[4], r[5]) for r in old]
    plan.due = len(due)
    plan.pairs = len(due) + len(risky) + len(covered)
    plan.covered_before = len(risky) + len(covered)
    plan.due_quota = math.ceil(len(due) / max(1, spec.nights_left))

    # one tier for every due pair: the first ``quota`` placed (in rank order) are tonight's
    # quota ("due"), the others are taken ahead (see _place), so a pair that cannot be
    # placed tonight (its service already on every free SIM) is replaced by the next one
    def seconds(flow: str) -> float:
        return float(spec.flow_seconds.get(flow, 0.0))

    result: list[_Candidate] = [
        (rank, TIER_DUE, service, flow, seconds(flow)) for rank, (service, flow) in enumerate(due)
    ]
    first = len(result)
    result += [(first + rank, TIER_RISK, r[4], r[5], seconds(r[5])) for rank, r in enumerate(risky)]
    return result, covered


class _Fillers:
    """Covered pairs, handed out one by one to break a SIM's rotation deadlock."""

    def __init__(
        self, covered: list[tuple[datetime, ServiceInfo, str]], spec: NightSpec, first_rank: int
    ) -> None:
        covered.sort(key=lambda row: row[0])
        self.queue = deque((service, flow) for _, service, flow in covered)
        self.spec = spec
        self.rank = first_rank

    def take(self, lane: _Lane, ok: Callable[[_Candidate], bool]) -> _Candidate | None:
        """The longest-unprobed covered pair of another SP this lane may run now."""
        for _ in range(min(SCAN_LIMIT, len(self.queue))):
            service, flow = self.queue.popleft()
            cand = (
                self.rank,
                TIER_ROTATION,
                service,
                flow,
                float(self.spec.flow_seconds.get(flow, 0.0)),
            )
            if service.sp_code != lane.last_sp and ok(cand):
                self.rank += 1
                return cand
            self.queue.append((service, flow))
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
        queues.setdefault((cand[SERVICE].sp_code, cand[SERVICE].region), deque()).append(cand)
    heads = [(q[0][RANK], key) for key, q in queues.items()]
    heapq.heapify(heads)
    shortest = min(c[DURATION] for c in candidates)
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
        end = now + chosen[DURATION]
        lane.last_sp = chosen[SERVICE].sp_code
        lane.services.add(chosen[SERVICE].service_id)
        heapq.heappush(running.setdefault(chosen[SERVICE].sp_code, []), end)
        heapq.heappush(ends, end)
        heapq.heappush(free, (end, index))
        placed.append((now, index, chosen))
        plan.busy_s += chosen[DURATION]
    due_ranks = sorted(cand[RANK] for _, _, cand in placed if cand[TIER] == TIER_DUE)
    quota_ranks = set(due_ranks[: plan.due_quota])
    placed.sort(key=lambda row: (row[0], row[1]))
    for seq, (start, index, cand) in enumerate(placed):
        tier = cand[TIER]
        if tier == TIER_DUE and cand[RANK] not in quota_ranks:
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
    heads: list[tuple[int, tuple[str, str | None]]],
    queues: dict[tuple[str, str | None], deque[_Candidate]],
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
    passed: list[tuple[int, tuple[str, str | None]]] = []
    chosen: _Candidate | None = None
    rotation_blocked = False
    region = lane.sim.region
    while heads and len(passed) < SCAN_LIMIT:
        rank, key = heapq.heappop(heads)
        sp, queue_region = key
        if (queue_region is not None and region not in (None, queue_region)) or _active(
            running.get(sp), now
        ) >= limit:  # the whole queue waits
            passed.append((rank, key))
            continue
        queue = queues[key]
        at = _first_fit(queue, lane, now, window)
        if at is None or sp == lane.last_sp:
            rotation_blocked = rotation_blocked or at is not None
            passed.append((rank, key))
            continue
        chosen = queue[at]
        del queue[at]
        if queue:
            heapq.heappush(heads, (queue[0][RANK], key))
        break
    for entry in passed:
        heapq.heappush(heads, entry)
    return chosen, rotation_blocked


def _first_fit(queue: deque[_Candidate], lane: _Lane, now: float, window: float) -> int | None:
    """Index of the first of a queue's first SCAN_LIMIT candidates this lane may start at
    ``now`` as far as the candidate alone decides (its service, its SIM, its duration);
    the queue's SP and region are checked by the caller, once for the whole queue; a
    WAP or MMS probe needs a SIM whose modem browses."""
    sim_id = lane.sim.sim_id
    done = lane.services
    data = lane.sim.data
    for index, cand in enumerate(islice(queue, SCAN_LIMIT)):
        service = cand[SERVICE]
        if service.service_id in done or now + cand[DURATION] > window:
            continue
        if not can_probe(service.channel, data):
            continue  # WAP and MMS probes only on modems that can browse
        if service.interrupted_on and service.interrupted_on.get(cand[FLOW]) == sim_id:
            continue
        return index
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

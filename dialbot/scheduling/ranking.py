"""Tonight's candidate (service, flow) pairs, ranked only as far as the night looks.

A catalogue of 100,000 services has some 200,000 pairs, but a night places
about 13,000 probes: making, ranking and queueing a tuple for every pair,
then one big sort, was most of a plan's time. So one pass over the services
counts the pairs (the plan's figures stay exact) and files only references
to the candidates (due and risky pairs), per kind and per placement queue
(SP, region). A queue's candidates are ranked and made when the placement
reaches them: its head at the start, the next ones when its head is taken
or a lane scans past what is ranked (`RankedPairs.fill`).

The order is the planner's (see planner.py): never-probed pairs first
(riskiest, then by service and flow), then the pairs last probed before the
period (longest-unprobed first), then the covered pairs worth a second look
(riskiest, then longest-unprobed); ties keep the input order. A rank is the
pair's whole sort key, so ranks of queues ranked separately still compare
as one sorted list would. Pure, like the planner.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from dialbot.flows.channels import channel_flows

if TYPE_CHECKING:
    from dialbot.scheduling.planner import NightSpec, ServiceInfo

TIER_DUE, TIER_RISK, TIER_AHEAD, TIER_ROTATION = 0, 1, 2, 3

# A (service, flow) pair in the queues: its rank (the pair's sort key, kind first:
# six fields, unique, smaller is more urgent), then tier, service, flow and
# estimated seconds. One flat tuple, not a dataclass nor a rank in a tuple of its
# own: the planner makes thousands a night, and fewer objects means less garbage
# collection. Candidates compare by their rank (it decides before SERVICE).
_Candidate = tuple[Any, ...]
KIND: Final = 0
TIER: Final = 6
SERVICE: Final = 7
FLOW: Final = 8
DURATION: Final = 9

QueueKey = tuple[str, "str | None"]  # (SP, region): the placement queues pairs per key
Queues = dict[QueueKey, "Queue"]
# (three leading values, a queue's first candidate, the queue): see `RankedPairs.head`
Head = tuple[float, Any, Any, _Candidate, QueueKey]
Heads = list[Head]

NEVER, OLD, RISKY, FILLER = 0, 1, 2, 3  # kinds, in rank order (fillers: see planner)


def _risk(service: ServiceInfo) -> float:
    """Why a service deserves a look beyond coverage (0: no reason)."""
    score = 3.0 * min(service.recent_findings, 10)
    last = service.last_probed
    if last is None:
        score += 5.0
    elif service.changed_at is not None and service.changed_at > last:
        score += 4.0
    return score


class _Kind:
    """The candidates of one kind, in input order, as parallel lists of references
    (no tuple per pair: most are never ranked). ``lead`` holds the first element of
    the kind's sort key (risk, or when last probed); ``second`` gives the second
    where the lead has few values (risk), so that a run of ties stays short."""

    __slots__ = ("services", "flows", "lead", "second")

    def __init__(self) -> None:
        self.services: list[ServiceInfo] = []
        self.flows: list[str] = []
        self.lead: list[Any] = []
        self.second: Callable[[int], Any] | None = None

    def sort(self, indexes: list[int]) -> None:
        """Sort ``indexes`` by (lead, second), ties in input order (stable sorts)."""
        if self.second is not None:
            indexes.sort(key=self.second)
        indexes.sort(key=self.lead.__getitem__)

    def run_end(self, order: list[int], at: int) -> int:
        """Where the run of pairs with the same (lead, second) as ``order[at]`` ends."""
        lead, second = self.lead, self.second
        first = lead[order[at]]
        stop = at + 1
        if second is None:
            while stop < len(order) and lead[order[stop]] == first:
                stop += 1
        else:
            then = second(order[at])
            while stop < len(order) and lead[order[stop]] == first and second(order[stop]) == then:
                stop += 1
        return stop


class Queue(deque[_Candidate]):
    """One placement queue: its ranked candidates (the deque, in rank order) and the
    pairs not ranked yet. ``codes`` files those in input order as ``index << 2 |
    kind`` (one int per pair); the kind being ranked is split off and sorted when
    the queue reaches it."""

    __slots__ = ("codes", "kind", "order", "at", "left")

    def __init__(self) -> None:
        super().__init__()
        self.codes: list[int] = []
        self.kind = -1  # none opened yet
        self.order: list[int] = []  # the current kind's indexes in order
        self.at = 0
        self.left = 0


class RankedPairs:
    """The applicable pairs of a selection: exact counts at once, ranked candidates
    per queue on demand."""

    def __init__(
        self,
        services: Iterable[ServiceInfo],
        by_billing: Mapping[str, list[str]],
        spec: NightSpec,
        flow_key: Callable[[str, str], str],
    ) -> None:
        self.seconds: dict[str, float] = {}  # estimated seconds per applicable flow
        self._spec = spec
        self._by_billing = by_billing
        self._flow_key = flow_key
        self._flows: dict[tuple[str, str], list[str]] = {}  # (channel, billing) -> flows
        self._kinds = (_Kind(), _Kind(), _Kind())  # NEVER, OLD, RISKY
        never, _, risky = self._kinds
        never.second = lambda index: never.services[index].service_id
        risky.second = lambda index: risky.services[index].flow_probed[risky.flows[index]]
        self.queues: Queues = {}  # per (SP, region): the candidates
        self._covered_services: list[ServiceInfo] = []
        self._covered_flows: list[str] = []
        self._covered_when: list[datetime] = []
        self._epoch = _NAIVE_EPOCH if spec.period_start.utcoffset() is None else _EPOCH
        self.no_flow = self._count(services, spec.period_start)
        counts = [len(kind.services) for kind in self._kinds]
        self.due = counts[NEVER] + counts[OLD]
        self.total = self.due + counts[RISKY]  # the candidates: due and risky pairs
        self.covered = counts[RISKY] + len(self._covered_services)  # probed this period
        self.ranked = 0  # candidates ranked so far (the rest the night never looked at)

    def flows_of(self, service: ServiceInfo) -> list[str]:
        """The service's applicable flows as its channel runs them (an MMS service's
        content flow fetches MMS), computed once per (channel, billing): services
        share few."""
        channel, billing = service.channel, service.billing
        flows = self._flows.get((channel, billing))
        if flows is None:
            scheduled = self._by_billing.get(self._flow_key(channel, billing))
            flows = channel_flows(scheduled, channel, billing) if scheduled else []
            self._flows[(channel, billing)] = flows
            for flow in flows:
                self.seconds.setdefault(flow, float(self._spec.flow_seconds.get(flow, 0.0)))
        return flows

    def _count(self, services: Iterable[ServiceInfo], period_start: datetime) -> int:
        """One pass: file each candidate under its kind and its queue (references and
        indexes only), each covered pair for the fillers; says how many services no
        scheduled flow probes."""
        known = self._flows.get
        never, old, risky = self._kinds
        never_s, never_f, never_l = never.services.append, never.flows.append, never.lead.append
        old_s, old_f, old_l = old.services.append, old.flows.append, old.lead.append
        risky_s, risky_f, risky_l = risky.services.append, risky.flows.append, risky.lead.append
        cov_s = self._covered_services.append
        cov_f = self._covered_flows.append
        cov_w = self._covered_when.append
        queues = self.queues
        never_n = old_n = risky_n = 0  # candidates filed so far, per kind
        no_flow = 0
        for service in services:
            flows = known((service.channel, service.billing))
            if flows is None:
                flows = self.flows_of(service)
            if not flows:
                no_flow += 1
                continue
            probed = service.flow_probed
            risk: float | None = None  # computed when first needed
            codes: list[int] | None = None
            for flow in flows:
                when = probed.get(flow)
                if when is None:
                    if risk is None:
                        risk = -_risk(service)
                    never_s(service)
                    never_f(flow)
                    never_l(risk)
                    code = never_n << 2  # | NEVER
                    never_n += 1
                elif when < period_start:
                    old_s(service)
                    old_f(flow)
                    old_l(when)
                    code = old_n << 2 | OLD
                    old_n += 1
                else:
                    if risk is None:
                        risk = -_risk(service)
                    if not risk:
                        cov_s(service)
                        cov_f(flow)
                        cov_w(when)
                        continue
                    risky_s(service)
                    risky_f(flow)
                    risky_l(risk)
                    code = risky_n << 2 | RISKY
                    risky_n += 1
                if codes is None:
                    key = (service.sp_code, service.region)
                    queue = queues.get(key)
                    if queue is None:
                        queue = queues[key] = Queue()
                    codes = queue.codes
                codes.append(code)
        for queue in queues.values():
            queue.left = len(queue.codes)
        return no_flow

    def shortest(self) -> float:
        """The shortest estimated duration among the candidates (0.0 if none)."""
        flows: set[str] = set()
        for kind in self._kinds:
            flows.update(kind.flows)
        return min((self.seconds[flow] for flow in flows), default=0.0)

    def covered_pairs(self) -> list[tuple[ServiceInfo, str]]:
        """The covered pairs that are no candidates, longest-unprobed first (ties in
        input order)."""
        when = self._covered_when
        order = sorted(range(len(when)), key=when.__getitem__)
        services, flows = self._covered_services, self._covered_flows
        return [(services[i], flows[i]) for i in order]

    def start(self, room: int) -> tuple[Queues, Heads]:
        """The queues, each with its head ranked, and the heap of their heads. If the
        night has ``room`` for every candidate, all are ranked at once (cheaper than
        one run at a time when most will be)."""
        heads: Heads = []
        fill = self._fill_all if room >= self.total else self.fill
        for key, queue in self.queues.items():
            if fill(queue):
                heads.append(self.head(queue, key))
        heapq.heapify(heads)
        return self.queues, heads

    def _fill_all(self, queue: Queue) -> bool:
        """Append all the queue's candidates in rank order (False: it has none)."""
        if not queue.left:
            return False
        while queue.left:
            self._open(queue)
            order, kind = queue.order, queue.kind
            queue.extend(sorted(self._candidate(kind, index) for index in order))
            queue.at = len(order)
            queue.left -= len(order)
            self.ranked += len(order)
        return True

    def fill(self, queue: Queue) -> bool:
        """Append the queue's next candidates in rank order: the next one and those of
        the same kind and lead (ranked together, so ties are never split). False if
        the queue has none left."""
        if not queue.left:
            return False
        if queue.at >= len(queue.order):
            self._open(queue)
        kind, order, at = queue.kind, queue.order, queue.at
        pairs = self._kinds[kind]
        lead = pairs.lead
        stop = at + 1
        if stop < len(order) and lead[order[stop]] == lead[order[at]]:
            stop = pairs.run_end(order, at)
        queue.at = stop
        queue.left -= stop - at
        self.ranked += stop - at
        if stop == at + 1:  # the usual run: one pair
            queue.append(self._candidate(kind, order[at]))
        else:
            queue.extend(sorted(self._candidate(kind, index) for index in order[at:stop]))
        return True

    def _open(self, queue: Queue) -> None:
        """Move the queue on to its next kind with pairs left, sorted by lead."""
        while queue.at >= len(queue.order):
            queue.kind += 1
            kind = queue.kind
            indexes = [code >> 2 for code in queue.codes if code & 3 == kind]
            self._kinds[kind].sort(indexes)
            queue.order = indexes
            queue.at = 0
        if queue.kind == RISKY:
            queue.codes = []  # the last kind: all are in order

    def _candidate(self, kind: int, index: int) -> _Candidate:
        """The pair as a candidate. Its rank is the pair's whole sort key, with its
        index (input order) so it is unique: never (risk, service, flow), old (when,
        risk, service, flow), risky (risk, when, service, flow); the flow by its place
        among the service's."""
        pairs = self._kinds[kind]
        service = pairs.services[index]
        flow = pairs.flows[index]
        seconds = self.seconds[flow]
        place = self._flows[(service.channel, service.billing)].index(flow)
        sid = service.service_id
        lead = pairs.lead[index]
        if kind == NEVER:
            return (NEVER, lead, sid, place, index, 0, TIER_DUE, service, flow, seconds)
        if kind == OLD:
            return (OLD, lead, -_risk(service), sid, place, index,
                    TIER_DUE, service, flow, seconds)  # fmt: skip
        when = service.flow_probed[flow]
        return (RISKY, lead, when, sid, place, index, TIER_RISK, service, flow, seconds)

    def head(self, queue: deque[_Candidate], key: QueueKey) -> Head:
        """The heads entry of a queue. Its first candidate's rank leads, as three plain
        values that order as the rank does or tie (then the rank decides), so that
        most comparisons in the heap of queue heads are of numbers: never-probed
        pairs (risk, service id, place); the others (kind and time, risk, ...), the
        time in whole microseconds (exact: no two times tie)."""
        first = queue[0]
        kind = first[KIND]
        if kind == NEVER:
            risk = first[1]
            if -_FAR < risk < _FAR:
                return (risk, first[2], first[3], first, key)
            return (-_FAR if risk < 0 else _FAR, 0, 0, first, key)  # absurd: the rank decides
        if kind == OLD:
            micros = (first[1] - self._epoch) // _MICROSECOND
            return (_OLD_BASE + micros, first[2], first[3], first, key)
        return (_RISKY_BASE, first[1], first[2], first, key)


# The heads' numbers keep the kinds apart: never-probed pairs' risks inside ±2**60,
# old pairs' times (any datetime is within 2**58 microseconds of 1970) around 2**70,
# risky pairs at 2**80 (then their risk). Ints compare with floats exactly.
_FAR: Final = float(2**60)
_OLD_BASE: Final = 2**70
_RISKY_BASE: Final = 2**80
_MICROSECOND: Final = timedelta(microseconds=1)
# Naive times (all or none are: they are compared with the period's start) count
# from a naive epoch.
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH: Final = datetime(1970, 1, 1)

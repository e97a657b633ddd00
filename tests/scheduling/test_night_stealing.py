"""Work stealing in the night executor: idle lanes take the busiest lane's last items.

A stored plan gives one SIM ten probes and three others one each; the
busy SIM's first probe is held by the scripted dispatcher until the idle
SIMs have taken every other item of its lane, each under every planner
constraint (rotation, one service per SIM, per-SP concurrency, region, WAP
only on browsing modems, never on the SIM a probe of the pair was cut on).
The checks read the stored plan items and what the dispatcher saw.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import write_session
from dialbot.db.models import Service, Sim, Sp
from dialbot.db.types import utcnow
from dialbot.scheduling.dispatch import ProbeJob, ProbeOutcome
from dialbot.scheduling.models import NightPlan, PlanItemRow
from dialbot.scheduling.nights import NightExecutor, open_night
from dialbot.scheduling.planner import Plan, PlanItem, SimInfo
from dialbot.scheduling.stealing import (
    MOVED,
    NOTHING_LEFT,
    WAIT,
    Board,
    Facts,
    Lane,
    claim_moved,
    moved_count,
)

DEADLINE_S = 30.0


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class Scripted:
    """A dispatcher whose probes end at once, except those held until their gate opens
    (``held`` is set once one of them runs); it counts how many probes of each SP run at
    once, and how often each item ran."""

    def __init__(self, gates: dict[int, threading.Event] | None = None) -> None:
        self.gates = gates or {}
        self.lock = threading.Lock()
        self.current: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.runs: Counter[int] = Counter()
        self.held = threading.Event()  # a gated probe is running
        self.before: Callable[[ProbeJob], None] = lambda _job: None

    def run(self, job: ProbeJob) -> ProbeOutcome:
        with self.lock:
            self.current[job.sp_code] += 1
            self.peak[job.sp_code] = max(self.peak[job.sp_code], self.current[job.sp_code])
            self.runs[job.item_id] += 1
        try:
            self.before(job)
            gate = self.gates.get(job.item_id)
            if gate is not None:
                if gate is not self.held:
                    self.held.set()
                assert gate.wait(DEADLINE_S), "gate never opened"
            return ProbeOutcome("done", ordered=True)
        finally:
            with self.lock:
                self.current[job.sp_code] -= 1


@dataclass(frozen=True)
class World:
    sims: dict[str, int]  # lane name -> SIM id
    services: dict[str, tuple[int, str]]  # name -> (service id, SP code)


def populate(db: sessionmaker[Session]) -> World:
    """SPs P0..P4 and their services (s2b of region south, s3a a WAP service); SIMs A-D."""
    names = {
        "P0": ["s0a", "s0b"], "P1": ["s1a", "s1b", "s1c"], "P2": ["s2a", "s2b", "s2c"],
        "P3": ["s3a", "s3b"], "P4": ["s4a", "s4b"],
    }  # fmt: skip
    services: dict[str, tuple[int, str]] = {}
    sims: dict[str, int] = {}
    with write_session(db) as session:
        for index, (sp_name, service_names) in enumerate(names.items()):
            sp = Sp(code=f"91{index:04d}", name=sp_name, hotline=None)
            session.add(sp)
            session.flush()
            for name in service_names:
                service = Service(sp_id=sp.id, code=name, name=name, access_number="10660000",
                                  billing="monthly", price_fen=500, subscribe_cmd="DG",
                                  cancel_cmd="TD", use_cmd=None, version=1,
                                  region="south" if name == "s2b" else None,
                                  channel="wap" if name == "s3a" else "sms")  # fmt: skip
                session.add(service)
                session.flush()
                services[name] = (service.id, sp.code)
        for slot, lane in enumerate("ABCD"):
            sim = Sim(msisdn=f"1390013{slot:04d}", bank="b", slot=slot, state="ready")
            session.add(sim)
            session.flush()
            sims[lane] = sim.id
    return World(sims, services)


# The busy lane A, in plan order: ten probes, SPs never twice in a row; its first one is
# held. B, C and D have one each. The traps: s2b is a southern service (D is northern),
# s3a a WAP one (C's modem does not browse), s1c's `decline` runs on B (so B may not take
# its `monthly`) and a probe of (s1c, monthly) was cut on C after ordering on an earlier
# night; A's first probe is held while the others are stolen.
LANES = {
    "A": [("s0a", "decline"), ("s1a", "decline"), ("s2a", "decline"), ("s1b", "decline"),
          ("s2b", "decline"), ("s3a", "wap"), ("s1c", "monthly"), ("s2c", "decline"),
          ("s3b", "decline"), ("s0b", "decline")],
    "B": [("s1c", "decline")],
    "C": [("s4a", "decline")],
    "D": [("s4b", "decline")],
}  # fmt: skip


def plan_of(world: World) -> Plan:
    plan = Plan(lanes=4)
    seq = 0
    for lane, items in LANES.items():
        start = 0.0
        for name, flow in items:
            service_id, sp = world.services[name]
            plan.items.append(PlanItem(seq, service_id, sp, flow, world.sims[lane], start,
                                       10.0, "due"))  # fmt: skip
            seq += 1
            start += 10.0
    return plan


def fleet(world: World) -> dict[int, SimInfo]:
    """The fleet's view: D is a northern SIM, C's modem does not browse."""
    info = {"A": (None, "http"), "B": (None, "http"), "C": (None, None), "D": ("north", "http")}
    return {
        world.sims[lane]: SimInfo(world.sims[lane], f"1390013{i:04d}", region, 10_000, data=data)
        for i, (lane, (region, data)) in enumerate(info.items())
    }


def cut_earlier(db: sessionmaker[Session], world: World, name: str, flow: str, lane: str) -> None:
    """An earlier night whose probe of (name, flow) on ``lane`` was cut after ordering."""
    then = utcnow() - timedelta(days=1)
    with write_session(db) as session:
        night = NightPlan(schedule="s", night="earlier", window_start=then,
                          window_end=then + timedelta(hours=1), notes=[], state="done")  # fmt: skip
        session.add(night)
        session.flush()
        service_id, sp = world.services[name]
        session.add(PlanItemRow(plan_id=night.id, seq=0, service_id=service_id, sp_code=sp,
                                flow=flow, sim_id=world.sims[lane], reason="due",
                                est_start_s=0.0, est_duration_s=10.0, state="interrupted",
                                attempts=1, started_at=then))  # fmt: skip


def items_of(db: sessionmaker[Session], plan_id: int) -> list[PlanItemRow]:
    with db() as session:
        return list(
            session.scalars(
                select(PlanItemRow)
                .where(PlanItemRow.plan_id == plan_id)
                .order_by(PlanItemRow.started_at, PlanItemRow.id)
            )
        )


def peak_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """Most intervals open at once (one ending when another starts does not overlap it)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    # at equal times the ends (-1) sort first
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def test_idle_lanes_take_the_busy_lanes_last_items(session_factory: sessionmaker[Session]) -> None:
    db = session_factory
    world = populate(db)
    cut_earlier(db, world, "s1c", "monthly", "C")
    start = utcnow()
    night = open_night(db, "s", "tonight", (start, start + timedelta(hours=1)),
                       lambda: plan_of(world))  # fmt: skip
    stored = items_of(db, night.id)
    gate = threading.Event()
    dispatcher = Scripted()

    def hold_a_first(job: ProbeJob) -> None:
        """A's first probe is held, whichever of its items the board starts first."""
        if job.sim_id == world.sims["A"] and not dispatcher.held.is_set():
            dispatcher.held.set()
            assert gate.wait(DEADLINE_S), "gate never opened"

    dispatcher.before = hold_a_first
    for lane in "BCD":  # their own probes end once A's first is held: A starts before them
        for item in stored:
            if item.sim_id == world.sims[lane]:
                dispatcher.gates[item.id] = dispatcher.held
    executor = NightExecutor(db, dispatcher, per_sp_concurrency=2, sims=fleet(world))
    counts: dict[str, int] = {}
    runner = threading.Thread(target=lambda: counts.update(executor.run(night.id)))
    runner.start()
    try:
        assert dispatcher.held.wait(DEADLINE_S)
        # while A's first probe is held, the idle SIMs take all nine others of its lane (and,
        # as the threads happen to run, perhaps one of another idle lane's own items too)
        wait_for(lambda: moved_count(db, night.id) >= 9 and sum(dispatcher.runs.values()) == 13,
                 "the busy lane's items to move")  # fmt: skip
    finally:
        gate.set()
        runner.join(DEADLINE_S)
    assert not runner.is_alive()
    assert counts == {"done": 13}
    assert executor.moved >= 9
    assert set(dispatcher.runs.values()) == {1}  # every item ran exactly once
    assert len(dispatcher.runs) == 13

    items = items_of(db, night.id)
    sim_name = {sim: lane for lane, sim in world.sims.items()}
    name_of = {sid: name for name, (sid, _) in world.services.items()}
    moved = [i for i in items if i.reason.endswith(MOVED)]
    assert {i.reason for i in moved} == {"due" + MOVED}
    assert len(moved) == executor.moved and all(sim_name[i.sim_id] != "A" for i in moved)
    assert len([i for i in items if sim_name[i.sim_id] == "A"]) == 1, "A ran only its first"
    # a moved item is numbered after every planned one (a resumed night runs it last)
    assert min(i.seq for i in moved) > max(i.seq for i in stored)

    per_sim: dict[str, list[PlanItemRow]] = defaultdict(list)
    for item in items:  # in the order they started
        per_sim[sim_name[item.sim_id]].append(item)
    for lane, lane_items in per_sim.items():
        sps = [i.sp_code for i in lane_items]
        assert all(a != b for a, b in zip(sps, sps[1:], strict=False)), (lane, sps)
        services = [i.service_id for i in lane_items]
        assert len(services) == len(set(services)), lane  # one flow of a service per SIM
    placed = {(name_of[i.service_id], i.flow): sim_name[i.sim_id] for i in items}
    assert placed[("s2b", "decline")] != "D"  # southern service, northern SIM
    assert placed[("s3a", "wap")] != "C"  # WAP, modem that does not browse
    assert placed[("s1c", "monthly")] not in ("B", "C")  # s1c on B already; cut on C before
    assert placed[("s1c", "monthly")] == "D"

    assert max(dispatcher.peak.values()) <= 2
    by_sp: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for item in items:
        assert item.started_at is not None and item.ended_at is not None
        by_sp[item.sp_code].append((item.started_at, item.ended_at))
    assert max(peak_overlap(spans) for spans in by_sp.values()) <= 2


def test_a_victim_that_reaches_a_stolen_item_goes_on(
    session_factory: sessionmaker[Session],
) -> None:
    """Another process's executor took one of A's items (claimed and moved) while A ran its
    first: A finds it claimed, leaves it to its thief and runs the rest."""
    db = session_factory
    world = populate(db)
    start = utcnow()
    night = open_night(db, "s", "tonight", (start, start + timedelta(hours=1)),
                       lambda: plan_of(world))  # fmt: skip
    lane_a = [i for i in items_of(db, night.id) if i.sim_id == world.sims["A"]]
    lane_a.sort(key=lambda i: i.seq)
    dispatcher = Scripted()
    stolen: list[PlanItemRow] = []

    def elsewhere(job: ProbeJob) -> None:
        if job.sim_id == world.sims["A"] and not stolen:  # A's first probe: another steals
            stolen.append(next(i for i in lane_a[1:] if i.id != job.item_id))
            assert claim_moved(db, stolen[0].id, world.sims["B"], 1000, "due" + MOVED)

    dispatcher.before = elsewhere
    # no fleet view: this executor does not steal, it only meets a stolen item
    counts = NightExecutor(db, dispatcher, per_sp_concurrency=2).run(night.id)
    second = stolen[0]
    assert dispatcher.runs[second.id] == 0
    assert all(dispatcher.runs[i.id] == 1 for i in lane_a if i.id != second.id)
    assert counts == {"done": 12, "running": 1}  # the stolen one is its thief's to finish
    with db() as session:
        row = session.get_one(PlanItemRow, second.id)
    assert (row.state, row.sim_id, row.reason) == ("running", world.sims["B"], "due" + MOVED)
    assert moved_count(db, night.id) == 1


def lane(sim_id: int, last_sp: str | None, services: set[int]) -> Lane:
    return Lane(sim_id, [], last_sp, services)


def item(service_id: int, sp: str, flow: str = "decline", seconds: float = 10.0) -> PlanItemRow:
    return PlanItemRow(id=service_id * 10, plan_id=1, seq=service_id, service_id=service_id,
                       sp_code=sp, flow=flow, sim_id=1, reason="due", est_start_s=0.0,
                       est_duration_s=seconds, state="pending", attempts=0)  # fmt: skip


@pytest.mark.parametrize(
    ("why", "candidate", "thief_sp", "running", "allowed"),
    [
        ("fits", item(5, "X"), "Y", 1, True),
        ("rotation: the thief just ran this SP", item(5, "X"), "X", 0, False),
        ("the thief ran nothing tonight", item(5, "X"), None, 0, False),
        ("the thief probes this service tonight", item(7, "X"), "Y", 0, False),
        ("per-SP concurrency reached", item(5, "X"), "Y", 2, False),
        ("southern service, northern SIM", item(6, "X"), "Y", 0, False),
        ("WAP on a modem that does not browse", item(8, "X", "wap"), "Y", 0, False),
        ("cut on this SIM after ordering", item(5, "X", "monthly"), "Y", 0, False),
        ("would end after the window", item(5, "X", seconds=4000.0), "Y", 0, False),
        ("service unknown", item(9, "X"), "Y", 0, False),
    ],
)
def test_a_thief_takes_only_what_the_planner_would_give_it(
    why: str, candidate: PlanItemRow, thief_sp: str | None, running: int, allowed: bool
) -> None:
    facts = Facts(
        sims={2: SimInfo(2, "13900130002", "north", None, data=None)},
        services={5: (None, "sms"), 6: ("south", "sms"), 7: (None, "sms"), 8: (None, "wap")},
        cut=frozenset({(5, "monthly", 2)}),
    )
    victim = Lane(1, [candidate])
    thief = lane(2, thief_sp, {7})
    board = Board({1: victim, 2: thief}, 2, facts)
    board.running["X"] = running
    now = utcnow()
    taken = board.pick(thief, now, now + timedelta(hours=1))
    assert (taken is candidate) is allowed, why
    if allowed:
        assert board.running["X"] == running + 1 and candidate.service_id in thief.services
        assert board.pick(thief, now, now + timedelta(hours=1)) == NOTHING_LEFT
    else:
        assert taken == WAIT, why  # it stays for its own lane
        assert victim.pending == [candidate]


def test_the_last_item_of_the_busiest_lane_is_taken() -> None:
    facts = Facts(sims={3: SimInfo(3, "13900130003")},
                  services={n: (None, "sms") for n in range(1, 7)}, cut=frozenset())  # fmt: skip
    light = Lane(1, [item(1, "X", "monthly", 20.0), item(2, "Y", "monthly", 20.0)])
    busy = Lane(2, [item(4, "Y"), item(5, "X"), item(6, "Y")])  # 30 s left, light 40 s
    last = light.pending[1], busy.pending[2]
    thief = lane(3, "Z", set())
    board = Board({1: light, 2: busy, 3: thief}, 2, facts)
    now = utcnow()
    assert board.pick(thief, now, now + timedelta(hours=1)) is last[0]
    assert board.pick(thief, now, now + timedelta(hours=1)) is last[1]
    assert [i.service_id for i in light.pending + busy.pending] == [1, 4, 5]
    board.took_s("monthly", 2.0)  # tonight a monthly probe takes 2 s: light has 2 s left
    tail = busy.pending[-1]
    assert board.pick(thief, now, now + timedelta(hours=1)) is tail


def test_a_lane_whose_next_sp_is_at_its_limit_runs_a_later_item_meanwhile() -> None:
    own = Lane(1, [item(1, "X"), item(2, "Y"), item(3, "Z"), item(4, "Y"), item(5, "W")],
               last_sp="W")  # fmt: skip
    board = Board({1: own}, 1, None)
    board.running["X"] = 1  # another SIM probes X
    now = utcnow()
    picked = board.pick(own, now, now + timedelta(hours=1))
    assert isinstance(picked, PlanItemRow)
    assert picked.service_id == 2  # Y: the rest X, Z, Y, W has no SP twice in a row
    assert board.running == {"X": 1, "Y": 1}
    own.last_sp = "Y"
    board.release("Y")
    picked = board.pick(own, now, now + timedelta(hours=1))
    assert isinstance(picked, PlanItemRow) and picked.service_id == 3  # Z: rest X, Y, W
    own.last_sp = "Z"
    board.release("X")  # X is free again: the lane's next item runs
    picked = board.pick(own, now, now + timedelta(hours=1))
    assert isinstance(picked, PlanItemRow) and picked.service_id == 1


def test_a_lane_stuck_on_rotation_with_nothing_running_skips_what_it_cannot_run() -> None:
    own = Lane(1, [item(1, "X"), item(2, "X")], last_sp="X")
    stuck = list(own.pending)
    board = Board({1: own}, 2, None)
    now = utcnow()
    assert board.pick(own, now, now + timedelta(hours=1)) == stuck
    assert own.pending == []
    assert board.pick(own, now, now + timedelta(hours=1)) == NOTHING_LEFT


def test_a_keep_probe_stays_last_on_its_own_sim() -> None:
    """A keep leaves its order on until the horizon; any later probe on its SIM would
    cancel it first: it is never stolen, never run before its lane's other items, and a
    lane that ran one takes nothing more."""
    facts = Facts(sims={n: SimInfo(n, f"1390013000{n}") for n in (1, 2, 3)},
                  services={n: (None, "sms") for n in range(1, 9)}, cut=frozenset())  # fmt: skip
    keeper = Lane(1, [item(1, "X"), item(2, "Y", "keep")], last_sp="W")
    busy = Lane(2, [item(3, "Z"), item(4, "V", "keep")], last_sp="W")
    thief = lane(3, "U", set())
    board = Board({1: keeper, 2: busy, 3: thief}, 1, facts)
    board.running["X"] = 1  # X is at its limit: the keeper may not start its first item
    now, end = utcnow(), utcnow() + timedelta(hours=1)
    assert board.pick(keeper, now, end) == WAIT, "the keep does not jump ahead of X"
    assert board.pick(thief, now, end) == WAIT, "a keep is not taken from the end of a lane"
    assert [i.flow for i in busy.pending] == ["decline", "keep"], "a keep is never stolen"
    board.release("X")
    first = board.pick(keeper, now, end)
    assert isinstance(first, PlanItemRow) and first.service_id == 1
    keeper.last_sp = "X"
    board.release("X")
    kept = board.pick(keeper, now, end)
    assert isinstance(kept, PlanItemRow) and kept.flow == "keep" and keeper.kept
    keeper.last_sp = "Y"
    assert board.pick(keeper, now, end) in (WAIT, NOTHING_LEFT), "nothing after a keep"
    assert [i.service_id for i in busy.pending] == [3, 4]


def test_a_lane_runs_first_the_item_whose_sp_has_the_most_left() -> None:
    """An SP's probes run per_sp_concurrency at a time: the one with the most items left
    in the night is its critical path, so it goes first among what the lane may start."""
    own = Lane(1, [item(1, "X"), item(2, "Y"), item(3, "Z")], last_sp="W")
    other = Lane(2, [item(4, "Y"), item(5, "Y"), item(6, "X")], last_sp="W")
    board = Board({1: own, 2: other}, 2, None)
    now = utcnow()
    picked = board.pick(own, now, now + timedelta(hours=1))
    assert isinstance(picked, PlanItemRow) and picked.sp_code == "Y"  # Y: 3 left, X: 2
    assert board.sp_left == {"X": 2, "Y": 2, "Z": 1}


def test_a_probe_running_far_past_its_flows_mean_marks_its_service_slow() -> None:
    """An SP that does not answer makes every probe of it wait its windows in full: once
    one of its probes has run 1.5 times its flow's mean tonight, its service is slow."""
    own = Lane(1, [item(1, "X")], last_sp="W")
    board = Board({1: own}, 2, None)
    for _ in range(5):
        board.took_s("decline", 2.0)  # tonight a decline probe takes 2 s
    fresh, long = item(7, "S"), item(8, "T")
    board.started[fresh.id] = (fresh, time.monotonic() - 2.0)
    board.started[long.id] = (long, time.monotonic() - 10.0)
    board.running.update({"S": 1, "T": 1})
    now = utcnow()
    board.pick(own, now, now + timedelta(hours=1))
    assert board.slow == {8}
    board.release("T", long.id)
    assert long.id not in board.started


def test_a_slow_services_items_go_first_and_are_stolen_from_anywhere() -> None:
    facts = Facts(sims={n: SimInfo(n, f"1390013000{n}") for n in (1, 2, 3)},
                  services={n: (None, "sms") for n in range(1, 12)}, cut=frozenset())  # fmt: skip
    own = Lane(1, [item(1, "X"), item(2, "Y"), item(9, "S")], last_sp="W")
    busy = Lane(2, [item(4, "U"), item(10, "T"), item(5, "V"), item(6, "U")], last_sp="W")
    thief = lane(3, "W", set())
    board = Board({1: own, 2: busy, 3: thief}, 2, facts)
    board.slow.update({9, 10})
    now = utcnow()
    stolen = board.pick(thief, now, now + timedelta(hours=1))
    assert isinstance(stolen, PlanItemRow) and stolen.service_id == 10, "not only the last"
    assert [i.service_id for i in busy.pending] == [4, 5, 6]
    picked = board.pick(own, now, now + timedelta(hours=1))
    assert isinstance(picked, PlanItemRow) and picked.service_id == 9, "the slow one first"


def test_a_lane_near_its_end_starts_its_longest_items_first() -> None:
    """Once a lane has less work left than an item may take (the plan's upper bound), the
    longest goes first: the night must not end on one started last."""
    own = Lane(1, [item(1, "X", "decline", 9.0), item(2, "Y", "monthly", 20.0)], last_sp="W")
    board = Board({1: own}, 2, None)
    board.took_s("decline", 4.0)
    board.took_s("monthly", 4.0)  # 8 s left: both may run longer than the rest of the lane
    now = utcnow()
    picked = board.pick(own, now, now + timedelta(hours=1))
    assert isinstance(picked, PlanItemRow) and picked.flow == "monthly"


def test_a_service_not_yet_probed_tonight_goes_before_one_already_begun() -> None:
    """A service's first probe runs early, so that an SP that does not answer is known
    (and its other probes pulled forward) before the night's last minutes."""
    own = Lane(1, [item(1, "X"), item(2, "Y")], last_sp="W")
    board = Board({1: own}, 2, None)
    board.begun.add(1)  # another SIM probed service 1 tonight already
    now = utcnow()
    picked = board.pick(own, now, now + timedelta(hours=1))
    assert isinstance(picked, PlanItemRow) and picked.service_id == 2
    assert board.begun == {1, 2}

"""`[fleet] processes`: the local runtime's modems driven by several child processes.

The night runs as with one process (every knob found, nothing subscribed,
nothing owed, the chain verifies), its probes run in the children, and a
robot killed with ``kill -9`` takes its children with it: nothing keeps
probing behind the operator's back, and the next run recovers the night.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flows.flowrig import Rig, generate, serve
from scheduling.test_local_runtime import KNOBS, SCHEDULE, findings_by_service, schedule_run
from sqlalchemy import select

from dialbot.config import load_config
from dialbot.db.evidence import verify_chain
from dialbot.db.models import Run
from dialbot.db.obligations import sims_with_pending
from dialbot.db.owner import pid_alive
from dialbot.errors import ConfigError
from dialbot.fleet import Bank, ModemEntry, partition
from dialbot.flows.parts import EXIT_ORPHANED, part_count
from dialbot.scheduling.models import NightPlan, PlanItemRow


def with_processes(rig: Rig, processes: int) -> None:
    source = Path(rig.config.source)
    source.write_text(source.read_text(encoding="utf-8") + f"\n[fleet]\nprocesses = {processes}\n")


def start_night(rig: Rig) -> subprocess.Popen[str]:
    """`dialbot schedule run night` in the background (its errors kept for the test)."""
    folder = Path(rig.config.source).parent
    (folder / "schedules").mkdir(exist_ok=True)
    (folder / "schedules" / "night.toml").write_text(SCHEDULE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "DIALBOT_RUNTIME"}
    return subprocess.Popen(
        [sys.executable, "-m", "dialbot", "--config", str(rig.config.source),
         "schedule", "run", "night", "--window", "30"],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def owners(rig: Rig) -> set[int]:
    with rig.db() as session:
        return {pid for pid in session.scalars(select(Run.owner_pid)) if pid is not None}


def test_a_night_in_two_processes_finds_every_knob(tmp_path: Path) -> None:
    data, expected = generate(seed=41, knobs=KNOBS, honest=2, modems=4)
    with serve(tmp_path, data) as rig:
        with_processes(rig, 2)
        done = schedule_run(rig, timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Traceback" not in done.stderr
        with rig.db() as session:
            night = session.scalars(select(NightPlan)).one()
            items = session.scalars(select(PlanItemRow)).all()
        assert night.state == "done"
        assert {i.state for i in items} == {"done"} and len(items) == len(expected)
        claimers = {int(i.owner.rpartition(":")[2]) for i in items if i.owner}
        assert len(claimers) == 1, "one scheduler claims every item"
        probers = owners(rig)
        assert len(probers) == 2, "the probes ran in two processes"
        assert not probers & claimers, "and not in the scheduler's"
        got = findings_by_service(rig)
        for key, codes in expected.items():
            assert got.get(key, set()) == codes, f"{key}: expected {codes}, got {got.get(key)}"
        assert rig.subscribed() == {}
        assert sims_with_pending(rig.db) == []
        assert verify_chain(rig.db).ok
        log = (tmp_path / "dialbot.log").read_text(encoding="utf-8")
        assert "fleet process started" in log, "the children's log lines reach the log"


def test_killing_the_robot_takes_its_fleet_processes_with_it(tmp_path: Path) -> None:
    data, _ = generate(seed=42, knobs=[], honest=8, modems=4)
    with serve(tmp_path, data) as rig:
        with_processes(rig, 2)
        robot = start_night(rig)
        try:
            wait_for(lambda: len(owners(rig)) == 2, "probes in both fleet processes")
        finally:
            robot.send_signal(signal.SIGKILL)
            robot.wait(timeout=30)
        children = owners(rig)
        wait_for(lambda: not any(pid_alive(p) for p in children), "the children to end", 20)
        done = schedule_run(rig, timeout=180)  # the next run takes the night over
        assert done.returncode == 0, done.stderr[-3000:]
        with rig.db() as session:
            night = session.scalars(select(NightPlan)).one()
        assert night.state == "done"
        assert rig.subscribed() == {}
        assert sims_with_pending(rig.db) == []
        assert verify_chain(rig.db).ok


def bank(name: str, slots: list[int], retired: tuple[int, ...] = ()) -> Bank:
    entries = tuple(ModemEntry(s, f"/dev/{name}{s}", retired=s in retired) for s in slots)
    return Bank(name, None, "generic", entries, Path(f"{name}.toml"))


def test_parts_are_contiguous_even_and_cover_every_modem_once() -> None:
    banks = [bank("a", [1, 2, 3, 4, 5], retired=(2,)), bank("b", [1, 2, 3])]
    parts = [partition(banks, k, 3) for k in range(3)]
    named = [[(b.name, m.slot) for b in part for m in b.modems if not m.retired] for part in parts]
    assert named == [[("a", 1), ("a", 3)], [("a", 4), ("a", 5)], [("b", 1), ("b", 2), ("b", 3)]]
    retired = [[(b.name, m.slot) for b in part for m in b.modems if m.retired] for part in parts]
    assert retired == [[("a", 2)], [], []], "retired modems stay on record with part 0"
    assert [b.name for b in parts[2]] == ["b"], "a bank with no modem in a part is left out"
    with pytest.raises(ValueError):
        partition(banks, 3, 3)


def write_toml(tmp_path: Path, fleet: str, modems: int) -> Path:
    (tmp_path / "hardware").mkdir(exist_ok=True)
    lines = ["[bank]", 'name = "h"', ""]
    for slot in range(1, modems + 1):
        lines += ["[[modem]]", f"slot = {slot}", f'port = "/dev/ttyUSB{slot}"', ""]
    (tmp_path / "hardware" / "h.toml").write_text("\n".join(lines), encoding="utf-8")
    path = tmp_path / "dialbot.toml"
    path.write_text(f"[fleet]\n{fleet}\n", encoding="utf-8")
    return path


def test_auto_takes_a_process_per_32_modems_up_to_the_cpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dialbot.flows.parts.cpus", lambda: 2)
    assert part_count(load_config(write_toml(tmp_path, 'processes = "auto"', 8))) == 1
    assert part_count(load_config(write_toml(tmp_path, 'processes = "auto"', 33))) == 2
    assert part_count(load_config(write_toml(tmp_path, 'processes = "auto"', 200))) == 2
    assert part_count(load_config(write_toml(tmp_path, "", 64))) == 2, "auto is the default"
    assert part_count(load_config(write_toml(tmp_path, "processes = 3", 8))) == 3
    assert part_count(load_config(write_toml(tmp_path, "processes = 6", 4))) == 4, "≤ modems"


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "true", '"many"'])
def test_a_bad_process_count_names_the_file_and_key(tmp_path: Path, value: str) -> None:
    path = write_toml(tmp_path, f"processes = {value}", 2)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value) and "fleet.processes" in str(caught.value)


def test_an_orphaned_child_exits_with_its_own_status() -> None:
    """What the children exit with when their parent is gone (so a log tells it apart)."""
    assert EXIT_ORPHANED not in (0, 1, 2, 3, -signal.SIGKILL)


def test_a_fleet_process_that_dies_takes_only_its_sims_out_of_the_night(tmp_path: Path) -> None:
    """A child killed mid-probe: its probes end infra_failed (counted as ordered: fail
    closed), its SIMs leave the night, the other child's SIMs finish it; what the dead
    child's SIMs owe is discharged by the next run's cleanup pass."""
    data, _ = generate(seed=43, knobs=[], honest=10, modems=4)
    with serve(tmp_path, data) as rig:
        with_processes(rig, 2)
        robot = start_night(rig)
        try:
            found: list[tuple[int, int]] = []

            def probing() -> bool:
                with rig.db() as session:
                    found[:] = session.execute(
                        select(Run.owner_pid, Run.sim_id).where(Run.state == "running")
                    ).all()
                return len(owners(rig)) == 2 and bool(found)

            wait_for(probing, "probes in both fleet processes, one of them running")
            victim, sim_id = found[0]
            os.kill(victim, signal.SIGKILL)
            _, stderr = robot.communicate(timeout=180)
        finally:
            robot.kill()
        assert robot.returncode == 0, stderr[-3000:]
        with rig.db() as session:
            items = session.scalars(select(PlanItemRow)).all()
            dead_sims = set(
                session.scalars(select(Run.sim_id).where(Run.owner_pid == victim))
            )  # fmt: skip
        assert sim_id in dead_sims
        for item in items:
            if item.sim_id in dead_sims:
                assert item.state in ("infra_failed", "skipped", "pending", "done"), item.state
            else:
                assert item.state == "done", (item.sim_id, item.state, item.error)
        cut = [i for i in items if i.state == "infra_failed"]
        assert cut and all("fleet process" in (i.error or "") for i in cut)
        again = schedule_run(rig, timeout=180)
        assert again.returncode == 0, again.stderr[-3000:]
        assert rig.subscribed() == {}
        assert sims_with_pending(rig.db) == []
        assert verify_chain(rig.db).ok


def test_an_error_raised_in_a_fleet_process_reaches_the_command_as_itself() -> None:
    """Errors cross the process boundary pickled: each comes back as its own type, with
    its message and attributes, whatever its constructor takes."""
    from dialbot.db.models import IllegalTransition
    from dialbot.db.outage import DatabaseUnavailable
    from dialbot.errors import CmsError

    for error in [ConfigError("hardware/a.toml", "modem[2].port", "already used"),
                  IllegalTransition(7, "done", "running"), DatabaseUnavailable("gone 300 s"),
                  CmsError(500, trace=["AT+CMGS=20", "+CMS ERROR: 500"])]:  # fmt: skip
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and str(back) == str(error)
        assert vars(back) == vars(error)

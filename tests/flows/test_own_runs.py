"""A process never takes over its own runs (issue 15), and what a dead one left is judged.

The reproduction of issue 15: `dialbot probe` runs two flows of one service
on one SIM while another SP sends spam to that SIM during the first. The
spam opens a watch run of the probing process; the second flow must not
abort it (the old code did: the spam went unjudged and the command ended in
IllegalTransition). Then the same against a process killed with SIGKILL:
the next process takes over and judges exactly the dead one's runs — the
spam it had recorded becomes a finding — and leaves a live process's runs
alone. Both on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flowrig import Rig, generate, serve
from sqlalchemy import func, select

from dialbot.cli import cli
from dialbot.db.catalogue import list_services
from dialbot.db.engine import write_session
from dialbot.db.evidence import verify_chain
from dialbot.db.models import EvidenceEvent, Finding, Run, RunState, Sim
from dialbot.db.obligations import sims_with_pending
from dialbot.db.owner import Owner, process_start, this_process
from dialbot.db.runs import create_run, get_run, transition
from dialbot.flows.loader import standard_flows
from dialbot.flows.recovery import DEAD
from dialbot.flows.steps import StepRunner
from dialbot.flows.sweep import Sweep, SweepReport
from dialbot.sim.world import Sp

OPEN = ("planned", "running", "judging")


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def probe_process(rig: Rig, sp: Sp, modem: str, out: Path) -> subprocess.Popen[bytes]:
    """`dialbot probe SP SERVICE --modem M` in a process of its own (output to files)."""
    assert rig.config.source is not None
    args = [sys.executable, "-m", "dialbot", "--config", str(rig.config.source),
            "probe", sp.code, sp.services[0].code, "--modem", modem, "--timeout", "3"]  # fmt: skip
    return subprocess.Popen(
        args,
        stdout=(out / "stdout.txt").open("wb"),
        stderr=(out / "stderr.txt").open("wb"),
        env={**os.environ, "COLUMNS": "160"},
    )


def running_sim_of(rig: Rig, flow: str) -> Callable[[], str | None]:
    """The SIM of a running run of this flow, once there is one."""

    def check() -> str | None:
        with rig.db() as session:
            return session.scalar(
                select(Sim.msisdn)
                .join(Run, Run.sim_id == Sim.id)
                .where(Run.flow == flow, Run.state == "running")
            )

    return check


def spam(rig: Rig, spammer: Sp, msisdn: str) -> None:
    """The spammer's network side sends one message to the SIM; returns once it is recorded
    by the watch (as a judged message of a watch run)."""
    network: Any = rig.bank.network
    text = network.agents[spammer.code].words.spam(spammer.services[0], 0)
    access = spammer.services[0].access
    rig.bank.call(lambda: network.send(msisdn, access, text, 0.0))

    def recorded() -> bool:
        with rig.db() as session:
            return bool(
                session.scalar(
                    select(func.count())
                    .select_from(EvidenceEvent)
                    .join(Run, Run.id == EvidenceEvent.run_id)
                    .where(EvidenceEvent.sim == msisdn, Run.flow == "watch")
                )
            )

    wait_until(recorded, 20.0, "the spam to be recorded by the watch")


def open_runs(rig: Rig) -> list[tuple[int, str, str]]:
    with rig.db() as session:
        rows = session.execute(select(Run.id, Run.flow, Run.state).where(Run.state.in_(OPEN)))
        return [(i, f, s) for i, f, s in rows]


def spam_findings(rig: Rig, spammer: Sp) -> list[tuple[int, str]]:
    with rig.db() as session:
        rows = session.execute(
            select(Finding.run_id, Finding.code).where(Finding.sp_code == spammer.code)
        )
        return [(r, c) for r, c in rows]


def test_probe_keeps_its_own_watch_and_judges_the_spam(tmp_path: Path, flow_db: str | None) -> None:
    data, expected = generate(seed=53, knobs=[], honest=2, modems=2)
    with serve(tmp_path / "w", data, time_scale=0.05, db_url=flow_db) as rig:
        probed, spammer = rig.world.sps[0], rig.world.sps[1]
        modem = f"{rig.world.bank_name}:1"
        proc = probe_process(rig, probed, modem, tmp_path)
        try:
            msisdn = wait_until(running_sim_of(rig, "decline"), 60.0, "the first flow")
            spam(rig, spammer, msisdn)  # between the two flows' starts, on the probed SIM
            code = proc.wait(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out = (tmp_path / "stdout.txt").read_text(encoding="utf-8")
        err = (tmp_path / "stderr.txt").read_text(encoding="utf-8")
        assert "Traceback" not in err and "IllegalTransition" not in out + err, err
        assert code == 0, out + err  # the probed SP is honest: documented exit status 0
        assert "waiting up to" in out and "exit status 0" in out
        assert "UNSOLICITED_MESSAGE" in out  # shown among what else the SIM received
        assert open_runs(rig) == []
        assert [c for _, c in spam_findings(rig, spammer)] == ["UNSOLICITED_MESSAGE"]
        with rig.db() as session:
            aborted = session.scalars(select(Run.id).where(Run.state == "aborted")).all()
        assert aborted == []  # nothing of a live process was taken for a dead one's
        assert sims_with_pending(rig.db) == []
        assert rig.subscribed() == {}
        assert verify_chain(rig.db).ok


def test_next_process_takes_over_only_the_killed_ones_runs(
    tmp_path: Path, flow_db: str | None
) -> None:
    data, _ = generate(seed=54, knobs=[], honest=2, modems=2)
    with serve(tmp_path / "w", data, time_scale=0.05, db_url=flow_db) as rig:
        probed, spammer = rig.world.sps[0], rig.world.sps[1]
        modem = f"{rig.world.bank_name}:1"
        proc = probe_process(rig, probed, modem, tmp_path)
        try:
            msisdn = wait_until(running_sim_of(rig, "decline"), 60.0, "the first flow")
            spam(rig, spammer, msisdn)
            assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        dead = [run_id for run_id, _, _ in open_runs(rig)]
        assert len(dead) == 2  # its probe and its watch, left running by the kill
        with rig.db() as session:
            sim_id = session.scalar(select(Sim.id).where(Sim.msisdn == msisdn))
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        try:
            owner = Owner(this_process().host, sleeper.pid, process_start(sleeper.pid))
            live = create_run(rig.db, "watch", sim_id=sim_id, owner=owner)
            transition(rig.db, live.id, RunState.RUNNING)

            again = CliRunner().invoke(
                cli,
                [
                    "--config",
                    str(rig.config.source),
                    "probe",
                    probed.code,
                    probed.services[0].code,
                    "--modem",
                    modem,
                    "--flow",
                    "decline",
                ],  # fmt: skip
            )
            assert again.exit_code == 0, again.output
            assert get_run(rig.db, live.id).state.value == "running"  # a live process's run
        finally:
            sleeper.kill()
            sleeper.wait()
        for run_id in dead:
            info = get_run(rig.db, run_id)
            assert info.state.value == "aborted" and info.judged_at is not None
            assert info.error is not None and info.error.startswith(DEAD)
        (watch_run,) = [r for r in dead if get_run(rig.db, r).flow == "watch"]
        assert spam_findings(rig, spammer) == [(watch_run, "UNSOLICITED_MESSAGE")]
        assert "UNSOLICITED_MESSAGE" in again.output
        with write_session(rig.db) as session:  # the sleeper's run: its owner is gone now
            session.delete(session.get_one(Run, live.id))
        assert open_runs(rig) == []
        assert sims_with_pending(rig.db) == []
        assert rig.subscribed() == {}
        assert verify_chain(rig.db).ok


def test_a_sweep_ends_with_no_run_running(tmp_path: Path) -> None:
    """Spam during the sweep and after its watch was judged (the modems still open):
    both are judged, and no run is left running when the sweep's fleet closes."""
    data, _ = generate(seed=55, knobs=[], honest=2, modems=2)
    with serve(tmp_path / "w", data, db_url=None) as rig:
        probed, spammer = rig.world.sps[0], rig.world.sps[1]
        with rig.fleet() as (fleet, sink):
            services = [s for s in list_services(rig.db) if s.sp_code == probed.code]
            sweep = Sweep(rig.db, rig.config, fleet, standard_flows(), services)
            sink.bind(sweep.watch)
            reports: list[SweepReport] = []
            worker = threading.Thread(target=lambda: reports.append(sweep.run()))
            worker.start()
            try:
                msisdn = wait_until(running_sim_of(rig, "decline"), 60.0, "the sweep's probe")
                spam(rig, spammer, msisdn)
            finally:
                worker.join(timeout=180)
            assert not worker.is_alive()
            (report,) = reports
            assert [f.code for f in report.findings] == ["UNSOLICITED_MESSAGE"]
            before = len(spam_findings(rig, spammer))
            network: Any = rig.bank.network
            text = network.agents[spammer.code].words.spam(spammer.services[0], 1)
            access = spammer.services[0].access
            rig.bank.call(lambda: network.send(msisdn, access, text, 0.0))
            wait_until(lambda: len(spam_findings(rig, spammer)) > before, 20.0, "late spam")
        assert open_runs(rig) == []
        assert [c for _, c in spam_findings(rig, spammer)] == ["UNSOLICITED_MESSAGE"] * 2


def test_a_defect_in_one_probe_ends_that_run_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception in the middle of one probe (after its order went out): that
    run ends aborted and judged on what it saw, its order is cleaned up, the sweep goes on
    to its end; `dialbot probe` meeting the same says so in one line and exits 3."""
    data, _ = generate(seed=57, knobs=[], honest=3, modems=2)
    with serve(tmp_path / "w", data) as rig:
        original = StepRunner.balance
        broken: list[int] = []

        def balance(self: StepRunner, step: Any) -> None:
            if step.label == "after" and self.flow_kind != "hygiene" and not broken:
                broken.append(self.run_id)
                raise RuntimeError("a defect nobody foresaw")
            original(self, step)

        monkeypatch.setattr(StepRunner, "balance", balance)
        report = rig.sweep()
        (run_id,) = broken
        info = get_run(rig.db, run_id)
        assert info.state.value == "aborted" and info.judged_at is not None
        assert info.error is not None and "a defect nobody foresaw" in info.error
        assert [p.reason.split(":")[0] for p in report.not_probed] == ["aborted"]
        assert len(report.outcomes) == 2 * len(rig.world.sps) - 1  # every other probe ran
        assert open_runs(rig) == []
        assert sims_with_pending(rig.db) == []
        assert rig.subscribed() == {}

        broken.clear()
        sp = rig.world.sps[0]
        result = CliRunner().invoke(
            cli, ["--config", str(rig.config.source), "probe", sp.code, "--flow", "decline"]
        )
        assert result.exit_code == 3, result.output
        assert "Traceback" not in result.output
        assert "a defect nobody foresaw" in result.output  # the one line saying why
        assert open_runs(rig) == []
        assert rig.subscribed() == {}
        log = (Path(str(rig.config.source)).parent / "dialbot.log").read_text(encoding="utf-8")
        assert "Traceback" in log and "a defect nobody foresaw" in log  # details in the log

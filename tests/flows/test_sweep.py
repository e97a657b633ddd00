"""End to end: the real robot stack sweeps generated worlds served by the virtual bank.

Every deterministic misbehaviour knob must be found (recall), nothing may be
found against an honest service or reported with the wrong code (precision),
on repeated sweeps of the same network, and no SIM may be left subscribed.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from flowrig import KNOBS, Rig, by_service, generate, serve
from sqlalchemy import select

from dialbot.db.evidence import verify_chain
from dialbot.db.models import CleanupObligation, Finding, Run
from dialbot.db.obligations import sims_with_pending
from dialbot.flows.runner import RunOutcome
from dialbot.flows.sweep import SilentListener, SweepReport
from dialbot.sim.world import Sp

# Sweeps of the same network in a row (acceptance asks five: DIALBOT_SWEEP_REPEAT=5).
REPEAT = int(os.environ.get("DIALBOT_SWEEP_REPEAT", "2"))


def assert_exact(report: SweepReport, expected: dict[tuple[str, str], set[str]]) -> None:
    got = by_service(report)
    unknown = set(got) - set(expected)
    assert not unknown, f"findings against services nobody expected: {unknown}"
    for key, codes in expected.items():
        assert got.get(key, set()) == codes, f"{key}: expected {codes}, got {got.get(key)}"


def test_repeated_sweeps_find_every_knob_and_nothing_else(
    tmp_path: Path, flow_db: str | None
) -> None:
    data, expected = generate(seed=11, honest=3, modems=8)
    with serve(tmp_path, data, db_url=flow_db) as rig:
        for _ in range(REPEAT):  # the same network again: leftovers of a sweep must not leak
            report = rig.sweep()
            assert report.complete and not report.benched and not report.not_probed
            assert len(report.outcomes) == 2 * len(expected)
            assert_exact(report, expected)
            assert rig.subscribed() == {}
            assert sims_with_pending(rig.db) == []
        assert verify_chain(rig.db).ok
        with rig.db() as session:
            states = set(session.scalars(select(Run.state)))
            assert states == {"done"}
            methods = dict(
                session.execute(
                    select(CleanupObligation.service_code, CleanupObligation.method).where(
                        CleanupObligation.method == "cancel_all"
                    )
                ).all()
            )
            broken = next(k for k, v in expected.items() if v == KNOBS["cancel_broken"][2])
            assert methods.get(broken[1]) == "cancel_all"  # the SP keyword did not work
            cited = [i for f in session.scalars(select(Finding)) for i in f.evidence]
            assert cited  # findings carry evidence ids ...
            runs_of = dict(session.execute(select(Finding.id, Finding.run_id)).all())
            assert all(runs_of.values())  # ... and belong to a run


def test_another_world_and_seed(tmp_path: Path) -> None:
    data, expected = generate(seed=12, honest=2, modems=8)
    with serve(tmp_path, data) as rig:
        report = rig.sweep()
        assert report.complete
        assert_exact(report, expected)
        assert rig.subscribed() == {}
        assert verify_chain(rig.db).ok


class Spammer(SilentListener):
    """Makes an SP spam two SIMs while the sweep runs (after the first probe ends)."""

    def __init__(self, rig: Rig, sp: Sp) -> None:
        self.rig, self.sp, self.sent = rig, sp, threading.Event()

    def finished(self, outcome: RunOutcome, retried: bool) -> None:
        if self.sent.is_set():
            return
        self.sent.set()
        network: Any = self.rig.bank.network
        service = self.sp.services[0]
        text = network.agents[self.sp.code].words.spam(service, 0)
        for card in self.rig.world.sims[:2]:

            def spam(msisdn: str = card.msisdn) -> None:
                network.send(msisdn, service.access, text, 0.0)

            self.rig.bank.call(spam)


def test_spam_and_silent_subscription_are_caught_and_cleaned(
    tmp_path: Path, flow_db: str | None
) -> None:
    data, _ = generate(seed=13, knobs=[], honest=4, modems=4)
    with serve(tmp_path, data, db_url=flow_db) as rig:
        network: Any = rig.bank.network
        silent = next(sp for sp in rig.world.sps if sp.services[0].billing == "monthly")
        spammer = next(sp for sp in rig.world.sps if sp is not silent)

        def subscribe_silently() -> None:
            agent = network.agents[silent.code]
            account = network.accounts[rig.world.sims[1].msisdn]
            agent._silent_once(account, silent.services[0])()

        rig.bank.call(subscribe_silently)
        assert rig.subscribed()  # the silent subscription is real
        # the spammer is not probed in this sweep: its messages can only be spam
        report = rig.sweep(skip=frozenset({spammer.code}), listener=Spammer(rig, spammer))
        got = by_service(report)
        assert got.pop((silent.code, silent.services[0].code)) == {"UNSOLICITED_SUBSCRIPTION"}
        assert got.pop((spammer.code, spammer.services[0].code)) == {"UNSOLICITED_MESSAGE"}
        assert got == {}
        assert rig.subscribed() == {}
        spam = [f for f in report.findings if f.code == "UNSOLICITED_MESSAGE"]
        assert len(spam) == 2  # one per SIM, each citing the message it is about
        assert all(f.evidence for f in spam)

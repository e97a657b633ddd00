"""Faulty modems: runs that fail on them are retried elsewhere and never judged.

The bank mixes dialects and injects faults (CMS errors, a modem that stops
answering, a network outage, junk bytes). Recall and precision must hold as
on a healthy bank; no infrastructure failure may produce a finding; SIMs in
modems that still answer end clean, and what cannot be cleaned (a dead modem)
stays an open obligation rather than being forgotten.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowrig import by_service, generate, serve
from sqlalchemy import select

from dialbot.db.evidence import verify_chain
from dialbot.db.models import Finding, Run
from dialbot.db.obligations import sims_with_pending

FAULTS: dict[int, dict[str, Any]] = {
    1: {"cms_error_rate": 0.3},
    2: {"stop_after_commands": 80},
    3: {"network_lost": [2, 2]},
    4: {"garbage_rate": 0.2},
}


def test_faults_are_retried_elsewhere_and_never_counted(tmp_path: Path) -> None:
    data, expected = generate(seed=21, honest=2, modems=8, faults=FAULTS)
    with serve(tmp_path, data) as rig:
        report = rig.sweep()
        assert report.complete, report.not_probed
        got = by_service(report)
        for key, codes in expected.items():
            assert got.get(key, set()) == codes, key
        assert set(got) <= set(expected)
        with rig.db() as session:
            failed = set(
                session.scalars(select(Run.id).where(Run.state.in_(["infra_failed", "aborted"])))
            )
            assert failed, "the faults were meant to break some runs"
            judged = set(session.scalars(select(Finding.run_id)))
            assert not failed & judged  # an infrastructure failure never becomes a finding
            retries = session.scalars(select(Run).where(Run.retry_of_id.is_not(None))).all()
            assert any(r.state == "done" for r in retries)
            for retry in retries:
                earlier = session.get(Run, retry.retry_of_id)
                assert earlier is not None and earlier.modem != retry.modem
        dirty = set(rig.subscribed())
        assert dirty <= set(sims_with_pending(rig.db))  # nothing subscribed is forgotten
        healthy = {card.msisdn for card in rig.world.sims if card.slot > len(FAULTS)}
        assert not dirty & healthy
        assert verify_chain(rig.db).ok

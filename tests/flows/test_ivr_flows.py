"""End to end: the real robot sweeps IVR lines served by the virtual bank, on two makes.

Every voice behaviour of channels.md §6 must give exactly its finding,
honest lines none, and no SIM may stay subscribed. The billing minute is
shortened in both the world and the carrier profile (6 s), never by
time_scale; the standard ivr flow holds 0.8 and 1.05 billing minutes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from flowrig import Rig, by_service, serve
from ivrworld import LINES, ivr_world
from sqlalchemy import select

from dialbot.db.models import EvidenceEvent, Run
from dialbot.db.obligations import sims_with_pending
from dialbot.flows.sweep import SweepReport
from dialbot.reporting.period import period_of
from dialbot.reporting.publish import publish_period


def assert_exact(report: SweepReport) -> None:
    got = by_service(report)
    expected = {("901020", code): codes for code, (_, codes) in LINES.items()}
    assert set(got) <= set(expected), got
    for key, codes in expected.items():
        assert got.get(key, set()) == codes, f"{key}: expected {codes}, got {got.get(key)}"


@pytest.mark.parametrize("dialect", ["generic", "huawei"])
def test_every_ivr_behaviour_found_exactly(tmp_path: Path, dialect: str) -> None:
    with serve(tmp_path, ivr_world(dialect)) as rig:
        report = rig.sweep()
        assert report.complete and not report.benched and not report.not_probed
        assert [o.flow for o in report.outcomes] == ["ivr"] * len(LINES)
        assert all(o.completed for o in report.outcomes), [o.error for o in report.outcomes]
        assert_exact(report)
        overbilled = [f for f in report.findings if f.code == "CALL_OVERBILLED"]
        amounts = sorted((f.service_code, f.amount_fen) for f in overbilled)
        assert amounts == [("EXTRA", 100), ("EXTRA", 100), ("FROMDIAL", 100)]
        key = next(f for f in report.findings if f.code == "UNCONFIRMED_SUBSCRIPTION")
        assert key.amount_fen == 800
        assert rig.subscribed() == {}
        assert sims_with_pending(rig.db) == []
        if dialect == "generic":
            _published(rig, tmp_path / "reports")


def _published(rig: Rig, folder: Path) -> None:
    """The publication names the voice codes and quotes the call evidence, numbers masked."""
    publish_period(rig.db, period_of(datetime.now(UTC)), folder)
    (page,) = folder.rglob("sp/901020.html")
    html = page.read_text("utf-8")
    assert "声讯超时长计费" in html and "挂机后未释放" in html
    assert "call 12590" in html and "NOT released" in html
    for card in rig.world.sims:
        assert card.msisdn not in html


def test_dropped_call_is_an_infrastructure_failure(tmp_path: Path) -> None:
    world = ivr_world("zte")
    world["bank"]["modems"] = 2
    world["sps"][0]["services"] = [
        {
            "code": "DROPS",
            "name": "掉线声讯",
            "channel": "ivr",
            "access": "125909999",
            "billing": "per_minute",
            "price_fen": 100,
            "behaviour": {"answer_after_s": 0.5, "hangs_up_after_s": 1.0},
        }
    ]
    with serve(tmp_path, world) as rig:
        report = rig.sweep()
        assert report.findings == [] and report.outcomes == []
        assert [n.service_code for n in report.not_probed] == ["DROPS"]
        with rig.db() as session:
            runs = session.scalars(select(Run).where(Run.flow == "ivr")).all()
            assert runs and {r.state for r in runs} == {"infra_failed"}
            assert all("dropped" in (r.error or "") for r in runs)
            kinds = session.scalars(
                select(EvidenceEvent.kind).where(EvidenceEvent.run_id == runs[0].id)
            )
            assert "call" in set(kinds)  # what was seen of the call is kept
        assert rig.subscribed() == {}

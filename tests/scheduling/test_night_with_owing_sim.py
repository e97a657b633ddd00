"""A SIM whose cleanup cannot be discharged (its modem died with an order out)
sits the night out; the other SIMs still cover the catalogue. One dead modem
must not stop a whole night."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.models import Sim
from dialbot.db.obligations import create_obligation, sims_with_pending
from dialbot.scheduling.dispatch import Runtime
from dialbot.scheduling.models import NightPlan, PlanItemRow
from dialbot.scheduling.schedules import load_schedule
from dialbot.scheduling.service import run_night

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sched_runtime import FLOW_BILLING, DbFleet, LedgerDispatcher  # noqa: E402
from test_daemon import SCHEDULE, populate  # noqa: E402

STUCK = "13800130000"


class StuckCleanup:
    """Discharges nothing: the modem holding STUCK does not answer."""

    def __init__(self, db: sessionmaker[Session]) -> None:
        self.db = db

    def discharge_pending(self) -> int:
        return len(sims_with_pending(self.db))


def test_owing_sim_sits_out_others_work(
    session_factory: sessionmaker[Session], tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DIALBOT_TEST_LEDGER", str(tmp_path / "ledger.txt"))
    db = session_factory
    populate(db, sps=4, per_sp=2, sims=4)
    create_obligation(db, sim=STUCK, sp_code="900000", service_code="S0",
                      access_number="10660000", cancel_cmd="TD")  # fmt: skip
    (tmp_path / "night.toml").write_text(SCHEDULE, encoding="utf-8")
    schedule = load_schedule(tmp_path / "night.toml")
    runtime = Runtime(dispatcher=LedgerDispatcher(db, 0.0), cleanup=StuckCleanup(db),
                      fleet=DbFleet(db), flow_billing=FLOW_BILLING,
                      flow_seconds={"decline": 1.0})  # fmt: skip

    result = run_night(db, schedule, runtime, window=timedelta(hours=4))

    assert result.finished
    with db() as session:
        stuck_id = session.scalars(select(Sim.id).where(Sim.msisdn == STUCK)).one()
        items = session.scalars(select(PlanItemRow)).all()
        plan = session.scalars(select(NightPlan)).one()
    assert items and stuck_id not in {i.sim_id for i in items}
    assert Counter(i.state for i in items) == {"done": len(items)}
    assert "138****0000" in " ".join(plan.notes or [])
    assert STUCK in sims_with_pending(db)  # still owed, truthfully

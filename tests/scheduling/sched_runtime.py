"""A runtime for subprocess tests: SIMs from the database, probes that write a ledger.

The dispatcher does what matters for crash safety the way the real runner
does — check the balance, store the cleanup obligation, then order, then
wait, then cancel — and writes each order and cleanup to a ledger file (the
SP's view of the world), which survives kill -9 of the process under test.
Env: DIALBOT_TEST_DELAY (waiting on the network after the order),
DIALBOT_TEST_PRE_DELAY (before the order), DIALBOT_TEST_CANCEL_DELAY
(between the cancel and its confirmation).
"""

from __future__ import annotations

import os
import time

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.config import Config
from dialbot.db.models import Service, Sim
from dialbot.db.obligations import (
    create_obligation,
    discharge,
    discharge_all_for_sim,
    sims_with_pending,
)
from dialbot.scheduling.dispatch import ProbeJob, ProbeOutcome, Runtime
from dialbot.scheduling.planner import SimInfo

FLOW_BILLING = {"decline": ("monthly", "per_use"), "monthly": ("monthly",)}


def ledger(line: str) -> None:
    fd = os.open(os.environ["DIALBOT_TEST_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _seconds(name: str, default: str = "0") -> float:
    return float(os.environ.get(name, default))


class LedgerDispatcher:
    def __init__(self, db: sessionmaker[Session], delay: float) -> None:
        self.db = db
        self.delay = delay
        self.pre_delay = _seconds("DIALBOT_TEST_PRE_DELAY")
        self.cancel_delay = _seconds("DIALBOT_TEST_CANCEL_DELAY")

    def run(self, job: ProbeJob) -> ProbeOutcome:
        with self.db() as session:
            msisdn = session.get_one(Sim, job.sim_id).msisdn
            service = session.get_one(Service, job.service_id)
        time.sleep(self.pre_delay)  # the balance check before the order
        # the cleanup promise is stored before the order goes out: a process killed between
        # the two leaves one without an order, which recovery must (and does) treat as cut
        ledger(f"OBLIGE {job.service_id} {msisdn} {job.flow}")
        ob = create_obligation(self.db, sim=msisdn, sp_code=job.sp_code,
                               service_code=service.code, access_number=service.access_number,
                               cancel_cmd="TD")  # fmt: skip
        ledger(f"ORDER {job.service_id} {msisdn} {job.flow}")
        time.sleep(self.delay)  # the probe waiting on the network
        ledger(f"CANCEL {job.service_id} {msisdn} {job.flow}")
        time.sleep(self.cancel_delay)  # waiting for the cancel's confirmation
        discharge(self.db, ob.id, "sp_keyword")
        ledger(f"DONE {job.service_id} {msisdn} {job.flow}")
        return ProbeOutcome("done", ordered=True)


class LedgerCleanup:
    def __init__(self, db: sessionmaker[Session]) -> None:
        self.db = db

    def discharge_pending(self) -> int:
        for sim in sims_with_pending(self.db):
            discharge_all_for_sim(self.db, sim, "cancel_all")
            ledger(f"CLEAN {sim}")
        return len(sims_with_pending(self.db))


class DbFleet:
    def __init__(self, db: sessionmaker[Session]) -> None:
        self.db = db

    def ready_sims(self) -> list[SimInfo]:
        with self.db() as session:
            rows = session.execute(select(Sim.id, Sim.msisdn).order_by(Sim.id)).all()
        return [SimInfo(sim_id, msisdn, None, 10_000) for sim_id, msisdn in rows]

    def modem_states(self) -> dict[str, int]:
        return {"ready": len(self.ready_sims())}

    def out_of_service(self) -> list[tuple[str, str]]:
        return []


def runtime(config: Config, db: sessionmaker[Session]) -> Runtime:
    return Runtime(
        dispatcher=LedgerDispatcher(db, float(os.environ.get("DIALBOT_TEST_DELAY", "0.1"))),
        cleanup=LedgerCleanup(db),
        fleet=DbFleet(db),
        flow_billing=FLOW_BILLING,
        flow_seconds={"decline": 1.0, "monthly": 1.0},
    )

"""A worker-side runtime for the distributed tests: the bank's SIMs, a ledger of orders.

It does what matters for exactly-once the way the real runner does — a run,
then the cleanup obligation (committed), then the order, then the wait,
then the cancel — and writes every order, cancel and clean-up to a ledger
file (the SP's and the carrier's view), which survives kill -9 of a worker.
Used until ``dialbot.flows.sweep.local_runtime`` drives the virtual banks.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.config import Config
from dialbot.db.models import CleanupObligation, RunState, Service, Sim
from dialbot.db.obligations import create_obligation, discharge, discharge_all_for_sim
from dialbot.db.outage import survives_outage
from dialbot.db.runs import create_run, transition, upsert_sim
from dialbot.fleet import Bank, load_inventories
from dialbot.scheduling.dispatch import ProbeJob, ProbeOutcome, Runtime
from dialbot.scheduling.planner import SimInfo


def ledger(line: str) -> None:
    fd = os.open(os.environ["DIALBOT_TEST_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


class LedgerDispatcher:
    def __init__(self, db: sessionmaker[Session], bank: Bank, delay: float) -> None:
        self.db = db
        self.bank = bank
        self.delay = delay
        self.locks: dict[int, threading.Lock] = defaultdict(threading.Lock)

    @survives_outage
    def _names(self, job: ProbeJob) -> tuple[str, str, str, int | None]:
        """The SIM's number and the service's code and access number (a storage read, run
        again when a database restart cuts it, like the real runtime's)."""
        with self.db() as session:
            sim = session.get_one(Sim, job.sim_id)
            service = session.get_one(Service, job.service_id)
            return sim.msisdn, service.code, service.access_number, sim.slot

    def run(self, job: ProbeJob) -> ProbeOutcome:
        msisdn, code, access, slot = self._names(job)
        with self.locks[job.sim_id]:  # one probe per modem
            run = create_run(self.db, job.flow, service_id=job.service_id, sim_id=job.sim_id)
            transition(self.db, run.id, RunState.RUNNING, modem=f"{self.bank.name}:{slot}")
            ob = create_obligation(self.db, sim=msisdn, sp_code=job.sp_code, service_code=code,
                                   access_number=access, cancel_cmd="TD", run_id=run.id)  # fmt: skip
            ledger(f"ORDER {job.service_id} {msisdn} {self.bank.name} {run.id}")
            time.sleep(self.delay)  # the probe waiting on the network
            ledger(f"CANCEL {job.service_id} {msisdn}")
            discharge(self.db, ob.id, "sp_keyword")
            transition(self.db, run.id, RunState.JUDGING)
            transition(self.db, run.id, RunState.DONE)
        return ProbeOutcome("done", ordered=True, run_id=run.id)


class LedgerCleanup:
    def __init__(self, db: sessionmaker[Session], msisdns: list[str]) -> None:
        self.db = db
        self.msisdns = msisdns

    def discharge_pending(self) -> int:
        with self.db() as session:
            pending = set(
                session.scalars(
                    select(CleanupObligation.sim).where(
                        CleanupObligation.discharged_at.is_(None),
                        CleanupObligation.sim.in_(self.msisdns),
                    )
                )
            )
        for msisdn in sorted(pending):
            ledger(f"CLEAN {msisdn}")
            discharge_all_for_sim(self.db, msisdn, "cancel_all")
        return 0


class BankFleet:
    def __init__(self, sims: list[SimInfo]) -> None:
        self.sims = sims

    def ready_sims(self) -> list[SimInfo]:
        return list(self.sims)

    def modem_states(self) -> dict[str, int]:
        return {"ready": len(self.sims)}

    def out_of_service(self) -> list[tuple[str, str]]:
        return []


def runtime(config: Config, db: sessionmaker[Session]) -> Runtime:
    (bank,) = load_inventories(config.paths.hardware)
    sims = []
    for entry in bank.modems:
        assert entry.msisdn is not None
        sim_id = upsert_sim(db, entry.msisdn, bank=bank.name, slot=entry.slot, state="ready")
        sims.append(SimInfo(sim_id, entry.msisdn, bank.region, 10_000))
    delay = float(os.environ.get("DIALBOT_TEST_DELAY", "0.2"))
    return Runtime(
        dispatcher=LedgerDispatcher(db, bank, delay),
        cleanup=LedgerCleanup(db, [s.msisdn for s in sims]),
        fleet=BankFleet(sims),
        flow_billing={},
        flow_seconds={},
    )

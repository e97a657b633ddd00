"""A small period in a real database, written through the storage API (runs, evidence, findings)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import open_database, write_session
from dialbot.db.evidence import NewEvent, append_events
from dialbot.db.findings import NewFinding, record_findings
from dialbot.db.models import RunState, Service, Sp
from dialbot.db.runs import create_run, transition

TZ = ZoneInfo("Asia/Shanghai")
SIM = "13800138000"
HOSTILE = "<script>alert(1)</script>回复Y确认，资费10元/月\x1b[0m，客服13912345678"
PG_ADMIN = os.environ.get("DIALBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _catalogue(sessions: sessionmaker[Session]) -> dict[str, int]:
    with write_session(sessions) as s:
        ids = {}
        for sp_code, sp_name, svc_code, svc_name, access in (
            ("901001", "星河科技", "XHXH", "星河笑话", "1065800101"),
            ("901002", "云端信息", "YDTQ", "云端天气", "1065800102"),
        ):
            sp = Sp(code=sp_code, name=sp_name, hotline="4008001001")
            svc = Service(
                code=svc_code, name=svc_name, access_number=access, billing="monthly",
                price_fen=500, subscribe_cmd="DG", cancel_cmd="TD", version=1,
            )  # fmt: skip
            sp.services.append(svc)
            s.add(sp)
            s.flush()
            ids[sp_code] = svc.id
        return ids


def _run(
    sessions: sessionmaker[Session],
    service_id: int,
    at: datetime,
    end: RunState = RunState.DONE,
    findings: tuple[tuple[str, str, str], ...] = (),
) -> int:
    run = create_run(sessions, "order_cancel", service_id=service_id)
    transition(sessions, run.id, RunState.RUNNING, at=at)
    rows = append_events(
        sessions,
        [
            NewEvent("sms_out", SIM, run.id, at, "1065800102", "DG"),
            NewEvent("sms_in", SIM, run.id, at + timedelta(seconds=2), "1065800102", HOSTILE),
        ],
    )
    transition(sessions, run.id, RunState.JUDGING, at=at + timedelta(minutes=1))
    if findings:
        record_findings(
            sessions,
            run.id,
            [
                NewFinding(code, sev, sp, "YDTQ", 500, at, [r.id for r in rows], sim=SIM)
                for code, sev, sp in findings
            ],
        )
    transition(sessions, run.id, end, at=at + timedelta(minutes=2))
    return run.id


def populate(sessions: sessionmaker[Session]) -> None:
    """November 2026: 901001 has 4 judged probes (one at 23:30 on the 30th), an infra failure
    carrying a finding that must not count, a probe in December and one in October;
    901002 has 1 judged probe with an OVERCHARGE whose evidence is hostile."""
    svc = _catalogue(sessions)
    nov = datetime(2026, 11, 10, 9, 0, tzinfo=TZ)
    for day in range(3):
        _run(sessions, svc["901001"], nov + timedelta(days=day))
    _run(sessions, svc["901001"], datetime(2026, 11, 30, 23, 30, tzinfo=TZ))
    _run(sessions, svc["901001"], datetime(2026, 12, 1, 0, 10, tzinfo=TZ))
    _run(sessions, svc["901001"], datetime(2026, 10, 5, 9, 0, tzinfo=TZ),
         findings=(("PROMPT_INCOMPLETE", "minor", "901001"),))  # fmt: skip
    _run(sessions, svc["901001"], nov, RunState.INFRA_FAILED,
         findings=(("UNCONFIRMED_CHARGE", "critical", "901001"),))  # fmt: skip
    _run(sessions, svc["901002"], nov, findings=(("OVERCHARGE", "critical", "901002"),))


@contextmanager
def sqlite_database(folder: str) -> Iterator[str]:
    yield f"sqlite:///{folder}/dialbot.db"


@contextmanager
def postgres_database(name: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def open_populated(url: str) -> sessionmaker[Session]:
    sessions = open_database(url)
    populate(sessions)
    return sessions

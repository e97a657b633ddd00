"""What the probe stack writes must fit PostgreSQL's strict columns, not only SQLite's.

SQLite stores a string of any length in a VARCHAR(21); PostgreSQL refuses
it. Both cases here once worked on SQLite only: a message on a modem whose
SIM's number is unknown (the watch named its port as the SIM) was lost on
PostgreSQL, and a flow name longer than the runs table allows failed each
run instead of being refused when the flow was loaded.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from dialbot.carrier import CarrierProfile
from dialbot.db.engine import engine_of, open_database
from dialbot.db.evidence import events_for_run, verify_chain
from dialbot.db.models import Finding, Run
from dialbot.db.runs import create_run
from dialbot.errors import FlowError
from dialbot.flows.loader import FLOW_NAME_MAX, parse_flow
from dialbot.flows.watch import Watch
from dialbot.judge.model import ServiceInfo
from dialbot.modem import IncomingMessage

PORT = "/dev/serial/by-id/usb-HUAWEI_Technology_HUAWEI_Mobile-if00-port0"
SPAMMER = ServiceInfo("901", "星河", "XZ", "星河星座", "1065800102", "per_use", 100, "XZ")


def _url(flow_db: str | None, tmp_path: Path) -> str:
    return flow_db or f"sqlite:///{tmp_path / 'dialbot.db'}"


def test_watch_keeps_messages_of_a_modem_whose_number_is_unknown(
    tmp_path: Path, flow_db: str | None
) -> None:
    db = open_database(_url(flow_db, tmp_path))
    try:
        watch = Watch(db, CarrierProfile(), (SPAMMER,), grace_s=1.0)
        at = datetime.now(UTC)
        watch.put_from_port(IncomingMessage("1065800102", "星河星座：今日运势", at, at, PORT))
        (result,) = watch.judge_all()
        assert result.sim is None and result.messages == 1
        (event,) = events_for_run(db, result.run_id)
        assert event.kind == "sms_in" and event.sim is None and event.data["port"] == PORT
        assert [f.code for f in result.findings] == ["UNSOLICITED_MESSAGE"]
        with db() as session:
            assert session.get(Run, result.run_id).state == "done"  # type: ignore[union-attr]
            stored = session.scalars(select(Finding)).one()
            assert (stored.sp_code, stored.sim, stored.evidence) == ("901", None, [event.id])
        assert verify_chain(db).ok
    finally:
        engine_of(db).dispose()


def test_flow_names_fit_the_runs_table(tmp_path: Path, flow_db: str | None) -> None:
    def flow_text(name: str) -> str:
        return f"name: {name}\nsteps:\n  - observe: 1s\n"

    longest = "f" * FLOW_NAME_MAX
    flow = parse_flow(flow_text(longest), "probes/long.yaml")
    db = open_database(_url(flow_db, tmp_path))
    try:
        assert create_run(db, flow.name).flow == longest
    finally:
        engine_of(db).dispose()
    with pytest.raises(FlowError, match=f"at most {FLOW_NAME_MAX} characters") as caught:
        parse_flow(flow_text(longest + "f"), "probes/long.yaml")
    assert "probes/long.yaml" in str(caught.value) and "line 1" in str(caught.value)

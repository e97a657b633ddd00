"""Findings: stored only for runs being judged; exported per spec §5 with masked MSISDNs."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from dialbot.cli import cli
from dialbot.db.evidence import append_event
from dialbot.db.findings import FindingRefused, NewFinding, export_findings, record_findings
from dialbot.db.models import RunState
from dialbot.db.runs import create_run, transition
from dialbot.mask import mask_msisdn
from dialbot.reporting.period import parse_period

CST = timezone(timedelta(hours=8))
SIM = "13800000001"
SPEC_KEYS = {
    "run_id",
    "sp_code",
    "service_code",
    "code",
    "severity",
    "amount_fen",
    "observed_at",
    "sim",
    "evidence",
}


def judged_run(session_factory: sessionmaker[Session]) -> tuple[int, list[int]]:
    run = create_run(session_factory, "monthly")
    transition(session_factory, run.id, RunState.RUNNING)
    ids = [append_event(session_factory, "balance", sim=SIM, run_id=run.id).id for _ in range(3)]
    transition(session_factory, run.id, RunState.JUDGING)
    return run.id, ids


def finding(at: datetime, evidence: list[int], code: str = "OVERCHARGE") -> NewFinding:
    return NewFinding(
        code=code,
        severity="critical",
        sp_code="901001",
        service_code="XHXH",
        amount_fen=500,
        observed_at=at,
        evidence=evidence,
        sim=SIM,
    )


@pytest.fixture
def three_findings(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Findings at the edges of November 2026, Beijing time."""
    run_id, ids = judged_run(session_factory)
    record_findings(
        session_factory,
        run_id,
        [
            finding(datetime(2026, 10, 31, 23, 59, 59, tzinfo=CST), ids[:1]),
            finding(datetime(2026, 11, 1, 0, 30, tzinfo=CST), [ids[2], ids[0], ids[0]]),
            finding(datetime(2026, 11, 30, 23, 0, tzinfo=CST), ids, "PRICE_MISMATCH"),
        ],
    )
    return session_factory


def test_export_has_the_spec_shape(three_findings: sessionmaker[Session]) -> None:
    rows = export_findings(three_findings, parse_period("2026-11").bounds())
    assert [r["observed_at"] for r in rows] == [
        "2026-11-01T00:30:00+08:00",  # 16:30 UTC on 31 October: still November in Beijing
        "2026-11-30T23:00:00+08:00",
    ]
    first = rows[0]
    assert set(first) == SPEC_KEYS
    assert first["sim"] == "138****0001"
    assert first["evidence"] == [1, 3]  # sorted, without duplicates
    assert first["amount_fen"] == 500 and isinstance(first["amount_fen"], int)
    assert isinstance(first["run_id"], int)
    assert len(export_findings(three_findings, parse_period("2026-Q4").bounds())) == 3
    assert len(export_findings(three_findings)) == 3


def test_no_findings_for_a_run_that_is_not_being_judged(
    session_factory: sessionmaker[Session],
) -> None:
    run = create_run(session_factory, "monthly")
    transition(session_factory, run.id, RunState.RUNNING)
    event = append_event(session_factory, "modem_fault", sim=SIM, run_id=run.id)
    transition(session_factory, run.id, RunState.INFRA_FAILED, error="modem hung")
    at = datetime(2026, 11, 2, tzinfo=CST)
    with pytest.raises(FindingRefused, match="infra_failed"):
        record_findings(session_factory, run.id, [finding(at, [event.id])])
    assert export_findings(session_factory) == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"evidence": [999]}, "unknown evidence"),
        ({"evidence": []}, "cite evidence"),
        ({"amount_fen": 5.0}, "integer"),
        ({"amount_fen": -1}, "integer"),
        ({"severity": "bad"}, "severity"),
        ({"observed_at": datetime(2026, 11, 2)}, "aware"),
    ],
)
def test_bad_findings_are_refused(
    session_factory: sessionmaker[Session], change: dict[str, object], reason: str
) -> None:
    run_id, ids = judged_run(session_factory)
    good = finding(datetime(2026, 11, 2, tzinfo=CST), ids)
    bad = NewFinding(**{**good.__dict__, **change})  # type: ignore[arg-type]
    with pytest.raises(FindingRefused, match=reason):
        record_findings(session_factory, run_id, [good, bad])
    assert export_findings(session_factory) == []  # all or nothing


@pytest.mark.parametrize(
    ("msisdn", "masked"),
    [
        ("13800000001", "138****0001"),
        ("+8613800000001", "138****0001"),
        ("10086", "***86"),
        (None, ""),
    ],
)
def test_mask_msisdn(msisdn: str | None, masked: str) -> None:
    assert mask_msisdn(msisdn) == masked


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIALBOT_CONFIG", raising=False)
    return tmp_path


def test_findings_cli_json_and_csv(
    three_findings: sessionmaker[Session], db_url: str, no_config: Path
) -> None:
    env = {"DIALBOT_DATABASE_URL": db_url}
    runner = CliRunner()
    result = runner.invoke(cli, ["findings", "--period", "2026-11", "--format", "json"], env=env)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 2 and set(rows[0]) == SPEC_KEYS
    assert SIM not in result.stdout

    result = runner.invoke(cli, ["findings", "--period", "2026-11", "--format", "csv"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("\ufeff")
    table = list(csv.DictReader(io.StringIO(result.stdout.removeprefix("\ufeff"))))
    assert [r["code"] for r in table] == ["OVERCHARGE", "PRICE_MISMATCH"]
    assert table[0]["sim"] == "138****0001" and table[0]["evidence"] == "1 3"
    assert SIM not in result.stdout

    result = runner.invoke(cli, ["findings", "--format", "table"], env=env)
    assert result.exit_code == 0 and "PRICE_MISMATCH" in result.stdout
    assert SIM not in result.stdout


def test_findings_cli_refuses_a_bad_period(db_url: str, no_config: Path) -> None:
    result = CliRunner().invoke(
        cli, ["findings", "--period", "2026-13"], env={"DIALBOT_DATABASE_URL": db_url}
    )
    assert result.exit_code == 2 and "month must be 01..12" in result.output

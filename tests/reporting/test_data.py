"""From the database to the publication, on SQLite and PostgreSQL, through the CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dialbot.cli import cli
from dialbot.reporting.data import load_report, load_tallies
from dialbot.reporting.period import parse_period
from dialbot.reporting.render import default_generated_at

from .dbsample import open_populated, postgres_database, sqlite_database
from .sample import all_text_files, unmasked_numbers


def _postgres_up() -> bool:
    try:
        import psycopg

        from .dbsample import PG_ADMIN

        psycopg.connect(PG_ADMIN, connect_timeout=2).close()
        return True
    except Exception:
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        with sqlite_database(str(tmp_path)) as url:
            yield url
        return
    if not _postgres_up():
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432 (set DIALBOT_TEST_PG)")
    with postgres_database(f"dialbot_reporting_{os.getpid()}") as url:
        yield url


def test_tallies_count_judged_probes_in_local_period(db_url: str) -> None:
    sessions = open_populated(db_url)
    with sessions() as session:
        nov = {t.sp_code: t for t in load_tallies(session, parse_period("2026-11"))}
        oct_ = {t.sp_code: t for t in load_tallies(session, parse_period("2026-10"))}
    star = nov["901001"]
    assert (star.sp_name, star.probes, star.services_tested) == ("星河科技", 4, 1)
    assert star.findings == ()  # the infra-failed run's finding does not count
    cloud = nov["901002"]
    assert cloud.probes == 1 and [(f.code, f.count) for f in cloud.findings] == [("OVERCHARGE", 1)]
    assert oct_["901001"].probes == 1 and oct_["901001"].by_severity()["minor"] == 1


def test_report_data_has_history_details_and_masked_evidence(db_url: str) -> None:
    sessions = open_populated(db_url)
    with sessions() as session:
        data = load_report(session, parse_period("2026-11"), default_generated_at())
    assert [p.label for p, _ in data.history][-2:] == ["2026-10", "2026-11"]
    assert data.history[-2][1].get("901001") is not None
    detail = data.details["901002"]
    assert [s.service_code for s in detail.services] == ["YDTQ"]
    (finding,) = detail.findings
    assert finding.code == "OVERCHARGE" and finding.sim == "138****8000"
    assert [e.kind for e in finding.evidence] == ["sms_out", "sms_in"]
    assert finding.evidence[1].text.startswith("<script>")  # verbatim in the data ...
    assert finding.evidence[1].sim == "138****8000"


def test_cli_rank_and_report(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    open_populated(db_url).kw["bind"].dispose()
    monkeypatch.delenv("DIALBOT_DATABASE_URL", raising=False)
    config = tmp_path / "dialbot.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n[paths]\nreports = "reports"\n', encoding="utf-8"
    )
    runner = CliRunner()
    ranked = runner.invoke(cli, ["--config", str(config), "rank", "--period", "2026-11"])
    assert ranked.exit_code == 0, ranked.output
    assert "星河科技" in ranked.output and "云端信息" in ranked.output
    out = runner.invoke(
        cli, ["--config", str(config), "report", "--period", "2026-11", "--format", "html,csv,json"]
    )
    assert out.exit_code == 0, out.output
    folder = tmp_path / "reports" / "out" / "2026-11"
    doc = json.loads((folder / "rankings-2026-11.json").read_text(encoding="utf-8"))
    assert {e["sp_code"]: e["probes"] for e in doc["entries"]} == {"901001": 4, "901002": 1}
    files = all_text_files(folder)
    for path, text in files.items():
        assert unmasked_numbers(text) == [], path
        assert "<script" not in text.lower(), path
    page = (folder / "sp" / "901002.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # ... and escaped on the page
    bad = runner.invoke(cli, ["--config", str(config), "rank", "--period", "2026-13"])
    assert bad.exit_code == 2 and "month must be 01..12" in bad.output


def test_findings_of_a_cut_run_count_but_it_is_no_probe(db_url: str) -> None:
    """A run a dead process left, judged on what it saw: its finding counts against the SP,
    the run itself is not a probe (aborted runs never are)."""
    from datetime import datetime

    from dialbot.db.evidence import append_event
    from dialbot.db.findings import NewFinding, record_cut_findings
    from dialbot.db.models import RunState
    from dialbot.db.runs import create_run, transition

    from .dbsample import SIM, TZ

    sessions = open_populated(db_url)
    at = datetime(2026, 11, 12, 9, 0, tzinfo=TZ)
    run = create_run(sessions, "watch")
    transition(sessions, run.id, RunState.RUNNING, at=at)
    spam = append_event(sessions, "sms_in", sim=SIM, run_id=run.id, at=at, peer="1065800102",
                        text="广告")  # fmt: skip
    transition(sessions, run.id, RunState.ABORTED, error="the process ended before the run")
    finding = NewFinding("UNSOLICITED_MESSAGE", "major", "901002", "YDTQ", 0, at, [spam.id])
    assert record_cut_findings(sessions, run.id, [finding])
    assert record_cut_findings(sessions, run.id, [finding]) is None  # judged once
    with sessions() as session:
        cloud = {t.sp_code: t for t in load_tallies(session, parse_period("2026-11"))}["901002"]
        data = load_report(session, parse_period("2026-11"), default_generated_at())
    assert cloud.probes == 1
    assert sorted((f.code, f.count) for f in cloud.findings) == [
        ("OVERCHARGE", 1),
        ("UNSOLICITED_MESSAGE", 1),
    ]
    assert sorted(f.code for f in data.details["901002"].findings) == [
        "OVERCHARGE",
        "UNSOLICITED_MESSAGE",
    ]


def test_every_format_states_the_evidence_chain_head(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTML, PDF, CSV and JSON state the head of the period; the anchor published beside them
    is what `dialbot evidence verify --anchor` checks later."""
    from dialbot.db.anchor import head_until
    from dialbot.reporting.render import make_environment, pdf_html

    sessions = open_populated(db_url)
    period = parse_period("2026-11")
    with sessions() as session:
        head = head_until(session, period.bounds()[1])
        data = load_report(session, period, default_generated_at())
    sessions.kw["bind"].dispose()
    assert head.events > 0 and data.evidence_head == head
    monkeypatch.delenv("DIALBOT_DATABASE_URL", raising=False)
    config = tmp_path / "dialbot.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n[paths]\nreports = "reports"\n', encoding="utf-8"
    )
    runner = CliRunner()
    out = runner.invoke(
        cli, ["--config", str(config), "report", "--period", "2026-11", "--format", "html,csv,json"]
    )
    assert out.exit_code == 0, out.output
    folder = tmp_path / "reports" / "out" / "2026-11"
    assert head.hash in (folder / "index.html").read_text(encoding="utf-8")
    doc = json.loads((folder / "rankings-2026-11.json").read_text(encoding="utf-8"))
    assert doc["evidence_chain"] == {
        "hash": head.hash,
        "events": head.events,
        "last_id": head.last_id,
    }
    csv_text = (folder / "rankings-2026-11.csv").read_text(encoding="utf-8")
    assert f"{head.hash},{head.events}" in csv_text
    assert head.hash in pdf_html(data, make_environment())
    anchor = folder / "evidence-anchor-2026-11.json"
    assert json.loads(anchor.read_text(encoding="utf-8"))["hash"] == head.hash
    checked = runner.invoke(
        cli, ["--config", str(config), "evidence", "verify", "--anchor", str(anchor)]
    )
    assert checked.exit_code == 0, checked.output
    assert "holds" in checked.output

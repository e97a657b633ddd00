"""`dialbot evidence verify`: exit 0 when the chain is intact, 1 naming the first broken event."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from test_evidence import drop_append_only_guard

from dialbot.cli import cli
from dialbot.db.evidence import append_event


def test_verify_exit_codes(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIALBOT_CONFIG", raising=False)
    for i in range(4):
        append_event(session_factory, "sms_in", sim="13800000001", text=f"msg {i}")
    runner = CliRunner()
    env = {"DIALBOT_DATABASE_URL": db_url}

    ok = runner.invoke(cli, ["evidence", "verify"], env=env)
    assert ok.exit_code == 0, ok.output
    assert "4 events" in ok.stdout

    drop_append_only_guard(session_factory)
    with session_factory.begin() as session:
        session.execute(text("UPDATE evidence_events SET text = 'forged' WHERE id = 2"))
    broken = runner.invoke(cli, ["evidence", "verify"], env=env)
    assert broken.exit_code == 1
    assert "event 2" in broken.stderr and "altered" in broken.stderr

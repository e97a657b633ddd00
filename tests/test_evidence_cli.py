"""`dialbot evidence verify`: exit 0 when the chain is intact, 1 naming the first broken event."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from test_evidence import drop_append_only_guard

from dialbot.cli import cli
from dialbot.db.evidence import append_event, event_hash, events_by_id
from dialbot.db.models import GENESIS_HASH


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


def rewrite_and_rehash_tail(session_factory: sessionmaker[Session], first: int, text_: str) -> None:
    """What a forger with full database rights does: alter an event, then re-hash every event
    after it and the head, so the chain is consistent with itself again."""
    drop_append_only_guard(session_factory)
    events = events_by_id(session_factory, range(1, 10_000))
    prev = next(e.hash for e in events if e.id == first - 1) if first > 1 else GENESIS_HASH
    with session_factory.begin() as session:
        for event in (e for e in events if e.id >= first):
            changed = dataclasses.replace(event, prev_hash=prev)
            if event.id == first:
                changed = dataclasses.replace(changed, text=text_)
            digest = event_hash(changed.id, prev, changed)
            session.execute(
                text(
                    "UPDATE evidence_events SET text = :t, prev_hash = :p, hash = :h WHERE id = :i"
                ),
                {"t": changed.text, "p": prev, "h": digest, "i": event.id},
            )
            prev = digest
        session.execute(text("UPDATE evidence_head SET last_hash = :h WHERE id = 1"), {"h": prev})


def test_an_anchor_catches_a_rewritten_and_rehashed_chain(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIALBOT_CONFIG", raising=False)
    for i in range(5):
        append_event(session_factory, "sms_in", sim="13800000001", text=f"msg {i}")
    runner = CliRunner()
    env = {"DIALBOT_DATABASE_URL": db_url}
    anchor = tmp_path / "anchor.json"
    made = runner.invoke(cli, ["evidence", "anchor", "-o", str(anchor)], env=env)
    assert made.exit_code == 0, made.output
    doc = json.loads(anchor.read_text(encoding="utf-8"))
    assert (doc["events"], doc["last_id"]) == (5, 5) and len(doc["hash"]) == 64
    held = runner.invoke(cli, ["evidence", "verify", "--anchor", str(anchor)], env=env)
    assert held.exit_code == 0, held.output
    append_event(session_factory, "sms_in", sim="13800000001", text="after the anchor")
    assert (
        runner.invoke(cli, ["evidence", "verify", "--anchor", str(anchor)], env=env).exit_code == 0
    )

    rewrite_and_rehash_tail(session_factory, 4, "您已成功退订")
    alone = runner.invoke(cli, ["evidence", "verify"], env=env)
    assert alone.exit_code == 0, alone.output  # the chain agrees with itself again
    caught = runner.invoke(cli, ["evidence", "verify", "--anchor", str(anchor)], env=env)
    assert caught.exit_code == 1
    assert "does NOT hold" in caught.stderr and "event 5" in caught.stderr
    assert "rewritten after the anchor was taken" in caught.stderr


def test_anchor_of_a_period_and_a_bad_anchor_file(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIALBOT_CONFIG", raising=False)
    november = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    for i in range(3):
        append_event(session_factory, "note", at=november, text=f"nov {i}")
    append_event(session_factory, "note", at=datetime(2026, 12, 2, tzinfo=UTC), text="dec")
    runner = CliRunner()
    env = {"DIALBOT_DATABASE_URL": db_url}
    out = runner.invoke(cli, ["evidence", "anchor", "--period", "2026-11"], env=env)
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert (doc["period"], doc["events"], doc["last_id"]) == ("2026-11", 3, 3)
    assert doc["hash"] == events_by_id(session_factory, [3])[0].hash
    junk = tmp_path / "junk.json"
    junk.write_text("{}", encoding="utf-8")
    bad = runner.invoke(cli, ["evidence", "verify", "--anchor", str(junk)], env=env)
    assert bad.exit_code == 2 and "not an evidence anchor" in bad.stderr

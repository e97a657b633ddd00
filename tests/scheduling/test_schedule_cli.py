"""`dialbot schedule list|next|run` say what coverage a night reaches (issue 14).

The preview comes from the database (services, probes so far, the SIMs it
records as ready) and the flows: on an idle fleet with daily coverage every
applicable flow of every service is planned.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from test_daemon import populate

from dialbot.cli import cli
from dialbot.db.engine import engine_of, open_database

SCHEDULE = """
name = "night"
cron = "0 1 * * *"
window_end = "05:30"
flows = ["decline", "monthly"]
coverage = "day"
per_sp_concurrency = 2
"""
EXPECTED = "covers 24/24 due (service, flow) pairs; period coverage 100% (24/24)"


def test_list_and_next_preview_every_flow_of_every_service(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "night.toml").write_text(SCHEDULE, encoding="utf-8")
    config = tmp_path / "dialbot.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    db = open_database(db_url)
    populate(db, sps=4, per_sp=3, sims=6)  # 12 monthly services: decline and monthly each
    engine_of(db).dispose()
    runner = CliRunner()
    listed = runner.invoke(cli, ["--config", str(config), "schedule", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)
    assert row["tonight"] == f"{EXPECTED} (24 probes on 6 SIMs)"
    following = runner.invoke(cli, ["--config", str(config), "schedule", "next"])
    assert following.exit_code == 0, following.output
    assert EXPECTED in following.output


def test_list_without_a_database_still_lists(tmp_path: Path) -> None:
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "night.toml").write_text(SCHEDULE, encoding="utf-8")
    config = tmp_path / "dialbot.toml"
    config.write_text('[database]\nurl = "postgresql://nobody@127.0.0.1:1/none"\n', "utf-8")
    listed = CliRunner().invoke(cli, ["--config", str(config), "schedule", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)[0]["tonight"] is None

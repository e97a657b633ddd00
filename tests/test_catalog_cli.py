"""`dialbot catalog import|list` end to end through the CLI, on both databases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_catalog import GOOD, HEADER

from dialbot.cli import cli


@pytest.fixture
def run(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIALBOT_CONFIG", raising=False)
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, list(args), env={"DIALBOT_DATABASE_URL": db_url})


def test_import_then_list(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "catalog.csv"
    with_remark = "\n".join(line + ",remark" for line in GOOD.strip().splitlines())
    path.write_text(with_remark + "\n", encoding="utf-8")
    result = run("catalog", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "3 created" in result.stdout
    assert "remark" in result.stderr and "unknown column" in result.stderr

    listed = run("catalog", "list", "--format", "json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [(r["sp_code"], r["service_code"], r["price_fen"]) for r in rows] == [
        ("901001", "XHTQ", 10),
        ("901001", "XHXH", 500),
        ("901002", "YDZX", 300),
    ]
    table = run("catalog", "list")
    assert table.exit_code == 0 and "星河笑话" in table.stdout and "5.00" in table.stdout


def test_bad_file_exits_1_and_imports_nothing(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.csv"
    path.write_text(
        f'{HEADER}\n901001,星河科技,,XHXH,笑话,1065800101,monthly,5,"DG\x1a",TD,,\n',
        encoding="utf-8",
    )
    result = run("catalog", "import", str(path))
    assert result.exit_code == 1
    assert "line 2, column subscribe_cmd" in result.stderr and "Ctrl-Z" in result.stderr
    assert "nothing imported" in result.stderr
    assert json.loads(run("catalog", "list", "--format", "json").stdout) == []


def test_missing_file_is_a_usage_error(run) -> None:  # type: ignore[no-untyped-def]
    assert run("catalog", "import", "nope.csv").exit_code == 2


def test_unreachable_database_exits_3_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIALBOT_CONFIG", raising=False)
    url = "postgresql://nobody:secret@127.0.0.1:1/none"
    result = CliRunner().invoke(cli, ["catalog", "list"], env={"DIALBOT_DATABASE_URL": url})
    assert result.exit_code == 3
    assert "Error: database" in result.stderr and "secret" not in result.stderr

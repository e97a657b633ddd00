"""`dialbot demo --world W`: serve, import, sweep, print findings, publish rankings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from flowrig import generate, write_world

from dialbot.cli import cli


def test_demo_sweeps_and_publishes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the demo's fake data must never go where the environment points (production?)
    monkeypatch.setenv("DIALBOT_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/production")
    data, expected = generate(seed=41, knobs=["double"], honest=2, modems=3)
    world = write_world(tmp_path, data)
    workdir = tmp_path / "demo"
    result = CliRunner().invoke(
        cli, ["demo", "--world", str(world), "--workdir", str(workdir), "--time-scale", "0.02"]
    )
    assert result.exit_code == 0, result.output
    assert "evidence chain: intact" in result.output
    assert (workdir / "dialbot.db").is_file()
    bad = [key for key, codes in expected.items() if codes]
    assert len(bad) == 1 and bad[0][1] in result.output
    out = workdir / "reports" / "out"
    (period,) = list(out.iterdir())
    published = json.loads((period / f"rankings-{period.name}.json").read_text("utf-8"))
    assert published["period"] == period.name and published["methodology"] == "v1"
    assert (period / "index.html").is_file() and (period / f"report-{period.name}.pdf").is_file()
    for msisdn in (c["msisdn"] for c in _cards(workdir)):
        for path in period.rglob("*.html"):
            assert msisdn not in path.read_text("utf-8")


def _cards(workdir: Path) -> list[dict[str, str]]:
    truth = json.loads((workdir / "bank" / "ground-truth.json").read_text("utf-8"))
    return [{"msisdn": m} for m in truth["sims"]]

"""`dialbot sim serve` as a process: ports, inventory, ground truth on SIGTERM; bad worlds refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

from click.testing import CliRunner

from dialbot.cli import cli
from dialbot.sim.worldfile import demo_world_path


def test_serve_until_sigterm_then_ground_truth(tmp_path: Path) -> None:
    bank_file = tmp_path / "hw" / "bank.toml"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dialbot",
            "sim",
            "serve",
            str(demo_world_path()),
            "--dir",
            str(tmp_path / "run"),
            "--bank-file",
            str(bank_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(9)]
    assert sum(line.startswith("slot ") for line in lines) == 8
    inventory = tomllib.loads(bank_file.read_text())
    assert inventory["bank"]["driver"] == "sim" and len(inventory["modem"]) == 8
    assert all(Path(m["port"]).is_symlink() for m in inventory["modem"])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    truth = json.loads((tmp_path / "run" / "ground-truth.json").read_text())
    assert len(truth["sims"]) == 8


def test_bad_world_is_refused_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(demo_world_path().read_text().replace("modems: 8", "modems: many", 1))
    result = CliRunner().invoke(cli, ["sim", "serve", str(bad), "--dir", str(tmp_path / "run")])
    assert result.exit_code != 0 and "bad.yaml" in result.output
    assert not (tmp_path / "run").exists()


def test_catalog_csv(tmp_path: Path) -> None:
    out = tmp_path / "catalog.csv"
    result = CliRunner().invoke(cli, ["sim", "catalog", str(demo_world_path()), "-o", str(out)])
    assert result.exit_code == 0, result.output
    header = out.read_text(encoding="utf-8").splitlines()[0]
    assert "sp_code" in header and "behaviour" not in header

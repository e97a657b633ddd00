"""`dialbot probe` on an ivr line: the ivr flow only, the call in the transcript, exit status."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from flowrig import serve
from ivrworld import ivr_world

from dialbot.cli import cli
from dialbot.db.obligations import sims_with_pending


def test_probe_an_ivr_line(tmp_path: Path) -> None:
    world = ivr_world("wavecom")
    world["bank"]["modems"] = 1
    world["sps"][0]["services"] = [world["sps"][0]["services"][2]]  # EXTRA: overbilled
    with serve(tmp_path, world) as rig:
        config = str(rig.config.source)
        runner = CliRunner()
        result = runner.invoke(cli, ["--config", config, "probe", "901020"])
        assert result.exit_code == 1, result.output
        assert "☎ 125900002" in result.output and "CALL_OVERBILLED" in result.output
        assert "decline" not in result.output
        wrong = runner.invoke(cli, ["--config", config, "probe", "901020", "--flow", "monthly"])
        assert wrong.exit_code == 2 and "services" in wrong.output
        assert sims_with_pending(rig.db) == []

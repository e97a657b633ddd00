"""`dialbot probe`: live transcript, findings, and the exit status a script relies on."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from flowrig import generate, serve
from sqlalchemy import select

from dialbot.cli import cli
from dialbot.db.evidence import verify_chain
from dialbot.db.models import Finding
from dialbot.db.obligations import sims_with_pending


def test_probe_exit_status_and_transcript(tmp_path: Path, flow_db: str | None) -> None:
    data, expected = generate(seed=41, knobs=["overcharge"], honest=1, modems=2)
    with serve(tmp_path, data, db_url=flow_db) as rig:
        config = str(rig.config.source)
        honest = next(k for k, v in expected.items() if not v)
        crook = next(k for k, v in expected.items() if v)
        runner = CliRunner()

        clean = runner.invoke(cli, ["--config", config, "probe", honest[0], "--modem", "t41:2"])
        assert clean.exit_code == 0, clean.output
        assert "→" in clean.output and "←" in clean.output and "balance" in clean.output

        caught = runner.invoke(cli, ["--config", config, "probe", crook[0], crook[1]])
        assert caught.exit_code == 1, caught.output
        assert "OVERCHARGE" in caught.output
        with rig.db() as session:
            assert set(session.scalars(select(Finding.code))) == {"OVERCHARGE"}

        only = runner.invoke(cli, ["--config", config, "probe", crook[0], "--flow", "decline"])
        assert only.exit_code == 0, only.output  # declining reveals nothing against it

        assert runner.invoke(cli, ["--config", config, "probe", "999999"]).exit_code == 2
        assert runner.invoke(cli, ["--config", config, "probe", crook[0], "NOPE"]).exit_code == 2
        bad_flow = runner.invoke(cli, ["--config", config, "probe", crook[0], "--flow", "x"])
        assert bad_flow.exit_code == 2
        no_modem = runner.invoke(cli, ["--config", config, "probe", crook[0], "--modem", "t41:9"])
        assert no_modem.exit_code == 3
        assert (
            runner.invoke(cli, ["--config", config, "probe", crook[0], "--modem", "x"]).exit_code
            == 2
        )

        assert sims_with_pending(rig.db) == []
        assert rig.subscribed() == {}
        assert verify_chain(rig.db).ok

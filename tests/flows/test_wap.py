"""WAP services through the whole robot (sweep, fleet, driver, judge) against a virtual bank.

Each WAP behaviour of spec/channels.md §6 gives exactly its findings, honest
WAP services none, and no SIM stays subscribed; the SIMCom and the Quectel
command families both browse; modems that cannot browse never get a WAP
probe; a module error or a dropped bearer is an infrastructure failure.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flowrig import serve

from dialbot.reporting.period import period_of
from dialbot.reporting.publish import publish_period

# service code -> (behaviour, billing, findings it must produce)
WAP: dict[str, tuple[dict[str, Any], str, set[str]]] = {
    "W0": ({}, "monthly", set()),
    "W1": ({}, "per_use", set()),
    "W2": ({"subscribe_on_visit": True}, "monthly", {"UNCONFIRMED_CHARGE", "UNCONFIRMED_SUBSCRIPTION"}),
    "W3": ({"auto_redirect_to_order": True}, "monthly", {"FORCED_REDIRECT"}),
    "W4": ({"misleading_link": "进入"}, "monthly", {"MISLEADING_LINK"}),
    "W5": ({"skips_carrier_confirm": True}, "monthly", {"UNCONFIRMED_CHARGE", "UNCONFIRMED_SUBSCRIPTION"}),
    "W6": ({"page_omits_price": True}, "monthly", {"PROMPT_INCOMPLETE"}),
}  # fmt: skip


def wap_world(slots: dict[int, dict[str, Any]], data_fee: int = 1) -> dict[str, Any]:
    services = []
    for index, (code, (behaviour, billing, _)) in enumerate(WAP.items()):
        services.append(
            {
                "code": code,
                "name": f"掌上业务{index}号",
                "channel": "wap",
                "url": f"http://wap.sp{index}.example/s{index}",
                "billing": billing,
                "price_fen": 300 + 100 * index,
                "subscribe": "订购",
                "use": "查看内容",
                "behaviour": {"latency_ms": [5, 20], **behaviour},
            }
        )
    return {
        "seed": 10,
        "order_notices": True,
        "carrier": {"data_fee_fen_per_kb": data_fee},
        "bank": {"name": "wap1", "modems": len(slots), "balance_fen": 100000, "slots": slots},
        "sps": [
            {"code": "902001", "name": "掌上乐园", "hotline": "4008009000", "services": services}
        ],
    }


def test_every_wap_behaviour_gives_exactly_its_findings(tmp_path: Path) -> None:
    slots = {1: {"dialect": "simcom"}, 2: {"dialect": "quectel"}, 3: {"dialect": "huawei"}}
    with serve(tmp_path, wap_world(slots)) as rig:
        report = rig.sweep()
        found: dict[str, set[str]] = {code: set() for code in WAP}
        for finding in report.findings:
            found.setdefault(finding.service_code, set()).add(finding.code)
        details = [(f.code, f.service_code, f.detail) for f in report.findings]
        assert found == {code: codes for code, (_, _, codes) in WAP.items()}, details
        assert not report.not_probed, report.not_probed
        modems = {o.modem for o in report.outcomes if o.flow == "wap"}
        assert modems <= {"wap1:1", "wap1:2"} and len(modems) == 2  # both families, no Huawei
        assert rig.subscribed() == {}
        traffic = [
            e
            for s in rig.truth()["sims"].values()
            for e in s["ledger"]
            if e["reason"] == "data_traffic"
        ]
        assert traffic  # the carrier did bill traffic, and no finding counted it
        publish_period(rig.db, period_of(datetime.now(UTC)), tmp_path / "reports")
        (page,) = (tmp_path / "reports").rglob("sp/902001.html")
        html = page.read_text(encoding="utf-8")
        assert "&lt;a href=" in html and '<a href="http://wap.sp' not in html  # SP pages escaped
        assert "强制跳转订购" in html and "诱导订购链接" in html


def test_module_errors_and_dropped_bearers_are_infrastructure_failures(tmp_path: Path) -> None:
    slots = {
        1: {"dialect": "simcom", "faults": {"http_error": 601}},
        2: {"dialect": "quectel", "faults": {"bearer_drop_after": 2}},
    }
    data = wap_world(slots)
    data["sps"][0]["services"] = data["sps"][0]["services"][:1]
    with serve(tmp_path, data) as rig:
        report = rig.sweep()
        assert report.findings == []
        assert report.outcomes == [] and report.not_probed
        assert rig.subscribed() == {}


def test_probe_cli_browses_a_wap_service(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from dialbot.cli import cli

    data = wap_world({1: {"dialect": "huawei"}, 2: {"dialect": "simcom"}})
    with serve(tmp_path, data) as rig:
        config = str(rig.config.source)
        runner = CliRunner()
        caught = runner.invoke(cli, ["--config", config, "probe", "902001", "W3"])
        assert caught.exit_code == 1, caught.output
        assert "FORCED_REDIRECT" in caught.output and "⇄ 302" in caught.output
        clean = runner.invoke(cli, ["--config", config, "probe", "902001", "W0"])
        assert clean.exit_code == 0, clean.output
        assert rig.subscribed() == {}


def test_a_list_taken_before_browsing_is_not_trusted_by_the_cleanup(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from dialbot.cli import cli

    with serve(tmp_path, wap_world({1: {"dialect": "quectel"}})) as rig:
        probes = rig.config.paths.probes
        probes.mkdir(parents=True, exist_ok=True)
        (probes / "wap_short.yaml").write_text(
            "name: wap_short\nkind: wap\nsteps:\n  - subscriptions: {}\n  - open: {}\n"
            "  - order: {confirm: true}\n",
            encoding="utf-8",
        )
        result = CliRunner().invoke(
            cli,
            ["--config", str(rig.config.source), "probe", "902001", "W0", "--flow", "wap_short"],
        )
        assert result.exit_code == 0, result.output
        assert rig.subscribed() == {}  # ordered after the list: the cleanup asked again

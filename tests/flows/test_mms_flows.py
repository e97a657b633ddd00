"""MMS services through the whole robot (sweep, fleet, driver, MMSC, judge) against a virtual
bank.

Each MMS behaviour of spec/channels.md §6, and the SMS behaviours that apply
to an MMS service, give exactly their findings; honest MMS services none; no
SIM stays subscribed; content is fetched on both HTTP command families and
recorded as `mms` evidence; the carrier's traffic fee for the fetches is
never an SP charge; a fetch that fails because the module or the bearer
failed is an infrastructure failure, not a finding.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from flowrig import serve
from mmsworld import MMS, mms_world
from sqlalchemy import select

from dialbot.db.models import EvidenceEvent


def test_every_mms_behaviour_gives_exactly_its_findings(tmp_path: Path) -> None:
    slots = {1: {"dialect": "simcom"}, 2: {"dialect": "quectel"}, 3: {"dialect": "huawei"}}
    with serve(tmp_path, mms_world(slots)) as rig:
        report = rig.sweep()
        found: dict[str, set[str]] = {code: set() for code in MMS}
        for finding in report.findings:
            found.setdefault(finding.service_code, set()).add(finding.code)
        details = [(f.code, f.service_code, f.detail) for f in report.findings]
        assert found == {code: codes for code, (_, _, codes) in MMS.items()}, details
        assert not report.not_probed, report.not_probed
        modems = {o.modem for o in report.outcomes if o.flow.startswith("mms")}
        assert modems <= {"mms1:1", "mms1:2"}  # the Huawei cannot browse: no MMS probe there
        assert rig.subscribed() == {}
        with rig.db() as session:
            events = session.scalars(select(EvidenceEvent).where(EvidenceEvent.kind == "mms"))
            fetched = [e for e in events if (e.data or {}).get("delivered")]
        assert fetched
        for event in fetched:
            body = bytes.fromhex(event.data["body_hex"])
            assert event.data["sha256"] == hashlib.sha256(body).hexdigest()
            assert event.data["notification"]["content_location"].startswith("http://mmsc.")
            assert "期" in (event.text or "")
        truth = rig.truth()["sims"].values()
        assert any(e["reason"] == "data_traffic" for s in truth for e in s["ledger"])


def test_a_dropped_bearer_or_module_error_is_an_infrastructure_failure(tmp_path: Path) -> None:
    slots = {
        1: {"dialect": "simcom", "faults": {"http_error": 601}},
        2: {"dialect": "quectel", "faults": {"bearer_drop_after": 0}},
    }
    data = mms_world(slots)
    data["sps"][0]["services"] = data["sps"][0]["services"][:1]
    with serve(tmp_path, data) as rig:
        report = rig.sweep()
        assert report.findings == []
        assert [o.flow for o in report.outcomes] == ["decline"]
        assert [n.flow for n in report.not_probed] == ["mms"], report.not_probed
        assert rig.subscribed() == {}

"""The MMSC behind the WAP gateway: notifications after an order and on use, content by GET
of the Content-Location through the proxy, mms_empty and mms_after_cancel."""

from __future__ import annotations

from pathlib import Path

from dialbot.modem.mms import decode_mms_push, decode_retrieve
from dialbot.sim.contracts import HttpRequest, HttpResult

from .support import Rig, one_service_world, rig

PROXY = "10.0.0.172:80"


def mms_rig(tmp_path: Path, behaviour: dict | None = None) -> Rig:
    world = one_service_world(behaviour)
    world["sps"][0]["services"][0]["channel"] = "mms"
    world["carrier"] = {"confirm_reply": "Y"}
    return rig(tmp_path, world)


def order(r: Rig) -> None:
    r.send("DG")
    prompt = r.phones[0].texts()[-1]
    assert "回复" in prompt
    r.send("Y", wait=3.0)


def fetch(r: Rig, url: str, slot: int = 1) -> HttpResult:
    request = HttpRequest("cmwap", PROXY, "GET", url, (("User-Agent", "test"),))
    return r.network.http(r.phones[slot - 1].msisdn, request)


def test_order_and_use_push_notifications_whose_content_is_fetched(tmp_path: Path) -> None:
    r = mms_rig(tmp_path)
    order(r)
    (first,) = r.phones[0].raw_pushes
    sender, payload = first
    assert sender == "1065800101"
    notification = decode_mms_push(payload)
    assert notification.content_location.startswith("http://mmsc.monternet.com/mms/")
    assert notification.expiry_s and notification.sender == "1065800101/TYPE=PLMN"
    result = fetch(r, notification.content_location)
    assert result.status == 200 and len(result.body) == notification.size
    content = decode_retrieve(result.body)
    assert content.payload_size > 0 and "第1期" in content.parts[0].data.decode()
    assert fetch(r, notification.content_location, slot=2).status == 404  # not that SIM's
    r.send("XH", wait=3.0)
    assert len(r.phones[0].raw_pushes) == 2
    assert [m["kind"] for m in r.truth()["messages"]].count("mms") == 2
    assert any(e["reason"] == "subscribe" for e in r.ledger())


def test_a_fetch_outside_the_wap_apn_fails(tmp_path: Path) -> None:
    r = mms_rig(tmp_path)
    order(r)
    url = decode_mms_push(r.phones[0].raw_pushes[0][1]).content_location
    request = HttpRequest("cmnet", PROXY, "GET", url)
    assert r.network.http(r.phones[0].msisdn, request).error == "dns"


def test_mms_empty_notifications_fetch_nothing(tmp_path: Path) -> None:
    r = mms_rig(tmp_path, {"mms_empty": True})
    order(r)
    r.send("XH", wait=3.0)
    first, second = (decode_mms_push(p) for _, p in r.phones[0].raw_pushes)
    empty = fetch(r, first.content_location)
    assert empty.status == 200 and decode_retrieve(empty.body).payload_size == 0
    assert first.size > len(empty.body)  # the notification announces what never comes
    assert fetch(r, second.content_location).status == 404


def test_mms_after_cancel_keeps_notifying(tmp_path: Path) -> None:
    r = mms_rig(tmp_path, {"mms_after_cancel": 2})
    order(r)
    before = len(r.phones[0].raw_pushes)
    r.send("TD", wait=5.0)
    assert "退订" in r.phones[0].texts()[-1]
    assert len(r.phones[0].raw_pushes) == before + 2
    assert r.truth()["subscriptions"] == []


def test_honest_service_stops_after_cancel(tmp_path: Path) -> None:
    r = mms_rig(tmp_path)
    order(r)
    before = len(r.phones[0].raw_pushes)
    r.send("TD", wait=5.0)
    assert len(r.phones[0].raw_pushes) == before

"""The SMSC holds what a SIM off the network cannot receive, then delivers it or lets it expire.

On the network alone (virtual time, fake handsets): SMS, WAP PUSH and MMS
notifications for a detached SIM wait, keep their order and their SCTS, and
reach the handset when it attaches again - unless their validity ran out.
"""

from __future__ import annotations

from pathlib import Path

from dialbot.modem.mms import decode_mms_push

from .support import FakeHandset, Rig, one_service_world, rig

SP = "1065800101"


def push_world(**world_keys: object) -> dict:
    """One SP service with a WAP entry page and two unsolicited pushes per night."""
    world = one_service_world({"wap_push_per_night": 2}, night_s=100.0, **world_keys)
    world["sps"][0]["services"][0].update(channel="wap", url="http://wap.xh.example/xh")
    return world


def come_back(r: Rig, slot: int = 2) -> FakeHandset:
    phone = FakeHandset(r.phones[slot - 1].msisdn)
    r.network.attach(phone)
    return phone


def test_wap_push_and_sms_to_a_detached_sim_wait_and_arrive_in_order(tmp_path: Path) -> None:
    r = rig(tmp_path, push_world())
    a, b = r.phones
    r.network.detach(b.msisdn)
    taken = r.clock.now()
    r.network.submit_sms(a.msisdn, b.msisdn, "先到")
    r.clock.advance(100)  # the night's two pushes go out at random times within it
    r.network.submit_sms(a.msisdn, b.msisdn, "后到")
    r.clock.advance(0)
    assert b.pushes == [] and b.inbox == []
    held = r.truth(2)["undelivered"]
    assert [h["kind"] for h in held] == ["sms", "wap_push", "wap_push", "sms"]
    assert not any(m["dir"] == "mt" for m in r.truth(2)["messages"])
    phone = come_back(r)
    assert phone.texts() == ["先到", "后到"]
    assert phone.inbox[0].sent_at == taken  # SCTS: when the SMSC took it, not now
    assert [href for _, href, _ in phone.pushes] == ["http://wap.xh.example/xh"] * 2
    assert r.truth(2)["undelivered"] == [] and r.truth(2)["expired"] == []
    kinds = [m["kind"] for m in r.truth(2)["messages"] if m["dir"] == "mt"]
    assert kinds == ["sms", "wap_push", "wap_push", "sms"]


def test_held_messages_expire_after_their_validity(tmp_path: Path) -> None:
    r = rig(tmp_path, one_service_world(sms_validity_s=50.0))
    a, b = r.phones
    r.network.detach(b.msisdn)
    r.network.submit_sms(a.msisdn, b.msisdn, "过期")
    r.clock.advance(0)
    account = r.network.accounts[b.msisdn]
    r.network.smsc.deliver(account, "wap_push", SP, "过期推送", href="http://wap.xh.example/xh")
    r.clock.advance(49)
    assert [h["text"] for h in r.truth(2)["undelivered"]] == ["过期", "过期推送"]
    r.clock.advance(2)
    assert r.truth(2)["undelivered"] == []
    assert r.truth(2)["expired"] == [
        {"kind": "sms", "sender": a.msisdn, "text": "过期"},
        {"kind": "wap_push", "sender": SP, "text": "过期推送"},
    ]
    r.network.submit_sms(a.msisdn, b.msisdn, "未过期")
    r.clock.advance(1)
    phone = come_back(r)
    assert phone.texts() == ["未过期"] and phone.pushes == []  # the expired never arrive


def test_attached_sims_get_pushes_at_once(tmp_path: Path) -> None:
    r = rig(tmp_path, push_world())
    r.clock.advance(100)
    for phone in r.phones:
        assert len(phone.pushes) == 2
        assert [m["kind"] for m in r.network.ground_truth()["sims"][phone.msisdn]["messages"]] == [
            "wap_push",
            "wap_push",
        ]


def test_mms_notification_to_a_detached_sim_waits(tmp_path: Path) -> None:
    world = one_service_world()
    world["sps"][0]["services"][0]["channel"] = "mms"
    world["carrier"] = {"confirm_reply": "Y"}
    r = rig(tmp_path, world)
    r.send("DG")
    r.network.detach(r.phones[0].msisdn)
    r.send("Y", wait=3.0)  # confirmed while away: the order's MMS is sent, and held
    assert r.phones[0].raw_pushes == []
    assert [h["kind"] for h in r.truth(1)["undelivered"]][-1] == "mms"
    phone = come_back(r, slot=1)
    (push,) = phone.raw_pushes
    assert decode_mms_push(push[1]).content_location.startswith("http://")
    assert "成功订购" in " ".join(phone.texts(SP))

"""The IVR platform behind the carrier: answer, DTMF, per-minute billing, every §6 knob.

A real `Device` (the AT interpreter) talks to the real `Network` on a manual
clock, so every duration is exact: the ledger is checked against what the
calls really lasted.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from dialbot.sim.device import Device
from dialbot.sim.ivr import AIRTIME, IVR_FEE, KEY_SUBSCRIBE, started_minutes
from dialbot.sim.network import Network
from dialbot.sim.worldfile import load_world

from .support import BASE_WORLD, ManualScheduler, write_world

LINE = "125900001"
MINUTE = 60.0


def ivr_world(behaviour: dict[str, Any] | None = None, **carrier: Any) -> dict[str, Any]:
    service = {
        "code": "ZSIVR",
        "name": "开心声讯",
        "channel": "ivr",
        "access": LINE,
        "billing": "per_minute",
        "price_fen": 100,
        "use": "2",
        "behaviour": {"answer_after_s": 2, **(behaviour or {})},
    }
    world = copy.deepcopy(BASE_WORLD)
    world["carrier"] = {"call_fee_fen_per_min": 20, **carrier}
    world["sps"] = [{"code": "901020", "name": "掌上乐园", "services": [service]}]
    return world


class CallRig:
    """One virtual modem (of a given make) on the real network, on a manual clock."""

    def __init__(self, tmp_path: Path, world: dict[str, Any], dialect: str = "generic") -> None:
        world.setdefault("bank", {})["dialect"] = dialect
        self.clock = ManualScheduler()
        self.net = Network(load_world(write_world(tmp_path, world)), self.clock)
        self.card = self.net.world.sims[0]
        self.out = bytearray()
        self.dev = Device(self.card, self.net, self.clock, self.out.extend, seed=1)
        self.dev.power_on()
        self.at("ATE0")
        self.at("AT+CMEE=1")
        if dialect == "huawei":
            self.at("AT^CURC=0")  # no ^RSSI noise inside the answers checked below

    def at(self, line: str) -> list[str]:
        self.out.clear()
        self.dev.feed(line.encode() + b"\r")
        self.clock.advance(0)
        return [x for x in bytes(self.out).decode().split("\r\n") if x]

    def ledger(self) -> list[tuple[int, str]]:
        sims = self.net.ground_truth()["sims"]
        return [(e["amount_fen"], e["reason"]) for e in sims[self.card.msisdn]["ledger"]]

    def subscriptions(self) -> list[tuple[str, str]]:
        subs = self.net.ground_truth()["sims"][self.card.msisdn]["subscriptions"]
        return [(s["service_code"], s["how"]) for s in subs]

    def call(self, hold_s: float, keys: str = "", answer_s: float = 2.0) -> None:
        """Dial, wait for the answer, press keys, hold `hold_s` from answer, hang up."""
        self.at(f"ATD{LINE};")
        self.clock.advance(answer_s)
        assert "+CLCC: 1,0,0," in self.at("AT+CLCC")[0]
        for key in keys:
            assert self.at(f"AT+VTS={key}") == ["OK"]
        self.clock.advance(hold_s)
        assert self.at("ATH")[-1] == "OK"
        self.clock.advance(0.1)


def test_started_minutes() -> None:
    assert [started_minutes(s, MINUTE) for s in (0, 1, 59, 60, 61, 120, 120.5)] == [
        0,
        1,
        1,
        1,
        2,
        2,
        3,
    ]
    assert started_minutes(3.0, 1.5) == 2 and started_minutes(3.1, 1.5) == 3


@pytest.mark.parametrize(("hold_s", "minutes"), [(59, 1), (60, 1), (61, 2), (125, 3)])
def test_honest_line_bills_started_minutes_from_answer(
    tmp_path: Path, hold_s: float, minutes: int
) -> None:
    rig = CallRig(tmp_path, ivr_world())
    rig.call(hold_s, keys="2")
    assert rig.ledger() == [(100 * minutes, IVR_FEE), (20 * minutes, AIRTIME)]
    assert rig.subscriptions() == []
    assert rig.at("AT+CLCC") == ["OK"]


def test_billing_minute_comes_from_the_carrier_profile(tmp_path: Path) -> None:
    rig = CallRig(tmp_path, ivr_world({"answer_after_s": 0.5}, billing_minute_s=2))
    rig.call(2.0, answer_s=0.5)
    assert rig.ledger() == [(100, IVR_FEE), (20, AIRTIME)]
    rig.call(2.1, answer_s=0.5)
    assert rig.ledger()[2:] == [(200, IVR_FEE), (40, AIRTIME)]


def test_unanswered_hang_up_bills_nothing(tmp_path: Path) -> None:
    rig = CallRig(tmp_path, ivr_world({"answer_after_s": 5}))
    rig.at(f"ATD{LINE};")
    rig.clock.advance(1)
    assert "+CLCC: 1,0,3," in rig.at("AT+CLCC")[0]
    rig.at("AT+CHUP")
    rig.clock.advance(10)
    assert rig.ledger() == []


def test_vts_only_while_a_call_is_up(tmp_path: Path) -> None:
    rig = CallRig(tmp_path, ivr_world())
    assert rig.at("AT+VTS=1") == ["+CME ERROR: 3"]
    rig.at(f"ATD{LINE};")
    assert rig.at("AT+VTS=1") == ["+CME ERROR: 3"]  # still ringing
    rig.clock.advance(2.0)
    assert rig.at("AT+VTS=#") == ["OK"]
    assert rig.at('AT+VTS="*"') == ["OK"]
    assert rig.at("AT+VTS=X") == ["+CME ERROR: 50"]
    rig.at("ATH")
    assert rig.at("AT+VTS=1") == ["+CME ERROR: 3"]


def test_line_hangs_up_by_itself(tmp_path: Path) -> None:
    rig = CallRig(tmp_path, ivr_world({"hangs_up_after_s": 90}))
    rig.at(f"ATD{LINE};")
    rig.clock.advance(2.0 + 90)
    assert b"NO CARRIER" in rig.out
    assert rig.at("AT+CLCC") == ["OK"]
    assert rig.ledger() == [(200, IVR_FEE), (40, AIRTIME)]


def test_bill_extra_minutes(tmp_path: Path) -> None:
    rig = CallRig(tmp_path, ivr_world({"bill_extra_minutes": 2}))
    rig.call(30)
    assert rig.ledger() == [(300, IVR_FEE), (20, AIRTIME)]


def test_bill_from_dial(tmp_path: Path) -> None:
    rig = CallRig(tmp_path, ivr_world({"bill_from_dial": True, "answer_after_s": 5}))
    rig.at(f"ATD{LINE};")
    rig.clock.advance(5.0)
    rig.clock.advance(58.0)  # 58 s from answer, 63 s from dialling
    rig.at("ATH")
    assert rig.ledger() == [(200, IVR_FEE), (20, AIRTIME)]


@pytest.mark.parametrize("dialect", ["generic", "huawei"])
def test_holds_after_hangup(tmp_path: Path, dialect: str) -> None:
    rig = CallRig(tmp_path, ivr_world({"holds_after_hangup_s": 70}), dialect)
    rig.at(f"ATD{LINE};")
    rig.clock.advance(2.0 + 30)
    assert rig.at("ATH")[-1] == "OK"
    rig.clock.advance(1)
    assert "+CLCC: 1,0,0," in rig.at("AT+CLCC")[0]  # the network kept the call
    assert b"^CEND" not in rig.out
    assert rig.ledger() == []
    rig.out.clear()
    rig.clock.advance(70)
    assert rig.at("AT+CLCC") == ["OK"]
    assert rig.ledger() == [(200, IVR_FEE), (40, AIRTIME)]  # 100 s from answer


def test_key_press_subscribes_silently(tmp_path: Path) -> None:
    world = ivr_world({"subscribe_on_key": "1", "subscribe_on_key_fen": 800})
    rig = CallRig(tmp_path, world)
    rig.call(10, keys="21")
    assert rig.ledger() == [(800, KEY_SUBSCRIBE), (100, IVR_FEE), (20, AIRTIME)]
    assert rig.subscriptions() == [("ZSIVR", "unconfirmed")]
    texts = [m for m in rig.net.ground_truth()["sims"][rig.card.msisdn]["messages"]]
    assert not [m for m in texts if m["kind"] == "sms" and m["dir"] == "mt"]  # no SMS at all
    rig.net.carrier.handle_sms(rig.net.accounts[rig.card.msisdn], "0000")
    rig.clock.advance(1)
    listing = rig.net.ground_truth()["sims"][rig.card.msisdn]["messages"][-1]["text"]
    assert "开心声讯（掌上乐园），8.00元/月" in listing


def test_other_keys_do_not_subscribe(tmp_path: Path) -> None:
    rig = CallRig(tmp_path, ivr_world({"subscribe_on_key": "1"}))
    rig.call(10, keys="2")
    assert rig.subscriptions() == []


@pytest.mark.parametrize(
    ("service", "where"),
    [
        ({"billing": "monthly"}, "billing"),
        ({"subscribe": "DG"}, "subscribe"),
        ({"use": "9x"}, "use"),
        ({"behaviour": {"subscribe_on_key": "E"}}, "subscribe_on_key"),
        ({"behaviour": {"answer_after_s": -1}}, "answer_after_s"),
        ({"channel": "fax"}, "channel"),
    ],
)
def test_world_refuses_bad_ivr_lines(tmp_path: Path, service: dict, where: str) -> None:
    from dialbot.errors import WorldError

    world = ivr_world()
    world["sps"][0]["services"][0].update(service)
    with pytest.raises(WorldError, match=where):
        load_world(write_world(tmp_path, world))


def test_carrier_keys_validated(tmp_path: Path) -> None:
    from dialbot.errors import WorldError

    with pytest.raises(WorldError, match="billing_minute_s"):
        load_world(write_world(tmp_path, ivr_world(billing_minute_s=0)))
    with pytest.raises(WorldError, match="call_fee_fen_per_min"):
        load_world(write_world(tmp_path, ivr_world(call_fee_fen_per_min=-1)))

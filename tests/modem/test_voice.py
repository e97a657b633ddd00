"""The voice family against the virtual bank, on every make's call progress.

Real ptys, the real driver, the simulator's IVR platform: a call is placed,
answered, keyed, held, hung up and confirmed released; what cannot be placed
raises CallNotPlaced; the measured duration brackets what the network billed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dialbot.errors import CallNotPlaced, UnsafeInputError
from dialbot.modem import LinkState
from dialbot.modem.driver import Modem, ModemSettings
from dialbot.sim.bank import VirtualBank
from dialbot.sim.ivr import started_minutes
from dialbot.sim.worldfile import load_world

MINUTE = 2.0
WORLD = f"""
carrier: {{billing_minute_s: {MINUTE}, call_fee_fen_per_min: 10}}
bank:
  name: vb-voice
  modems: 6
  balance_fen: 10000
  dialect: generic
  slots:
    2: {{dialect: huawei}}
    3: {{dialect: wavecom}}
    4: {{dialect: zte}}
    5: {{dialect: simcom}}
    6: {{dialect: generic, faults: {{network_lost: [0, 600]}}}}
sps:
  - code: "901020"
    name: 掌上乐园
    services:
      - {{code: ZSIVR, name: 开心声讯, channel: ivr, access: "125900001", billing: per_minute,
         price_fen: 100, use: "2", behaviour: {{answer_after_s: 0.5}}}}
      - {{code: ZSHOLD, name: 不挂断声讯, channel: ivr, access: "125900002", billing: per_minute,
         price_fen: 100, behaviour: {{answer_after_s: 0.5, holds_after_hangup_s: 3}}}}
      - {{code: ZSSHORT, name: 短声讯, channel: ivr, access: "125900003", billing: per_minute,
         price_fen: 100, behaviour: {{answer_after_s: 0.5, hangs_up_after_s: 0.6}}}}
"""
MAKES = {"generic": 1, "huawei": 2, "wavecom": 3, "zte": 4, "simcom": 5}


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualBank]:
    root = tmp_path_factory.mktemp("vvoice")
    (root / "world.yaml").write_text(WORLD, encoding="utf-8")
    with VirtualBank(load_world(root / "world.yaml"), root / "ports") as vbank:
        yield vbank


def modem(bank: VirtualBank, slot: int) -> Modem:
    m = Modem(ModemSettings(str(bank.ports[slot - 1]), command_timeout=2.0, check_interval=60))
    m.start()
    assert m.wait_settled(15) == LinkState.READY, m.last_error
    return m


def ivr_fees(bank: VirtualBank, slot: int) -> list[int]:
    msisdn = bank.cards[slot - 1].msisdn
    ledger = bank.call(bank.network.ground_truth)["sims"][msisdn]["ledger"]
    return [e["amount_fen"] for e in ledger if e["reason"] == "ivr_fee"]


@pytest.mark.parametrize("make", list(MAKES))
def test_call_dtmf_hang_up_released(bank: VirtualBank, make: str) -> None:
    slot = MAKES[make]
    with modem(bank, slot) as m:
        before = ivr_fees(bank, slot)
        call = m.voice.dial("125900001", answer_timeout=10)
        assert call.record.make == {"huawei": "huawei", "wavecom": "wavecom", "zte": "zte"}.get(
            make, "clcc"
        )
        call.dtmf("2")
        assert call.hold(0.3 * MINUTE)
        call.hang_up()
        assert call.confirm_released(3.0)
        rec = call.record
        assert rec.ended_by == "robot" and rec.released_t is not None
        measured, longest = rec.measured_s(), rec.max_connected_s()
        assert measured is not None and longest is not None and measured <= longest
        assert [k for _, k in rec.dtmf] == ["2"]
        assert any(p.event and p.event.startswith("answered") for p in rec.lines)
        evidence = rec.evidence()
        assert evidence["progress"] and evidence["dialled_at"].endswith("+08:00")

        def billed() -> bool:
            return len(ivr_fees(bank, slot)) == len(before) + 1

        assert _wait(billed)
        minutes = ivr_fees(bank, slot)[-1] // 100
        assert started_minutes(measured, MINUTE) <= minutes <= started_minutes(longest, MINUTE)


def _wait(condition: object, timeout: float = 5.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    ("make", "cause"),
    [("generic", "busy"), ("huawei", "busy"), ("wavecom", "no_answer"), ("zte", "refused")],
)
def test_unanswered_number_is_not_placed(bank: VirtualBank, make: str, cause: str) -> None:
    with modem(bank, MAKES[make]) as m:
        with pytest.raises(CallNotPlaced) as caught:
            m.voice.dial("13900000000", answer_timeout=10)
        assert caught.value.cause == cause
        m.voice.dial("125900001", answer_timeout=10).close()  # the line is free again


def test_no_network_is_not_placed(bank: VirtualBank) -> None:
    with modem(bank, 6) as m:
        with pytest.raises(CallNotPlaced) as caught:
            m.voice.dial("125900001", answer_timeout=5)
        assert caught.value.cause == "no_carrier"


@pytest.mark.parametrize("make", ["generic", "huawei"])
def test_network_keeps_the_call_after_hang_up(bank: VirtualBank, make: str) -> None:
    with modem(bank, MAKES[make]) as m:
        call = m.voice.dial("125900002", answer_timeout=10)
        call.hang_up()
        assert not call.confirm_released(1.0)
        assert any(p.event == "listed" for p in call.record.lines)
        assert call.record.released_t is None
        again = m.voice.dial  # the modem is busy until the network lets go
        with pytest.raises(CallNotPlaced):
            again("125900001", answer_timeout=5)
        assert _wait(lambda: "+CLCC" not in "".join(m.command("AT+CLCC")), timeout=6.0)


@pytest.mark.parametrize("make", ["generic", "wavecom"])
def test_far_end_hangs_up_during_hold(bank: VirtualBank, make: str) -> None:
    with modem(bank, MAKES[make]) as m:
        call = m.voice.dial("125900003", answer_timeout=10)
        assert not call.hold(5.0)
        assert call.record.ended_by == "far_end"
        call.hang_up()  # nothing to do
        assert call.record.hangup_t is None
        assert call.confirm_released(2.0)


def test_dtmf_keys_checked_before_writing(bank: VirtualBank) -> None:
    with modem(bank, 1) as m:
        call = m.voice.dial("125900001", answer_timeout=10)
        sent = len(m.trace.snapshot())
        for bad in ("1\r", "E", "1;ATH", ""):
            with pytest.raises(UnsafeInputError):
                call.dtmf(bad)
        assert len(m.trace.snapshot()) == sent
        call.close()
        with pytest.raises(UnsafeInputError):
            m.voice.dial("125;ATH")

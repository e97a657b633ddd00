"""Recovery: a hung modem is detected, reconnected with backoff, quarantined, and returns."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fakemodem import FakeModem

from dialbot.errors import AtTimeout, ModemError, UnsafeInputError
from dialbot.modem import LinkState, Modem, ModemSettings


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def fast_settings(port: str) -> ModemSettings:
    return ModemSettings(
        port,
        command_timeout=0.5,
        backoff_initial=0.05,
        backoff_max=0.2,
        quarantine_after=2,
        check_interval=0.3,
    )


def test_hung_modem_quarantined_then_returns() -> None:
    fake = FakeModem()
    try:
        with Modem(fast_settings(fake.port)) as modem:
            assert modem.wait_settled(10) == LinkState.READY
            assert modem.health().registered
            fake.hung = True
            with pytest.raises(AtTimeout) as caught:
                modem.health()
            assert any("AT+CPIN?" in line for line in caught.value.trace)
            assert "last AT exchanges" in str(caught.value)
            assert modem.wait_state(LinkState.QUARANTINED, 10)
            with pytest.raises(ModemError):
                modem.health()  # not connected: fails at once, no waiting
            fake.hung = False
            assert modem.wait_state(LinkState.READY, 10)
            assert modem.health().signal == 21
            assert modem.failures == 0
    finally:
        fake.close()


def test_port_that_disappears_is_reopened(tmp_path: Path) -> None:
    link = tmp_path / "ttyUSB0"
    first = FakeModem()
    link.symlink_to(first.port)
    with Modem(fast_settings(str(link))) as modem:
        assert modem.wait_settled(10) == LinkState.READY
        first.close()  # unplugged: the pty vanishes
        link.unlink()
        assert wait_for(lambda: modem.state in (LinkState.FAILED, LinkState.QUARANTINED))
        second = FakeModem()  # re-enumerated, same path
        try:
            link.symlink_to(second.port)
            assert modem.wait_state(LinkState.READY, 10)
            assert modem.identity().imsi == "460001234567890"
        finally:
            second.close()


def test_sim_missing_is_reported_not_a_link_failure() -> None:
    fake = FakeModem()
    fake.sim_present = False
    try:
        with Modem(fast_settings(fake.port)) as modem:
            assert modem.wait_settled(10) == LinkState.READY
            health = modem.health()
            assert (health.sim, health.sim_ready) == ("ABSENT", False)
    finally:
        fake.close()


def test_unsafe_input_rejected_before_writing() -> None:
    fake = FakeModem()
    try:
        with Modem(fast_settings(fake.port)) as modem:
            assert modem.wait_settled(10) == LinkState.READY
            before = len(fake.commands)
            for number, text in [
                ("10086\r", "CXYE"),
                ("1008;6", "CXYE"),
                ("10086", "CXYE\x1aAT+CMGD=1,4"),
                ("10086", "hi\x1b"),
                ("10086", "a\nb"),
            ]:
                with pytest.raises(UnsafeInputError):
                    modem.send_sms(number, text)
            with pytest.raises(UnsafeInputError):
                modem.ussd('*125#";ATD')
            assert not any("CMGS" in c or "CUSD" in c for c in fake.commands[before:])
            modem.send_sms("+8610086", "余额 CXYE")
            assert any(c.startswith("AT+CMGS=") for c in fake.commands[before:])
    finally:
        fake.close()


def test_huawei_periodic_codes_switched_off() -> None:
    fake = FakeModem(manufacturer="huawei")
    try:
        with Modem(fast_settings(fake.port)) as modem:
            assert modem.wait_settled(10) == LinkState.READY
            assert "AT^CURC=0" in fake.commands
    finally:
        fake.close()


def test_a_modem_busy_with_a_long_send_is_not_taken_for_dead() -> None:
    """A send that outlasts four command timeouts (a slow network, a long multipart text)
    keeps the modem busy; the idle check must not drop the link under it."""
    fake = FakeModem()
    fake.send_delay = 2.5
    settings = ModemSettings(
        fake.port,
        command_timeout=0.3,  # four of them (1.2 s) are less than the send takes
        send_timeout=5.0,
        backoff_initial=0.05,
        backoff_max=0.2,
        check_interval=0.1,
    )
    try:
        with Modem(settings) as modem:
            assert modem.wait_settled(10) == LinkState.READY
            modem.send_sms("10086", "CXYE")
            assert modem.state == LinkState.READY
            assert modem.failures == 0
            assert not any("fault" in line for line in modem.trace.snapshot())
    finally:
        fake.close()

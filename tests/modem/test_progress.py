"""Call progress per make, port-free: transcript lines -> events (like framer tests)."""

from __future__ import annotations

import pytest

from dialbot.modem.progress import (
    ClccPoll,
    Event,
    HuaweiProgress,
    Kind,
    Progress,
    WavecomWind,
    ZteProgress,
    progress_for,
)


def run(progress: Progress, lines: list[str]) -> list[tuple[str, str]]:
    """Feed a transcript as the state machine does (answered once ANSWERED was seen)."""
    answered = False
    out = []
    for line in lines:
        event = progress.parse(line, answered)
        if event is None:
            continue
        answered = answered or event.kind == Kind.ANSWERED
        out.append((event.kind.value, event.cause))
    return out


def test_huawei_transcript() -> None:
    lines = ["^ORIG:1,0", "^RSSI:18", "^CONF:1", "^CONN:1,0", '+CMTI: "SM",3', "^CEND:1,65,104,16"]
    assert run(HuaweiProgress(), lines) == [
        ("dialing", ""),
        ("alerting", ""),
        ("answered", ""),
        ("ended", "cend"),
    ]


def test_huawei_busy_before_answer() -> None:
    assert run(HuaweiProgress(), ["OK", "^ORIG:1,0", "^CEND:1,0,104,17"]) == [
        ("accepted", ""),
        ("dialing", ""),
        ("ended", "busy"),
    ]


def test_wavecom_transcript() -> None:
    lines = ["+WIND: 5,1", "+WIND: 2", "OK", "NO CARRIER", "+WIND: 6,1"]
    assert run(WavecomWind(), lines) == [
        ("dialing", ""),
        ("alerting", ""),
        ("answered", ""),
        ("ended", "no_carrier"),
        ("ended", "released"),
    ]
    assert run(WavecomWind(), ["+WIND: 5,1", "NO ANSWER", "+WIND: 6,1"])[1] == (
        "ended",
        "no_answer",
    )


def test_zte_transcript() -> None:
    assert run(ZteProgress(), ["CONNECT", "HANGUP: 1"]) == [("answered", ""), ("ended", "hangup")]
    assert run(ZteProgress(), ["OK"]) == [("ended", "refused")]


def test_generic_finals() -> None:
    assert run(ClccPoll(), ["OK", "NO CARRIER"]) == [("accepted", ""), ("ended", "no_carrier")]
    assert run(ClccPoll(), ["BUSY"]) == [("ended", "busy")]
    assert run(ClccPoll(), ["+CME ERROR: 30"]) == [("failed", "+CME ERROR: 30")]
    assert run(ClccPoll(), ["NO DIALTONE"]) == [("ended", "no_dialtone")]


@pytest.mark.parametrize(
    ("lines", "kind"),
    [
        (['+CLCC: 1,0,2,0,0,"125900001",129', "OK"], Kind.DIALING),
        (['+CLCC: 1,0,3,0,0,"125900001",129'], Kind.ALERTING),
        (['+CLCC: 1,0,0,0,0,"125900001",129'], Kind.ANSWERED),
        (['+CLCC: 2,1,4,0,0,"13800138000",129', "OK"], Kind.ENDED),  # only an incoming call
        (["OK"], Kind.ENDED),
    ],
)
def test_clcc_poll(lines: list[str], kind: Kind) -> None:
    assert ClccPoll.poll(lines).kind == kind


def test_make_picks_dialect() -> None:
    assert isinstance(progress_for("huawei"), HuaweiProgress)
    assert isinstance(progress_for(" WAVECOM MODEM"), WavecomWind)
    assert isinstance(progress_for("ZTE INCORPORATED"), ZteProgress)
    assert type(progress_for("SIMCOM_Ltd")) is ClccPoll
    assert progress_for("GENERIC").polls


def test_unrelated_lines_are_not_events() -> None:
    for progress in (ClccPoll(), HuaweiProgress(), WavecomWind(), ZteProgress()):
        assert progress.parse('+CMTI: "SM",1', True) is None
        assert progress.parse("^RSSI:12", False) is None
    assert Event(Kind.ENDED).cause == ""

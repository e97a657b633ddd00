"""USSD answers from real modems (shared corpus) decode to readable text."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialbot.modem.ussd import decode_ussd_text, parse_cusd

EXPECTED = {
    "02-E160.dump": "Ihr Guthaben für die Nr.4915783647410 beträgt 5.78 Euro",
    "03-unknown.dump": "Kontostand: 3.00 EUR",
    "04-unknown.dump": "Maaf, permintaan Anda",
    "Uissue358-Quectel_M35.dump": "Havi keret: 0Ft.",
    "issue109-E3276.dump": "Для справки о балансе наберите *105#",
    "issue178-dell.dump": "On DATA Pack u have 3Gb",
    "issue377-HE910-D.dump": "107.93",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_cusd_lines(corpus: Path, name: str) -> None:
    lines = (corpus / "gammu" / "at-ussd" / name).read_text(errors="replace").splitlines()
    _, message = parse_cusd(lines)
    assert message is not None and EXPECTED[name] in message


def test_session_flag_and_plain_digits() -> None:
    assert parse_cusd(['+CUSD: 1,"1234",15']) == (True, "1234")
    assert parse_cusd(['+CUSD: 0,"余额为12.34元",72']) == (False, "余额为12.34元")
    assert decode_ussd_text("4F59989D4E3A", 72) == "余额为"

"""The worked example of docs/methodology.md, recomputed by the code, figure for figure."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import pytest

from dialbot.errors import InputError
from dialbot.reporting.period import parse_period, period_of
from dialbot.reporting.scoring import (
    V1,
    FindingCount,
    SpTally,
    competition_ranks,
    rank_period,
    round_half_up,
)

F = FindingCount

# The table "Worked example / 计算示例" of docs/methodology.md.
EXAMPLE = [
    SpTally("901001", "星河科技", 18, 3, (F("NO_RESPONSE", "quality", 1),)),
    SpTally("901002", "云端信息", 12, 2, (F("PROMPT_INCOMPLETE", "minor", 1),)),
    SpTally(
        "901003",
        "掌上乐园",
        10,
        2,
        (
            F("CANCEL_FAILED", "major", 1),
            F("CONTENT_NOT_DELIVERED", "quality", 1),
            F("NO_RESPONSE", "quality", 1),
            F("OVERCHARGE", "critical", 1),
        ),
    ),
    SpTally("901004", "快乐时光", 2, 1, ()),
    SpTally(
        "901005",
        "彩虹无线",
        6,
        2,
        (F("MESSAGE_AFTER_CANCEL", "minor", 1), F("UNSOLICITED_MESSAGE", "major", 1)),
    ),
    SpTally(
        "901006",
        "远航传媒",
        12,
        2,
        (F("NO_RESPONSE", "quality", 1), F("PROMPT_INCOMPLETE", "minor", 1)),
    ),
]

# code: (P, shrunk rate, integrity score, rank, quality points, quality rate, quality score, q rank)
EXPECTED = {
    "901001": (0, Fraction(7, 92), 96.3, 1, 1, Fraction(4, 69), 94.5, 3),
    "901002": (1, Fraction(11, 68), 92.5, 2, 0, Fraction(1, 51), 98.1, 1),
    "901006": (1, Fraction(11, 68), 92.5, 2, 1, Fraction(4, 51), 92.7, 4),
    "901005": (5, Fraction(27, 44), 76.5, 4, 0, Fraction(1, 33), 97.1, 2),
    "901003": (14, Fraction(21, 20), 65.6, 5, 2, Fraction(7, 45), 86.5, 5),
    "901004": (0, Fraction(1, 4), 88.9, None, 0, Fraction(1, 21), 95.5, None),
}


def test_population_rates_match_the_document() -> None:
    ranking = rank_period("2026-11", EXAMPLE)
    assert ranking.population_integrity_rate == Fraction(7, 20)
    assert ranking.population_quality_rate == Fraction(1, 15)


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_each_sp_matches_the_document(code: str) -> None:
    entry = rank_period("2026-11", EXAMPLE).get(code)
    assert entry is not None
    got = (
        entry.integrity_points,
        entry.integrity_rate,
        entry.integrity_score,
        entry.rank,
        entry.quality_points,
        entry.quality_rate,
        entry.quality_score,
        entry.quality_rank,
    )
    assert got == EXPECTED[code]


def test_table_order_ties_and_unranked_last() -> None:
    ranking = rank_period("2026-11", EXAMPLE)
    assert [e.tally.sp_code for e in ranking.entries] == [
        "901001",
        "901002",
        "901006",
        "901005",
        "901003",
        "901004",
    ]
    assert [e.tally.sp_code for e in ranking.unranked()] == ["901004"]


def test_one_clean_probe_cannot_top_the_table() -> None:
    """Without shrinkage a single spotless probe would score 100 and win."""
    lucky = SpTally("909999", "幸运儿", 3, 1, ())
    ranking = rank_period("2026-11", [*EXAMPLE, lucky])
    top = ranking.ranked()[0]
    assert top.tally.sp_code == "901001"
    lucky_entry = ranking.get("909999")
    assert lucky_entry is not None and lucky_entry.integrity_score < top.integrity_score


def test_one_bad_probe_cannot_bottom_the_table() -> None:
    """One critical in 3 probes (raw 3.33/probe) is less damning than 5 in 20 (raw 2.5/probe)."""
    unlucky = SpTally("909998", "倒霉蛋", 3, 1, (F("OVERCHARGE", "critical", 1),))
    systematic = SpTally("909997", "惯犯", 20, 2, (F("OVERCHARGE", "critical", 5),))
    ranking = rank_period("2026-11", [*EXAMPLE, unlucky, systematic])
    assert ranking.ranked()[-1].tally.sp_code == "909997"
    once = rank_period("2026-11", [*EXAMPLE, SpTally("909996", "单次", 1, 1, ())]).get("909996")
    assert once is not None and not once.ranked and once.rank is None


def test_quality_never_changes_integrity() -> None:
    base = rank_period("2026-11", EXAMPLE)
    noisy = [
        SpTally(
            t.sp_code,
            t.sp_name,
            t.probes,
            t.services_tested,
            (*t.findings, F("NO_RESPONSE", "quality", 9)),
        )
        for t in EXAMPLE
    ]
    other = rank_period("2026-11", noisy)
    for a, b in zip(base.entries, other.entries, strict=True):
        assert (a.tally.sp_code, a.integrity_score, a.rank) == (
            b.tally.sp_code,
            b.integrity_score,
            b.rank,
        )
    assert other.get("901002").quality_score < base.get("901002").quality_score  # type: ignore[union-attr]


def test_competition_ranking_and_rounding() -> None:
    assert competition_ranks([("b", 90.0), ("a", 90.0), ("c", 95.0), ("d", 80.0)]) == {
        "c": 1,
        "a": 2,
        "b": 2,
        "d": 4,
    }
    assert round_half_up(Fraction(1845, 20)) == 92.3  # 92.25 rounds up
    assert round_half_up(Fraction(92249, 1000)) == 92.2


def test_nothing_probed_gives_an_empty_table() -> None:
    ranking = rank_period("2026-11", [])
    assert ranking.entries == () and ranking.population_integrity_rate == 0


def test_v1_constants_are_the_documented_ones() -> None:
    assert dict(V1.integrity_weights) == {"critical": 10, "major": 4, "minor": 1}
    assert (V1.prior_probes, V1.integrity_scale, V1.quality_scale, V1.min_probes) == (5, 2, 1, 3)


def test_periods() -> None:
    q = parse_period("2026-Q4")
    start, end = q.bounds()
    assert (start.isoformat(), end.isoformat()) == (
        "2026-10-01T00:00:00+08:00",
        "2027-01-01T00:00:00+08:00",
    )
    assert [p.label for p in parse_period("2026-02").history(3)] == [
        "2025-12",
        "2026-01",
        "2026-02",
    ]
    assert parse_period("2026-Q1").previous().label == "2025-Q4"
    utc_evening = datetime(2026, 11, 30, 16, 30, tzinfo=UTC)  # 00:30 on 1 December in Beijing
    assert period_of(utc_evening).label == "2026-12"
    assert period_of(utc_evening, "quarter").label == "2026-Q4"
    for bad in ("2026-13", "2026-Q5", "26-01", "2026/01"):
        with pytest.raises(InputError, match="YYYY-MM|month"):
            parse_period(bad)


DOC = Path(__file__).resolve().parents[2] / "docs" / "methodology.md"
_ROW = re.compile(r"^\| (9\d{5}) \S+ \| .* \| \*\*(\d+\.\d)\*\* \| (\d+|—)")


def _doc_tables() -> tuple[
    dict[str, tuple[float, int | None]], dict[str, tuple[float, int | None]]
]:
    """The two result tables of the document's worked example: code -> (score, rank)."""
    text = DOC.read_text(encoding="utf-8")
    integrity_part, quality_part = text.split("诚信 · Integrity", 1)[1].split("质量 · Quality", 1)
    tables = []
    for part in (integrity_part, quality_part.split("读法", 1)[0]):
        rows = {}
        for line in part.splitlines():
            m = _ROW.match(line)
            if m:
                rows[m[1]] = (float(m[2]), None if m[3] == "—" else int(m[3]))
        tables.append(rows)
    return tables[0], tables[1]


def test_document_tables_are_what_the_code_computes() -> None:
    """Read the figures from docs/methodology.md itself, so the document cannot drift."""
    integrity, quality = _doc_tables()
    ranking = rank_period("2026-11", EXAMPLE)
    assert len(integrity) == len(quality) == len(EXAMPLE)
    for entry in ranking.entries:
        code = entry.tally.sp_code
        assert integrity[code] == (entry.integrity_score, entry.rank)
        assert quality[code] == (entry.quality_score, entry.quality_rank)
    assert "r₀ = 21/60 = 7/20 = 0.35" in DOC.read_text(encoding="utf-8")

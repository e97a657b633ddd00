"""Methodology v1: integrity and quality scores, small-sample shrinkage, ranks.

Pure functions over plain dataclasses, so the published figures can be
recomputed by hand from docs/methodology.md (the tests do exactly that with
the document's worked example). All arithmetic is exact (``Fraction``) until
the final rounding to one decimal, so no floating-point drift can change a
rank.

In short (the document has the reasoning):

- integrity points P = 10·critical + 4·major + 1·minor findings;
- population rate r0 = ΣP / Σn over every SP probed in the period;
- shrunk rate r~ = (P + m·r0) / (n + m), m = 5 pseudo-probes (the posterior
  mean of a Gamma-Poisson model whose prior is the population);
- integrity score = 100 · K / (K + r~), K = 2, rounded half up to 0.1;
- quality works the same way with quality findings (weight 1) and K = 1, and
  is ranked on its own: it never enters the integrity score;
- an SP needs n ≥ 3 judged probes to be ranked; equal published scores share
  a rank (1, 2, 2, 4) and are listed by SP code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

METHODOLOGY = "v1"

INTEGRITY_WEIGHTS: Mapping[str, int] = {"critical": 10, "major": 4, "minor": 1}
QUALITY_WEIGHTS: Mapping[str, int] = {"quality": 1}
SEVERITIES: tuple[str, ...] = ("critical", "major", "minor", "quality")


@dataclass(frozen=True)
class Params:
    """The constants of the methodology; v1 fixes them, tests may vary them."""

    integrity_weights: Mapping[str, int] = field(default_factory=lambda: dict(INTEGRITY_WEIGHTS))
    quality_weights: Mapping[str, int] = field(default_factory=lambda: dict(QUALITY_WEIGHTS))
    prior_probes: int = 5
    integrity_scale: Fraction = Fraction(2)
    quality_scale: Fraction = Fraction(1)
    min_probes: int = 3


V1 = Params()


@dataclass(frozen=True)
class FindingCount:
    """How many findings of one code (and its severity) an SP had in the period."""

    code: str
    severity: str
    count: int


@dataclass(frozen=True)
class SpTally:
    """What the period's judged probes of one SP add up to; the scoring input.

    ``probes`` counts runs that were judged (infrastructure failures are not
    probes of the SP); ``findings`` counts findings by code.
    """

    sp_code: str
    sp_name: str
    probes: int
    services_tested: int
    findings: tuple[FindingCount, ...] = ()

    def by_severity(self) -> dict[str, int]:
        """Finding counts per severity, every severity present (zero when none)."""
        out = dict.fromkeys(SEVERITIES, 0)
        for item in self.findings:
            out[item.severity] = out.get(item.severity, 0) + item.count
        return out

    def codes(self, severities: Iterable[str]) -> dict[str, int]:
        """Finding counts per code, for codes of the given severities, sorted by code."""
        wanted = set(severities)
        out: dict[str, int] = {}
        for item in sorted(self.findings, key=lambda f: f.code):
            if item.severity in wanted:
                out[item.code] = out.get(item.code, 0) + item.count
        return out


@dataclass(frozen=True)
class SpScore:
    """One SP's published line: its tally, the intermediate figures, scores and ranks."""

    tally: SpTally
    integrity_points: int
    integrity_rate: Fraction  # shrunk, points per probe
    integrity_score: float
    quality_points: int
    quality_rate: Fraction
    quality_score: float
    ranked: bool
    rank: int | None
    quality_rank: int | None


@dataclass(frozen=True)
class Ranking:
    """The period's table: ranked SPs in rank order, then the unranked by SP code."""

    period: str
    methodology: str
    params: Params
    population_integrity_rate: Fraction
    population_quality_rate: Fraction
    entries: tuple[SpScore, ...]

    def ranked(self) -> list[SpScore]:
        """Entries that met the minimum sample."""
        return [e for e in self.entries if e.ranked]

    def unranked(self) -> list[SpScore]:
        """Entries below the minimum sample, shown apart and without a rank."""
        return [e for e in self.entries if not e.ranked]

    def get(self, sp_code: str) -> SpScore | None:
        """The entry of one SP, or None when it was not probed in the period."""
        for entry in self.entries:
            if entry.tally.sp_code == sp_code:
                return entry
        return None


def points(tally: SpTally, weights: Mapping[str, int]) -> int:
    """Weighted count of the tally's findings whose severity has a weight."""
    return sum(weights.get(f.severity, 0) * f.count for f in tally.findings)


def population_rate(tallies: Iterable[SpTally], weights: Mapping[str, int]) -> Fraction:
    """ΣP / Σn over all SPs probed in the period; 0 when nothing was probed."""
    total_points = 0
    total_probes = 0
    for tally in tallies:
        total_points += points(tally, weights)
        total_probes += tally.probes
    if total_probes == 0:
        return Fraction(0)
    return Fraction(total_points, total_probes)


def shrunk_rate(points_: int, probes: int, prior: Fraction, prior_probes: int) -> Fraction:
    """(P + m·r0) / (n + m): few probes stay close to the population, many speak for themselves."""
    if probes + prior_probes == 0:
        return prior
    return (points_ + prior_probes * prior) / (probes + prior_probes)


def score_from_rate(rate: Fraction, scale: Fraction) -> Fraction:
    """100·K/(K + r): 100 for a spotless record, 50 when the rate equals K."""
    return 100 * scale / (scale + rate)


def round_half_up(value: Fraction, places: int = 1) -> float:
    """Round exactly, halves away from zero (scores are never negative), as the document says."""
    factor = 10**places
    scaled = value * factor
    rounded = (scaled.numerator * 2 + scaled.denominator) // (2 * scaled.denominator)
    return rounded / factor


def competition_ranks(scores: list[tuple[str, float]]) -> dict[str, int]:
    """Standard competition ranking (1, 2, 2, 4) of (sp_code, score), higher is better."""
    ordered = sorted(scores, key=lambda item: (-item[1], item[0]))
    ranks: dict[str, int] = {}
    previous: float | None = None
    current = 0
    for position, (code, score) in enumerate(ordered, start=1):
        if score != previous:
            current = position
            previous = score
        ranks[code] = current
    return ranks


def _score_one(
    tally: SpTally, params: Params, r0_integrity: Fraction, r0_quality: Fraction
) -> tuple[int, Fraction, float, int, Fraction, float]:
    p_int = points(tally, params.integrity_weights)
    rate_int = shrunk_rate(p_int, tally.probes, r0_integrity, params.prior_probes)
    p_q = points(tally, params.quality_weights)
    rate_q = shrunk_rate(p_q, tally.probes, r0_quality, params.prior_probes)
    return (
        p_int,
        rate_int,
        round_half_up(score_from_rate(rate_int, params.integrity_scale)),
        p_q,
        rate_q,
        round_half_up(score_from_rate(rate_q, params.quality_scale)),
    )


def rank_period(period: str, tallies: Iterable[SpTally], params: Params = V1) -> Ranking:
    """Score every SP of the period and rank those with enough probes."""
    items = list(tallies)
    r0_int = population_rate(items, params.integrity_weights)
    r0_q = population_rate(items, params.quality_weights)
    scored = {t.sp_code: (t, *_score_one(t, params, r0_int, r0_q)) for t in items}
    eligible = [t for t in items if t.probes >= params.min_probes]
    int_ranks = competition_ranks([(t.sp_code, scored[t.sp_code][3]) for t in eligible])
    q_ranks = competition_ranks([(t.sp_code, scored[t.sp_code][6]) for t in eligible])
    entries: list[SpScore] = []
    for code, (tally, p_int, r_int, s_int, p_q, r_q, s_q) in scored.items():
        ranked = code in int_ranks
        entries.append(
            SpScore(
                tally=tally,
                integrity_points=p_int,
                integrity_rate=r_int,
                integrity_score=s_int,
                quality_points=p_q,
                quality_rate=r_q,
                quality_score=s_q,
                ranked=ranked,
                rank=int_ranks.get(code),
                quality_rank=q_ranks.get(code),
            )
        )
    entries.sort(key=lambda e: (not e.ranked, e.rank or 0, e.tally.sp_code))
    return Ranking(
        period=period,
        methodology=METHODOLOGY,
        params=params,
        population_integrity_rate=r0_int,
        population_quality_rate=r0_q,
        entries=tuple(entries),
    )

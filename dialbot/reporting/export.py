"""Open data: the period's ranking as JSON (spec/formats.md §6) and CSV.

The JSON keeps every field of §6 under its documented name and adds fields
only (quality_rank, ranked, counts by severity, the population rates), so a
program written against the spec keeps working. SPs below the minimum sample
are included with ``"rank": null`` and ``"ranked": false``: open data should
not hide that they were probed.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from dialbot.csvsafe import write_safe
from dialbot.reporting.model import ReportData
from dialbot.reporting.scoring import SpScore

INTEGRITY_SEVERITIES = ("critical", "major", "minor")

CSV_COLUMNS = (
    "rank",
    "sp_code",
    "sp_name",
    "integrity_score",
    "quality_score",
    "quality_rank",
    "probes",
    "services_tested",
    "critical",
    "major",
    "minor",
    "quality",
    "violations",
    "quality_findings",
    "ranked",
    "evidence_chain_head",  # the same on every row: the chain head the period rests on
    "evidence_chain_events",
)


def entry_dict(entry: SpScore) -> dict[str, Any]:
    """One SP's line as the §6 JSON object, plus the added fields."""
    tally = entry.tally
    return {
        "rank": entry.rank,
        "sp_code": tally.sp_code,
        "sp_name": tally.sp_name,
        "integrity_score": entry.integrity_score,
        "quality_score": entry.quality_score,
        "probes": tally.probes,
        "services_tested": tally.services_tested,
        "violations": tally.codes(INTEGRITY_SEVERITIES),
        "quality_rank": entry.quality_rank,
        "ranked": entry.ranked,
        "quality_findings": tally.codes(("quality",)),
        "findings_by_severity": tally.by_severity(),
        "integrity_points": entry.integrity_points,
    }


def ranking_document(data: ReportData) -> dict[str, Any]:
    """The whole §6 document for the period."""
    ranking = data.ranking
    start, end = data.period.bounds(data.tz)
    params = ranking.params
    return {
        "period": data.period.label,
        "generated_at": data.generated_at.isoformat(),
        "methodology": ranking.methodology,
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "population": {
            "integrity_rate": float(ranking.population_integrity_rate),
            "quality_rate": float(ranking.population_quality_rate),
        },
        "parameters": {
            "integrity_weights": dict(params.integrity_weights),
            "quality_weights": dict(params.quality_weights),
            "prior_probes": params.prior_probes,
            "integrity_scale": float(params.integrity_scale),
            "quality_scale": float(params.quality_scale),
            "min_probes": params.min_probes,
        },
        "evidence_chain": evidence_chain(data),
        "entries": [entry_dict(e) for e in ranking.entries],
    }


def evidence_chain(data: ReportData) -> dict[str, Any] | None:
    """The evidence chain's head for the period (check it: `dialbot evidence verify --anchor`)."""
    head = data.evidence_head
    if head is None:
        return None
    return {"hash": head.hash, "events": head.events, "last_id": head.last_id}


def write_json(data: ReportData, path: Path) -> Path:
    """Write the §6 JSON (UTF-8, Chinese unescaped so it stays readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(ranking_document(data), ensure_ascii=False, indent=1)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _codes_cell(codes: dict[str, int]) -> str:
    return ";".join(f"{code}:{count}" for code, count in codes.items())


def csv_text(data: ReportData) -> str:
    """The ranking as CSV: a BOM, one row per SP, columns as CSV_COLUMNS, codes as
    CODE:n;CODE:n; text cells safe in a spreadsheet (`dialbot.csvsafe`)."""
    buffer = io.StringIO()
    rows = []
    head = data.evidence_head
    chain = (head.hash, head.events) if head else ("", "")
    for entry in data.ranking.entries:
        tally = entry.tally
        sev = tally.by_severity()
        rows.append(
            (
                "" if entry.rank is None else entry.rank,
                tally.sp_code,
                tally.sp_name,
                f"{entry.integrity_score:.1f}",
                f"{entry.quality_score:.1f}",
                "" if entry.quality_rank is None else entry.quality_rank,
                tally.probes,
                tally.services_tested,
                sev["critical"],
                sev["major"],
                sev["minor"],
                sev["quality"],
                _codes_cell(tally.codes(INTEGRITY_SEVERITIES)),
                _codes_cell(tally.codes(("quality",))),
                "true" if entry.ranked else "false",
                *chain,
            )
        )
    write_safe(buffer, CSV_COLUMNS, rows)
    return buffer.getvalue()


def write_csv(data: ReportData, path: Path) -> Path:
    """Write the CSV (UTF-8 with a BOM, so a spreadsheet reads the Chinese names; header row)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(csv_text(data), encoding="utf-8")
    return path

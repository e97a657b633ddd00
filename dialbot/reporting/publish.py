"""One call that writes a period's publication in the formats asked for.

Shared by ``dialbot report`` and ``dialbot demo`` so both publish the same
way: the static site, the PDF, and the open data side by side in one folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.anchor import anchor_document
from dialbot.errors import InputError
from dialbot.reporting.data import load_report
from dialbot.reporting.export import write_csv, write_json
from dialbot.reporting.model import ReportData
from dialbot.reporting.period import Period
from dialbot.reporting.render import (
    default_generated_at,
    make_environment,
    output_names,
    render_html,
    render_pdf,
)

FORMATS: tuple[str, ...] = ("html", "pdf", "csv", "json")
DEFAULT_FORMATS: tuple[str, ...] = FORMATS


def parse_formats(text: str) -> list[str]:
    """``html,pdf`` → ["html", "pdf"], in the canonical order; unknown names are an error."""
    asked = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not asked:
        raise InputError("--format", text, f"name at least one of {', '.join(FORMATS)}")
    for name in asked:
        if name not in FORMATS:
            raise InputError("--format", name, f"unknown format; choose from {', '.join(FORMATS)}")
    return [name for name in FORMATS if name in asked]


def publish(
    data: ReportData,
    out_dir: Path,
    formats: Sequence[str] = DEFAULT_FORMATS,
    override_dir: Path | None = None,
) -> dict[str, Path]:
    """Write every requested format into ``out_dir``; return the path of each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = output_names(data.period.label)
    written: dict[str, Path] = {}
    env = make_environment(override_dir, data.tz)
    if "csv" in formats:
        written["csv"] = write_csv(data, out_dir / names["csv"])
    if "json" in formats:
        written["json"] = write_json(data, out_dir / names["json"])
    if "html" in formats:
        written["html"] = render_html(data, out_dir, env, override_dir, formats)
    if "pdf" in formats:
        written["pdf"] = render_pdf(data, out_dir / names["pdf"], env, override_dir)
    if data.evidence_head is not None:
        written["anchor"] = write_anchor(data, out_dir / names["anchor"])
    return written


def write_anchor(data: ReportData, path: Path) -> Path:
    """The period's evidence chain head as an anchor file, published beside the report: what
    `dialbot evidence verify --anchor` checks the database against later."""
    assert data.evidence_head is not None
    doc = anchor_document(data.evidence_head, data.period.label)
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path


def publish_period(
    sessions: sessionmaker[Session],
    period: Period,
    reports_dir: Path,
    out_dir: Path | None = None,
    formats: Sequence[str] = DEFAULT_FORMATS,
) -> tuple[ReportData, dict[str, Path]]:
    """Read ``period`` from the database and publish it (default: <reports>/out/<period>/).

    What ``dialbot report`` does, callable by ``dialbot demo`` to end with the
    demo's rankings.
    """
    target = out_dir if out_dir is not None else reports_dir / "out" / period.label
    with sessions() as session:
        data = load_report(session, period, default_generated_at())
    return data, publish(data, target, formats, override_dir=reports_dir)

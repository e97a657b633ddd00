"""Publication of a period's rankings as a static offline site and a PDF.

Templates are Jinja2 with autoescaping always on: every value a template
prints is escaped unless it went through a filter that builds safe markup
itself (``untrusted`` for SP text, the SVG charts). The package's templates
are the default; a file of the same name in the configured ``reports/``
folder overrides one (``style.css`` and ``pdf.css`` too), so an operator can
restyle the publication without touching code.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, StrictUndefined
from markupsafe import Markup

from dialbot.reporting import labels
from dialbot.reporting.model import ReportData
from dialbot.reporting.safetext import mask_numbers, untrusted
from dialbot.reporting.scoring import Ranking
from dialbot.reporting.svg import Series, line_chart, sparkline

PACKAGE_TEMPLATES = Path(__file__).parent / "templates"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PDF_EXCERPT_CHARS = 200
INTEGRITY_COLOR = "#1f4e79"
QUALITY_COLOR = "#c55a11"


def sp_slug(sp_code: str) -> str:
    """A file name for an SP's page: the code when it is plain, else a stable hex form."""
    if _SAFE_NAME.match(sp_code):
        return sp_code
    return "x" + sp_code.encode("utf-8").hex()[:120]


def yuan(fen: int | None) -> str:
    """Integer fen as yuan with two decimals, exactly (no float)."""
    if fen is None:
        return "—"
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def make_environment(override_dir: Path | None = None, tz: str = "Asia/Shanghai") -> Environment:
    """Jinja2 environment: reports/ first, then the package; autoescape on; strict undefined."""
    loaders: list[Any] = []
    if override_dir is not None and override_dir.is_dir():
        loaders.append(FileSystemLoader(str(override_dir)))
    loaders.append(PackageLoader("dialbot.reporting", "templates"))
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    zone = ZoneInfo(tz)
    env.filters["untrusted"] = untrusted
    env.filters["masked"] = mask_numbers
    env.filters["yuan"] = yuan
    env.filters["dt"] = lambda d: d.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
    env.filters["score"] = lambda v: "—" if v is None else f"{v:.1f}"
    env.filters["rate"] = lambda f: f"{float(f):.4f}"
    env.globals["violation_name"] = labels.violation_name
    env.globals["severity_name"] = labels.severity_name
    env.globals["kind_name"] = labels.evidence_kind_name
    env.globals["sp_slug"] = sp_slug
    return env


def _style(name: str, override_dir: Path | None) -> Path:
    if override_dir is not None and (override_dir / name).is_file():
        return override_dir / name
    return PACKAGE_TEMPLATES / name


def _score_maps(history: Sequence[tuple[Any, Ranking]]) -> list[dict[str, tuple[float, float]]]:
    return [
        {e.tally.sp_code: (e.integrity_score, e.quality_score) for e in r.entries}
        for _, r in history
    ]


def _trend_charts(data: ReportData, per_sp: bool = True) -> tuple[Markup, dict[str, Markup]]:
    """The index chart (medians of ranked SPs) and one chart per SP of the current period."""
    labels_ = [p.label for p, _ in data.history]
    maps = _score_maps(data.history)
    med_i: list[float | None] = []
    med_q: list[float | None] = []
    for _, ranking in data.history:
        ranked = ranking.ranked()
        med_i.append(median(e.integrity_score for e in ranked) if ranked else None)
        med_q.append(median(e.quality_score for e in ranked) if ranked else None)
    index_chart = line_chart(
        labels_,
        [
            Series("诚信得分中位数 median integrity", INTEGRITY_COLOR, med_i),
            Series("质量得分中位数 median quality", QUALITY_COLOR, med_q),
        ],
        title="各期得分中位数 Median scores by period",
    )
    charts: dict[str, Markup] = {}
    for entry in data.ranking.entries if per_sp else ():
        code = entry.tally.sp_code
        ints = [m[code][0] if code in m else None for m in maps]
        quals = [m[code][1] if code in m else None for m in maps]
        charts[code] = line_chart(
            labels_,
            [
                Series("诚信得分 integrity", INTEGRITY_COLOR, ints),
                Series("服务质量 quality", QUALITY_COLOR, quals),
            ],
            title=f"{entry.tally.sp_name} 得分趋势 score trend",
        )
    return index_chart, charts


def _context(data: ReportData, formats: Sequence[str], charts: bool = True) -> dict[str, Any]:
    index_chart, sp_charts = _trend_charts(data, per_sp=charts)
    start, end = data.period.bounds(data.tz)
    return {
        "data": data,
        "period": data.period,
        "ranking": data.ranking,
        "params": data.ranking.params,
        "weights": data.ranking.params.integrity_weights,
        "period_start": start,
        "period_end": end,
        "generated_at": data.generated_at,
        "index_chart": index_chart,
        "sp_charts": sp_charts,
        "formats": list(formats),
        "files": output_names(data.period.label),
    }


def output_names(period: str) -> dict[str, str]:
    """File names of each published format inside the output folder."""
    return {
        "html": "index.html",
        "pdf": f"report-{period}.pdf",
        "csv": f"rankings-{period}.csv",
        "json": f"rankings-{period}.json",
        "anchor": f"evidence-anchor-{period}.json",
    }


def render_html(
    data: ReportData,
    out_dir: Path,
    env: Environment,
    override_dir: Path | None = None,
    formats: Sequence[str] = ("html",),
) -> Path:
    """Write the static site (index, one page per SP, methodology, CSS); return index.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sp").mkdir(exist_ok=True)
    ctx = _context(data, formats)
    shutil.copyfile(_style("style.css", override_dir), out_dir / "style.css")
    index = out_dir / "index.html"
    index.write_text(env.get_template("index.html.j2").render(ctx, root=""), encoding="utf-8")
    (out_dir / "methodology.html").write_text(
        env.get_template("methodology.html.j2").render(ctx, root=""), encoding="utf-8"
    )
    sp_template = env.get_template("sp.html.j2")
    for entry in data.ranking.entries:
        code = entry.tally.sp_code
        page = sp_template.render(ctx, root="../", entry=entry, detail=data.details.get(code))
        (out_dir / "sp" / f"{sp_slug(code)}.html").write_text(page, encoding="utf-8")
    return index


def _sparks(data: ReportData) -> dict[str, Markup]:
    """One small trend line (integrity and quality) per SP, for the PDF's SP sections."""
    maps = _score_maps(data.history)
    sparks: dict[str, Markup] = {}
    for entry in data.ranking.entries:
        code = entry.tally.sp_code
        sparks[code] = sparkline(
            [
                Series(
                    "integrity", INTEGRITY_COLOR, [m[code][0] if code in m else None for m in maps]
                ),
                Series("quality", QUALITY_COLOR, [m[code][1] if code in m else None for m in maps]),
            ]
        )
    return sparks


def pdf_html(data: ReportData, env: Environment, override_dir: Path | None = None) -> str:
    """The single HTML document WeasyPrint turns into the PDF (kept separate for tests).

    The SP sections are compact (a line of figures, a sparkline, the findings
    with excerpts cut at PDF_EXCERPT_CHARS): the layout engine's cost grows
    with the number of boxes, and a national publication has thousands of SPs.
    """
    ctx = _context(data, ("pdf",), charts=False)
    css = _style("pdf.css", override_dir).read_text(encoding="utf-8")
    template = env.get_template("report_pdf.html.j2")
    return template.render(
        ctx, root="", css=Markup(css), sp_sparks=_sparks(data), pdf_excerpt=PDF_EXCERPT_CHARS
    )


def render_pdf(
    data: ReportData, out_path: Path, env: Environment, override_dir: Path | None = None
) -> Path:
    """Write the PDF (page numbers and a table of contents come from pdf.css and the template)."""
    from weasyprint import HTML  # imported here: heavy, and only the PDF needs it

    out_path.parent.mkdir(parents=True, exist_ok=True)
    document = pdf_html(data, env, override_dir)
    HTML(string=document, base_url=str(out_path.parent)).write_pdf(str(out_path))
    return out_path


def default_generated_at(tz: str = "Asia/Shanghai") -> datetime:
    """Now, in the carrier's zone: the time printed on the publication."""
    return datetime.now(ZoneInfo(tz)).replace(microsecond=0)

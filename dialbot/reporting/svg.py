"""Small inline SVG line charts for score trends: no JavaScript, no CDN, prints in the PDF.

Scores live on 0–100, so the y axis is fixed to that range: two SPs' charts
can be compared at a glance, and a drop is never exaggerated by autoscaling.
A period in which the SP was not probed is a gap in the line, not a zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape


@dataclass(frozen=True)
class Series:
    """One line: a label, a CSS colour and one value per period (None = not probed)."""

    label: str
    color: str
    values: Sequence[float | None]


def _segments(points: list[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    runs: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for point in points:
        if point is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(point)
    if current:
        runs.append(current)
    return runs


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    width: int = 560,
    height: int = 180,
    title: str = "",
) -> Markup:
    """An SVG line chart of scores (0–100) over periods, labels escaped.

    Styling is in presentation attributes, not CSS classes: WeasyPrint does not
    apply the page's stylesheet inside inline SVG.
    """
    left, right, top, bottom = 34, 22, 10, 34
    plot_w = width - left - right
    plot_h = height - top - bottom
    count = max(len(labels), 1)
    step = plot_w / max(count - 1, 1)

    def x(i: int) -> float:
        return left + (i * step if count > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - max(0.0, min(100.0, v)) / 100)

    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in (0, 25, 50, 75, 100):
        ty = y(tick)
        out.append(
            f'<line x1="{left}" y1="{ty:.1f}" x2="{width - right}" y2="{ty:.1f}" stroke="#e3e8ee" stroke-width="1"/>'
            f'<text x="{left - 4}" y="{ty + 3:.1f}" font-size="10" fill="#555" text-anchor="end">{tick}</text>'
        )
    for i, label in enumerate(labels):
        out.append(
            f'<text x="{x(i):.1f}" y="{height - bottom + 14}" font-size="10" fill="#555" '
            f'text-anchor="middle">{escape(label[2:] if len(labels) > 6 else label)}</text>'
        )
    for n, s in enumerate(series):
        pts = [None if v is None else (x(i), y(v)) for i, v in enumerate(s.values)]
        for run in _segments(pts):
            coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in run)
            out.append(
                f'<polyline points="{coords}" fill="none" stroke="{escape(s.color)}" '
                f'stroke-width="2"/>'
            )
        for point in pts:
            if point is not None:
                out.append(
                    f'<circle cx="{point[0]:.1f}" cy="{point[1]:.1f}" r="2.5" '
                    f'fill="{escape(s.color)}"/>'
                )
        lx = left + n * 230
        out.append(
            f'<rect x="{lx}" y="{height - 12}" width="10" height="3" fill="{escape(s.color)}"/>'
            f'<text x="{lx + 14}" y="{height - 8}" font-size="10" fill="#333">{escape(s.label)}</text>'
        )
    out.append("</svg>")
    return Markup("".join(out))


def sparkline(series: Sequence[Series], width: int = 120, height: int = 24) -> Markup:
    """A label-less trend line (0–100) small enough to sit beside a heading in the PDF."""
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}">',
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="none" '
        f'stroke="#d0d7de" stroke-width="1"/>',
    ]
    for s in series:
        count = max(len(s.values), 2)
        step = (width - 6) / (count - 1)
        pts = [
            None
            if v is None
            else (3 + i * step, 3 + (height - 6) * (1 - max(0.0, min(100.0, v)) / 100))
            for i, v in enumerate(s.values)
        ]
        for run in _segments(pts):
            if len(run) == 1:
                px, py = run[0]
                out.append(
                    f'<circle cx="{px:.1f}" cy="{py:.1f}" r="1.5" fill="{escape(s.color)}"/>'
                )
                continue
            coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in run)
            out.append(
                f'<polyline points="{coords}" fill="none" stroke="{escape(s.color)}" '
                f'stroke-width="1.5"/>'
            )
    out.append("</svg>")
    return Markup("".join(out))

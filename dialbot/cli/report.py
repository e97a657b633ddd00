"""`dialbot rank` and `dialbot report`: the period's SP integrity ranking, shown or published."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from dialbot.cli._db import open_db
from dialbot.cli.common import get_config, output_console
from dialbot.errors import InputError
from dialbot.reporting.data import rank
from dialbot.reporting.period import Period, parse_period
from dialbot.reporting.publish import FORMATS, parse_formats, publish_period
from dialbot.reporting.scoring import Ranking


def _period(_ctx: click.Context, _param: click.Parameter, value: str) -> Period:
    try:
        return parse_period(value)
    except InputError as exc:
        raise click.BadParameter(exc.reason) from exc


def _formats(_ctx: click.Context, _param: click.Parameter, value: str) -> list[str]:
    try:
        return parse_formats(value)
    except InputError as exc:
        raise click.BadParameter(f"{exc.where}: {exc.reason}") from exc


def ranking_table(ranking: Ranking) -> Table:
    """The ranking as a rich table: ranked SPs first, then the unranked without a rank."""
    table = Table(
        title=f"SP 诚信排名 SP integrity ranking · {ranking.period} · {ranking.methodology}"
    )
    for header, justify in (
        ("排名\nRank", "right"),
        ("SP", "left"),
        ("代码\nCode", "left"),
        ("诚信\nIntegr.", "right"),
        ("质量\nQuality", "right"),
        ("质量排名\nQ.rank", "right"),
        ("拨测\nProbes", "right"),
        ("业务\nSvcs", "right"),
        ("严/重/般/质\nC/M/m/Q", "right"),
    ):
        table.add_column(header, justify=justify, no_wrap=header == "SP")  # type: ignore[arg-type]
    for entry in ranking.entries:
        sev = entry.tally.by_severity()
        table.add_row(
            str(entry.rank) if entry.rank is not None else "—",
            entry.tally.sp_name,
            entry.tally.sp_code,
            f"{entry.integrity_score:.1f}",
            f"{entry.quality_score:.1f}",
            str(entry.quality_rank) if entry.quality_rank is not None else "—",
            str(entry.tally.probes),
            str(entry.tally.services_tested),
            f"{sev['critical']}/{sev['major']}/{sev['minor']}/{sev['quality']}",
            style=None if entry.ranked else "dim",
        )
    return table


@click.command("rank")
@click.option("--period", "period", required=True, callback=_period, help="YYYY-MM or YYYY-Qn.")
@click.pass_context
def rank_cmd(ctx: click.Context, period: Period) -> None:
    """Print the period's SP integrity ranking."""
    sessions = open_db(ctx)
    with sessions() as session:
        ranking = rank(session, period)
    console = output_console()
    if not ranking.entries:
        console.print(f"本期没有经判定的拨测 · no judged probes in {period.label}")
        return
    console.print(ranking_table(ranking))
    if ranking.unranked():
        console.print("— 样本不足，不参与排名 · below the minimum sample, not ranked", style="dim")


@click.command("report")
@click.option("--period", "period", required=True, callback=_period, help="YYYY-MM or YYYY-Qn.")
@click.option(
    "--format",
    "formats",
    default=",".join(FORMATS),
    show_default=True,
    callback=_formats,
    help="Comma-separated formats to publish.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default: <reports>/out/<period>/).",
)
@click.pass_context
def report_cmd(
    ctx: click.Context, period: Period, formats: list[str], out_dir: Path | None
) -> None:
    """Publish the period's ranking as HTML, PDF, CSV and JSON."""
    reports = get_config(ctx).paths.reports
    data, written = publish_period(open_db(ctx), period, reports, out_dir, formats)
    console = output_console()
    console.print(
        f"{period.label}: {len(data.ranking.ranked())} ranked, "
        f"{len(data.ranking.unranked())} below the minimum sample"
    )
    for name, path in written.items():
        console.print(f"  {name:<4} {path}")

"""How probes and sweeps show themselves on a console: progress, transcript, summary.

Shared by `dialbot probe`, `dialbot sweep` and `dialbot demo`. Texts that
SPs sent are shown verbatim but as plain text (rich markup is never
interpreted in them: they are untrusted input).
"""

from __future__ import annotations

import threading
from collections import Counter
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from dialbot.db.evidence import EventRow
from dialbot.flows.runner import RunOutcome
from dialbot.flows.sweep import SweepReport
from dialbot.judge.model import Finding
from dialbot.modem.inbox import DEFAULT_TZ


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


class ProgressListener:
    """A rich progress bar for a sweep (thread-safe: rich's Progress locks itself)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]sweep"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[found]} findings"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("sweep", total=None, found=0)
        self._found = 0
        self._lock = threading.Lock()

    def __enter__(self) -> ProgressListener:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def planned(self, total: int) -> None:
        self.progress.update(self.task, total=total)

    def finished(self, outcome: RunOutcome, retried: bool) -> None:
        with self._lock:
            self._found += len(outcome.findings)
        if outcome.state.value == "infra_failed":
            then = "retried on another modem" if retried else "given up"
            self.console.log(
                f"[yellow]{escape(outcome.modem)}[/]: {escape(_name(outcome))} "
                f"infrastructure failure ({escape(outcome.error or '')}), {then}"
            )
        self.progress.update(self.task, advance=0 if retried else 1, found=self._found)

    def note(self, text: str) -> None:
        if "benched" in text:
            self.console.log(f"[yellow]{escape(text)}")


def _name(outcome: RunOutcome) -> str:
    s = outcome.service
    return f"{s.sp_code}/{s.service_code} {outcome.flow}" if s else outcome.flow


def transcript_line(row: EventRow) -> str:
    """One live transcript line (markup-safe)."""
    at = row.at.astimezone(DEFAULT_TZ).strftime("%H:%M:%S.%f")[:-3]
    data = row.data if isinstance(row.data, dict) else {}
    text = escape((row.text or "").replace("\n", " "))
    if row.kind == "sms_out":
        return f"{at} [cyan]→ {escape(row.peer or '')}[/] {text}"
    if row.kind == "sms_in":
        return f"{at} [green]← {escape(row.peer or '')}[/] {text}"
    if row.kind == "balance":
        return f"{at} [magenta]balance[/] {yuan(int(data.get('balance_fen', 0)))} 元"
    if row.kind == "subscriptions":
        items = data.get("items") or []
        listed = "、".join(f"{i['service']}（{i['sp']}）" for i in items) or "none"
        return f"{at} [magenta]subscriptions[/] {escape(listed)}"
    if row.kind == "modem_fault":
        return f"{at} [red]modem fault[/] {text}"
    if row.kind == "http":
        led = data.get("led_by") or {}
        how = escape(f"{led.get('how', '')} {led.get('text', '')}".strip())
        url = escape(str(data.get("url", "")))
        return f"{at} [blue]⇄ {escape(row.peer or '')}[/] {url} ({how}, {data.get('size', 0)} B)"
    if row.kind == "wap_push":
        return f"{at} [green]← push {escape(row.peer or '')}[/] {text}"
    if row.kind == "call":
        return f"{at} [cyan]☎ {escape(row.peer or '')}[/] {text}"
    return f"{at} [dim]{text}[/]"


SEVERITY_STYLE = {"critical": "red", "major": "yellow", "minor": "", "quality": "dim"}


def findings_table(findings: list[Finding], title: str = "Findings") -> Table:
    """Codes, amounts and evidence never wrap; the detail takes what width is left."""
    table = Table(title=title, caption="[red]critical[/] [yellow]major[/] minor [dim]quality[/]")
    for column in ("SP", "service", "code", "fen", "at"):
        table.add_column(column, no_wrap=True)
    table.add_column("evidence", overflow="fold", min_width=8)
    table.add_column("detail", overflow="fold", ratio=1, min_width=16)
    for f in sorted(findings, key=lambda f: (f.sp_code, f.service_code, f.code)):
        table.add_row(
            escape(f.sp_code or "?"),
            escape(f.service_code or ""),
            f"[{SEVERITY_STYLE.get(f.severity, '')}]{f.code}[/]"
            if SEVERITY_STYLE.get(f.severity)
            else f.code,
            str(f.amount_fen),
            f.observed_at.astimezone(DEFAULT_TZ).strftime("%H:%M:%S"),
            " ".join(str(i) for i in f.evidence),
            escape(f.detail),
        )
    return table


def print_report(console: Console, report: SweepReport) -> None:
    """The findings, then a summary of what was probed and what was not."""
    findings = report.findings
    if findings:
        console.print(findings_table(findings))
    else:
        console.print("[green]No violations found.")
    services = {(o.service.sp_code, o.service.service_code) for o in report.outcomes if o.service}
    codes = Counter(f.code for f in findings)
    retried = sum(1 for o in report.outcomes if o.retry_of is not None)
    summary = Table(title="Sweep summary", show_header=False)
    summary.add_row("services probed", str(len(services)))
    summary.add_row("probe runs completed", str(len(report.outcomes)))
    summary.add_row("hygiene checks", str(len(report.hygiene)))
    summary.add_row("messages watched", str(sum(w.messages for w in report.watch)))
    if report.recovered:
        summary.add_row("runs a dead process left, judged", str(len(report.recovered)))
    summary.add_row("findings", ", ".join(f"{c} {n}" for n, c in codes.most_common()) or "0")
    summary.add_row("wall time", f"{report.wall_s:.1f} s")
    if retried:
        summary.add_row("retried", str(retried))
    for label, reason in report.benched.items():
        summary.add_row(f"modem {escape(label)} benched", escape(reason))
    for item in report.out_of_reach:
        summary.add_row(
            f"not reachable: {item.sp_code}/{item.service_code}", f"{item.flow}: {item.reason}"
        )
    for item in report.not_probed:
        summary.add_row(
            f"[red]not probed: {item.sp_code}/{item.service_code}",
            f"{item.flow}: {escape(item.reason)}",
        )
    if report.pending:
        sims = sorted({ob.sim for ob in report.pending})
        summary.add_row("[red]SIMs still to clean", str(len(sims)))
    console.print(summary)

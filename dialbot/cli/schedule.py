"""`dialbot schedule list|next|run`: what runs when, and running one now.

`list` and `next` read the schedule files (fire times come from the same
CronTrigger the daemon uses) and, when the database can be reached, say
what coverage the next night would reach (a preview from the database, see
:mod:`dialbot.scheduling.preview`); `run NAME` runs one night in the
foreground — cleanup, plan (or resume), dispatch — with a progress bar, and
says at the end what coverage it reached and what crashes cost it.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dialbot.cli._db import EXIT_DATABASE, open_db
from dialbot.cli.common import command_log, get_config, output_console
from dialbot.db.engine import engine_of, open_database
from dialbot.db.outage import DatabaseUnavailable
from dialbot.db.types import utcnow
from dialbot.errors import ConfigError, DialbotError
from dialbot.flows.loader import scheduled_flows
from dialbot.scheduling.models import FINAL_ITEM_STATES, NightPlan
from dialbot.scheduling.nights import progress as night_progress
from dialbot.scheduling.preview import coverage_text, preview_night
from dialbot.scheduling.runtime import resolve_runtime
from dialbot.scheduling.schedules import Schedule, find_schedule, load_schedules
from dialbot.scheduling.service import run_night

log = logging.getLogger("dialbot.cli.schedule")


def _schedules(ctx: click.Context) -> list[Schedule]:
    try:
        return load_schedules(get_config(ctx).paths.schedules)
    except ConfigError as exc:
        click.echo(f"Error: schedule: {exc}", err=True)
        ctx.exit(2)
    raise AssertionError("unreachable")


PREVIEW_WAIT_S = 3.0  # how long `schedule list`/`next` wait for a database that is away


def _previews(ctx: click.Context, schedules: list[Schedule], now: datetime) -> dict[str, str]:
    """Per schedule: the coverage its next night would reach; empty without a database."""
    config = get_config(ctx)
    try:
        # a preview is a nicety: a database that is away is not waited for as a night would
        db = open_database(config.database_url, outage_limit_s=PREVIEW_WAIT_S)
        flows = scheduled_flows(config.paths.probes)
    except (DialbotError, SQLAlchemyError) as exc:
        log.info("no coverage preview", extra={"reason": str(exc).splitlines()[0]})
        return {}
    out: dict[str, str] = {}
    try:
        for schedule in schedules:
            found = preview_night(db, schedule, flows, config.probe.time_scale, now)
            if found is not None:
                out[schedule.name] = coverage_text(found[1])
    except (DialbotError, SQLAlchemyError) as exc:
        log.info("no coverage preview", extra={"reason": str(exc).splitlines()[0]})
    finally:
        engine_of(db).dispose()
    return out


def _row(schedule: Schedule, now: datetime, tonight: str | None = None) -> dict[str, Any]:
    fire = schedule.next_run(now)
    return {
        "name": schedule.name,
        "cron": schedule.cron,
        "timezone": str(schedule.timezone),
        "next_run": fire.isoformat() if fire else None,
        "window_end": schedule.window_end_after(fire).isoformat() if fire else None,
        "coverage": schedule.coverage,
        "flows": list(schedule.flows),
        "per_sp_concurrency": schedule.per_sp_concurrency,
        "source": schedule.source,
        "tonight": tonight,
    }


def _short(stamp: str | None) -> str:
    """2026-11-27T01:00:00+08:00 → 2026-11-27 01:00 (already in the schedule's zone)."""
    return stamp[:16].replace("T", " ") if stamp else ""


@click.group()
def schedule() -> None:
    """Schedules from schedules/*.toml: list them, see what is next, run one now."""


@schedule.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """Every schedule with its next run time."""
    now = utcnow()
    schedules = _schedules(ctx)
    previews = _previews(ctx, schedules, now)
    rows = [_row(s, now, previews.get(s.name)) for s in schedules]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table("name", "cron", "timezone", "next run", "window end", "coverage", "flows",
                  "next night (preview)")  # fmt: skip
    for r in rows:
        table.add_row(r["name"], r["cron"], r["timezone"], _short(r["next_run"]) or "never",
                      _short(r["window_end"]), r["coverage"], ", ".join(r["flows"]),
                      r["tonight"] or "-")  # fmt: skip
    output_console().print(table)


@schedule.command("next")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def next_cmd(ctx: click.Context, as_json: bool) -> None:
    """The schedule that fires next, and when."""
    now = utcnow()
    schedules = _schedules(ctx)
    rows = [r for r in (_row(s, now) for s in schedules) if r["next_run"]]
    if not rows:
        click.echo("no schedule will fire", err=True)
        ctx.exit(1)
    first = min(rows, key=lambda r: datetime.fromisoformat(r["next_run"]))
    chosen = [s for s in schedules if s.name == first["name"]]
    first["tonight"] = _previews(ctx, chosen, now).get(first["name"])
    if as_json:
        click.echo(json.dumps(first, ensure_ascii=False))
    else:
        click.echo(f"{first['name']} at {first['next_run']} (window until {first['window_end']})")
        if first["tonight"]:
            click.echo(f"  {first['tonight']}")


@schedule.command("run")
@click.argument("name")
@click.option(
    "--window",
    "window_min",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Window length in minutes (default: until the schedule's end).",
)
@click.option(
    "--runtime",
    "runtime_spec",
    default=None,
    help="module:function giving the dispatcher (default: this host's fleet).",
)
@click.pass_context
def run_cmd(
    ctx: click.Context, name: str, window_min: float | None, runtime_spec: str | None
) -> None:
    """Run NAME's night now, in the foreground."""
    command_log(get_config(ctx), console=True)
    schedules = _schedules(ctx)
    try:
        chosen = find_schedule(schedules, name)
    except LookupError as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(2)
    db = open_db(ctx)
    try:
        runtime = resolve_runtime(runtime_spec)(get_config(ctx), db)
    except DialbotError as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(2)
    window = timedelta(minutes=window_min) if window_min else None
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=False) as bar:  # fmt: skip
        task = bar.add_task(name, total=None)
        state: dict[str, int] = {}

        def on_plan(plan_id: int, _what: str) -> None:
            counts = night_progress(db, plan_id)
            done = sum(n for s, n in counts.items() if s in FINAL_ITEM_STATES)
            bar.update(task, total=sum(counts.values()), completed=done)
            state["plan"] = plan_id

        def on_item(_item: int, new: str) -> None:
            if new in FINAL_ITEM_STATES:
                bar.advance(task)

        try:
            result = run_night(db, chosen, runtime, window=window, on_plan=on_plan,
                               on_item=on_item)  # fmt: skip
        except DatabaseUnavailable as exc:  # past [database] outage_limit_s
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(EXIT_DATABASE)
        except DialbotError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)
        finally:
            runtime.close()
    summary = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()))
    click.echo(f"night {result.night.night} of {name}: {summary or 'nothing planned'}")
    for note in _coverage_notes(db, result.night.id):
        click.echo(note)
    click.echo(result.crashes.line())
    click.echo(result.moved_line())


def _coverage_notes(db: sessionmaker[Session], plan_id: int) -> list[str]:
    """The plan's notes that say what coverage the night reaches."""
    with db() as session:
        notes = session.scalar(select(NightPlan.notes).where(NightPlan.id == plan_id)) or []
    return [n for n in notes if n.startswith("covers ")]

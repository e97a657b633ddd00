"""Benchmark of the rankings publication: 2,000 SPs × 12 periods of findings.

Fills a database (SQLite file and/or PostgreSQL) with a synthetic year of
judged probes, findings and the findings' evidence, then times:

- ranking computation: SQL aggregation + methodology v1, one period, and all
  twelve periods (what the trend charts need);
- loading the whole publication (12 rankings + the period's details);
- rendering the static site (index + 2,000 SP pages + methodology);
- rendering the PDF with WeasyPrint.

Prints the median of --repeat runs of each. Goals (issue 6): HTML < 10 s,
PDF < 60 s. Usage:

    .venv/bin/python bench/report_bench.py [--sps 2000] [--periods 12] \
        [--db sqlite,postgresql] [--repeat 3] [--pdf-repeat 1] [--no-pdf]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from dialbot.db.engine import open_database
from dialbot.db.models import EvidenceEvent, Finding, Run, Service, Sp
from dialbot.reporting.data import load_report, rank
from dialbot.reporting.period import Period, parse_period
from dialbot.reporting.publish import publish
from dialbot.reporting.render import default_generated_at

TZ = ZoneInfo("Asia/Shanghai")
CODES = [
    ("OVERCHARGE", "critical"),
    ("UNCONFIRMED_CHARGE", "critical"),
    ("CANCEL_FAILED", "major"),
    ("UNSOLICITED_MESSAGE", "major"),
    ("PROMPT_INCOMPLETE", "minor"),
    ("MESSAGE_AFTER_CANCEL", "minor"),
    ("NO_RESPONSE", "quality"),
]
TEXTS = [
    "您已成功订购星河笑话，资费5元/月，回复TD退订。客服4008001001",
    '<script>alert("x")</script>回复Y确认订购，资费10元/月',
    "尊敬的客户，您的账户余额为12.34元。【中国移动】",
    "感谢订购！" * 80,
]


def _chunks(rows: list[dict[str, Any]], size: int = 5000) -> list[list[dict[str, Any]]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def _insert(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    for chunk in _chunks(rows):
        session.execute(insert(table), chunk)


def fill(sessions: sessionmaker[Session], n_sps: int, periods: list[Period], seed: int = 7) -> int:
    """Write the synthetic catalogue, runs, findings and evidence; return the number of runs."""
    rng = random.Random(seed)
    sps: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    for i in range(n_sps):
        sps.append(
            {"id": i + 1, "code": f"9{i:05d}", "name": f"测试信息{i:04d}科技", "hotline": None}
        )
        for j in range(rng.randint(1, 3)):
            services.append(
                {"id": len(services) + 1, "sp_id": i + 1, "code": f"S{j}", "name": f"业务{j}号",
                 "access_number": f"10658{i:05d}{j}", "billing": "monthly", "price_fen": 500,
                 "subscribe_cmd": "DG", "cancel_cmd": "TD", "version": 1}
            )  # fmt: skip
    runs: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    bad = {sp["id"]: rng.random() ** 3 for sp in sps}  # a few SPs misbehave a lot
    for period in periods:
        start, end = period.bounds()
        span = (end - start).total_seconds()
        for svc in services:
            for _ in range(rng.randint(1, 5)):
                at = start + timedelta(seconds=rng.uniform(0, span - 600))
                run_id = len(runs) + 1
                runs.append(
                    {"id": run_id, "flow": "order_cancel", "state": "done", "sp_id": svc["sp_id"],
                     "service_id": svc["id"], "attempt": 1, "started_at": at,
                     "ended_at": at + timedelta(minutes=5), "created_at": at}
                )  # fmt: skip
                if rng.random() >= bad[svc["sp_id"]]:
                    continue
                ids = []
                for k in range(2):
                    eid = len(events) + 1
                    ids.append(eid)
                    events.append(
                        {"id": eid, "run_id": run_id, "sim": f"1380013{eid % 10000:04d}",
                         "at": at + timedelta(seconds=k), "kind": "sms_in" if k else "sms_out",
                         "peer": svc["access_number"], "text": rng.choice(TEXTS) if k else "DG",
                         "raw": None, "data": None, "prev_hash": f"{eid - 1:064x}", "hash": f"{eid:064x}"}
                    )  # fmt: skip
                code, severity = rng.choice(CODES)
                findings.append(
                    {"run_id": run_id, "sp_code": sps[svc["sp_id"] - 1]["code"],
                     "service_code": svc["code"], "code": code, "severity": severity,
                     "amount_fen": 500, "observed_at": at, "sim": "13800138000", "evidence": ids}
                )  # fmt: skip
    with sessions.begin() as session:
        _insert(session, Sp.__table__, sps)
        _insert(session, Service.__table__, services)
        _insert(session, Run.__table__, runs)
        _insert(session, EvidenceEvent.__table__, events)
        _insert(session, Finding.__table__, findings)
    print(
        f"  filled: {len(sps)} SPs, {len(services)} services, {len(runs)} runs, "
        f"{len(findings)} findings, {len(events)} evidence events",
        flush=True,
    )
    return len(runs)


def timed(label: str, repeat: int, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` ``repeat`` times, print the median seconds, return the last result."""
    times: list[float] = []
    result: Any = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    print(f"  {label:<42} median {statistics.median(times):8.3f} s  (n={repeat})", flush=True)
    return result


def _pg_database(admin: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{admin.rsplit('/', 1)[0]}/{name}"


def bench_database(url: str, args: argparse.Namespace, out: Path) -> None:
    """Fill one database and time ranking, loading and rendering against it."""
    period = parse_period(args.period)
    history = period.history(args.periods)
    sessions = open_database(url)
    t0 = time.perf_counter()
    fill(sessions, args.sps, history)
    print(f"  fill time {time.perf_counter() - t0:.1f} s (not a goal)")

    def one() -> Any:
        with sessions() as session:
            return rank(session, period)

    def twelve() -> Any:
        with sessions() as session:
            return [rank(session, p) for p in history]

    def load() -> Any:
        with sessions() as session:
            return load_report(session, period, default_generated_at(), history=args.periods)

    ranking = timed("ranking, one period (SQL + scoring)", args.repeat, one)
    print(f"    ranked {len(ranking.ranked())}, unranked {len(ranking.unranked())}")
    timed(f"ranking, {args.periods} periods", args.repeat, twelve)
    data = timed("load publication data (12 rankings + details)", args.repeat, load)
    n_findings = sum(len(d.findings) for d in data.details.values())
    print(f"    current period: {len(data.ranking.entries)} SPs, {n_findings} findings quoted")
    if args.render:
        site = out / "site"
        timed("render HTML site", args.repeat, lambda: publish(data, site, ["html"]))
        print(f"    {sum(1 for _ in site.rglob('*.html'))} pages")
        timed("write CSV + JSON", args.repeat, lambda: publish(data, out / "open", ["csv", "json"]))
        if not args.no_pdf:
            pdf = timed(
                "render PDF (WeasyPrint)", args.pdf_repeat, lambda: publish(data, out, ["pdf"])
            )
            print(f"    {pdf['pdf'].stat().st_size / 1e6:.1f} MB")
    sessions.kw["bind"].dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sps", type=int, default=2000)
    parser.add_argument("--periods", type=int, default=12)
    parser.add_argument("--period", default="2026-11")
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pdf-repeat", type=int, default=1)
    parser.add_argument("--no-pdf", action="store_true")
    args = parser.parse_args(argv)
    print(f"report bench: {args.sps} SPs × {args.periods} periods, period {args.period}")
    with tempfile.TemporaryDirectory(prefix="dialbot-report-bench-") as tmp:
        for i, kind in enumerate(k.strip() for k in args.db.split(",") if k.strip()):
            args.render = i == 0  # rendering does not depend on the database: time it once
            print(f"[{kind}]" + ("" if args.render else " (ranking only)"), flush=True)
            if kind == "sqlite":
                url = f"sqlite:///{tmp}/bench.db"
            elif kind == "postgresql":
                try:
                    url = _pg_database(args.pg, "dialbot_report_bench")
                except Exception as exc:  # report and go on with the other database
                    print(f"  skipped: PostgreSQL unavailable ({exc})")
                    continue
            else:
                print(f"unknown database {kind!r}", file=sys.stderr)
                return 2
            bench_database(url, args, Path(tmp) / kind)
    print(f"done at {datetime.now(UTC).astimezone(TZ).isoformat(timespec='seconds')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

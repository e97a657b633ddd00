"""Benchmark of the central PostgreSQL at fleet scale (issue 7).

1. Ingestion: 256 busy writers (one per modem, spread over several worker
   processes as on several probe hosts) append evidence events through
   ``dialbot.db.evidence.append_event`` — the hash chain serialises them on
   the chain head — as fast as they can for a while. Prints events/s and the
   append latency, then verifies the chain they built. With ``--pdus`` they
   go the way a received message goes: every ``sms_in`` is a real
   SMS-DELIVER PDU committed to the receipt log first (``DbPduStore.store``,
   as the driver does before ``AT+CMGD``), then recorded with its receipt
   (claimed in the event's transaction); every ``sms_out`` carries its real
   SMS-SUBMIT PDU.
2. Ranking: a database with 10 million evidence events and 100,000 findings
   (written server-side with generate_series: realistic sizes and indexes,
   but hashes that do not form a chain), then times the period ranking
   (``dialbot.reporting.data.rank``) and the period's findings with their
   evidence excerpts (``load_findings``).

Each part uses a fresh database on the server, dropped at the end. Goals:
ingestion never the bottleneck of the fleet; the ranking in under 10 s.

    .venv/bin/python bench/ingest_bench.py [--writers 256] [--processes 8] \
        [--seconds 20] [--events 10000000] [--findings 100000] [--skip-ranking]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import secrets
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from dialbot.db.engine import engine_of, make_engine, open_database
from dialbot.db.evidence import NewEvent, append_events, verify_chain
from dialbot.reporting.data import load_findings, rank
from dialbot.reporting.period import parse_period

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TEXT = "您已成功订购星河笑话，资费5元/月，回复TD退订。客服4008001001"


@contextmanager
def fresh_database(admin_url: str, keep: bool = False) -> Iterator[str]:
    name = f"dialbot_bench_{secrets.token_hex(4)}"
    libpq = make_url(admin_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        if not keep:
            with psycopg.connect(libpq, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- ingestion ---------------------------------------------------------------------------


def _real_pdus() -> tuple[str, str]:
    """A real SMS-DELIVER (from the SP) and SMS-SUBMIT (to the SP) as hex."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from dialbot.flows.record import submit_pdus
    from dialbot.sim.smscodec import encode_deliver

    sent = datetime.now(ZoneInfo("Asia/Shanghai"))
    deliver = encode_deliver("1065800101", TEXT, sent, "+8613800100500", 1)[0].pdu
    return deliver, submit_pdus("1065800101", "TD")


def _host(
    url: str,
    first: int,
    writers: int,
    pool: int,
    seconds: float,
    batch: int,
    out: Any,
    pdus: bool = False,
) -> None:
    """One probe host: ``writers`` modem threads sharing a pool of ``pool`` connections."""
    from sqlalchemy.orm import sessionmaker

    from dialbot.db.received import DbPduStore
    from dialbot.modem.inbox import read_pdu

    engine = make_engine(url, pool_size=pool, max_overflow=0, pool_timeout=120)
    db = sessionmaker(bind=engine, expire_on_commit=False)
    latencies: list[list[tuple[float, bool]]] = [[] for _ in range(writers)]
    deliver, submit = _real_pdus()  # before the clock starts (imports, encoding)
    stamp = read_pdu("/dev/bench", "SM", 0, deliver, _now()).scts
    scts = stamp.isoformat() if stamp else None
    start = threading.Barrier(writers + 1)
    deadline = [0.0]

    def modem(i: int) -> None:
        sim = f"139{first + i:08d}"
        mine = latencies[i]
        store = DbPduStore(db, f"bench/{first + i}", sim)
        start.wait()
        n = 0
        while time.monotonic() < deadline[0]:
            t0 = time.perf_counter()
            if not pdus:
                append_events(db, [NewEvent("sms_in" if k % 2 else "sms_out", sim=sim,
                                            peer="10660001", text=TEXT,
                                            raw="0891683108200105F0" * 4) for k in range(batch)])  # fmt: skip
            else:  # the received ones stored first, as one sweep's listing, then recorded
                js = [n * batch + k for k in range(batch)]
                items = [read_pdu("/dev/bench", "SM", j, deliver, _now()) for j in js if j % 2]
                receipts = iter(store.store_many(items) if items else [])
                events = []
                for j in js:
                    if j % 2:
                        receipt = next(receipts)
                        store.deleted(receipt.id)
                        events.append(NewEvent("sms_in", sim=sim, peer="1065800101", text=TEXT,
                                               raw=deliver, receipts=(receipt.id,),
                                               data={"scts": scts}))  # fmt: skip
                    else:
                        events.append(NewEvent("sms_out", sim=sim, peer="1065800101",
                                               text="TD", raw=submit))  # fmt: skip
                append_events(db, events)
            # (latency, committed within the window): an append that waited past the
            # deadline for a pooled connection is not counted in the rate
            mine.append((time.perf_counter() - t0, time.monotonic() <= deadline[0]))
            n += 1

    threads = [threading.Thread(target=modem, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    deadline[0] = time.monotonic() + seconds
    start.wait()
    for t in threads:
        t.join()
    engine.dispose()
    out.put([x for lat in latencies for x in lat])


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def ingestion(
    url: str,
    writers: int,
    processes: int,
    pool: int,
    seconds: float,
    batch: int,
    pdus: bool = False,
) -> None:
    open_database(url)  # schema
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    per = writers // processes
    procs = [
        ctx.Process(target=_host, args=(url, p * per, per, pool, seconds, batch, out, pdus))
        for p in range(processes)
    ]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    appends = [x for _ in procs for x in out.get()]
    for p in procs:
        p.join()
    wall = time.monotonic() - t0
    latencies = sorted(lat for lat, _ in appends)
    n = len(latencies)
    events = sum(inside for _, inside in appends) * batch
    late = (n - sum(inside for _, inside in appends)) * batch
    how = "real PDUs, received ones stored first" if pdus else "placeholder raw"
    print(f"ingestion ({how}): {writers} writers in {processes} processes ({pool} connections "
          f"each), {batch} event(s) per append, {seconds:.0f} s: {events} events, "
          f"{events / seconds:,.0f} events/s ({late} more committed after the window)")  # fmt: skip
    print(f"  append latency (one transaction): median {statistics.median(latencies) * 1000:.1f} ms, "
          f"p95 {latencies[int(n * 0.95)] * 1000:.1f} ms, max {latencies[-1] * 1000:.0f} ms "
          f"(wall with start-up {wall:.1f} s)")  # fmt: skip
    db = open_database(url)
    t0 = time.perf_counter()
    result = verify_chain(db)
    print(f"  chain verified: ok={result.ok}, {result.checked} events in "
          f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
    engine_of(db).dispose()


# -- ranking -----------------------------------------------------------------------------

FILL_SQL = [
    (
        "SPs",
        """INSERT INTO sps (id, code, name, hotline, created_at, updated_at)
        SELECT i, '9' || lpad(i::text, 5, '0'), '测试信息' || i || '科技', NULL, now(), now()
        FROM generate_series(1, %(sps)s) i""",
    ),
    (
        "services",
        """INSERT INTO services (id, sp_id, code, name, access_number, billing,
            price_fen, subscribe_cmd, cancel_cmd, use_cmd, region, version, created_at,
            updated_at)
        SELECT i, 1 + (i - 1) %% %(sps)s, 'S' || i, '业务' || i, '1066' || lpad(i::text, 6, '0'),
            'monthly', 500, 'DG', 'TD', NULL, NULL, 1, now(), now()
        FROM generate_series(1, %(services)s) i""",
    ),
    (
        "runs",
        """INSERT INTO runs (id, flow, state, sp_id, service_id, attempt, created_at,
            started_at, ended_at)
        SELECT i, 'decline', 'done', 1 + (i - 1) %% %(sps)s, 1 + (i - 1) %% %(services)s, 1,
            t, t, t + interval '5 minutes'
        FROM (SELECT i, timestamptz '2026-01-01 00:00+08'
                  + (i::float8 / %(runs)s) * interval '365 days' AS t
              FROM generate_series(1, %(runs)s) i) s""",
    ),
    (
        "evidence events",
        """INSERT INTO evidence_events (id, run_id, sim, at, kind, peer, text,
            raw, data, prev_hash, hash)
        SELECT i, 1 + (i - 1) %% %(runs)s, '139' || lpad((i %% 100000)::text, 8, '0'),
            timestamptz '2026-01-01 00:00+08' + (i::float8 / %(events)s) * interval '365 days',
            CASE WHEN i %% 2 = 0 THEN 'sms_in' ELSE 'sms_out' END, '10660001',
            '您已成功订购星河笑话，资费5元/月，回复TD退订。' || i, NULL, NULL,
            md5((i - 1)::text) || md5('p' || (i - 1)), md5(i::text) || md5('p' || i)
        FROM generate_series(1, %(events)s) i""",
    ),
    (
        "findings",
        """INSERT INTO findings (run_id, sp_code, service_code, code, severity,
            amount_fen, observed_at, sim, evidence, detail, created_at)
        SELECT r.id, '9' || lpad(r.sp_id::text, 5, '0'), 'S' || r.service_id,
            (ARRAY['OVERCHARGE','UNCONFIRMED_CHARGE','CANCEL_FAILED','UNSOLICITED_MESSAGE',
                   'PROMPT_INCOMPLETE'])[1 + f %% 5],
            (ARRAY['critical','critical','major','major','minor'])[1 + f %% 5],
            500, r.started_at, '13900000001',
            json_build_array(1 + (f * 97) %% %(events)s, 2 + (f * 97) %% %(events)s), NULL, now()
        FROM generate_series(1, %(findings)s) f
        JOIN runs r ON r.id = 1 + ((f::bigint * 7919) %% %(runs)s)""",
    ),
]


def fill_ranking(url: str, sizes: dict[str, int]) -> None:
    db = open_database(url)
    engine_of(db).dispose()
    libpq = make_url(url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("UPDATE evidence_head SET last_id = %(events)s", sizes)
        for label, sql in FILL_SQL:
            t0 = time.perf_counter()
            conn.execute(sql, sizes)
            print(f"  filled {label} in {time.perf_counter() - t0:.1f} s", flush=True)
        t0 = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        print(f"  vacuum analyze in {time.perf_counter() - t0:.1f} s", flush=True)


def timed(label: str, repeat: int, fn: Callable[[], Any]) -> Any:
    times: list[float] = []
    result: Any = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    print(f"  {label}: median {statistics.median(times):.3f} s (min {min(times):.3f}, "
          f"max {max(times):.3f}, {repeat} runs)", flush=True)  # fmt: skip
    return result


def ranking(url: str, sizes: dict[str, int], repeat: int) -> None:
    print(f"ranking: {sizes['events']:,} evidence events, {sizes['findings']:,} findings, "
          f"{sizes['runs']:,} runs, {sizes['sps']:,} SPs", flush=True)  # fmt: skip
    fill_ranking(url, sizes)
    db = open_database(url)
    month = parse_period("2026-06")
    with db() as session:
        r = timed("rank one month", repeat, lambda: rank(session, month))
        print(f"    {len(r.entries)} SPs ranked")
        timed("rank all 12 months", repeat,
              lambda: [rank(session, parse_period(f"2026-{m:02d}")) for m in range(1, 13)])  # fmt: skip
        f = timed("one month's findings with evidence excerpts", repeat,
                  lambda: load_findings(session, month))  # fmt: skip
        print(f"    {sum(len(v) for v in f.values())} findings loaded")
    engine_of(db).dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--writers", type=int, default=256)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--pool", type=int, default=8, help="connections per process")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=1, help="events per append transaction")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=500_000)
    parser.add_argument("--sps", type=int, default=2_000)
    parser.add_argument("--services", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pdus", action="store_true",
                        help="real PDUs; each received one stored in the receipt log first")  # fmt: skip
    parser.add_argument("--skip-ingestion", action="store_true")
    parser.add_argument("--skip-ranking", action="store_true")
    args = parser.parse_args()
    if not args.skip_ingestion:
        with fresh_database(args.admin_url) as url:
            ingestion(
                url, args.writers, args.processes, args.pool, args.seconds, args.batch, args.pdus
            )
    if not args.skip_ranking:
        sizes = {k: getattr(args, k) for k in ("events", "findings", "runs", "sps", "services")}
        with fresh_database(args.admin_url) as url:
            ranking(url, sizes, args.repeat)


if __name__ == "__main__":
    main()

"""The store as it grows: write_page throughput at 0 .. N stored posts, size per million, analyst queries.

Fills a migrated PostgreSQL store with generated posts spread over twelve months (one mention and one
metric snapshot each, 200 agencies, one author per 20 posts, as ``bench/ingest.py``: the authors table grows
with the store, and a page's author lookup must not grow with it) by ``INSERT ... SELECT generate_series`` in chunks,
and at each checkpoint measures ``write_page`` on fresh 500-post pages of new posts (the collectors'
path); the rate on the empty store is the baseline every later rate is divided by.  After the last
checkpoint it reports the size on disk per million posts, the two analyst questions read straight from
``post_mentions`` (one agency over a year by day; every agency over one month), and the monthly retention
step of the partitioned store (models/partitions.py): detaching the oldest month's partitions of posts,
mentions and snapshots (the part analysts wait on), then archiving them to gzip CSV and dropping them.
The store is partitioned by month (migration 0026); the fill's twelve months are prepared first.

    nice .venv/bin/python bench/scale.py --checkpoints 0 1000000 5000000 10000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trustwatch.models import partitions, store  # noqa: E402
from trustwatch.models.db import make_engine  # noqa: E402

from tests.store_helpers import AGENCIES, make_page  # noqa: E402
from trustwatch import migrate  # noqa: E402

ADMIN = os.environ.get("TRUSTWATCH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
YEAR_START = dt.datetime(2025, 12, 1, tzinfo=dt.UTC)
SECONDS = 365 * 24 * 3600
N_AGENCIES = 200

FILL = """
INSERT INTO authors (platform, platform_user_id, username, first_seen_at, last_seen_at)
SELECT 'x', 'a' || a, 'author' || a, now(), now() FROM generate_series(:lo / 20, (:hi - 1) / 20) AS a
ON CONFLICT DO NOTHING;
INSERT INTO posts (platform, platform_post_id, kind, author_id, author_platform_id, text, lang, created_at,
                   like_count, repost_count, reply_count, quote_count, raw, first_collected_at, last_collected_at)
SELECT 'x', 'f' || g, 'post', au.id, au.platform_user_id,
       'generated post number ' || g || ' about the police department and its officers on patrol downtown',
       'en', :start + make_interval(secs => (g::bigint * 7919) % :seconds), g % 13, g % 5, g % 3, 0,
       '{"id": "generated"}', now(), now()
FROM generate_series(:lo, :hi - 1) AS g JOIN authors au ON au.platform = 'x' AND au.platform_user_id = 'a' || (g / 20);
INSERT INTO post_mentions (post_id, agency_id, matched_term, match_kind, post_created_at, platform)
SELECT p.id, a.id, a.name, 'name', p.created_at, 'x'
FROM posts p JOIN agencies_ranked a ON a.rank = (p.id % :agencies)
WHERE p.id > :last_id;
INSERT INTO metric_snapshots (post_id, post_created_at, observed_at, like_count, repost_count, reply_count,
                              quote_count)
SELECT p.id, p.created_at, now(), p.like_count, p.repost_count, p.reply_count, p.quote_count
FROM posts p WHERE p.id > :last_id;
"""


def _admin():
    return create_engine(make_url(ADMIN).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")


def seed_agencies(engine) -> None:
    """The helpers' agencies plus generated ones up to N_AGENCIES, and a rank table for the fill's join."""
    store.sync_agencies(engine, AGENCIES)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO agencies (slug, name, kind, active, aliases, x_handles, hashtags, subreddits, updated_at) "
            "SELECT 'gen-' || g, 'Generated PD ' || g, 'municipal', true, '[]', '[]', '[]', '[]', now() "
            "FROM generate_series(1, :n) g"), {"n": N_AGENCIES - len(AGENCIES)})
        conn.execute(text("CREATE UNLOGGED TABLE agencies_ranked AS "
                          "SELECT id, name, (row_number() OVER (ORDER BY id)) - 1 AS rank FROM agencies"))


def fill(engine, lo: int, hi: int, chunk: int = 250_000) -> None:
    for start in range(lo, hi, chunk):
        stop = min(hi, start + chunk)
        with engine.begin() as conn:
            last_id = conn.execute(text("SELECT coalesce(max(id), 0) FROM posts")).scalar_one()
            for statement in FILL.strip().split(";\n"):
                conn.execute(text(statement), {"start": YEAR_START, "seconds": SECONDS, "lo": start, "hi": stop,
                                               "agencies": N_AGENCIES, "last_id": last_id})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE authors, posts, post_mentions, metric_snapshots"))


def write_rate(engine, first_id: int, pages: int, size: int = 500) -> float:
    """Posts per second of write_page over ``pages`` fresh pages (median of the per-page rates)."""
    rates = []
    store.write_page(engine, make_page(range(first_id - size, first_id), seed=first_id, text_len=180))  # warm-up
    for i in range(pages):
        ids = range(first_id + i * size, first_id + (i + 1) * size)
        page = make_page(ids, seed=first_id + i, text_len=180)
        t0 = time.perf_counter()
        store.write_page(engine, page)
        rates.append(size / (time.perf_counter() - t0))
    return statistics.median(rates)


def timed(engine, sql: str, params: dict, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        with engine.connect() as conn:
            t0 = time.perf_counter()
            conn.execute(text(sql), params).all()
            best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[0, 1_000_000, 5_000_000, 10_000_000])
    parser.add_argument("--pages", type=int, default=10, help="write_page pages measured at each checkpoint")
    args = parser.parse_args()
    name = f"tw_scale_{uuid.uuid4().hex[:8]}"
    with _admin().connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN).set(drivername="postgresql+psycopg", database=name).render_as_string(False)
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        with engine.begin() as conn:  # the year the fill spreads posts over
            months = [partitions.month_of(YEAR_START)]
            while len(months) < 13:
                months.append(partitions.next_month(months[-1]))
            partitions.ensure_months(conn, months)
        seed_agencies(engine)
        stored = 0
        next_id = 500
        rows = []
        for checkpoint in sorted(args.checkpoints):
            t0 = time.perf_counter()
            fill(engine, stored, checkpoint)
            filled_s = time.perf_counter() - t0
            stored = checkpoint
            rate = write_rate(engine, next_id, args.pages)
            next_id += (args.pages + 1) * 500
            rows.append((checkpoint, rate, filled_s))
            print(f"stored {checkpoint:>11,}: write_page {rate:,.0f} posts/s (fill took {filled_s:.0f} s)", flush=True)
        base = rows[0][1]
        print("\n| posts stored | write_page (posts/s) | vs empty store |")
        print("|---|---|---|")
        for checkpoint, rate, _ in rows:
            print(f"| {checkpoint:,} | {rate:,.0f} | {rate / base:.2f}x |")
        with engine.connect() as conn:
            total = conn.execute(text("SELECT count(*) FROM posts")).scalar_one()
            authors = conn.execute(text("SELECT count(*) FROM authors")).scalar_one()
            size = int(conn.execute(text(
                "SELECT sum(pg_total_relation_size(t.relid)) FROM unnest(ARRAY['posts', 'post_mentions', "
                "'metric_snapshots']::regclass[]) c, pg_partition_tree(c) t")).scalar_one())
            agency = conn.execute(text("SELECT id FROM agencies ORDER BY id LIMIT 1")).scalar_one()
        print(f"\nsize on disk: {size / 2**20:,.0f} MiB for {total:,} posts = "
              f"{size / 2**20 / (total / 1e6):,.0f} MiB per million posts (posts, mentions, snapshots, indexes); "
              f"{authors:,} authors")
        one_year = timed(engine, "SELECT date_trunc('day', post_created_at) AS day, count(*) FROM post_mentions "
                                 "WHERE agency_id = :a AND post_created_at >= :s AND post_created_at < :e GROUP BY 1",
                         {"a": agency, "s": YEAR_START, "e": YEAR_START + dt.timedelta(days=365)})
        month = YEAR_START + dt.timedelta(days=181)
        all_month = timed(engine, "SELECT agency_id, count(*) FROM post_mentions WHERE post_created_at >= :s "
                                  "AND post_created_at < :e GROUP BY 1",
                          {"s": month, "e": month + dt.timedelta(days=30)})
        print(f"one agency over a year (daily counts): {one_year * 1000:,.0f} ms")
        print(f"all agencies over a month: {all_month * 1000:,.0f} ms")
        with tempfile.TemporaryDirectory(prefix="tw_archive_") as archive:
            result = partitions.detach_month(engine, partitions.month_of(YEAR_START), Path(archive))
        print(f"retention of the oldest month by DETACH PARTITION ({result.rows['posts']:,} posts, "
              f"{result.rows['post_mentions']:,} mentions, {result.rows['metric_snapshots']:,} snapshots): "
              f"detach {result.detach_seconds * 1000:,.0f} ms; with the archive to gzip CSV and the drop "
              f"{result.seconds:.1f} s")
    finally:
        engine.dispose()
        with _admin().connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()

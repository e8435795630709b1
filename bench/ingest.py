"""Ingest benchmark: write_page against COPY (the practical limit) and the ORM loops people write.

Writes N synthetic normalized posts (two mentions each, realistic text lengths) into PostgreSQL at the
APIs' page sizes (100 and 500) and measures, in the same run and on the same rows:
- ``write_page``: the store's write path (upserts, mentions, snapshots, ledger) into a migrated store;
- COPY of the same post rows into an unindexed table with the posts columns, page by page in turn with
  ``write_page`` (so a drift in the machine's speed during the run affects both alike), ``raw``
  serialized with orjson as write_page does; text COPY and binary COPY;
- a naive per-row ORM loop (two lookups and two flushes per post, commit per page) on a sample;
- the ORM loop a competent user writes: per page one IN lookup of the authors and one of the posts,
  ``add_all`` of the new rows, one flush and one commit per page, on the same sample, page by page in turn
  with ``write_page`` writing the same sample pages into a store of its own (the ratio to it is measured
  there: run one after the other, it followed the shared machine's load, 4.6x in a run whose COPY phase
  ran at 39% of the previous run's COPY rate); measured twice, the second time with the harness's
  pre-generated pages frozen out of the garbage collector's sight (``GC_NOTE``); each writer's time split
  into client CPU and the wait on the server, with the ratio's bound if write_page cost no client CPU
  (``SPLIT_NOTE``);
- ``write_page`` into a store already holding ``--stored`` posts (1,000,000 by default, made with
  generate_series, mentions and snapshots included), page by page in turn with the same pages into an
  empty store, so both see the same machine state.

Every timed writer first writes ``WARMUP_PAGES`` untimed pages of its own, so one-time costs do not count.

Usage: .venv/bin/python bench/ingest.py [--posts 200000] [--sample 20000] [--stored 1000000] [--pg URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trustwatch.models import store  # noqa: E402
from trustwatch.models.db import make_engine  # noqa: E402
from trustwatch.models.tables import Agency, Author, MetricSnapshot, Post, PostMention  # noqa: E402

from tests.store_helpers import AGENCIES, make_page  # noqa: E402
from trustwatch import migrate  # noqa: E402
from trustwatch.records import validated  # noqa: E402


def fresh_db(admin_url: str) -> tuple[str, str]:
    name = f"tw_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    return name, url


def drop_db(admin_url: str, name: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def pages(total: int, size: int) -> list:
    """Pages of generated records, checked as the normalizers hand them to ``write_page``
    (``records.validated``, part of parsing): the write path does not check a record again (issue 19.2)."""
    if total > WARMUP_FIRST_ID:
        raise SystemExit(f"at most {WARMUP_FIRST_ID:,} posts: the warm-up pages' ids start there")
    return _generated(0, total, size)


def _generated(first: int, end: int, size: int) -> list:
    """Pages of ``size`` generated posts with ids ``first`` to ``end``, checked as a normalizer checks them."""
    out = [make_page(range(i, min(i + size, end)), seed=i, text_len=120 + (i % 7) * 30)
           for i in range(first, end, size)]
    for page in out:
        for post in page.posts:
            validated(post)
    return out


#: Untimed pages every writer writes before a timed comparison: one-time costs (the first compile of each
#: statement, psycopg's server-side prepare after its fifth execution, the ORM's mapper setup) otherwise
#: land on whichever writer runs first.  Without them two identical write_page writers in turn differed
#: by 4.5 to 6 %, the first one slower, and write_page's first page took 23 ms against 6 ms later on.
WARMUP_PAGES = 6
#: Where the warm-up pages' ids start: past every measured page (``pages`` refuses more), in the same month.
WARMUP_FIRST_ID = 1_000_000


def warmup_pages(size: int) -> list:
    """``WARMUP_PAGES`` pages like :func:`pages`, with ids none of the measured pages use."""
    return _generated(WARMUP_FIRST_ID, WARMUP_FIRST_ID + WARMUP_PAGES * size, size)


COPY_COLS = ("platform", "platform_post_id", "kind", "author_platform_id", "text", "lang", "created_at",
             "like_count", "repost_count", "reply_count", "quote_count", "raw", "first_collected_at",
             "last_collected_at")


COPY_TYPES = ["text", "text", "text", "text", "text", "text", "timestamptz", "int4", "int4", "int4", "int4",
              "jsonb", "timestamptz", "timestamptz"]


def copy_page(raw, page, now: dt.datetime, binary: bool = False) -> None:
    """The COPY baseline for one page: the page's post rows into the unindexed ``posts_copy``, committed.

    ``raw`` is serialized with orjson, as write_page does (json.dumps would slow the baseline down).
    """
    fmt = " (FORMAT BINARY)" if binary else ""
    with raw.cursor() as cur, cur.copy(f"COPY posts_copy ({', '.join(COPY_COLS)}) FROM STDIN{fmt}") as copy:
        if binary:
            copy.set_types(COPY_TYPES)
        for p in page.posts:
            m = p.metrics
            copy.write_row((p.platform, p.platform_post_id, p.kind, p.author_platform_id, p.text, p.lang,
                            p.created_at, m.likes, m.reposts, m.replies, m.quotes,
                            orjson.dumps(p.raw).decode() if not binary else p.raw, now, now))
    raw.commit()


def bench_write_page_and_copy(url: str, page_list: list) -> tuple[float, float, float]:
    """write_page into a migrated store and, page by page in turn, COPY of the same rows into an unindexed
    table of the posts columns: both see the same machine state (caches, checkpoints, other load), so their
    ratio holds even when the machine's speed drifts during the run."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    store.sync_agencies(engine, AGENCIES)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE posts_copy AS SELECT * FROM posts WITH NO DATA"))
    raw = engine.raw_connection()
    from psycopg.types.json import set_json_dumps

    set_json_dumps(lambda obj: orjson.dumps(obj).decode(), context=raw.driver_connection)
    now = dt.datetime.now(dt.UTC)
    t_write = t_copy = t_binary = 0.0
    warmup = warmup_pages(len(page_list[0].posts))
    try:
        for i, page in enumerate(warmup):  # untimed (WARMUP_PAGES)
            store.write_page(engine, page)
            copy_page(raw, page, now, binary=i % 2 == 1)
        for i, page in enumerate(page_list):
            t0 = time.perf_counter()
            store.write_page(engine, page)
            t1 = time.perf_counter()
            copy_page(raw, page, now, binary=i % 2 == 1)
            t_write += t1 - t0
            if i % 2:
                t_binary += time.perf_counter() - t1
            else:
                t_copy += time.perf_counter() - t1
    finally:
        raw.close()
    with engine.connect() as conn:
        n = conn.execute(text("select count(*) from posts")).scalar_one()
        m = conn.execute(text("select count(*) from post_mentions")).scalar_one()
        c = conn.execute(text("select count(*) from posts_copy")).scalar_one()
    assert n == c == sum(len(p.posts) for p in page_list + warmup), (n, c)
    assert m == 2 * n, m
    engine.dispose()
    # Text and binary COPY each took every other page: scale each to the whole set of pages.
    text_pages, binary_pages = (len(page_list) + 1) // 2, len(page_list) // 2
    return t_write, t_copy * len(page_list) / text_pages, t_binary * len(page_list) / max(binary_pages, 1)


def competent_page(session: Session, page, agency_ids: dict[str, int], now: dt.datetime) -> None:
    """One page by the ORM loop a competent user writes: one IN lookup of the page's authors and one of its
    posts, new rows through add_all, existing ones updated in place, mentions of existing posts looked up
    in one IN query, one flush per kind of row and one commit per page.

    It stores what ``write_page`` stores, so the two are compared on the same work: every post column the
    records carry, the mentions with their offsets, and one engagement snapshot per post and sighting
    (``bench_competent_in_turn`` checks that both stores end with the same rows)."""
    platform = page.posts[0].platform
    records = {a.platform_user_id: a for a in page.authors}
    authors = {a.platform_user_id: a for a in session.scalars(select(Author).where(
        Author.platform == platform, Author.platform_user_id.in_(list(records))))}
    for uid, a in records.items():
        author = authors.get(uid)
        if author is None:
            author = authors[uid] = Author(platform=a.platform, platform_user_id=uid, first_seen_at=now,
                                           last_seen_at=now)
            session.add(author)
        author.username, author.display_name, author.last_seen_at = a.username, a.display_name, now
    posts = {p.platform_post_id: p for p in session.scalars(select(Post).where(
        Post.platform == platform, Post.platform_post_id.in_([p.platform_post_id for p in page.posts])))}
    session.flush()  # authors get their ids
    new_posts = []
    for p in page.posts:
        post = posts.get(p.platform_post_id)
        if post is None:
            post = posts[p.platform_post_id] = Post(platform=p.platform, platform_post_id=p.platform_post_id,
                                                    first_collected_at=now)
            new_posts.append(post)
        m = p.metrics
        post.kind, post.text, post.title, post.created_at, post.lang = p.kind, p.text, p.title, p.created_at, p.lang
        post.url, post.conversation_id, post.community = p.url, p.conversation_id, p.community
        post.parent_platform_id, post.root_platform_id = p.parent_platform_id, p.root_platform_id
        post.like_count, post.repost_count, post.reply_count = m.likes, m.reposts, m.replies
        post.quote_count, post.score = m.quotes, m.score
        post.withheld, post.removed_by_category, post.edit_history_ids = (p.withheld, p.removed_by_category,
                                                                           p.edit_history_ids)
        post.author_id = authors[p.author_platform_id].id if p.author_platform_id in authors else None
        post.author_platform_id, post.raw, post.last_collected_at = p.author_platform_id, p.raw, now
        post.author_is_agency = p.author_is_agency
    session.add_all(new_posts)
    session.flush()  # posts get their ids
    existing = set(session.execute(select(PostMention.post_id, PostMention.agency_id, PostMention.match_kind,
                                          PostMention.matched_term).where(
        PostMention.post_id.in_([posts[k].id for k in posts if posts[k] not in new_posts]))).all()) \
        if len(new_posts) < len(posts) else set()
    created = {p.platform_post_id: p.created_at for p in page.posts}
    rows: list[Any] = []
    for m in page.mentions:
        post = posts[m.platform_post_id]
        key = (post.id, agency_ids[m.agency_slug], m.match_kind, m.matched_term)
        if key not in existing:
            existing.add(key)
            rows.append(PostMention(post_id=post.id, agency_id=key[1], matched_term=m.matched_term,
                                    match_kind=m.match_kind, start_offset=m.start, end_offset=m.end,
                                    post_created_at=created[m.platform_post_id], platform=m.platform,
                                    via_repost=m.via_repost))
    for p in page.posts:
        m = p.metrics
        rows.append(MetricSnapshot(post_id=posts[p.platform_post_id].id, post_created_at=p.created_at,
                                   observed_at=now, like_count=m.likes, repost_count=m.reposts,
                                   reply_count=m.replies, quote_count=m.quotes, score=m.score))
    session.add_all(rows)
    session.commit()


def same_rows(engines: list) -> dict[str, list[int]]:
    """Row counts of the written tables in each store: the two writers must have done the same work."""
    counts: dict[str, list[int]] = {}
    for table in ("authors", "posts", "post_mentions", "metric_snapshots"):
        counts[table] = []
        for engine in engines:
            with engine.connect() as conn:
                counts[table].append(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    if any(len(set(c)) != 1 for c in counts.values()):
        raise SystemExit(f"write_page and the competent loop stored different rows: {counts}")
    return counts


def bench_competent_in_turn(url_write: str, url_orm: str, page_list: list,
                            cpu: list[float] | None = None) -> tuple[float, float]:
    """write_page and the competent ORM loop on the same pages into two fresh stores, page by page in turn
    (so a drift in the machine's load hits both alike); returns (write_page seconds, ORM seconds) and, in
    ``cpu``, the CPU seconds each spent in this process."""
    engines = [make_engine(url_write), make_engine(url_orm)]
    for engine in engines:
        migrate.upgrade(engine)
        store.sync_agencies(engine, AGENCIES)
    now = dt.datetime.now(dt.UTC)
    with Session(engines[1]) as session:
        agency_ids = {a.slug: a.id for a in session.scalars(select(Agency))}
        times = in_turn(page_list, [partial(store.write_page, engines[0]),
                                    lambda page: competent_page(session, page, agency_ids, now)],
                        between=partial(analyze_every, engines), cpu=cpu,
                        warmup=warmup_pages(len(page_list[0].posts)))
    print(f"  same rows in both stores: {same_rows(engines)}")
    for engine in engines:
        engine.dispose()
    return times[0], times[1]


#: Pages between two ANALYZEs of the compared stores (untimed), as autovacuum keeps a live store's statistics.
ANALYZE_EVERY = 20


def analyze_every(engines: list, i: int) -> None:
    """``in_turn``'s ``between``: statistics after the warm-up pages (-1) and every ``ANALYZE_EVERY`` pages."""
    if i < 0 or i % ANALYZE_EVERY == ANALYZE_EVERY - 1:
        _analyze(engines)


def _analyze(engines: list) -> None:
    """Statistics for the stores' tables.  A new partition has none until autovacuum analyzes it, and
    without them the planner answered the competent loop's ``IN`` lookup of a page's posts by reading every
    stored post of the platform (a bitmap scan on ``platform`` alone): that loop then slowed as the store
    grew (1,900 to 1,180 posts/s over 20,000 posts), a fresh-database artifact no running store has."""
    for engine in engines:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE authors, posts, post_mentions, metric_snapshots"))


def in_turn(page_list: list, writers: list[Callable[[Any], Any]],
            between: Callable[[int], Any] | None = None, cpu: list[float] | None = None,
            warmup: list | None = None) -> list[float]:
    """Seconds each writer spent on the same pages, called page by page in turn, the order rotating, so a
    drift in the shared machine's load hits every writer alike; ``between(i)`` runs untimed after page i.
    ``cpu``, when given, receives each writer's CPU seconds in this process (``time.process_time``): the
    rest of its time it waited on the database server.  ``warmup`` pages are written by every writer first,
    untimed (``WARMUP_PAGES``), followed by ``between(-1)``."""
    for page in warmup or ():
        for write in writers:
            write(page)
    if warmup and between is not None:
        between(-1)
    times = [0.0] * len(writers)
    spent = [0.0] * len(writers)
    for i, page in enumerate(page_list):
        for k in ((i + j) % len(writers) for j in range(len(writers))):
            c0, t0 = time.process_time(), time.perf_counter()
            writers[k](page)
            times[k] += time.perf_counter() - t0
            spent[k] += time.process_time() - c0
        if between is not None:
            between(i)
    if cpu is not None:
        cpu[:] = spent
    return times


FILL = """
INSERT INTO authors (platform, platform_user_id, username, first_seen_at, last_seen_at)
SELECT 'x', 'f' || g, 'fill' || g, now(), now() FROM generate_series(1, :authors) g;
INSERT INTO posts (platform, platform_post_id, kind, author_id, author_platform_id, text, lang, created_at,
                   like_count, repost_count, reply_count, quote_count, raw, first_collected_at, last_collected_at)
SELECT 'x', (1000000000000000000 + g)::text, 'post', 1 + g % :authors, 'f' || (1 + g % :authors),
       repeat('stored post text about the city and its police ', 3 + g % 4), 'en',
       now() - (g || ' seconds')::interval, g % 13, g % 5, g % 3, 0,
       jsonb_build_object('id', g::text, 'text', 'raw'), now(), now()
FROM generate_series(1, :posts) g;
INSERT INTO post_mentions (post_id, agency_id, matched_term, match_kind, post_created_at, platform)
SELECT p.id, a.id, a.name, 'name', p.created_at, 'x' FROM posts p
JOIN (SELECT id, name, row_number() OVER (ORDER BY id) AS rn FROM agencies) a ON a.rn <= 2
WHERE p.platform_post_id LIKE '1000%';
INSERT INTO metric_snapshots (post_id, post_created_at, observed_at, like_count, repost_count, reply_count,
                              quote_count)
SELECT id, created_at, first_collected_at, like_count, repost_count, reply_count, quote_count FROM posts;
"""


def bench_stored(url_empty: str, url_full: str, page_list: list, stored: int) -> tuple[float, float]:
    """write_page into an empty store and into one holding ``stored`` posts, page by page in turn."""
    engines = [make_engine(url_empty), make_engine(url_full)]
    for engine in engines:
        migrate.upgrade(engine)
        store.sync_agencies(engine, AGENCIES)
    with engines[1].begin() as conn:
        for statement in FILL.split(";\n"):
            if statement.strip():
                conn.execute(text(statement), {"posts": stored, "authors": max(1000, stored // 20)})
    for engine in engines:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    times = in_turn(page_list, [partial(store.write_page, engine) for engine in engines],
                    warmup=warmup_pages(len(page_list[0].posts)))
    for engine in engines:
        engine.dispose()
    return times[0], times[1]


def bench_naive(url: str, page_list: list) -> float:
    """What simple pipelines do: per row, look up, merge, add mentions; commit per page."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    store.sync_agencies(engine, AGENCIES)
    now = dt.datetime.now(dt.UTC)
    with Session(engine) as session:
        agency_ids = {a.slug: a.id for a in session.scalars(select(Agency))}

        def write(page: Any) -> None:
            authors = {a.platform_user_id: a for a in page.authors}
            for p in page.posts:
                a = authors[p.author_platform_id]
                author = session.scalar(select(Author).where(Author.platform == a.platform,
                                                             Author.platform_user_id == a.platform_user_id))
                if author is None:
                    author = Author(platform=a.platform, platform_user_id=a.platform_user_id, first_seen_at=now,
                                    last_seen_at=now)
                author.username, author.display_name = a.username, a.display_name
                author = session.merge(author)
                session.flush()
                post = session.scalar(select(Post).where(Post.platform == p.platform,
                                                         Post.platform_post_id == p.platform_post_id))
                if post is None:
                    post = Post(platform=p.platform, platform_post_id=p.platform_post_id, first_collected_at=now)
                post.kind, post.text, post.created_at, post.lang = p.kind, p.text, p.created_at, p.lang
                post.author_id, post.author_platform_id, post.raw = author.id, p.author_platform_id, p.raw
                post.like_count, post.last_collected_at = p.metrics.likes, now
                post = session.merge(post)
                session.flush()
                for m in page.mentions:
                    if m.platform_post_id == p.platform_post_id:
                        session.merge(PostMention(post_id=post.id, agency_id=agency_ids[m.agency_slug],
                                                  matched_term=m.matched_term, match_kind=m.match_kind,
                                                  post_created_at=p.created_at, platform=p.platform))
            session.commit()

        for page in warmup_pages(len(page_list[0].posts)):  # untimed (WARMUP_PAGES)
            write(page)
        t0 = time.perf_counter()
        for page in page_list:
            write(page)
    elapsed = time.perf_counter() - t0
    engine.dispose()
    return elapsed


GC_NOTE = """
The competent loop allocates far more objects per page than write_page, so it sets off more of the
garbage collector's full collections, each of which walks every tracked object of the process; here that
includes the benchmark's own pre-generated pages (about 95,000 objects).  How much of that a real process
pays depends on its heap (a collect task holds about 660,000 tracked objects with the registry loaded,
and Python defers a full collection until the survivors since the last one are a quarter of that).  The
second ratio takes the harness's pages (and whatever else is alive before the comparison starts: modules,
engines) out of the collector's sight with gc.freeze, and counts only what each writer allocates itself;
the competent loop gains more from it, so it is the lower, stricter ratio."""

SPLIT_NOTE = """
Client CPU is this process's CPU time during each writer's calls (time.process_time); the rest of the
call it waited on the database server (the merge, its index inserts and WAL, the commit's flush) or the
socket.  "bound" is the competent loop's time divided by write_page's wait alone: the ratio write_page
would reach if its own Python, psycopg and SQLAlchemy work cost nothing, on the same rows and indexes."""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=200_000)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--stored", type=int, default=1_000_000)
    parser.add_argument("--sizes", default="100,500")
    parser.add_argument("--pg", default=os.environ.get("TRUSTWATCH_TEST_PG_URL",
                                                       "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    admin = args.pg.replace("postgresql://", "postgresql+psycopg://")
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        page_list = pages(args.posts, size)
        sample = pages(args.sample, size)
        row = {"page_size": size, "posts": args.posts, "orm_sample": args.sample}
        name, url = fresh_db(admin)
        try:
            row["write_page_s"], row["copy_s"], row["copy_binary_s"] = bench_write_page_and_copy(url, page_list)
        finally:
            drop_db(admin, name)
        name, url = fresh_db(admin)
        try:
            row["naive_orm_s"] = bench_naive(url, sample)
        finally:
            drop_db(admin, name)
        for suffix, frozen in (("", False), ("_frozen", True)):
            (w_name, w_url), (o_name, o_url) = fresh_db(admin), fresh_db(admin)
            if frozen:  # the harness's pages out of the garbage collector's sight (see GC_NOTE)
                gc.collect()
                gc.freeze()
            cpu: list[float] = []
            try:
                row["write_page_sample_s" + suffix], row["competent_orm_s" + suffix] = bench_competent_in_turn(
                    w_url, o_url, sample, cpu)
                row["write_page_sample_cpu_s" + suffix], row["competent_orm_cpu_s" + suffix] = cpu
            finally:
                gc.unfreeze()
                drop_db(admin, w_name)
                drop_db(admin, o_name)
        row["write_page_posts_per_s"] = args.posts / row["write_page_s"]
        row["copy_posts_per_s"] = args.posts / row["copy_s"]
        row["copy_binary_posts_per_s"] = args.posts / row["copy_binary_s"]
        row["naive_posts_per_s"] = args.sample / row["naive_orm_s"]
        row["competent_posts_per_s"] = args.sample / row["competent_orm_s"]
        row["vs_copy"] = row["write_page_posts_per_s"] / row["copy_posts_per_s"]
        row["vs_copy_binary"] = row["write_page_posts_per_s"] / row["copy_binary_posts_per_s"]
        row["vs_naive"] = row["write_page_posts_per_s"] / row["naive_posts_per_s"]
        # in turn with the competent loop, on the same sample pages: the ratio the target is about
        row["write_page_sample_posts_per_s"] = args.sample / row["write_page_sample_s"]
        row["vs_competent"] = row["competent_orm_s"] / row["write_page_sample_s"]
        row["competent_frozen_posts_per_s"] = args.sample / row["competent_orm_s_frozen"]
        row["write_page_sample_frozen_posts_per_s"] = args.sample / row["write_page_sample_s_frozen"]
        row["vs_competent_frozen"] = row["competent_orm_s_frozen"] / row["write_page_sample_s_frozen"]
        # The most the ratio could reach if write_page cost no client CPU at all: what it waits on the server
        # for the same rows is a floor the loop's time is divided by (see SPLIT_NOTE).
        row["vs_competent_frozen_bound"] = row["competent_orm_s_frozen"] / (
            row["write_page_sample_s_frozen"] - row["write_page_sample_cpu_s_frozen"])
        results.append(row)
        print(json.dumps(row), flush=True)
    stored_rows = []
    if args.stored:
        for size in (int(s) for s in args.sizes.split(",")):
            page_list = pages(args.posts, size)
            (e_name, e_url), (f_name, f_url) = fresh_db(admin), fresh_db(admin)
            try:
                empty_s, full_s = bench_stored(e_url, f_url, page_list, args.stored)
            finally:
                drop_db(admin, e_name)
                drop_db(admin, f_name)
            stored_rows.append({"page_size": size, "empty_posts_per_s": args.posts / empty_s,
                                "full_posts_per_s": args.posts / full_s, "change": empty_s / full_s - 1})
            print(json.dumps(stored_rows[-1]), flush=True)
    print()
    print("| page size | write_page posts/s | COPY text posts/s | COPY binary posts/s | naive ORM posts/s "
          "| write_page / COPY text | / COPY binary | / naive |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['page_size']} | {r['write_page_posts_per_s']:,.0f} | {r['copy_posts_per_s']:,.0f} | "
              f"{r['copy_binary_posts_per_s']:,.0f} | {r['naive_posts_per_s']:,.0f} | "
              f"{r['vs_copy']:.2f} | {r['vs_copy_binary']:.2f} | {r['vs_naive']:.1f}x |")
    print()
    print("| page size | write_page posts/s (sample, in turn) | competent ORM posts/s (in turn) | ratio "
          "| the same with the harness's pages frozen: write_page | competent ORM | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['page_size']} | {r['write_page_sample_posts_per_s']:,.0f} | {r['competent_posts_per_s']:,.0f} | "
              f"{r['vs_competent']:.1f}x | {r['write_page_sample_frozen_posts_per_s']:,.0f} | "
              f"{r['competent_frozen_posts_per_s']:,.0f} | {r['vs_competent_frozen']:.1f}x |")
    print(GC_NOTE)
    print()
    print("| page size | write_page ms per page (frozen run) | its client CPU | its wait on the server "
          "| competent loop ms per page | its client CPU | its wait on the server | ratio | bound |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        n = -(-r["orm_sample"] // r["page_size"])
        w, wc = r["write_page_sample_s_frozen"], r["write_page_sample_cpu_s_frozen"]
        o, oc = r["competent_orm_s_frozen"], r["competent_orm_cpu_s_frozen"]
        print(f"| {r['page_size']} | {1000 * w / n:.2f} | {1000 * wc / n:.2f} | {1000 * (w - wc) / n:.2f} | "
              f"{1000 * o / n:.2f} | {1000 * oc / n:.2f} | {1000 * (o - oc) / n:.2f} | "
              f"{r['vs_competent_frozen']:.1f}x | {r['vs_competent_frozen_bound']:.1f}x |")
    print(SPLIT_NOTE)
    if stored_rows:
        print()
        print(f"| page size | write_page, empty store | write_page, {args.stored:,} stored | change |")
        print("|---|---|---|---|")
        for r in stored_rows:
            print(f"| {r['page_size']} | {r['empty_posts_per_s']:,.0f} | {r['full_posts_per_s']:,.0f} | "
                  f"{r['change']:+.0%} |")


if __name__ == "__main__":
    main()

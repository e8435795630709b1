"""Ingest benchmark: write_page against COPY (the practical limit) and a naive per-row ORM loop.

Writes N synthetic normalized posts (two mentions each, realistic text lengths) into PostgreSQL at the
APIs' page sizes (100 and 500) and measures, in the same run and on the same rows:
- ``write_page``: the store's write path (upserts, mentions, snapshots, ledger) into a migrated store;
- COPY of the same post rows into an unindexed table with the posts columns, page by page in turn with
  ``write_page`` (so a drift in the machine's speed during the run affects both alike);
- a naive per-row ORM loop (look up, merge, add mentions, commit per page) on a sample, scaled.

Usage: .venv/bin/python bench/ingest.py [--posts 200000] [--sample 20000] [--pg URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trustwatch.models import store  # noqa: E402
from trustwatch.models.db import make_engine  # noqa: E402
from trustwatch.models.tables import Agency, Author, Post, PostMention  # noqa: E402

from tests.store_helpers import AGENCIES, make_page  # noqa: E402
from trustwatch import migrate  # noqa: E402


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
    return [make_page(range(i, min(i + size, total)), seed=i, text_len=120 + (i % 7) * 30)
            for i in range(0, total, size)]


COPY_COLS = ("platform", "platform_post_id", "kind", "author_platform_id", "text", "lang", "created_at",
             "like_count", "repost_count", "reply_count", "quote_count", "raw", "first_collected_at",
             "last_collected_at")


def copy_page(raw, page, now: dt.datetime) -> None:
    """The COPY baseline for one page: the page's post rows into the unindexed ``posts_copy``, committed."""
    with raw.cursor() as cur, cur.copy(f"COPY posts_copy ({', '.join(COPY_COLS)}) FROM STDIN") as copy:
        for p in page.posts:
            m = p.metrics
            copy.write_row((p.platform, p.platform_post_id, p.kind, p.author_platform_id, p.text, p.lang,
                            p.created_at, m.likes, m.reposts, m.replies, m.quotes, json.dumps(p.raw), now, now))
    raw.commit()


def bench_write_page_and_copy(url: str, page_list: list) -> tuple[float, float]:
    """write_page into a migrated store and, page by page in turn, COPY of the same rows into an unindexed
    table of the posts columns: both see the same machine state (caches, checkpoints, other load), so their
    ratio holds even when the machine's speed drifts during the run."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    store.sync_agencies(engine, AGENCIES)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE posts_copy AS SELECT * FROM posts WITH NO DATA"))
    raw = engine.raw_connection()
    now = dt.datetime.now(dt.UTC)
    t_write = t_copy = 0.0
    try:
        for page in page_list:
            t0 = time.perf_counter()
            store.write_page(engine, page)
            t1 = time.perf_counter()
            copy_page(raw, page, now)
            t_write += t1 - t0
            t_copy += time.perf_counter() - t1
    finally:
        raw.close()
    with engine.connect() as conn:
        n = conn.execute(text("select count(*) from posts")).scalar_one()
        m = conn.execute(text("select count(*) from post_mentions")).scalar_one()
        c = conn.execute(text("select count(*) from posts_copy")).scalar_one()
    assert n == c == sum(len(p.posts) for p in page_list), (n, c)
    assert m == 2 * n, m
    engine.dispose()
    return t_write, t_copy


def bench_naive(url: str, page_list: list) -> float:
    """What simple pipelines do: per row, look up, merge, add mentions; commit per page."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    store.sync_agencies(engine, AGENCIES)
    now = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    with Session(engine) as session:
        agency_ids = {a.slug: a.id for a in session.scalars(select(Agency))}
        for page in page_list:
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
    elapsed = time.perf_counter() - t0
    engine.dispose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=200_000)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--sizes", default="100,500")
    parser.add_argument("--pg", default=os.environ.get("TRUSTWATCH_TEST_PG_URL",
                                                       "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    admin = args.pg.replace("postgresql://", "postgresql+psycopg://")
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        page_list = pages(args.posts, size)
        sample = pages(args.sample, size)
        row = {"page_size": size, "posts": args.posts, "naive_sample": args.sample}
        name, url = fresh_db(admin)
        try:
            row["write_page_s"], row["copy_s"] = bench_write_page_and_copy(url, page_list)
        finally:
            drop_db(admin, name)
        name, url = fresh_db(admin)
        try:
            row["naive_orm_s"] = bench_naive(url, sample)
        finally:
            drop_db(admin, name)
        row["write_page_posts_per_s"] = args.posts / row["write_page_s"]
        row["copy_posts_per_s"] = args.posts / row["copy_s"]
        row["naive_posts_per_s"] = args.sample / row["naive_orm_s"]
        row["vs_copy"] = row["write_page_posts_per_s"] / row["copy_posts_per_s"]
        row["vs_naive"] = row["write_page_posts_per_s"] / row["naive_posts_per_s"]
        results.append(row)
        print(json.dumps(row), flush=True)
    print()
    print("| page size | write_page posts/s | COPY posts/s | naive ORM posts/s | write_page / COPY "
          "| write_page / naive |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['page_size']} | {r['write_page_posts_per_s']:,.0f} | {r['copy_posts_per_s']:,.0f} | "
              f"{r['naive_posts_per_s']:,.0f} | {r['vs_copy']:.2f} | {r['vs_naive']:.1f}x |")


if __name__ == "__main__":
    main()

"""What issue 20's checks cost on the write path: write_page with them against write_page without them.

The checks: the cleaning step and the shape checks of every post, the edit-history resolution of parent and
quoted ids (one indexed lookup of the page's referenced ids, one created_at-bounded lookup of edited posts
for the ones not stored), and the tombstone check of rejects.  The baseline is the same write_page with
those three switched off (replaced by identity functions), measured in the same run on the same pages,
alternating page by page so a drift of the machine's speed affects both alike.  Pages are X-like: 100
posts, a third replies and a sixth quotes of posts that are not stored, 3% of posts edited, ``--rejects``
rejects per page (default 2; 0 is the common case: most pages have none).

Usage: .venv/bin/python bench/write_checks.py [--pages 300] [--pg URL]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trustwatch.models import store  # noqa: E402
from trustwatch.models.db import make_engine  # noqa: E402

from tests.store_helpers import AGENCIES, make_page  # noqa: E402
from trustwatch import migrate  # noqa: E402
from trustwatch.records import RejectRecord  # noqa: E402

BASE = 1_900_000_000_000_000_000


def x_page(n: int, offset: int, rejects: int = 2) -> object:
    page = make_page(range(offset, offset + n))
    posts = []
    for i, p in enumerate(page.posts):
        pid = int(p.platform_post_id)
        if i % 3 == 0:
            p = dataclasses.replace(p, kind="reply", parent_platform_id=str(pid - (5_000 << 22)))
        elif i % 6 == 1:
            p = dataclasses.replace(p, kind="quote", root_platform_id=str(pid - (9_000 << 22)))
        if i % 33 == 2:
            p = dataclasses.replace(p, edit_history_ids=[p.platform_post_id, str(pid + (60_000 << 22))])
        posts.append(p)
    page.posts = posts
    page.rejects = [RejectRecord("x", "broken", {"id": str(BASE + offset + k), "text": "x" * 500})
                    for k in range(rejects)]
    return page


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--rejects", type=int, default=2, help="rejects per page (with ids: the tombstone check)")
    parser.add_argument("--pg", default=os.environ.get("TRUSTWATCH_TEST_PG_URL",
                                                       "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    admin_url = "postgresql+psycopg://" + args.pg.split("://", 1)[1]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"tw_bench_checks_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        store.sync_agencies(engine, AGENCIES)
        checks = (store._resolve_edit_references, store.clean_post, store._tombstoned)
        off = (lambda conn, posts: posts, lambda post: post, lambda conn, keys: set())
        times: dict[str, list[float]] = {"with checks": [], "without": []}
        for k in range(args.pages):
            for label in (("with checks", "without") if k % 2 == 0 else ("without", "with checks")):
                page = x_page(100, (k * 2 + (label == "without")) * 100, args.rejects)
                (store._resolve_edit_references, store.clean_post, store._tombstoned) = (
                    checks if label == "with checks" else off)
                began = time.perf_counter()
                store.write_page(engine, page)
                times[label].append(time.perf_counter() - began)
        store._resolve_edit_references, store.clean_post, store._tombstoned = checks
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"pages of 100 posts and {args.rejects} rejects, {args.pages} each way, PostgreSQL, "
              f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
        for label, value in med.items():
            print(f"  {label:12s} median {value * 1000:7.2f} ms/page   {100 / value:9,.0f} posts/s")
        print(f"  ratio with/without: {med['with checks'] / med['without']:.3f}")
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{name[:55]}_analyst"'))
        admin.dispose()


if __name__ == "__main__":
    main()

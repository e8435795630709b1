"""How long migration 0026 (monthly partitions) takes on an existing PostgreSQL store of N posts.

Fills a store at revision 0025 (the plain tables) with ``bench/scale.py``'s generated year of posts, one
mention and one snapshot each, then times ``migrate.upgrade`` to 0026: the tables rebuilt beside the old ones,
rows copied month by month into their partitions, keys and indexes built, views recreated.

    nice .venv/bin/python bench/migrate_partitions.py --posts 1000000
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import scale  # noqa: E402
from trustwatch.models.db import make_engine  # noqa: E402

from trustwatch import migrate  # noqa: E402

#: The fill as it was before 0026: snapshots had no post_created_at.
OLD_SNAPSHOTS = ("INSERT INTO metric_snapshots (post_id, observed_at, like_count, repost_count, reply_count, "
                 "quote_count)\nSELECT p.id, now(), p.like_count, p.repost_count, p.reply_count, p.quote_count\n"
                 "FROM posts p WHERE p.id > :last_id;")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--posts", type=int, default=1_000_000)
    args = parser.parse_args()
    statements = scale.FILL.strip().split(";\n")
    assert statements[-1].lstrip().startswith("INSERT INTO metric_snapshots"), "scale.FILL changed its order"
    scale.FILL = ";\n".join([*statements[:-1], OLD_SNAPSHOTS])
    name = f"tw_mpart_{uuid.uuid4().hex[:8]}"
    with scale._admin().connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(scale.ADMIN).set(drivername="postgresql+psycopg", database=name).render_as_string(False)
    engine = make_engine(url)
    try:
        migrate.upgrade(engine, "0025")
        scale.seed_agencies(engine)
        scale.fill(engine, 0, args.posts)
        t0 = time.perf_counter()
        migrate.upgrade(engine, "0026")
        seconds = time.perf_counter() - t0
        with engine.connect() as conn:
            counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                      for t in ("posts", "post_mentions", "metric_snapshots")}
            months = conn.execute(text("SELECT count(*) FROM pg_inherits WHERE inhparent = 'posts'::regclass")).scalar()
        print(f"migration 0026 on {counts['posts']:,} posts ({counts['post_mentions']:,} mentions, "
              f"{counts['metric_snapshots']:,} snapshots; {months} partitions of posts): {seconds:.1f} s")
    finally:
        engine.dispose()
        with scale._admin().connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()

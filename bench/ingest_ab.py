"""A/B of the write path: an older ``write_page`` against this checkout's, with the competent ORM loop beside.

Takes the ``models/`` folder of an older commit (``git archive <rev> models | tar -x -C DIR``) and writes the
same synthetic pages (``bench/ingest.py``'s generator) page by page in turn, the order rotating, with three
writers each into a fresh PostgreSQL store: the old ``write_page``, this checkout's, and the competent ORM loop
of ``bench/ingest.py``.  Run in turn, all three see the same machine state, so the ratios hold on a shared
machine whose speed drifts.  Every writer first writes ``bench/ingest.py``'s untimed warm-up pages (one-time
costs would otherwise land on whichever writer runs first), and the stores are analyzed after them and every
20 pages, as autovacuum keeps a live store's statistics.

Usage: .venv/bin/python bench/ingest_ab.py --old DIR [--posts 5000] [--size 100] [--rounds 2] [--pg URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import sys
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import trustwatch.models.pg_bulk as new_pg  # noqa: E402
from trustwatch.models import store as new_store  # noqa: E402
from trustwatch.models.db import make_engine  # noqa: E402
from trustwatch.models.tables import Agency  # noqa: E402

from bench.ingest import analyze_every, competent_page, drop_db, fresh_db, in_turn, pages, warmup_pages  # noqa: E402
from tests.store_helpers import AGENCIES  # noqa: E402
from trustwatch import migrate  # noqa: E402


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def old_writer(old: Path) -> Any:
    """The old ``write_page``; its bulk path is imported lazily by name, so that name points at the old
    module for the duration of each call."""
    old_pg = _load("trustwatch.models.pg_bulk_old", old / "models" / "pg_bulk.py")
    old_store = _load("trustwatch.models.store_old", old / "models" / "store.py")

    def write(engine: Any, page: Any) -> Any:
        sys.modules["trustwatch.models.pg_bulk"] = old_pg
        try:
            return old_store.write_page(engine, page)
        finally:
            sys.modules["trustwatch.models.pg_bulk"] = new_pg

    return write


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", type=Path, required=True, help="folder holding the old commit's models/")
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pg", default=os.environ.get("TRUSTWATCH_TEST_PG_URL",
                                                       "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    admin = args.pg.replace("postgresql://", "postgresql+psycopg://")
    write_old = old_writer(args.old)
    for _ in range(args.rounds):
        load_before = os.getloadavg()[0]
        dbs = [fresh_db(admin) for _ in range(3)]
        try:
            engines = [make_engine(url) for _, url in dbs]
            for engine in engines:
                migrate.upgrade(engine)
                new_store.sync_agencies(engine, AGENCIES)
            page_list = pages(args.posts, args.size)
            now = dt.datetime.now(dt.UTC)
            with Session(engines[2]) as session:
                agency_ids = {a.slug: a.id for a in session.scalars(select(Agency))}
                times = in_turn(page_list, [partial(write_old, engines[0]), partial(new_store.write_page, engines[1]),
                                            partial(competent_page, session, agency_ids=agency_ids, now=now)],
                                warmup=warmup_pages(args.size), between=partial(analyze_every, engines))
            for engine in engines:
                engine.dispose()
        finally:
            for name, _ in dbs:
                drop_db(admin, name)
        old_s, new_s, orm_s = times
        print(json.dumps({
            "page_size": args.size, "posts": args.posts, "load_before": round(load_before, 2),
            "load_after": round(os.getloadavg()[0], 2), "old_posts_per_s": round(args.posts / old_s),
            "new_posts_per_s": round(args.posts / new_s), "competent_posts_per_s": round(args.posts / orm_s),
            "old_vs_competent": round(orm_s / old_s, 2), "new_vs_competent": round(orm_s / new_s, 2),
            "new_vs_old": round(old_s / new_s, 3)}), flush=True)


if __name__ == "__main__":
    main()

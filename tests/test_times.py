"""Times compare right with ISO 8601 literals on both backends, as an analyst writes them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import Engine, select, text
from trustwatch.models import store as store_mod
from trustwatch.models.db import make_engine
from trustwatch.models.tables import Post

from tests.store_helpers import AGENCIES, make_page
from trustwatch import migrate

#: 48 posts, one every 30 minutes from 2026-11-01T00:00Z (make_page spaces them by id seconds).
IDS = [i * 1800 for i in range(48)]


def _fill(engine: Engine) -> None:
    store_mod.sync_agencies(engine, AGENCIES)
    store_mod.write_page(engine, make_page(IDS))


def _count(engine: Engine, where: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM posts WHERE {where}")).scalar_one()


def test_iso_literals_with_t_and_z_count_the_right_posts(store: Engine) -> None:
    _fill(store)
    # 13:00Z onwards: posts at 13:00, 13:30, ... 23:30 = 22; the whole first day = 48
    assert _count(store, "created_at >= '2026-11-01T13:00:00.000000Z'") == 22
    assert _count(store, "created_at >= '2026-11-01T12:59:59Z'") == 22
    assert _count(store, "created_at >= '2026-11-01T13:00:01Z'") == 21
    assert _count(store, "created_at < '2026-11-01T13:00:01Z'") == 27
    assert _count(store, "created_at >= '2026-11-01' AND created_at < '2026-11-02'") == 48
    assert _count(store, "created_at >= '2026-11-01T12:15:00Z' AND created_at < '2026-11-01T14:00:00.000000Z'") == 3
    assert _count(store, "created_at >= '2026-11-01T12:15:00Z' AND created_at < '2026-11-01T13:59:59Z'") == 3


def test_sqlite_stores_the_documented_text_form(sqlite_engine: Engine) -> None:
    _fill(sqlite_engine)
    with sqlite_engine.connect() as conn:
        stored = conn.execute(text("SELECT created_at FROM posts ORDER BY created_at LIMIT 2")).scalars().all()
        newest = conn.execute(text("SELECT max(created_at) FROM posts")).scalar_one()
    assert stored == ["2026-11-01T00:00:00.000000Z", "2026-11-01T00:30:00.000000Z"]
    assert newest == "2026-11-01T23:30:00.000000Z"
    # and read back through the models as aware UTC
    with sqlite_engine.connect() as conn:
        first = conn.execute(select(Post.created_at).order_by(Post.created_at)).scalars().first()
    assert first == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def test_upgrade_rewrites_times_stored_in_the_old_form_and_downgrade_restores_them(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    # written by today's write path at head, then taken back to the revision before 0017 (today's rows have
    # columns 0020 lacks, e.g. metric_snapshots.post_created_at of 0026)
    migrate.upgrade(engine)
    _fill(engine)
    migrate.downgrade(engine, "0020")
    with engine.begin() as conn:  # what earlier versions wrote: a space, no zone; one without fraction
        conn.execute(text("UPDATE posts SET created_at = replace(replace(created_at, 'T', ' '), 'Z', '')"))
        conn.execute(text("UPDATE posts SET created_at = '2026-11-01 23:59:59' WHERE id = "
                          "(SELECT max(id) FROM posts)"))
    assert _count(engine, "created_at >= '2026-11-01T12:59:59Z'") == 0  # the bug the revision fixes
    migrate.upgrade(engine)
    assert _count(engine, "created_at >= '2026-11-01T12:59:59Z'") == 22
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT created_at FROM posts ORDER BY id")).scalars().all()
        runs_ok = conn.execute(
            text("SELECT count(*) FROM authors WHERE first_seen_at LIKE '____-__-__T__:__:__.______Z'")
        ).scalar_one()
    assert rows[0] == "2026-11-01T00:00:00.000000Z" and rows[-1] == "2026-11-01T23:59:59.000000Z"
    assert runs_ok > 0
    migrate.downgrade(engine, "0020")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT created_at FROM posts ORDER BY id")).scalars().all()
    assert rows[0] == "2026-11-01 00:00:00.000000" and rows[-1] == "2026-11-01 23:59:59.000000"
    engine.dispose()

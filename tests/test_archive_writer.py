"""The import's writer thread (issue 19): parsing goes on while a batch is written, a failed write fails
the run and the next import resumes after the last committed batch with nothing lost or doubled, and a
Reddit comment still inherits its submission's agencies when that submission is still being written."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from trustwatch.collectors import archive
from trustwatch.collectors.archive import import_file
from trustwatch.models import store
from trustwatch.models.store import sync_agencies
from trustwatch.models.tables import CollectionRun, Post

from tests.test_archive import reddit_dump, twarc_line, tweet


@pytest.fixture
def synced(store: Engine, registry) -> Engine:
    sync_agencies(store, registry.entries)
    return store


def _x_file(tmp_path: Path, registry, lines: int) -> Path:
    name = registry.by_slug("nypd").name
    users = [{"id": str(u), "username": f"user{u}", "name": f"User {u}"} for u in (1, 2, 3)]
    path = tmp_path / "x.jsonl"
    path.write_text("\n".join(twarc_line([tweet(i, f"{name} on patrol, post {i}")], users) for i in range(lines))
                    + "\n", encoding="utf-8")
    return path


def test_parsing_goes_on_while_a_batch_is_written(sqlite_engine: Engine, registry, matcher, tmp_path: Path,
                                                  monkeypatch) -> None:
    sync_agencies(sqlite_engine, registry.entries)
    path = _x_file(tmp_path, registry, 30)
    parsed_past_first_batch = threading.Event()
    real_write, real_parse = store.write_page, archive.PARSERS["x"]
    overlapped: list[bool] = []

    def slow_write(engine, page, run_id=None):
        if not overlapped:  # the first batch waits until the parser has read on into the third
            overlapped.append(parsed_past_first_batch.wait(timeout=10))
        return real_write(engine, page, run_id)

    def watching_parse(text_, source, *args):
        if int(source.rsplit(":", 1)[1]) >= 21:
            parsed_past_first_batch.set()
        return real_parse(text_, source, *args)

    monkeypatch.setattr(store, "write_page", slow_write)
    monkeypatch.setitem(archive.PARSERS, "x", watching_parse)
    summary = import_file(sqlite_engine, "x", path, matcher=matcher, batch_posts=10)
    assert overlapped == [True], "the parser waited for the write of the first batch"
    assert summary.posts_kept == 30 and summary.status == "success"


def test_failed_write_fails_the_run_and_the_next_import_resumes(synced: Engine, registry, matcher,
                                                                tmp_path: Path, monkeypatch) -> None:
    path = _x_file(tmp_path, registry, 50)
    real_write = store.write_page
    calls = []

    def failing(engine, page, run_id=None):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("server went away")
        return real_write(engine, page, run_id)

    monkeypatch.setattr(store, "write_page", failing)
    with pytest.raises(RuntimeError, match="server went away"):
        import_file(synced, "x", path, matcher=matcher, batch_posts=10)
    with synced.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Post)).scalar_one() == 20  # two batches committed
        run = conn.execute(select(CollectionRun.status, CollectionRun.last_cursor)).one()
    assert run.status == "failed" and run.last_cursor == "20"
    monkeypatch.setattr(store, "write_page", real_write)
    again = import_file(synced, "x", path, matcher=matcher, batch_posts=10)
    assert again.resumed_after_line == 20 and again.status == "success"
    with synced.connect() as conn:
        ids = conn.execute(select(Post.platform_post_id)).scalars().all()
    # each post exactly once (ids: first versions, as tweet() makes them)
    assert sorted(ids) == sorted(tweet(i, "")["id"] for i in range(50))


def test_comments_inherit_a_submission_still_being_written(synced: Engine, registry, matcher, tmp_path: Path,
                                                           monkeypatch) -> None:
    lines, expected = reddit_dump(registry)
    path = tmp_path / "dump.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    real_write = store.write_page
    release = threading.Event()

    def held(engine, page, run_id=None):
        release.wait(timeout=0.5)  # the submission's batch is still uncommitted while the next is parsed
        return real_write(engine, page, run_id)

    monkeypatch.setattr(store, "write_page", held)
    summary = import_file(synced, "reddit", path, matcher=matcher, batch_posts=1)
    assert (summary.posts_read, summary.posts_kept) == (expected["read"], expected["kept"])
    with synced.connect() as conn:
        kinds = conn.execute(text("SELECT p.platform_post_id, m.match_kind FROM post_mentions m "
                                  "JOIN posts p ON p.id = m.post_id ORDER BY 1")).all()
    assert [tuple(k) for k in kinds] == [("c1", "thread"), ("c2", "thread"), ("c3", "thread"), ("s1", "name")]


def test_sqlite_connections_keep_few_prepared_statements(tmp_path: Path, registry, matcher, monkeypatch) -> None:
    """The SQLite --all import's memory grew with the file until Python's cache of 128 prepared statements
    per connection was full: a page's multi-row INSERTs differ in row count, each statement ~0.7 MB.  The
    store's connections (the importer's and its writer thread's) keep few."""
    from sqlite3 import dbapi2  # what SQLAlchemy's pysqlite dialect connects with

    from trustwatch.models.db import SQLITE_CACHED_STATEMENTS, make_engine

    from trustwatch import migrate

    opened: list[dict] = []
    real_connect = dbapi2.connect

    def connect(*args, **kwargs):
        opened.append(kwargs)
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(dbapi2, "connect", connect)
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    migrate.upgrade(engine)
    sync_agencies(engine, registry.entries)
    summary = import_file(engine, "x", _x_file(tmp_path, registry, 30), matcher=matcher, keep_all=True,
                          batch_posts=7)
    engine.dispose()
    assert summary.status == "success" and summary.posts_kept > 0
    assert opened and all(k.get("cached_statements") == SQLITE_CACHED_STATEMENTS <= 16 for k in opened)

"""The PostgreSQL bulk path stays cheap as the store grows: each page reads only its own rows.

The staging table has no statistics, so the planner guesses its size; a join against a whole table
(authors, posts) then costs in proportion to that table, and write_page slowed by a third with 1 M
posts (50,000 authors) stored.  These tests count the scans PostgreSQL actually ran, in the writing
transaction itself (``pg_stat_xact_user_tables``: no extension needed, so the embedded server that CI starts
answers too), on a store with many authors.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from trustwatch.models import store

from tests.store_helpers import AGENCIES, make_page

pytestmark = pytest.mark.postgres


def _scans_of_write_page(engine: Engine, ids: range, with_authors: bool = True
                         ) -> tuple[dict[str, int], store.WriteResult]:
    """Write one page and return what that transaction read of ``authors``, by sequential and index scans."""
    page = make_page(ids, seed=7)
    if not with_authors:
        page.authors = []  # the posts' authors are stored already: each is looked up in authors
    with engine.begin() as conn:
        result = store.write_page(conn, page)
        row = conn.execute(text(
            "SELECT seq_tup_read, coalesce(idx_tup_fetch, 0) AS idx_tup_fetch FROM pg_stat_xact_user_tables "
            "WHERE relname = 'authors'")).one()
    return {"seq_tup_read": row.seq_tup_read, "idx_tup_fetch": row.idx_tup_fetch}, result


def test_a_page_finds_its_authors_by_key_not_by_reading_every_author(pg_engine: Engine) -> None:
    store.sync_agencies(pg_engine, AGENCIES)
    with pg_engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO authors (platform, platform_user_id, username, first_seen_at, last_seen_at) "
            "SELECT 'x', 'filler' || g, 'filler' || g, now(), now() FROM generate_series(1, 50000) g"))
    with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE authors"))

    scans, result = _scans_of_write_page(pg_engine, range(500))

    # The join the planner hashed read all 50,097 authors for one page; a page's own authors come back from
    # their upsert (RETURNING), so it reads no other author.
    assert scans["seq_tup_read"] < 5_000, scans
    assert result.new == 500
    # A post whose author the page does not carry finds the stored author by key.
    scans, result = _scans_of_write_page(pg_engine, range(500, 1000), with_authors=False)
    assert scans["seq_tup_read"] < 5_000, scans
    assert scans["idx_tup_fetch"] >= 500, scans
    assert result.new == 500
    with pg_engine.connect() as conn:
        # every post points at its author's row, found through the key
        wrong = conn.execute(text(
            "SELECT count(*) FROM posts p LEFT JOIN authors a ON a.id = p.author_id "
            "WHERE a.platform_user_id IS DISTINCT FROM p.author_platform_id")).scalar_one()
    assert wrong == 0

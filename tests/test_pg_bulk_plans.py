"""The PostgreSQL bulk path stays cheap as the store grows: each page reads only its own rows.

The staging table has no statistics, so the planner guesses its size; a join against a whole table
(authors, posts) then costs in proportion to that table, and write_page slowed by a third with 1 M
posts (50,000 authors) stored.  These tests read the plans PostgreSQL actually ran (auto_explain) on a
store with many authors.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from trustwatch.models import store

from tests.store_helpers import AGENCIES, make_page

pytestmark = pytest.mark.postgres


def _plans_of_write_page(engine: Engine, ids: range) -> tuple[list[str], store.WriteResult]:
    """Write one page in a transaction that logs the plan of every statement, and return the plans."""
    plans: list[str] = []
    with engine.begin() as conn:
        driver = conn.connection.driver_connection
        driver.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
        conn.exec_driver_sql("LOAD 'auto_explain'")
        for setting in ("auto_explain.log_min_duration = 0", "auto_explain.log_nested_statements = on",
                        "client_min_messages = log"):
            conn.exec_driver_sql(f"SET LOCAL {setting}")
        result = store.write_page(conn, make_page(ids, seed=7))
    return plans, result


def test_a_page_finds_its_authors_by_key_not_by_reading_every_author(pg_engine: Engine) -> None:
    store.sync_agencies(pg_engine, AGENCIES)
    with pg_engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO authors (platform, platform_user_id, username, first_seen_at, last_seen_at) "
            "SELECT 'x', 'filler' || g, 'filler' || g, now(), now() FROM generate_series(1, 50000) g"))
    with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE authors"))

    plans, result = _plans_of_write_page(pg_engine, range(500))

    merge = [p for p in plans if "INSERT INTO posts" in p]
    assert len(merge) == 1, plans
    assert "Seq Scan on authors" not in merge[0], merge[0]
    assert result.new == 500
    with pg_engine.connect() as conn:
        # every post points at its author's row, found through the key
        wrong = conn.execute(text(
            "SELECT count(*) FROM posts p LEFT JOIN authors a ON a.id = p.author_id "
            "WHERE a.platform_user_id IS DISTINCT FROM p.author_platform_id")).scalar_one()
    assert wrong == 0

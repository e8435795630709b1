"""The read-only ``analyst`` role on PostgreSQL: reads every table and view, changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import ProgrammingError
from trustwatch.models.db import make_engine

from trustwatch import migrate

WRITES = [
    "INSERT INTO agencies (slug, name, kind, aliases, x_handles, hashtags, subreddits, active, updated_at) "
    "VALUES ('x', 'X', 'municipal', '[]', '[]', '[]', '[]', true, now())",
    "UPDATE posts SET text = 'changed'",
    "DELETE FROM posts",
    "DELETE FROM collection_runs",
    "TRUNCATE rejected_payloads",
    "CREATE TABLE analyst_scratch (id int)",
    "CREATE VIEW analyst_view AS SELECT 1 AS one",
    "DROP TABLE posts",
    "DROP VIEW agency_mentions",
    "ALTER TABLE posts ADD COLUMN note text",
    "CREATE INDEX ix_analyst ON posts (lang)",
]


@pytest.fixture
def pg_store(pg_server: Any) -> Iterator[Engine]:
    """A freshly migrated database of its own (these tests migrate down and up)."""
    engine = make_engine(pg_server.create("tw_analyst"))
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def relations(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "ORDER BY table_name")).scalars())


def as_analyst(engine: Engine, sql: str) -> Any:
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL ROLE analyst"))
        return conn.execute(text(sql)).all() if sql.lstrip().upper().startswith("SELECT") else conn.execute(text(sql))


def test_analyst_reads_every_table_and_view(pg_store: Engine) -> None:
    names = relations(pg_store)
    assert {"posts", "authors", "collection_runs", "rejected_payloads", "agency_mentions",
            "agency_daily_trend"} <= set(names)
    for name in names:
        as_analyst(pg_store, f'SELECT * FROM "{name}" LIMIT 1')  # raises if the role may not read it


@pytest.mark.parametrize("statement", WRITES, ids=[w.split(" (")[0][:40] for w in WRITES])
def test_analyst_can_change_nothing(pg_store: Engine, statement: str) -> None:
    with pytest.raises(ProgrammingError) as info:
        as_analyst(pg_store, statement)
    assert "permission denied" in str(info.value.orig) or "must be owner" in str(info.value.orig)


def test_tables_made_by_later_migrations_are_readable_too(pg_store: Engine) -> None:
    with pg_store.begin() as conn:
        conn.execute(text("CREATE TABLE later_table (id int)"))
        conn.execute(text("CREATE VIEW later_view AS SELECT id FROM later_table"))
    assert as_analyst(pg_store, "SELECT * FROM later_view") == []
    with pytest.raises(ProgrammingError):
        as_analyst(pg_store, "INSERT INTO later_table VALUES (1)")


def test_the_role_is_a_group_without_login_and_the_migration_is_repeatable(pg_store: Engine) -> None:
    with pg_store.connect() as conn:
        role = conn.execute(text("SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles "
                                 "WHERE rolname = 'analyst'")).one()
    assert tuple(role) == (False, False, False, False)
    migrate.downgrade(pg_store, "0002")
    with pytest.raises(ProgrammingError):
        as_analyst(pg_store, "SELECT * FROM posts")
    migrate.upgrade(pg_store)
    assert as_analyst(pg_store, "SELECT count(*) FROM posts") == [(0,)]


def test_on_sqlite_the_migration_is_a_no_op(sqlite_engine: Engine) -> None:
    migrate.downgrade(sqlite_engine, "0003")
    before = relations_sqlite(sqlite_engine)
    migrate.downgrade(sqlite_engine, "0002")
    assert relations_sqlite(sqlite_engine) == before
    migrate.upgrade(sqlite_engine, "0003")
    assert relations_sqlite(sqlite_engine) == before


def relations_sqlite(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT name FROM sqlite_master ORDER BY name")).scalars())

"""The read-only analyst group on PostgreSQL (``<database>_analyst``): reads every table and view of its own
database, changes nothing (no temporary objects, no large objects), and sees no deleted content through the
catalog (issue 20, items 8 to 11)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
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


def role_of(engine: Engine) -> str:
    with engine.connect() as conn:
        return f"{conn.execute(text('SELECT current_database()')).scalar_one()}_analyst"


def as_analyst(engine: Engine, sql: str) -> Any:
    with engine.begin() as conn:
        conn.execute(text(f'SET LOCAL ROLE "{role_of(engine)}"'))
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
                                 "WHERE rolname = :r"), {"r": role_of(pg_store)}).one()
    assert tuple(role) == (False, False, False, False)
    migrate.downgrade(pg_store, "0004")
    with pytest.raises(ProgrammingError):
        as_analyst(pg_store, "SELECT * FROM posts")
    migrate.downgrade(pg_store, "0002")
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


# --- issue 20: items 8 to 11 --------------------------------------------------------------------------

#: What a member could still write with before: temporary objects and large objects.
MORE_WRITES = [
    "SELECT lo_from_bytea(0, 'written by an analyst')",
    "SELECT lo_create(0)",
    "CREATE TEMP TABLE analyst_tmp (id int)",
    "CREATE FUNCTION pg_temp.analyst_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'",
]


@pytest.mark.parametrize("statement", MORE_WRITES, ids=["lo_from_bytea", "lo_create", "temp-table", "temp-function"])
def test_analyst_cannot_write_temporary_or_large_objects(pg_store: Engine, statement: str) -> None:
    with pytest.raises(ProgrammingError) as info:
        as_analyst(pg_store, statement)
    assert "permission denied" in str(info.value.orig)
    with pg_store.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pg_largeobject_metadata")).scalar_one() == 0


def test_the_store_writer_keeps_its_staging_table(pg_store: Engine) -> None:
    """TEMP is revoked from PUBLIC, not from the role that writes pages through a temporary staging table."""
    from trustwatch.models import store

    from tests.store_helpers import AGENCIES, make_page

    store.sync_agencies(pg_store, AGENCIES)
    assert store.write_page(pg_store, make_page(range(5))).new == 5


def test_what_remains_is_only_the_members_own_session_defaults(pg_store: Engine) -> None:
    """Documented in RELIABILITY.md: a member may always set its own session defaults (PostgreSQL has no
    grant for it); that changes no data and nothing for anyone else.  The group itself cannot be altered."""
    import uuid

    role, member = role_of(pg_store), f"tw_member_{uuid.uuid4().hex[:8]}"
    with pg_store.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{member}" LOGIN IN ROLE "{role}"'))
    try:
        with pg_store.begin() as conn:
            conn.execute(text(f'SET LOCAL ROLE "{member}"'))
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text(f"ALTER ROLE \"{role}\" SET work_mem = '64MB'"))
        with pg_store.begin() as conn:
            conn.execute(text(f'SET LOCAL ROLE "{member}"'))
            conn.execute(text(f"ALTER ROLE \"{member}\" SET work_mem = '64MB'"))  # what remains: its own
    finally:
        with pg_store.begin() as conn:
            conn.execute(text(f'DROP ROLE "{member}"'))


def test_the_group_reads_only_its_own_database(pg_server: Any) -> None:
    """Item 10: two stores on one server; the first store's analysts cannot read the second store."""
    from trustwatch.models import store

    from tests.store_helpers import AGENCIES

    one = make_engine(pg_server.create("tw_iso_a"))
    two_url = pg_server.create("tw_iso_b")
    two = make_engine(two_url)
    try:
        migrate.upgrade(one)
        migrate.upgrade(two)
        store.sync_agencies(two, AGENCIES)
        with two.begin() as conn:
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text(f'SET LOCAL ROLE "{role_of(one)}"'))
                conn.execute(text("SELECT count(*) FROM agencies")).scalar_one()
        with two.begin() as conn:  # the shared group of migration 0003 keeps nothing either
            conn.execute(text("SET LOCAL ROLE analyst"))
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text("SELECT count(*) FROM agencies"))
        assert as_analyst(two, "SELECT count(*) FROM agencies") == [(len(AGENCIES),)]
    finally:
        one.dispose()
        two.dispose()


def test_no_tombstoned_text_is_readable_through_the_catalog(pg_store: Engine) -> None:
    """Item 9: ANALYZE copies samples of columns into pg_stats, which the analyst can read; content columns
    are kept out of the statistics, so a deleted post's text is nowhere an analyst can look."""
    import datetime as dt

    from trustwatch.collectors.compliance import tombstone
    from trustwatch.models import store

    from tests.store_helpers import AGENCIES, make_page

    store.sync_agencies(pg_store, AGENCIES)
    page = make_page(range(300))
    secrets = [f"deleted confession number {i} about the chief" for i in range(300)]
    page.posts = [dataclasses.replace(p, text=secrets[i], raw={"id": p.platform_post_id, "text": secrets[i]})
                  for i, p in enumerate(page.posts)]
    store.write_page(pg_store, page)
    with pg_store.begin() as conn:
        conn.execute(text("ANALYZE posts"))
    tombstone(pg_store, "x", {p.platform_post_id: "not_found" for p in page.posts},
              dt.datetime.now(dt.UTC))
    with pg_store.begin() as conn:
        conn.execute(text("ANALYZE posts"))
    views = ["pg_stats", "pg_stats_ext", "pg_stats_ext_exprs"]
    seen = " ".join(str(row) for v in views for row in as_analyst(pg_store, f"SELECT * FROM {v}"))
    assert "confession" not in seen


def test_upgrade_without_createrole_says_what_is_needed(pg_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Item 11: a store owner without CREATEROLE upgrades; the group is skipped with one warning that says
    the command to create it later, and the rest of the migration (leases) is applied."""
    import uuid

    owner = f"tw_owner_{uuid.uuid4().hex[:8]}"
    url = pg_server.create("tw_nocreaterole")
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{owner}" LOGIN NOCREATEROLE'))
        conn.execute(text(f'GRANT ALL ON SCHEMA public TO "{owner}"'))
        conn.execute(text(f'ALTER DATABASE "{make_url(url).database}" OWNER TO "{owner}"'))
    engine = make_engine(make_url(url).set(username=owner).render_as_string(hide_password=False))
    try:
        with caplog.at_level("WARNING"):
            migrate.upgrade(engine)
        warned = [r.getMessage() for r in caplog.records if "CREATEROLE" in r.getMessage()]
        assert len(warned) == 1 and "CREATE ROLE" in warned[0]
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM collection_runs WHERE lease_owner IS NULL")).scalar() == 0
            assert conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                                {"r": role_of(engine)}).first() is None
    finally:
        engine.dispose()
        admin.dispose()
        pg_server.drop(make_url(url).database)
        with pg_server.admin.connect() as conn:
            conn.execute(text(f'DROP ROLE IF EXISTS "{owner}"'))

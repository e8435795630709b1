"""Migrations: fresh upgrade, downgrade to base and back, no drift from the models, documented columns."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from trustwatch.models import partitions
from trustwatch.models.db import make_engine
from trustwatch.models.tables import Base

from trustwatch import migrate

TABLES = {
    "agencies", "authors", "posts", "post_mentions", "metric_snapshots", "collection_runs", "watermarks",
    "rejected_payloads", "post_scores", "agency_daily_trends",
}


def drift(engine: Engine) -> list:
    """Differences between the migrated database and the models.  On a partitioned PostgreSQL store the models
    are compared with the partitioned tables' own keys (models/partitions.py) and the partitions are left
    out: the models describe the parent tables analysts query."""
    with engine.connect() as conn:
        partitioned = partitions.is_partitioned(conn)
        skip = {"trustwatch_alembic_version"} | partitions.partitions_of(conn)
        ctx = MigrationContext.configure(conn, opts={
            "compare_type": True, "version_table": "trustwatch_alembic_version",
            "include_name": lambda name, type_, _p: not (type_ == "table" and name in skip),
        })
        return compare_metadata(ctx, partitions.pg_metadata(Base.metadata) if partitioned else Base.metadata)


def check_round_trip(engine: Engine) -> None:
    migrate.upgrade(engine)
    names = set(inspect(engine).get_table_names())
    assert TABLES <= names and "trustwatch_alembic_version" in names
    assert "agency_mentions" in inspect(engine).get_view_names()
    assert drift(engine) == []
    migrate.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) - {"trustwatch_alembic_version"} == set()
    assert migrate.current(engine) is None
    migrate.upgrade(engine)
    assert drift(engine) == []


def test_sqlite_round_trip(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    check_round_trip(engine)
    with engine.connect() as conn:
        assert conn.execute(text("pragma journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("pragma busy_timeout")).scalar_one() >= 30_000


@pytest.mark.postgres
def test_postgres_round_trip(pg_server) -> None:
    engine = make_engine(pg_server.create("tw_migr"))
    check_round_trip(engine)
    with engine.connect() as conn:
        jsonb = conn.execute(text(
            "select data_type from information_schema.columns where table_name='posts' and column_name='raw'"
        )).scalar_one()
        assert jsonb == "jsonb"
        tz = conn.execute(text(
            "select data_type from information_schema.columns where table_name='posts' and column_name='created_at'"
        )).scalar_one()
        assert tz == "timestamp with time zone"
        undocumented = conn.execute(text("""
            select c.table_name || '.' || c.column_name
            from information_schema.columns c
            join pg_class k on k.relname = c.table_name and k.relkind in ('r', 'p') and not k.relispartition
            where c.table_schema = 'public' and c.table_name <> 'trustwatch_alembic_version'
              and col_description(k.oid, c.ordinal_position) is null
        """)).scalars().all()
        assert undocumented == []
        tables_without_comment = conn.execute(text("""
            select relname from pg_class where relkind in ('r', 'p', 'v') and relnamespace = 'public'::regnamespace
              and relname <> 'trustwatch_alembic_version' and obj_description(oid, 'pg_class') is null
        """)).scalars().all()
        assert tables_without_comment == []
    engine.dispose()


def test_drift_is_detected(tmp_path: Path) -> None:
    """The drift check is not vacuous: a column the migrations lack is reported."""
    from sqlalchemy import Column, Integer, MetaData, Table

    engine = make_engine(f"sqlite:///{tmp_path / 'd.db'}")
    migrate.upgrade(engine)
    meta = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(meta)
    Table("posts", meta, Column("extra_column", Integer), extend_existing=True)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": "trustwatch_alembic_version"})
        diff = compare_metadata(ctx, meta)
    assert any(d[0] == "add_column" and d[3].name == "extra_column" for d in diff)


def check_0004_keeps_data(engine: Engine) -> None:
    """Migration 0004 rebuilds `posts` on SQLite: the stored posts, their authors and the scores that reference
    them (ON DELETE CASCADE) must survive the upgrade and the downgrade."""
    from trustwatch.models import store

    from tests.store_helpers import AGENCIES, make_page

    # written by today's write path at head, then taken back to 0003 (today's posts have columns 0003 lacks)
    migrate.upgrade(engine)
    store.sync_agencies(engine, AGENCIES)
    store.write_page(engine, make_page(range(20)))
    migrate.downgrade(engine, "0003")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO post_scores (post_id, agency_id, scorer, scorer_version, sentiment, trust_score, scored_at) "
            "SELECT p.id, m.agency_id, 'test', '1', 0.5, 0.5, p.created_at "
            "FROM posts p JOIN post_mentions m ON m.post_id = p.id"
        ))

    def counts() -> dict[str, int]:
        with engine.connect() as conn:
            return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                    for t in ("posts", "authors", "post_mentions", "post_scores", "agency_mentions")}

    before = counts()
    assert before["posts"] == 20 and before["post_scores"] == 40
    migrate.upgrade(engine)
    assert counts() == before
    assert [fk for fk in inspect(engine).get_foreign_keys("posts") if fk["referred_table"] == "authors"] == []
    assert "ix_posts_platform_created_at" not in {i["name"] for i in inspect(engine).get_indexes("posts")}
    with engine.connect() as conn:  # the rebuilt table keeps the store's queries working
        assert conn.execute(text("SELECT count(*) FROM agency_mentions WHERE author IS NOT NULL")).scalar_one() == 40
    migrate.downgrade(engine, "0003")
    assert counts() == before
    assert [fk["referred_table"] for fk in inspect(engine).get_foreign_keys("posts")] == ["authors"]
    migrate.upgrade(engine)
    assert counts() == before and drift(engine) == []


def test_sqlite_0004_keeps_data(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    check_0004_keeps_data(engine)
    with engine.connect() as conn:  # the pragmas are back on for the store's own writes
        assert conn.execute(text("pragma foreign_keys")).scalar_one() == 1
        assert conn.execute(text("pragma legacy_alter_table")).scalar_one() == 0


@pytest.mark.postgres
def test_postgres_0004_keeps_data(pg_server) -> None:
    engine = make_engine(pg_server.create("tw_m0004"))
    check_0004_keeps_data(engine)
    engine.dispose()


@pytest.mark.postgres
def test_postgres_drift_check_knows_the_partitioned_keys(pg_server) -> None:
    """The partitioned tables' keys are compared, not skipped: against the models' own (SQLite) keys the
    migrated PostgreSQL store differs exactly in the two unique keys that gained the post's time."""
    engine = make_engine(pg_server.create("tw_mkeys"))
    migrate.upgrade(engine)
    with engine.connect() as conn:
        skip = {"trustwatch_alembic_version"} | partitions.partitions_of(conn)
        ctx = MigrationContext.configure(conn, opts={
            "version_table": "trustwatch_alembic_version",
            "include_name": lambda name, type_, _p: not (type_ == "table" and name in skip)})
        diff = compare_metadata(ctx, Base.metadata)
    names = sorted((d[0], d[1].name) for d in diff)
    assert names == [("add_constraint", "uq_post_mentions_post_id_agency_id_match_kind_matched_term"),
                     ("add_constraint", "uq_posts_platform_platform_post_id"),
                     ("remove_constraint", "uq_post_mentions_key_created"),
                     ("remove_constraint", "uq_posts_platform_post_created")], diff
    assert drift(engine) == []
    engine.dispose()

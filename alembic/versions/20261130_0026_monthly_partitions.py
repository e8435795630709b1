"""monthly partitions on PostgreSQL: posts, post_mentions and metric_snapshots by month of the post's time

Revision ID: 0026
Revises: 0025
Create Date: 2026-11-30 12:00:00

Issue 18 §2 (docs/SCALING.md). On PostgreSQL the three tables become declaratively partitioned by range of
``created_at`` (``posts``) or its copy ``post_created_at`` (``post_mentions``, and ``metric_snapshots``, which
gains the column here on both backends), one partition per UTC month and a ``DEFAULT`` partition
(models/partitions.py). Every unique key of a partitioned table must include the partition key, so
``posts`` is keyed ``(id, created_at)`` and ``(platform, platform_post_id, created_at)``, and ``post_mentions``'
key gains ``post_created_at``; ``validate_post`` truncates ``created_at`` to whole seconds so every sighting of
a post names the same row.

Each table is rebuilt beside the old one: the old table is renamed, a new one made ``LIKE`` it (columns,
defaults, checks, comments; the id sequence is handed over), rows copied, the old one dropped, then keys,
indexes (the old ones' definitions, read from ``pg_indexes``) and grants put back. Views read the tables by
identity, so every view of the schema is saved (``pg_get_viewdef``, comments, grants), dropped and recreated
in dependency order: no view SQL is copied here, so nothing can drift from 0014a/0016/0021/0023/0024.

``created_at`` precision: stored times with a fraction of a second (an edited X post stored with its id's
millisecond time) are truncated in the copy, and mentions and snapshots take their post's truncated time.
The migration reports how many rows that touched (log line ``migration 0026:``), including every mention
whose stored time differed from its post's only below a second; a mention or snapshot whose time differs
from its post's by a second or more is not guessed at: the migration stops and names them.

``post_scores.post_id`` loses its foreign key (on both backends): a foreign key to a partitioned table must
name its whole key, and retention drops a month's posts with their scores itself (models/partitions.py).
SQLite keeps plain tables; there this migration only adds ``metric_snapshots.post_created_at`` and drops the
foreign key.
"""
from __future__ import annotations

import graphlib
import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import text

import trustwatch.models.types
from trustwatch.models import partitions

revision: str = '0026'
down_revision: str | None = '0025'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

FK = "fk_post_scores_post_id_posts"
SNAPSHOT_COLUMN_COMMENT = "The post's created_at, copied: the partition key on PostgreSQL."
#: The plain tables' keys (the models'), restored by the downgrade.
PLAIN_KEYS = {
    "posts": ("id",), "post_mentions": ("id",), "metric_snapshots": ("id",),
}
PLAIN_UNIQUES = {
    "posts": {"uq_posts_platform_platform_post_id": ("platform", "platform_post_id")},
    "post_mentions": {"uq_post_mentions_post_id_agency_id_match_kind_matched_term":
                      ("post_id", "agency_id", "match_kind", "matched_term")},
    "metric_snapshots": {},
}
#: How each table's partition key is filled in the copy: whole seconds, and a post's own time for the rows
#: that copy it (posts is copied first).
COPY_KEY = {
    "posts": "date_trunc('second', o.created_at)",
    "post_mentions": "coalesce((SELECT p.created_at FROM posts p WHERE p.id = o.post_id), "
                     "date_trunc('second', o.post_created_at))",
    # a snapshot whose post is gone (no foreign key) keeps the time it was taken
    "metric_snapshots": "coalesce((SELECT p.created_at FROM posts p WHERE p.id = o.post_id), "
                        "date_trunc('second', o.observed_at))",
}


def _q(sql: str, **params: object) -> sa.CursorResult:
    return op.get_bind().execute(text(sql), params)


def _save_views() -> list[dict]:
    """Every view of the schema: definition, comments, grants, in an order that creates each after the views
    it reads."""
    views = {r.name: {"name": r.name, "sql": r.sql, "comment": r.comment} for r in _q(
        "SELECT c.relname AS name, pg_get_viewdef(c.oid, true) AS sql, obj_description(c.oid, 'pg_class') AS comment "
        "FROM pg_class c WHERE c.relkind = 'v' AND c.relnamespace = to_regnamespace(current_schema())")}
    for v in views.values():
        v["columns"] = [(r.col, r.comment) for r in _q(
            "SELECT a.attname AS col, col_description(a.attrelid, a.attnum) AS comment FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(:n) AND a.attnum > 0 AND col_description(a.attrelid, a.attnum) IS NOT NULL",
            n=v["name"])]
        v["grants"] = _grants(v["name"])
    order = graphlib.TopologicalSorter({name: set() for name in views})
    for r in _q(
        "SELECT DISTINCT v.relname AS view, u.relname AS uses FROM pg_rewrite w "
        "JOIN pg_class v ON v.oid = w.ev_class JOIN pg_depend d ON d.objid = w.oid AND d.classid = 'pg_rewrite'::regclass "
        "JOIN pg_class u ON u.oid = d.refobjid WHERE v.relkind = 'v' AND u.relkind = 'v' AND u.oid <> v.oid "
        "AND v.relnamespace = to_regnamespace(current_schema())"):
        order.add(r.view, r.uses)
    return [views[name] for name in order.static_order() if name in views]


def _grants(name: str) -> list[tuple[str, str]]:
    return [(r.grantee, r.privilege) for r in _q(
        "SELECT grantee, privilege_type AS privilege FROM information_schema.role_table_grants "
        "WHERE table_schema = current_schema() AND table_name = :n AND grantee <> current_user "
        "AND grantee NOT IN (SELECT tableowner FROM pg_tables WHERE tablename = :n "
        "UNION SELECT viewowner FROM pg_views WHERE viewname = :n)", n=name)]


def _grant(name: str, grants: list[tuple[str, str]]) -> None:
    for grantee, privilege in grants:
        op.execute(f'GRANT {privilege} ON {name} TO "{grantee}"')


def _literal(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def _restore_views(views: list[dict]) -> None:
    for v in views:
        op.execute(f"CREATE VIEW {v['name']} AS {v['sql']}")
        if v["comment"] is not None:
            op.execute(f"COMMENT ON VIEW {v['name']} IS {_literal(v['comment'])}")
        for col, comment in v["columns"]:
            op.execute(f'COMMENT ON COLUMN {v["name"]}."{col}" IS {_literal(comment)}')
        _grant(v["name"], v["grants"])


def _check_times() -> None:
    """Report what the copy will truncate; stop on mentions whose post time is off by a second or more."""
    fraction = _q("SELECT count(*) FROM posts WHERE created_at <> date_trunc('second', created_at)").scalar_one()
    rows = _q("SELECT o.id, o.post_id, o.post_created_at, p.created_at FROM post_mentions o "
              "JOIN posts p ON p.id = o.post_id WHERE o.post_created_at <> p.created_at").all()
    below = [r for r in rows if abs((r[2] - r[3]).total_seconds()) < 1]
    beyond = [r for r in rows if abs((r[2] - r[3]).total_seconds()) >= 1]
    if beyond:
        sample = ", ".join(f"post_mentions.id {r[0]} (post {r[1]}: {r[2]} vs {r[3]})" for r in beyond[:5])
        raise RuntimeError(
            f"migration 0026: {len(beyond)} rows of post_mentions carry a post time a second or more away from "
            f"their post's created_at ({sample}); which month they belong to is ambiguous, so nothing was changed. "
            "Set post_mentions.post_created_at from posts.created_at for them (or delete them) and migrate again.")
    if fraction or below:
        log.warning("migration 0026: truncated to whole seconds: created_at of %d posts; post_created_at of %d "
                    "mentions that differed from their post's time only below a second (set to the post's)",
                    fraction, len(below))


def _detach(spec: partitions.Partitioned, partitioned: bool) -> dict:
    """Rename the table aside, without keys or indexes, and create the new one like it; returns what
    :func:`_fill` needs to finish it."""
    t, old = spec.table, f"{spec.table}_before_0026"
    comment = _q("SELECT obj_description(to_regclass(:n), 'pg_class')", n=t).scalar()
    state = {"spec": spec, "old": old, "grants": _grants(t), "partitioned": partitioned}
    keys = {r.conname for r in _q("SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(:n) "
                                  "AND contype IN ('p', 'u')", n=t)}
    # a partitioned parent's index reads "ON ONLY": recreated on a plain table it must recurse as usual
    state["indexes"] = [r.indexdef.replace(" ON ONLY ", " ON ", 1) for r in _q(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = :n "
        "ORDER BY indexname", n=t) if r.indexname not in keys]
    sequence = _q("SELECT pg_get_serial_sequence(:n, 'id')", n=t).scalar_one()
    op.execute(f"ALTER TABLE {t} RENAME TO {old}")
    for name in keys:
        op.execute(f"ALTER TABLE {old} DROP CONSTRAINT {name}")
    for r in _q("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = :n", n=old):
        op.execute(f"DROP INDEX {r.indexname}")
    tail = f" PARTITION BY RANGE ({spec.column})" if partitioned else ""
    op.execute(f"CREATE TABLE {t} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMMENTS "
               f"INCLUDING STORAGE){tail}")
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY {t}.id")
    if comment is not None:
        op.execute(f"COMMENT ON TABLE {t} IS {_literal(comment)}")
    return state


def _fill(state: dict) -> None:
    """Copy the rows, drop the old table, then add keys, indexes and grants (built once, over all rows)."""
    spec, old, partitioned = state["spec"], state["old"], state["partitioned"]
    t = spec.table
    columns = [r.attname for r in _q("SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:n) "
                                     "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", n=t)]
    source = [COPY_KEY[t] if partitioned and c == spec.column else f"o.{c}" for c in columns]
    op.execute(f"INSERT INTO {t} ({', '.join(columns)}) SELECT {', '.join(source)} FROM {old} o")
    op.execute(f"DROP TABLE {old}")
    key = spec.primary_key if partitioned else PLAIN_KEYS[t]
    op.execute(f"ALTER TABLE {t} ADD CONSTRAINT pk_{t} PRIMARY KEY ({', '.join(key)})")
    for name, cols in (spec.uniques if partitioned else PLAIN_UNIQUES[t]).items():
        op.execute(f"ALTER TABLE {t} ADD CONSTRAINT {name} UNIQUE ({', '.join(cols)})")
    for sql in state["indexes"]:
        op.execute(sql)
    _grant(t, state["grants"])


def _rebuild_all(partitioned: bool) -> None:
    """Rebuild the three tables, views saved and recreated around them."""
    views = _save_views()
    for v in reversed(views):
        op.execute(f"DROP VIEW {v['name']}")
    states = [_detach(spec, partitioned) for spec in partitions.PARTITIONED]
    if partitioned:
        conn = op.get_bind()
        partitions.ensure_default(conn)
        # the months of the posts: mentions and snapshots take their post's time in the copy
        partitions.ensure_months(conn, [partitions.month_of(m) for m in _q(
            "SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC') FROM posts_before_0026").scalars()])
    for state in states:
        _fill(state)
    _restore_views(views)


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        op.drop_constraint(FK, "post_scores", type_="foreignkey")
    else:
        with op.batch_alter_table("post_scores", recreate="always") as batch:
            batch.drop_constraint(FK, type_="foreignkey")
    op.add_column("metric_snapshots", sa.Column("post_created_at", trustwatch.models.types.UTCDateTime(),
                                                nullable=True, comment=SNAPSHOT_COLUMN_COMMENT))
    if not pg:
        op.execute("UPDATE metric_snapshots SET post_created_at = coalesce("
                   "(SELECT p.created_at FROM posts p WHERE p.id = metric_snapshots.post_id), observed_at)")
        with op.batch_alter_table("metric_snapshots") as batch:
            batch.alter_column("post_created_at", existing_type=trustwatch.models.types.UTCDateTime(),
                               nullable=False, existing_comment=SNAPSHOT_COLUMN_COMMENT)
        return
    _check_times()
    _rebuild_all(partitioned=True)
    op.alter_column("metric_snapshots", "post_created_at", nullable=False,
                    existing_type=trustwatch.models.types.UTCDateTime(), existing_comment=SNAPSHOT_COLUMN_COMMENT)
    partitions.prepare_months(op.get_bind())


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        _rebuild_all(partitioned=False)
        op.drop_column("metric_snapshots", "post_created_at")
        op.create_foreign_key(FK, "post_scores", "posts", ["post_id"], ["id"], ondelete="CASCADE")
    else:
        with op.batch_alter_table("metric_snapshots") as batch:
            batch.drop_column("post_created_at")
        with op.batch_alter_table("post_scores", recreate="always") as batch:
            batch.create_foreign_key(FK, "posts", ["post_id"], ["id"], ondelete="CASCADE")

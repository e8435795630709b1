"""Monthly partitions of the store on PostgreSQL (issue 18): ``posts``, ``post_mentions``, ``metric_snapshots``.

Each table is partitioned by range of its post's creation time (``created_at``, or the copy
``post_created_at``), one partition per UTC month plus a ``DEFAULT`` partition that catches any row dated
outside the prepared months, so a write never fails for a missing partition.  :func:`prepare_months` creates
the coming months (and moves rows that landed in the default partition into their month); it runs in the
migration, in the collect DAGs' ``sync_registry`` step and as ``trustwatch partitions prepare``.

PostgreSQL requires every unique key of a partitioned table to include the partition key, so on PostgreSQL the
keys of :data:`PARTITIONED` replace the models' (``posts``: ``(platform, platform_post_id, created_at)``); the
writers' conflict targets name them.  This is safe only because ``validate_post`` truncates ``created_at`` to
whole seconds, so every sighting of a post carries the same time.  SQLite keeps the plain tables and the models'
keys.  :func:`detach_month` is the retention step: the month's partitions are detached (metadata only, whatever
the table size), archived as CSV and dropped.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, MetaData, UniqueConstraint, text
from sqlalchemy.engine import Connection

#: Serializes partition maintenance: two ``sync_registry`` tasks creating the same month would collide.
_LOCK_KEY = 0x7457_5041  # "tWPA"


class PartitionError(Exception):
    """A partition step that cannot run as asked (bad month, no partitioned store); nothing was changed."""


@dataclass(frozen=True)
class Partitioned:
    """A table partitioned by month on PostgreSQL, with the keys it has there."""

    table: str
    column: str
    primary_key: tuple[str, ...]
    #: Unique constraints on PostgreSQL (name -> columns); each replaces the model's constraint named by
    #: ``replaces``.
    uniques: dict[str, tuple[str, ...]] = field(default_factory=dict)
    replaces: dict[str, str] = field(default_factory=dict)


PARTITIONED: tuple[Partitioned, ...] = (
    Partitioned("posts", "created_at", ("id", "created_at"),
                {"uq_posts_platform_post_created": ("platform", "platform_post_id", "created_at")},
                {"uq_posts_platform_post_created": "uq_posts_platform_platform_post_id"}),
    Partitioned("post_mentions", "post_created_at", ("id", "post_created_at"),
                {"uq_post_mentions_key_created": ("post_id", "agency_id", "match_kind", "matched_term",
                                                  "post_created_at")},
                {"uq_post_mentions_key_created": "uq_post_mentions_post_id_agency_id_match_kind_matched_term"}),
    Partitioned("metric_snapshots", "post_created_at", ("id", "post_created_at")),
)

#: The PostgreSQL conflict target of a mention insert (models/pg_bulk.py writes it in its SQL).
MENTIONS_CONFLICT = PARTITIONED[1].uniques["uq_post_mentions_key_created"]


def mention_key(dialect: str) -> list[str]:
    """The columns an ``ON CONFLICT`` on ``post_mentions`` names: with the post's time on PostgreSQL (a
    migrated PostgreSQL store is always partitioned), the models' key on SQLite."""
    if dialect == "postgresql":
        return list(MENTIONS_CONFLICT)
    return ["post_id", "agency_id", "match_kind", "matched_term"]


def month_of(moment: dt.datetime | dt.date) -> dt.date:
    """The first day of the UTC month holding ``moment``."""
    if isinstance(moment, dt.datetime):
        moment = moment.astimezone(dt.UTC).date() if moment.tzinfo else moment.date()
    return moment.replace(day=1)


def next_month(month: dt.date) -> dt.date:
    """The first day of the month after ``month``."""
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def parse_month(value: str) -> dt.date:
    """``2025-01`` -> 2025-01-01, with a clear error for anything else."""
    try:
        return dt.datetime.strptime(value.strip(), "%Y-%m").date()
    except ValueError:
        raise PartitionError(f"month {value!r} is not YYYY-MM, e.g. 2025-01") from None


def partition_name(table: str, month: dt.date) -> str:
    """``posts_2025_01``."""
    return f"{table}_{month:%Y_%m}"


def _bound(month: dt.date) -> str:
    return f"'{month:%Y-%m-%d} 00:00:00+00'"


def is_partitioned(conn: Connection) -> bool:
    """True on a PostgreSQL store whose ``posts`` is partitioned (migration 0026 applied)."""
    if conn.dialect.name != "postgresql":
        return False
    return bool(conn.execute(text(
        "SELECT EXISTS (SELECT 1 FROM pg_class WHERE oid = to_regclass('posts') AND relkind = 'p')")).scalar())


def partitions_of(conn: Connection) -> set[str]:
    """Names of every partition of the partitioned tables (the drift check leaves them out: the models
    describe the parents)."""
    if conn.dialect.name != "postgresql":
        return set()
    return set(conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ANY(:parents) "
        "AND p.relnamespace = to_regnamespace(current_schema())"
    ), {"parents": [p.table for p in PARTITIONED]}).scalars())


def pg_metadata(metadata: MetaData) -> MetaData:
    """The models as they stand on PostgreSQL: ``metadata`` with the partitioned tables' unique keys replaced."""
    out = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.tables.values():
        table.to_metadata(out)
    for spec in PARTITIONED:
        table = out.tables[spec.table]
        for name, old in spec.replaces.items():
            gone = [c for c in table.constraints if isinstance(c, UniqueConstraint) and c.name == old]
            for constraint in gone:
                table.constraints.discard(constraint)
            table.append_constraint(UniqueConstraint(*spec.uniques[name], name=name))
    return out


def ensure_months(conn: Connection, months: Iterable[dt.date]) -> list[str]:
    """Create the partitions of ``months`` for every partitioned table; returns the ones created.

    Rows already in the ``DEFAULT`` partition for a month are moved into the new partition (PostgreSQL
    refuses a partition whose range the default partition still holds rows of).

    Writers wait while partitions are made: the partitioned tables are locked against writes (``SHARE ROW
    EXCLUSIVE`` on the parents only; readers go on) until the transaction ends.  A page committed between
    the copy of a month's rows and their deletion from the default partition would otherwise be deleted
    without having been copied, and a row routed to the default partition after the move would make the
    attach fail.  Nothing is locked when every partition exists (the usual call, from each DAG's sync step).
    The parents are locked in the order the write path's merge statement takes them, so the two cannot
    deadlock."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    existing = partitions_of(conn)
    missing = [(month, spec) for month in sorted(set(months)) for spec in PARTITIONED
               if partition_name(spec.table, month) not in existing]
    if not missing:
        return []
    conn.execute(text(f"LOCK TABLE ONLY {', '.join(spec.table for spec in PARTITIONED)} IN SHARE ROW EXCLUSIVE MODE"))
    created: list[str] = []
    for month, spec in missing:
        lo, hi = _bound(month), _bound(next_month(month))
        name = partition_name(spec.table, month)
        default = f"{spec.table}_default"
        stray = conn.execute(text(
            f"SELECT EXISTS (SELECT 1 FROM {default} WHERE {spec.column} >= {lo} AND {spec.column} < {hi})"
        )).scalar() if default in existing else False
        if stray:
            conn.execute(text(f"CREATE TABLE {name} (LIKE {spec.table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
            conn.execute(text(f"INSERT INTO {name} SELECT * FROM {default} "
                              f"WHERE {spec.column} >= {lo} AND {spec.column} < {hi}"))
            conn.execute(text(f"DELETE FROM {default} WHERE {spec.column} >= {lo} AND {spec.column} < {hi}"))
            conn.execute(text(f"ALTER TABLE {spec.table} ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})"))
        else:
            conn.execute(text(f"CREATE TABLE {name} PARTITION OF {spec.table} FOR VALUES FROM ({lo}) TO ({hi})"))
        conn.execute(text(f"COMMENT ON TABLE {name} IS 'Partition of {spec.table}: rows with {spec.column} in "
                          f"{month:%Y-%m} (UTC). Query {spec.table}.'"))
        created.append(name)
    return created


def ensure_default(conn: Connection) -> None:
    """The ``DEFAULT`` partition of each table: a row dated outside the prepared months lands there."""
    existing = partitions_of(conn)
    for spec in PARTITIONED:
        name = f"{spec.table}_default"
        if name not in existing:
            conn.execute(text(f"CREATE TABLE {name} PARTITION OF {spec.table} DEFAULT"))
            conn.execute(text(f"COMMENT ON TABLE {name} IS 'Partition of {spec.table}: rows outside the prepared "
                              f"months, moved to their month by trustwatch partitions prepare. Query {spec.table}.'"))


def prepare_months(conn: Connection, ahead: int = 2, now: dt.datetime | None = None) -> list[str]:
    """Create this month's and the next ``ahead`` months' partitions, and one for every month that has rows
    in a default partition; returns the partitions created (none on SQLite or an unpartitioned store)."""
    if not is_partitioned(conn):
        return []
    month = month_of(now or dt.datetime.now(dt.UTC))
    months = [month]
    for _ in range(ahead):
        months.append(next_month(months[-1]))
    for spec in PARTITIONED:
        months += [month_of(m) for m in conn.execute(text(
            f"SELECT DISTINCT date_trunc('month', {spec.column} AT TIME ZONE 'UTC') FROM {spec.table}_default"
        )).scalars()]
    return ensure_months(conn, months)


def prepare(engine: Engine, ahead: int = 2) -> list[str]:
    """:func:`prepare_months` in a transaction of its own."""
    with engine.begin() as conn:
        return prepare_months(conn, ahead)


@dataclass
class RetentionResult:
    """What :func:`detach_month` did, with the time of the detach itself."""

    month: str
    detach_seconds: float
    rows: dict[str, int]
    files: list[str]
    seconds: float
    #: Ledger rows whose window overlaps the month, now noted ``archived`` (their posts left the store).
    ledger_rows: int = 0


def _archive_table(conn: Connection, query: str, path: Path) -> int:
    """COPY a query's rows into a gzip CSV file with a header; returns the rows the file holds, read back."""
    tmp = path.with_name(path.name + ".partial")
    cursor = conn.connection.driver_connection.cursor()
    with cursor, gzip.open(tmp, "wb") as out, cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT csv, HEADER)") as copy:
        for block in copy:
            out.write(block)
    with gzip.open(tmp, "rt", newline="", encoding="utf-8") as back:
        rows = sum(1 for _ in csv.reader(back)) - 1
    tmp.replace(path)
    return rows


def detach_month(engine: Engine, month: dt.date, archive: Path) -> RetentionResult:
    """Retention: detach the month's partitions of the three tables, archive their rows and drop them.

    1. One transaction detaches the three partitions (``ALTER TABLE ... DETACH PARTITION``: metadata only, a
       short exclusive lock of each parent), so analysts never see a month's posts without its mentions.
    2. Each detached table is copied to ``archive/<table>_<YYYY_MM>.csv.gz``, and so are the scores and
       ambiguous names of those posts (kept in plain tables), which are then deleted; a manifest lists files
       and row counts.
    3. The detached tables are dropped only after their files are written and read back with the same counts,
       and the ledger rows whose window overlaps the month get ``notes.archived`` (month and archive folder),
       so an analyst reading a `success` row learns that its posts were archived.
    A run that stops half way is resumed by running it again: detached tables are found and archived.
    """
    if engine.dialect.name != "postgresql":
        raise PartitionError("retention by partition needs the PostgreSQL store (SQLite keeps plain tables)")
    started = time.perf_counter()
    archive.mkdir(parents=True, exist_ok=True)
    lo, hi = _bound(month), _bound(next_month(month))
    names = {spec.table: partition_name(spec.table, month) for spec in PARTITIONED}
    with engine.begin() as conn:
        if not is_partitioned(conn):
            raise PartitionError("the store is not partitioned: run `trustwatch db upgrade` (migration 0026) first")
        attached = partitions_of(conn)
        present = {t for t, n in names.items()
                   if conn.execute(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": n}).scalar()}
        if not present:
            raise PartitionError(f"no partition for {month:%Y-%m}: nothing to detach")
        t0 = time.perf_counter()
        for table, name in names.items():
            if name in attached:
                conn.execute(text(f"ALTER TABLE {table} DETACH PARTITION {name}"))
        detach_seconds = time.perf_counter() - t0
    rows: dict[str, int] = {}
    files: list[str] = []
    with engine.begin() as conn:
        posts = names["posts"]
        extra = {
            # scores have no partition key: the posts detached name them
            "post_scores": f"SELECT s.* FROM post_scores s WHERE s.post_id IN (SELECT id FROM {posts})",
            "ambiguous_mentions": f"SELECT * FROM ambiguous_mentions WHERE post_created_at >= {lo} "
                                  f"AND post_created_at < {hi}",
        }
        queries = {t: f"SELECT * FROM {n}" for t, n in names.items() if t in present} | extra
        for table, query in queries.items():
            path = archive / f"{table}_{month:%Y_%m}.csv.gz"
            rows[table] = _archive_table(conn, query, path)
            files.append(str(path))
        counted = {t: conn.execute(text(f"SELECT count(*) FROM ({q}) q")).scalar_one() for t, q in queries.items()}
        if counted != rows:
            raise PartitionError(f"archive of {month:%Y-%m} holds {rows} rows, the store {counted}: nothing dropped")
        conn.execute(text(f"DELETE FROM post_scores WHERE post_id IN (SELECT id FROM {posts})"))
        conn.execute(text(f"DELETE FROM ambiguous_mentions WHERE post_created_at >= {lo} AND post_created_at < {hi}"))
        for table in present:
            conn.execute(text(f"DROP TABLE {names[table]}"))
        # A `success` row promises its window is in the store: the ledger says where the month went instead.
        ledger_rows = conn.execute(text(
            "UPDATE collection_runs SET notes = COALESCE(notes, '{}'::jsonb) || jsonb_build_object('archived', "
            "jsonb_build_object('month', CAST(:month AS text), 'archive', CAST(:archive AS text))) "
            f"WHERE window_start < {hi} AND window_end > {lo}"
        ), {"month": f"{month:%Y-%m}", "archive": str(archive.resolve())}).rowcount
        manifest = {"month": f"{month:%Y-%m}", "rows": rows, "files": [Path(f).name for f in files],
                    "format": "CSV with a header, gzip; load with \\copy <table> FROM PROGRAM 'zcat FILE' CSV HEADER"}
        (archive / f"manifest_{month:%Y_%m}.json").write_text(json.dumps(manifest, indent=2))
    return RetentionResult(f"{month:%Y-%m}", detach_seconds, rows, files, time.perf_counter() - started,
                           ledger_rows)

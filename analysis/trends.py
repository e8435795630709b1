"""Scoring what is unscored, and the rollups in ``agency_daily_trends`` the analyst views read.

:func:`enrich` is what the ``enrich_posts`` DAG and ``trustwatch enrich`` run.  It scores the (post,
agency) pairs that have no score of the current scorer version, one transaction per batch of posts, then
refreshes the rollups of the days it touched.  A refresh recomputes a whole day (and its week) from the
raw tables, replacing the rows of that day: so it is idempotent, and incremental in the sense that only
days that changed are recomputed.  Days change when a post is scored, collected again (a new mention),
or tombstoned; the last two are found through ``posts.last_collected_at`` / ``deleted_at`` newer than the
previous refresh.

Rollup rows per agency, period, platform and scope: ``scope`` is 'direct' when the post names the agency
itself and 'thread' when it only inherits the agency from its thread (a Reddit comment under a submission
about the agency).  Tombstoned posts are left out.  Every scorer version has its own rows.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import zoneinfo
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Date, Engine, bindparam, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from trustwatch.analysis.scoring import SCORER_NAME, SCORER_VERSION, MentionSpan, Scorer
from trustwatch.models.tables import PostScore
from trustwatch.models.types import UTCDateTime

log = logging.getLogger(__name__)

#: A refresh also recomputes days of posts written up to this long before the previous refresh began:
#: a page transaction that started before it but committed after it is not missed.
REFRESH_MARGIN = dt.timedelta(minutes=15)
#: Sentiment at or beyond +/- this counts as positive / negative (VADER's own convention).
SENTIMENT_THRESHOLD = 0.05
_ONE_DAY = dt.timedelta(days=1)
_ONE_WEEK = dt.timedelta(days=7)
_LOCK_KEY = 0x7457_7472  # pg_advisory_xact_lock key for rollup refreshes ("tWtr")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def week_start(day: dt.date) -> dt.date:
    """The Monday of the ISO week holding ``day`` (how weekly rows are keyed)."""
    return day - dt.timedelta(days=day.weekday())


def _period_expr(dialect: str, column: str, grain: str, zone: str = "'UTC'") -> str:
    """The day (or week's Monday) of ``column`` in the time zone ``zone`` (an SQL expression)."""
    if dialect == "postgresql":
        local = f"({column} AT TIME ZONE {zone})"
        return f"CAST({local} AS date)" if grain == "day" else f"CAST(date_trunc('week', {local}) AS date)"
    local = column if zone == "'UTC'" else f"tw_local_time({column}, {zone})"
    return f"date({local})" if grain == "day" else f"date({local}, 'weekday 0', '-6 days')"


#: An agency's rollup day is its own calendar day: midnight to midnight in ``agencies.timezone`` (IANA,
#: from the registry), so a US evening is not split across two UTC days.  Agencies without a timezone
#: (federal ones) keep UTC days.
_AGENCY_ZONE = "coalesce(a.timezone, 'UTC')"
#: Time zones lie within 14 hours of UTC: the UTC range holding a local day reaches one day either side.
_ZONE_SLACK = dt.timedelta(days=1)


@functools.lru_cache(maxsize=512)
def _zone(name: str) -> zoneinfo.ZoneInfo | dt.timezone:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def _sqlite_local_time(value: str | None, zone: str | None) -> str | None:
    """SQLite has no time zones: naive UTC text -> naive local text, for ``date()``."""
    if value is None:
        return None
    moment = dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC).astimezone(_zone(zone or "UTC"))
    return moment.replace(tzinfo=None).isoformat(sep=" ")


def _register_sqlite_functions(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.connection.driver_connection.create_function(
            "tw_local_time", 2, _sqlite_local_time, deterministic=True
        )


_ROLLUP_SQL = """
INSERT INTO agency_daily_trends (agency_id, grain, day, platform, scope, scorer_version, mentions,
                                 unique_authors, scored, sentiment_sum, sentiment_sq_sum, trust_sum,
                                 trust_sq_sum, negative, positive, updated_at)
SELECT pm.agency_id, :grain, pm.period, pm.platform, pm.scope, :version,
       count(*), count(DISTINCT pm.author), count(s.post_id),
       coalesce(sum(s.sentiment), 0), coalesce(sum(s.sentiment * s.sentiment), 0),
       coalesce(sum(s.trust_score), 0), coalesce(sum(s.trust_score * s.trust_score), 0),
       count(CASE WHEN s.sentiment <= -{threshold} THEN 1 END),
       count(CASE WHEN s.sentiment >= {threshold} THEN 1 END),
       :now
FROM (
    SELECT m.post_id, m.agency_id, p.platform, p.author_platform_id AS author, {period} AS period,
           CASE WHEN min(CASE WHEN m.match_kind = 'thread' THEN 1 ELSE 0 END) = 1
                THEN 'thread' ELSE 'direct' END AS scope
    FROM posts p
    JOIN post_mentions m ON m.post_id = p.id
    JOIN agencies a ON a.id = m.agency_id
    WHERE p.deleted_at IS NULL {time_filter}
    GROUP BY m.post_id, m.agency_id, p.platform, p.author_platform_id, {period}
) pm
LEFT JOIN post_scores s ON s.post_id = pm.post_id AND s.agency_id = pm.agency_id
                       AND s.scorer = :scorer AND s.scorer_version = :version
{period_filter}
GROUP BY pm.agency_id, pm.period, pm.platform, pm.scope
"""


def _rollup_statement(dialect: str, grain: str, ranged: bool) -> Any:
    sql = _ROLLUP_SQL.format(
        period=_period_expr(dialect, "p.created_at", grain, _AGENCY_ZONE),
        threshold=SENTIMENT_THRESHOLD,
        time_filter="AND p.created_at >= :start AND p.created_at < :end" if ranged else "",
        period_filter="WHERE pm.period >= :first AND pm.period < :stop" if ranged else "",
    )
    params = [bindparam("now", type_=UTCDateTime())]
    if ranged:
        params += [bindparam("start", type_=UTCDateTime()), bindparam("end", type_=UTCDateTime()),
                   bindparam("first", type_=Date()), bindparam("stop", type_=Date())]
    return text(sql).bindparams(*params)


def _runs(days: Iterable[dt.date], step: dt.timedelta) -> list[tuple[dt.date, dt.date]]:
    """Contiguous [first, last + step) ranges covering the given period starts."""
    ordered = sorted(set(days))
    runs: list[tuple[dt.date, dt.date]] = []
    for day in ordered:
        if runs and runs[-1][1] == day:
            runs[-1] = (runs[-1][0], day + step)
        else:
            runs.append((day, day + step))
    return runs


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _lock(conn: Connection) -> None:
    """Serialise refreshes on PostgreSQL (SQLite's BEGIN IMMEDIATE already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})


def refresh_days(conn: Connection, days: Iterable[dt.date], scorer_version: str = SCORER_VERSION,
                 scorer: str = SCORER_NAME, now: dt.datetime | None = None) -> int:
    """Recompute the daily rows of ``days`` and the weekly rows of their weeks; returns rows written.

    ``days`` are UTC days of changed posts; a post's day is its agency's local day, which may be the UTC
    day before or after, so those neighbours are recomputed too.
    """
    days = {d + k * _ONE_DAY for d in days for k in (-1, 0, 1)}
    if not days:
        return 0
    _lock(conn)
    _register_sqlite_functions(conn)
    now = now or _utcnow()
    dialect = conn.dialect.name
    written = 0
    delete = text(
        "DELETE FROM agency_daily_trends WHERE scorer_version = :version AND grain = :grain "
        "AND day >= :first AND day < :stop"
    ).bindparams(bindparam("first", type_=Date()), bindparam("stop", type_=Date()))
    for grain, starts, step in (("day", days, _ONE_DAY), ("week", {week_start(d) for d in days}, _ONE_WEEK)):
        insert = _rollup_statement(dialect, grain, ranged=True)
        for first, stop in _runs(starts, step):
            conn.execute(delete, {"version": scorer_version, "grain": grain, "first": first, "stop": stop})
            written += conn.execute(insert, {
                "grain": grain, "version": scorer_version, "scorer": scorer, "now": now,
                "start": _midnight(first) - _ZONE_SLACK, "end": _midnight(stop) + _ZONE_SLACK,
                "first": first, "stop": stop,
            }).rowcount or 0
    return written


def rebuild(engine: Engine, scorer_version: str = SCORER_VERSION, scorer: str = SCORER_NAME,
            now: dt.datetime | None = None) -> int:
    """Recompute every rollup row of one scorer version from the raw tables (the from-scratch reference)."""
    now = now or _utcnow()
    written = 0
    with engine.begin() as conn:
        _lock(conn)
        _register_sqlite_functions(conn)
        conn.execute(text("DELETE FROM agency_daily_trends WHERE scorer_version = :v"), {"v": scorer_version})
        for grain in ("day", "week"):
            written += conn.execute(
                _rollup_statement(conn.dialect.name, grain, ranged=False),
                {"grain": grain, "version": scorer_version, "scorer": scorer, "now": now},
            ).rowcount or 0
    return written


def last_refresh(conn: Connection, scorer_version: str) -> dt.datetime | None:
    """When the rollups of ``scorer_version`` were last refreshed (None: never)."""
    value = conn.execute(
        text("SELECT max(updated_at) FROM agency_daily_trends WHERE scorer_version = :v"),
        {"v": scorer_version},
    ).scalar()
    if value is None:
        return None
    return UTCDateTime().process_result_value(value, conn.dialect)


def stale_days(conn: Connection, since: dt.datetime) -> set[dt.date]:
    """UTC days of posts with mentions collected again or tombstoned at or after ``since``."""
    day = _period_expr(conn.dialect.name, "p.created_at", "day")
    stmt = text(
        f"SELECT DISTINCT {day} AS day FROM posts p "
        "WHERE (p.last_collected_at >= :since OR p.deleted_at >= :since) "
        "AND EXISTS (SELECT 1 FROM post_mentions m WHERE m.post_id = p.id)"
    ).bindparams(bindparam("since", type_=UTCDateTime()))
    return {_as_date(row.day) for row in conn.execute(stmt, {"since": since})}


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _unscored_posts(conn: Connection, after: int, limit: int, scorer: str, version: str) -> list[int]:
    rows = conn.execute(
        text(
            "SELECT DISTINCT m.post_id FROM post_mentions m "
            "JOIN posts p ON p.id = m.post_id AND p.deleted_at IS NULL "
            "WHERE m.post_id > :after AND NOT EXISTS ("
            "  SELECT 1 FROM post_scores s WHERE s.post_id = m.post_id AND s.agency_id = m.agency_id "
            "  AND s.scorer = :scorer AND s.scorer_version = :version) "
            "ORDER BY m.post_id LIMIT :limit"
        ),
        {"after": after, "limit": limit, "scorer": scorer, "version": version},
    )
    return [row.post_id for row in rows]


def _insert_scores(conn: Connection, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    table = PostScore.__table__
    stmt = dialect.insert(table).on_conflict_do_nothing(
        index_elements=["post_id", "agency_id", "scorer", "scorer_version"]
    ).returning(table.c.id)  # executemany rowcounts are not reliable across drivers; RETURNING is
    inserted = 0
    for i in range(0, len(rows), 1000):
        inserted += len(conn.execute(stmt, rows[i:i + 1000]).all())
    return inserted


def score_batch(conn: Connection, post_ids: Sequence[int], scorer: Scorer, now: dt.datetime
                ) -> tuple[int, set[dt.date]]:
    """Score the given posts toward every agency they mention; returns (scores written, UTC days)."""
    ids = list(post_ids)
    posts = {
        row.id: row for row in conn.execute(
            text("SELECT id, text, title, created_at FROM posts WHERE id IN :ids")
            .bindparams(bindparam("ids", expanding=True))
            .columns(created_at=UTCDateTime()),
            {"ids": ids},
        )
    }
    mentions: dict[int, list[MentionSpan]] = {}
    for row in conn.execute(
        text("SELECT post_id, agency_id, start_offset, end_offset FROM post_mentions WHERE post_id IN :ids")
        .bindparams(bindparam("ids", expanding=True)),
        {"ids": ids},
    ):
        mentions.setdefault(row.post_id, []).append(MentionSpan(row.agency_id, row.start_offset, row.end_offset))
    rows: list[dict[str, Any]] = []
    days: set[dt.date] = set()
    for post_id in ids:
        post = posts.get(post_id)
        if post is None or post_id not in mentions:
            continue
        for agency_id, score in scorer.score_post(post.text or "", post.title, mentions[post_id]).items():
            rows.append({
                "post_id": post_id, "agency_id": agency_id, "scorer": scorer.name,
                "scorer_version": scorer.version, "sentiment": score.sentiment, "trust_score": score.trust,
                "scored_at": now,
            })
        days.add(post.created_at.date())
    return _insert_scores(conn, rows), days


def enrich(engine: Engine, batch_size: int = 1000, scorer_version: str | None = None,
           margin: dt.timedelta = REFRESH_MARGIN, scorer: Scorer | None = None) -> dict[str, Any]:
    """Score what is unscored for the scorer version, then refresh the rollups of the days touched.

    One transaction per batch of posts, so an interrupted run keeps its work and the next run goes on
    where it stopped.  The first run of a scorer version builds that version's rollups from scratch.
    Returns counts for the task log.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    scorer = scorer or Scorer(scorer_version or SCORER_VERSION)
    started = _utcnow()
    with engine.connect() as conn:
        previous = last_refresh(conn, scorer.version)
    touched: set[dt.date] = set()
    after, batches, posts, scores = 0, 0, 0, 0
    while True:
        with engine.begin() as conn:
            ids = _unscored_posts(conn, after, batch_size, scorer.name, scorer.version)
            if not ids:
                break
            written, days = score_batch(conn, ids, scorer, _utcnow())
        after = ids[-1]
        batches += 1
        posts += len(ids)
        scores += written
        touched |= days
        log.info("scored batch %d: %d posts, %d scores", batches, len(ids), written)
    if previous is None:
        rows = rebuild(engine, scorer.version, scorer.name, now=started)
        refreshed = "all"
    else:
        with engine.begin() as conn:
            touched |= stale_days(conn, previous - margin)
            rows = refresh_days(conn, touched, scorer.version, scorer.name, now=started)
        refreshed = str(len(touched))
    result = {
        "scorer": scorer.name, "scorer_version": scorer.version, "batches": batches, "posts_scored": posts,
        "scores_written": scores, "days_refreshed": refreshed, "rollup_rows_written": rows,
        "seconds": round((_utcnow() - started).total_seconds(), 3),
    }
    log.info("enrichment done: %s", result)
    return result

"""Scoring what is unscored, and the rollups in ``agency_daily_trends`` the analyst views read.

:func:`enrich` is what the ``enrich_posts`` DAG and ``trustwatch enrich`` run.  It scores the (post,
agency) pairs that have no score of the current scorer version, one transaction per batch of posts, then
refreshes the rollups of the days it touched.  A refresh recomputes a whole day (and its week) from the
raw tables, replacing the rows of that day: so it is idempotent, and incremental in the sense that only
days that changed are recomputed.  Days change when a post is scored, collected again (a new mention),
or tombstoned; the last two are found through ``metric_snapshots.observed_at`` (every sighting appends a
snapshot) and ``posts.deleted_at`` newer than the previous refresh, both indexed (migration 0019).

Scoring runs in worker processes (:data:`WORKERS_ENV`, default: the machine's cores): VADER is pure Python,
so one process scores about 10,000 posts/s while the database would take several times that.  Each worker
reads, scores and writes its own batches, so the database round trips of one overlap the scoring of another.

Rollup rows per agency, period, platform and scope: ``scope`` is 'direct' when the post names the agency
itself and 'thread' when it only inherits the agency from its thread (a Reddit comment under a submission
about the agency).  Tombstoned posts are left out.  Every scorer version has its own rows.

``mentions``, ``unique_authors`` and the score columns count public voices only: originals, replies and
quotes by authors that are not agency accounts.  Reposts (amplification) are counted in ``reposts`` and an
agency account's own posts (agency speech) in ``agency_posts`` (issue 14): neither is public opinion.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import multiprocessing
import os
import zoneinfo
from array import array
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Date, Engine, bindparam, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection
from trustwatch.analysis.language import unscored_language
from trustwatch.analysis.scoring import SCORER_NAME, SCORER_VERSION, MentionSpan, Scorer, score_text_of
from trustwatch.models.tables import PostScore
from trustwatch.models.types import UTCDateTime, local_midnight

log = logging.getLogger(__name__)

#: A refresh also recomputes days of posts written up to this long before the previous refresh began:
#: a page transaction that started before it but committed after it is not missed.
REFRESH_MARGIN = dt.timedelta(minutes=15)
#: Sentiment at or beyond +/- this counts as positive / negative (VADER's own convention).
SENTIMENT_THRESHOLD = 0.05
_ONE_DAY = dt.timedelta(days=1)
_ONE_WEEK = dt.timedelta(days=7)
_LOCK_KEY = 0x7457_7472  # pg_advisory_xact_lock key for rollup refreshes ("tWtr")
#: The one setting for enrichment's parallelism: worker processes that score (default: the machine's cores).
WORKERS_ENV = "TRUSTWATCH_ENRICH_WORKERS"
#: Day ranges per rollup statement: a refresh is one DELETE and one INSERT per grain for this many ranges.
RANGES_PER_STATEMENT = 200
#: Worker processes start once a run has read this many posts: starting them costs about a second, in which
#: one process scores several thousand posts, so small runs (each collection page's) stay in-process.
PARALLEL_MIN_POSTS = 5000


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


def _sqlite_utc_midnight(day: str | None, days: int, zone: str | None) -> str | None:
    """SQLite: the UTC instant (stored text form) of the local midnight ``days`` after ``day`` in ``zone``."""
    if day is None:
        return None
    moment = local_midnight(dt.date.fromisoformat(str(day)[:10]) + dt.timedelta(days=days), zone)
    return moment.replace(tzinfo=None).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _bound_expr(dialect: str, period: str, days: int, zone: str) -> str:
    """SQL for the UTC instant of the local midnight ``days`` after the date ``period`` in ``zone``: what a rollup
    row stores as its bounds, so views without time zone support (SQLite) can find the period's posts."""
    if dialect == "postgresql":
        return f"(CAST({period} + {days} AS timestamp) AT TIME ZONE {zone})"
    return f"tw_utc_midnight({period}, {days}, {zone})"


def _register_sqlite_functions(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        raw = conn.connection.driver_connection
        raw.create_function("tw_local_time", 2, _sqlite_local_time, deterministic=True)
        raw.create_function("tw_utc_midnight", 3, _sqlite_utc_midnight, deterministic=True)


_ROLLUP_SQL = """
INSERT INTO agency_daily_trends (agency_id, grain, day, platform, scope, scorer_version, mentions,
                                 unique_authors, scored, unscored_language, sentiment_sum, sentiment_sq_sum,
                                 trust_sum, trust_sq_sum, negative, positive, reposts, agency_posts, updated_at,
                                 starts_at, ends_at)
SELECT pm.agency_id, :grain, pm.period, pm.platform, pm.scope, :version,
       count(CASE WHEN pm.voice = 'public' THEN 1 END),
       count(DISTINCT CASE WHEN pm.voice = 'public' THEN pm.author END), count(s.trust_score),
       count(CASE WHEN s.post_id IS NOT NULL AND s.trust_score IS NULL THEN 1 END),
       coalesce(sum(s.sentiment), 0), coalesce(sum(s.sentiment * s.sentiment), 0),
       coalesce(sum(s.trust_score), 0), coalesce(sum(s.trust_score * s.trust_score), 0),
       count(CASE WHEN s.sentiment <= -{threshold} THEN 1 END),
       count(CASE WHEN s.sentiment >= {threshold} THEN 1 END),
       count(CASE WHEN pm.voice = 'repost' THEN 1 END),
       count(CASE WHEN pm.voice = 'agency' THEN 1 END),
       :now, {starts}, {ends}
FROM (
    SELECT m.post_id, m.agency_id, p.platform, p.author_platform_id AS author, {period} AS period,
           {zone} AS zone,
           CASE WHEN min(CASE WHEN m.match_kind = 'thread' THEN 1 ELSE 0 END) = 1
                THEN 'thread' ELSE 'direct' END AS scope,
           CASE WHEN p.author_is_agency THEN 'agency' WHEN p.kind = 'repost' THEN 'repost'
                ELSE 'public' END AS voice
    FROM posts p
    JOIN post_mentions m ON m.post_id = p.id
    JOIN agencies a ON a.id = m.agency_id
    WHERE p.deleted_at IS NULL {time_filter}
    GROUP BY m.post_id, m.agency_id, p.platform, p.author_platform_id, {period}, a.timezone, p.author_is_agency,
             p.kind
) pm
LEFT JOIN post_scores s ON s.post_id = pm.post_id AND s.agency_id = pm.agency_id
                       AND s.scorer = :scorer AND s.scorer_version = :version AND pm.voice = 'public'
{period_filter}
GROUP BY pm.agency_id, pm.period, pm.platform, pm.scope
"""


def _rollup_statement(dialect: str, grain: str, ranges: int) -> Any:
    """The rollup INSERT ... SELECT over ``ranges`` time ranges ``[:start_i, :end_i)`` (0: all), keeping only
    the agency-local periods listed in ``:periods`` (the ranges are widened by a day for the time zones)."""
    time_filter = period_filter = ""
    if ranges:
        time_filter = "AND (" + " OR ".join(
            f"(p.created_at >= :start_{i} AND p.created_at < :end_{i})" for i in range(ranges)) + ")"
        if dialect == "postgresql":
            # a mention carries its post's time, the partition key of both tables: the same ranges on it let
            # the planner read only these months of post_mentions too (it does not carry ranges across a join)
            time_filter += " AND (" + " OR ".join(
                f"(m.post_created_at >= :start_{i} AND m.post_created_at < :end_{i})" for i in range(ranges)) + ")"
        period_filter = "WHERE pm.period IN :periods"
    days = 1 if grain == "day" else 7
    sql = _ROLLUP_SQL.format(
        period=_period_expr(dialect, "p.created_at", grain, _AGENCY_ZONE),
        zone=_AGENCY_ZONE,
        starts=_bound_expr(dialect, "pm.period", 0, "max(pm.zone)"),
        ends=_bound_expr(dialect, "pm.period", days, "max(pm.zone)"),
        threshold=SENTIMENT_THRESHOLD,
        time_filter=time_filter,
        period_filter=period_filter,
    )
    params = [bindparam("now", type_=UTCDateTime())]
    for i in range(ranges):
        params += [bindparam(f"start_{i}", type_=UTCDateTime()), bindparam(f"end_{i}", type_=UTCDateTime())]
    if ranges:
        params.append(bindparam("periods", expanding=True, type_=Date()))
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
        "DELETE FROM agency_daily_trends WHERE scorer_version = :version AND grain = :grain AND day IN :days"
    ).bindparams(bindparam("days", expanding=True, type_=Date()))
    for grain, starts, step in (("day", days, _ONE_DAY), ("week", {week_start(d) for d in days}, _ONE_WEEK)):
        runs = _runs(starts, step)
        # Set-based: one DELETE and one INSERT ... SELECT per RANGES_PER_STATEMENT runs of days, not per day.
        for i in range(0, len(runs), RANGES_PER_STATEMENT):
            chunk = runs[i:i + RANGES_PER_STATEMENT]
            periods = sorted(d for d in starts if any(first <= d < stop for first, stop in chunk))
            conn.execute(delete, {"version": scorer_version, "grain": grain, "days": periods})
            params: dict[str, Any] = {"grain": grain, "version": scorer_version, "scorer": scorer, "now": now,
                                      "periods": periods}
            for j, (first, stop) in enumerate(chunk):
                # a local day reaches up to a day beyond its UTC midnights; the period filter keeps it exact
                params[f"start_{j}"] = _midnight(first) - _ZONE_SLACK
                params[f"end_{j}"] = _midnight(stop) + _ZONE_SLACK
            written += conn.execute(_rollup_statement(dialect, grain, len(chunk)), params).rowcount or 0
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
                _rollup_statement(conn.dialect.name, grain, 0),
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
    """UTC days of posts with mentions collected again or tombstoned at or after ``since``.

    Sightings come from ``metric_snapshots.observed_at`` (one snapshot per sighting, at the time the post's
    ``last_collected_at`` gets), tombstones from ``posts.deleted_at``: both indexed, so a refresh reads what
    changed instead of scanning ``posts``.
    """
    day = _period_expr(conn.dialect.name, "p.created_at", "day")
    stmt = text(
        f"SELECT DISTINCT {day} AS day FROM posts p "
        "WHERE p.id IN (SELECT s.post_id FROM metric_snapshots s WHERE s.observed_at >= :since "
        "               UNION SELECT d.id FROM posts d WHERE d.deleted_at >= :since) "
        "AND EXISTS (SELECT 1 FROM post_mentions m WHERE m.post_id = p.id)"
    ).bindparams(bindparam("since", type_=UTCDateTime()))
    return {_as_date(row.day) for row in conn.execute(stmt, {"since": since})}


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _unscored_posts(conn: Connection, scorer: str, version: str) -> array[int]:
    """Every live post with a mention that has no score of ``version``, in id order, read in one statement.

    One anti-join over the whole store (a hash join on PostgreSQL) instead of a keyset page per batch: a
    page has to walk past every scored mention before the first unscored one, and new posts sit at the
    end.  Held as a compact array (8 bytes per post).  Posts that arrive during the run wait for the next.
    """
    rows = conn.execute(
        text(
            "SELECT DISTINCT m.post_id FROM post_mentions m "
            "JOIN posts p ON p.id = m.post_id AND p.deleted_at IS NULL "
            "WHERE NOT EXISTS ("
            "  SELECT 1 FROM post_scores s WHERE s.post_id = m.post_id AND s.agency_id = m.agency_id "
            "  AND s.scorer = :scorer AND s.scorer_version = :version) "
            "ORDER BY m.post_id"
        ).execution_options(yield_per=10_000),
        {"scorer": scorer, "version": version},
    )
    return array("q", (row[0] for row in rows))


_INSERT_SCORES_PG = text("""
INSERT INTO post_scores (post_id, agency_id, scorer, scorer_version, sentiment, trust_score, unscored_reason,
                         scored_at)
SELECT u.post_id, u.agency_id, :scorer, :version, u.sentiment, u.trust, u.reason, :now
FROM unnest(CAST(:post_ids AS bigint[]), CAST(:agency_ids AS integer[]), CAST(:sentiments AS float8[]),
            CAST(:trusts AS float8[]), CAST(:reasons AS text[])) AS u(post_id, agency_id, sentiment, trust, reason)
ON CONFLICT (post_id, agency_id, scorer, scorer_version) DO NOTHING
""").bindparams(bindparam("now", type_=UTCDateTime()))


#: (post id, agency id, sentiment, trust, why unscored): the numbers are None when the reason is set.
ScoreRow = tuple[int, int, "float | None", "float | None", "str | None"]


def _insert_scores(conn: Connection, rows: list[ScoreRow], scorer: str, version: str,
                   now: dt.datetime) -> int:
    """Insert score rows, skipping ones a concurrent run wrote first.

    PostgreSQL: one statement over four arrays (the bulk path: no per-row SQL, one round trip for the
    batch).  SQLite: executemany with RETURNING (executemany rowcounts are not reliable across drivers).
    """
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        post_ids, agency_ids, sentiments, trusts, reasons = (list(col) for col in zip(*rows, strict=True))
        return conn.execute(_INSERT_SCORES_PG, {
            "scorer": scorer, "version": version, "now": now, "post_ids": post_ids, "agency_ids": agency_ids,
            "sentiments": sentiments, "trusts": trusts, "reasons": reasons,
        }).rowcount or 0
    table = PostScore.__table__
    stmt = sqlite.insert(table).on_conflict_do_nothing(
        index_elements=["post_id", "agency_id", "scorer", "scorer_version"]
    ).returning(table.c.id)
    dicts = [{"post_id": p, "agency_id": a, "scorer": scorer, "scorer_version": version, "sentiment": se,
              "trust_score": tr, "unscored_reason": why, "scored_at": now} for p, a, se, tr, why in rows]
    inserted = 0
    for i in range(0, len(dicts), 1000):
        inserted += len(conn.execute(stmt, dicts[i:i + 1000]).all())
    return inserted


#: What a worker scores: (post id, text, title, mentions, platform language code).
Item = tuple[int, str, "str | None", list[MentionSpan], "str | None"]


_LOAD_PG = text(
    "SELECT p.id, p.text, p.title, p.lang, p.created_at, m.agency_id, m.start_offset, m.end_offset "
    "FROM posts p JOIN post_mentions m ON m.post_id = p.id WHERE p.id = ANY(:ids) ORDER BY p.id"
).columns(created_at=UTCDateTime())
_LOAD = text(
    "SELECT p.id, p.text, p.title, p.lang, p.created_at, m.agency_id, m.start_offset, m.end_offset "
    "FROM posts p JOIN post_mentions m ON m.post_id = p.id WHERE p.id IN :ids ORDER BY p.id"
).bindparams(bindparam("ids", expanding=True)).columns(created_at=UTCDateTime())


def _load_batch(conn: Connection, post_ids: Sequence[int]) -> tuple[list[Item], set[dt.date]]:
    """Texts and mention offsets of the given posts (one statement), and their UTC days."""
    stmt = _LOAD_PG if conn.dialect.name == "postgresql" else _LOAD
    items: list[Item] = []
    days: set[dt.date] = set()
    last = None
    for row in conn.execute(stmt, {"ids": list(post_ids)}):
        if row.id != last:
            items.append((row.id, row.text or "", row.title, [], row.lang))
            days.add(row.created_at.date())
            last = row.id
        items[-1][3].append(MentionSpan(row.agency_id, row.start_offset, row.end_offset))
    return items, days


def _score_items(scorer: Scorer, items: Sequence[Item]) -> list[ScoreRow]:
    """A score row for every agency each post mentions; posts not in English get rows without numbers."""
    out: list[ScoreRow] = []
    for post_id, body, title, spans, lang in items:
        language = unscored_language(lang, score_text_of(body, title))
        if language is not None:
            reason = f"language:{language}"[:40]
            out.extend((post_id, agency_id, None, None, reason) for agency_id in dict.fromkeys(s.agency_id
                                                                                            for s in spans))
            continue
        for agency_id, score in scorer.score_post(body, title, spans).items():
            out.append((post_id, agency_id, score.sentiment, score.trust, None))
    return out


@dataclass
class BatchResult:
    """What one batch did: posts read, scores written, posts left unscored for language, their UTC days."""

    posts: int
    written: int
    left_out: int
    days: set[dt.date]


def _enrich_batch(engine: Engine, scorer: Scorer, post_ids: Sequence[int]) -> BatchResult:
    """Read, score and write one batch (its scores in one transaction): what each worker process does, so
    reading and writing run in parallel with scoring instead of in one coordinating process."""
    with engine.connect() as conn:
        items, days = _load_batch(conn, post_ids)
    rows = _score_items(scorer, items)
    with engine.begin() as conn:
        written = _insert_scores(conn, rows, scorer.name, scorer.version, _utcnow())
    return BatchResult(len(post_ids), written, len({row[0] for row in rows if row[4] is not None}), days)


_WORKER: tuple[Engine, Scorer] | None = None


def _worker_init(url: str, scorer: Scorer) -> None:
    """Runs once in each worker process: its own engine (connections are not shared across processes) and
    the scorer (lexicon automaton, VADER) for every batch."""
    global _WORKER
    from trustwatch.models.db import make_engine

    _WORKER = (make_engine(url, pool_size=1), scorer)


def _worker_batch(post_ids: list[int]) -> BatchResult:
    assert _WORKER is not None, "worker started without _worker_init"
    return _enrich_batch(_WORKER[0], _WORKER[1], post_ids)


def _worker_url(engine: Engine) -> str | None:
    """The URL a worker process connects with; None for a store only this process can reach (in memory)."""
    if engine.url.get_backend_name() == "sqlite" and engine.url.database in (None, "", ":memory:"):
        return None
    return engine.url.render_as_string(hide_password=False)


def enrich_workers(workers: int | None = None) -> int:
    """Worker processes for scoring: the argument, else TRUSTWATCH_ENRICH_WORKERS, else the machine's cores."""
    if workers is None:
        raw = os.environ.get(WORKERS_ENV, "").strip()
        if raw:
            try:
                workers = int(raw)
            except ValueError:
                raise ValueError(f"{WORKERS_ENV} must be a whole number of processes, got {raw!r}") from None
        else:
            workers = os.cpu_count() or 1
    if workers < 1:
        raise ValueError(f"enrich needs at least 1 worker process, got {workers}")
    return workers


def score_batch(conn: Connection, post_ids: Sequence[int], scorer: Scorer, now: dt.datetime
                ) -> tuple[int, set[dt.date]]:
    """Score the given posts toward every agency they mention; returns (scores written, UTC days)."""
    items, days = _load_batch(conn, post_ids)
    return _insert_scores(conn, _score_items(scorer, items), scorer.name, scorer.version, now), days


def enrich(engine: Engine, batch_size: int = 1000, scorer_version: str | None = None,
           margin: dt.timedelta = REFRESH_MARGIN, scorer: Scorer | None = None,
           workers: int | None = None) -> dict[str, Any]:
    """Score what is unscored for the scorer version, then refresh the rollups of the days touched.

    One transaction per batch of posts, so an interrupted run keeps its work and the next run goes on
    where it stopped.  With more than one worker (and at least PARALLEL_MIN_POSTS to score), each worker
    process reads, scores and writes whole batches over its own connection, while this process only hands
    out post ids (a few batches in flight, so memory stays flat): reading and writing overlap with scoring.
    The first run of a scorer version builds that version's rollups from scratch.  Returns counts for the
    task log.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    workers = enrich_workers(workers)
    scorer = scorer or Scorer(scorer_version or SCORER_VERSION)
    started = _utcnow()
    with engine.connect() as conn:
        previous = last_refresh(conn, scorer.version)
    touched: set[dt.date] = set()
    batches, posts, scores, left_out = 0, 0, 0, 0
    with engine.connect() as conn:
        unscored = _unscored_posts(conn, scorer.name, scorer.version)
    url = _worker_url(engine)
    pool: ProcessPoolExecutor | None = None
    if workers > 1 and len(unscored) >= PARALLEL_MIN_POSTS and url is not None:
        # Started at once (the run's size is known): the workers start while the first batches are queued.
        # spawn: workers share nothing with this process (no inherited connections, Airflow threads).
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init, initargs=(url, scorer))
    pending: deque[Future[BatchResult]] = deque()

    def account(done: BatchResult) -> None:
        nonlocal batches, posts, scores, left_out
        batches += 1
        posts += done.posts
        scores += done.written
        left_out += done.left_out
        touched.update(done.days)
        log.info("scored batch %d: %d posts, %d scores", batches, done.posts, done.written)

    try:
        for first in range(0, len(unscored), batch_size):
            ids = unscored[first:first + batch_size].tolist()
            if pool is None:
                account(_enrich_batch(engine, scorer, ids))
                continue
            pending.append(pool.submit(_worker_batch, ids))
            while len(pending) > 2 * workers:
                account(pending.popleft().result())
        while pending:
            account(pending.popleft().result())
    finally:
        if pool is not None:
            # every result is in (or the run failed): no need to wait for the workers to exit
            pool.shutdown(wait=False, cancel_futures=True)
    if previous is None:
        rows = rebuild(engine, scorer.version, scorer.name, now=started)
        refreshed = "all"
    else:
        with engine.begin() as conn:
            touched |= stale_days(conn, previous - margin)
            rows = refresh_days(conn, touched, scorer.version, scorer.name, now=started)
        refreshed = str(len(touched))
    result = {
        "scorer": scorer.name, "scorer_version": scorer.version, "workers": workers, "batches": batches,
        "posts_scored": posts, "posts_left_unscored_language": left_out, "scores_written": scores,
        "days_refreshed": refreshed,
        "rollup_rows_written": rows, "seconds": round((_utcnow() - started).total_seconds(), 3),
    }
    log.info("enrichment done: %s", result)
    return result

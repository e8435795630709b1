"""PostgreSQL bulk path of ``write_page``: COPY a page into staging tables, then merge set-based.

Multi-row ``INSERT ... VALUES`` statements spend most of their time building and parsing SQL text; COPY
streams rows instead, and one ``INSERT ... SELECT ... ON CONFLICT`` per table merges them by key (the
approach of MeltanoLabs' target-postgres).  The staging tables are session-temporary with
``ON COMMIT DELETE ROWS``, created once per connection, so a page costs no catalog churn.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import Connection

from collectors.records import AuthorRecord, MentionRecord, PostRecord
from models.types import clean_text, json_serializer

_STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS tw_stage_authors (
    platform text, platform_user_id text, username text, display_name text, followers_count int,
    following_count int, post_count int, account_created_at timestamptz, verified boolean, location text
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS tw_stage_posts (
    platform text, platform_post_id text, kind text, author_platform_id text, text text, title text,
    lang text, created_at timestamptz, url text, conversation_id text, parent_platform_id text,
    root_platform_id text, community text, like_count int, repost_count int, reply_count int,
    quote_count int, score int, withheld jsonb, removed_by_category text, edit_history_ids jsonb,
    raw jsonb, deleted_reason text
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS tw_stage_mentions (
    platform text, platform_post_id text, agency_id int, matched_term text, match_kind text,
    start_offset int, end_offset int
) ON COMMIT DELETE ROWS;
"""

_AUTHOR_COLS = ("platform", "platform_user_id", "username", "display_name", "followers_count",
                "following_count", "post_count", "account_created_at", "verified", "location")
_POST_COLS = ("platform", "platform_post_id", "kind", "author_platform_id", "text", "title", "lang",
              "created_at", "url", "conversation_id", "parent_platform_id", "root_platform_id", "community",
              "like_count", "repost_count", "reply_count", "quote_count", "score", "withheld",
              "removed_by_category", "edit_history_ids", "raw", "deleted_reason")
_MENTION_COLS = ("platform", "platform_post_id", "agency_id", "matched_term", "match_kind", "start_offset",
                 "end_offset")

_MERGE_AUTHORS = """
INSERT INTO authors (platform, platform_user_id, username, display_name, followers_count, following_count,
                     post_count, account_created_at, verified, location, first_seen_at, last_seen_at)
SELECT platform, platform_user_id, username, display_name, followers_count, following_count, post_count,
       account_created_at, verified, location, :now, :now
FROM tw_stage_authors ORDER BY platform, platform_user_id
ON CONFLICT (platform, platform_user_id) DO UPDATE SET
    username = COALESCE(EXCLUDED.username, authors.username),
    display_name = COALESCE(EXCLUDED.display_name, authors.display_name),
    followers_count = COALESCE(EXCLUDED.followers_count, authors.followers_count),
    following_count = COALESCE(EXCLUDED.following_count, authors.following_count),
    post_count = COALESCE(EXCLUDED.post_count, authors.post_count),
    account_created_at = COALESCE(EXCLUDED.account_created_at, authors.account_created_at),
    verified = COALESCE(EXCLUDED.verified, authors.verified),
    location = COALESCE(EXCLUDED.location, authors.location),
    last_seen_at = EXCLUDED.last_seen_at
"""

# Same merge rules as the portable path in store.py: first_collected_at never changes, a tombstone keeps
# its scrubbed content, counters keep the last known value when a response omits them.  Mentions and
# metric snapshots join the page's own upserted rows (CTE "up"), never the whole posts table.
_MERGE_POSTS = """
WITH up AS (
    INSERT INTO posts (platform, platform_post_id, kind, author_id, author_platform_id, text, title, lang,
                       created_at, url, conversation_id, parent_platform_id, root_platform_id, community,
                       like_count, repost_count, reply_count, quote_count, score, withheld,
                       removed_by_category, edit_history_ids, raw, first_collected_at, last_collected_at,
                       deleted_at, deleted_reason)
    SELECT s.platform, s.platform_post_id, s.kind, a.id, s.author_platform_id, s.text, s.title, s.lang,
           s.created_at, s.url, s.conversation_id, s.parent_platform_id, s.root_platform_id, s.community,
           s.like_count, s.repost_count, s.reply_count, s.quote_count, s.score, s.withheld,
           s.removed_by_category, s.edit_history_ids, s.raw, :now, :now,
           CASE WHEN s.deleted_reason IS NOT NULL THEN CAST(:now AS timestamptz) END, s.deleted_reason
    FROM tw_stage_posts s
    LEFT JOIN authors a ON a.platform = s.platform AND a.platform_user_id = s.author_platform_id
    ORDER BY s.platform, s.platform_post_id
    ON CONFLICT (platform, platform_post_id) DO UPDATE SET
        kind = EXCLUDED.kind,
        author_id = COALESCE(EXCLUDED.author_id, posts.author_id),
        author_platform_id = COALESCE(EXCLUDED.author_platform_id, posts.author_platform_id),
        text = CASE WHEN posts.deleted_at IS NULL THEN EXCLUDED.text ELSE posts.text END,
        title = CASE WHEN posts.deleted_at IS NULL THEN EXCLUDED.title ELSE posts.title END,
        raw = CASE WHEN posts.deleted_at IS NULL THEN EXCLUDED.raw ELSE posts.raw END,
        lang = COALESCE(EXCLUDED.lang, posts.lang),
        url = COALESCE(EXCLUDED.url, posts.url),
        conversation_id = COALESCE(EXCLUDED.conversation_id, posts.conversation_id),
        parent_platform_id = COALESCE(EXCLUDED.parent_platform_id, posts.parent_platform_id),
        root_platform_id = COALESCE(EXCLUDED.root_platform_id, posts.root_platform_id),
        community = COALESCE(EXCLUDED.community, posts.community),
        like_count = COALESCE(EXCLUDED.like_count, posts.like_count),
        repost_count = COALESCE(EXCLUDED.repost_count, posts.repost_count),
        reply_count = COALESCE(EXCLUDED.reply_count, posts.reply_count),
        quote_count = COALESCE(EXCLUDED.quote_count, posts.quote_count),
        score = COALESCE(EXCLUDED.score, posts.score),
        withheld = EXCLUDED.withheld,
        removed_by_category = COALESCE(EXCLUDED.removed_by_category, posts.removed_by_category),
        edit_history_ids = COALESCE(EXCLUDED.edit_history_ids, posts.edit_history_ids),
        last_collected_at = EXCLUDED.last_collected_at,
        deleted_at = COALESCE(posts.deleted_at, EXCLUDED.deleted_at),
        deleted_reason = COALESCE(posts.deleted_reason, EXCLUDED.deleted_reason)
    RETURNING id, platform, platform_post_id, created_at, first_collected_at
),
men AS (
    INSERT INTO post_mentions (post_id, agency_id, matched_term, match_kind, start_offset, end_offset,
                               post_created_at, platform)
    SELECT up.id, m.agency_id, m.matched_term, m.match_kind, m.start_offset, m.end_offset, up.created_at,
           m.platform
    FROM tw_stage_mentions m
    JOIN up ON up.platform = m.platform AND up.platform_post_id = m.platform_post_id
    ORDER BY up.id, m.agency_id, m.match_kind, m.matched_term
    ON CONFLICT (post_id, agency_id, match_kind, matched_term) DO NOTHING
),
snap AS (
    INSERT INTO metric_snapshots (post_id, run_id, observed_at, like_count, repost_count, reply_count,
                                  quote_count, score)
    SELECT up.id, :run_id, :now, s.like_count, s.repost_count, s.reply_count, s.quote_count, s.score
    FROM up JOIN tw_stage_posts s ON s.platform = up.platform AND s.platform_post_id = up.platform_post_id
)
SELECT count(*) FILTER (WHERE first_collected_at = :now) FROM up
"""

def ensure_staging(conn: Connection) -> None:
    """Create the staging tables once per connection.

    A temporary table lives as long as the session, but its creation is undone if the creating
    transaction rolls back; ``track_staging`` (installed on PostgreSQL engines by ``make_engine``) keeps the
    flag true only once that transaction committed.
    """
    info = conn.info
    if info.get("tw_staging") == "ready":
        return
    conn.exec_driver_sql(_STAGING_DDL)
    info["tw_staging"] = "pending"


def track_staging(engine: Engine) -> None:
    """Engine events that settle the staging flag when the creating transaction ends."""

    @event.listens_for(engine, "commit")
    def _committed(conn: Connection) -> None:
        if conn.info.get("tw_staging") == "pending":
            conn.info["tw_staging"] = "ready"

    @event.listens_for(engine, "rollback")
    def _rolled_back(conn: Connection) -> None:
        if conn.info.get("tw_staging") == "pending":
            conn.info.pop("tw_staging", None)


def _json(value: Any) -> str | None:
    return None if value is None else json_serializer(value)


def _copy(conn: Connection, table: str, cols: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    cursor = conn.connection.driver_connection.cursor()  # the psycopg connection under this transaction
    with cursor, cursor.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def write_rows_pg(
    conn: Connection,
    posts: list[PostRecord],
    authors: list[AuthorRecord],
    mentions: list[MentionRecord],
    agencies: dict[str, int],
    run_id: int | None,
    now: dt.datetime,
    clear_staging: bool = False,
) -> int:
    """Stage and merge one page; returns how many posts were new.

    ``clear_staging``: empty the staging tables afterwards, for a caller that keeps the transaction open
    across pages (otherwise ON COMMIT DELETE ROWS does it).
    """
    ensure_staging(conn)
    _copy(conn, "tw_stage_authors", _AUTHOR_COLS, [
        (a.platform, a.platform_user_id, clean_text(a.username), clean_text(a.display_name), a.followers_count,
         a.following_count, a.post_count, a.account_created_at, a.verified, clean_text(a.location))
        for a in authors
    ])
    _copy(conn, "tw_stage_posts", _POST_COLS, [
        (p.platform, p.platform_post_id, p.kind, p.author_platform_id, clean_text(p.text) or "", clean_text(p.title),
         p.lang, p.created_at, p.url, p.conversation_id, p.parent_platform_id, p.root_platform_id, p.community,
         p.metrics.likes, p.metrics.reposts, p.metrics.replies, p.metrics.quotes, p.metrics.score,
         _json(p.withheld), p.removed_by_category, _json(p.edit_history_ids), _json(p.raw), p.deleted_reason)
        for p in posts
    ])
    _copy(conn, "tw_stage_mentions", _MENTION_COLS, [
        (m.platform, m.platform_post_id, agencies[m.agency_slug], m.matched_term[:200], m.match_kind, m.start, m.end)
        for m in mentions
    ])
    params = {"now": now, "run_id": run_id}
    if authors:
        conn.execute(text(_MERGE_AUTHORS), params)
    new = conn.execute(text(_MERGE_POSTS), params).scalar_one() if posts else 0
    if clear_staging:
        conn.exec_driver_sql("DELETE FROM tw_stage_authors; DELETE FROM tw_stage_posts; DELETE FROM tw_stage_mentions")
    return int(new)

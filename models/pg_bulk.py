"""PostgreSQL bulk path of ``write_page``: COPY a page into a staging table, then merge set-based.

Multi-row ``INSERT ... VALUES`` statements spend most of their time building and parsing SQL text; COPY
streams rows instead, and ``INSERT ... SELECT ... ON CONFLICT`` merges them by key (the approach of
MeltanoLabs' target-postgres).  The posts of a page are COPied into one session-temporary table with
``ON COMMIT DELETE ROWS``, created once per connection, each row carrying its mentions as a JSON array; the
page's few distinct authors travel as one JSON parameter of the same merge statement.  Every extra staging
table cost a COPY round trip and a truncation at each commit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import Connection
from trustwatch.models.types import clean_text, json_serializer

from trustwatch.records import AuthorRecord, MentionRecord, PostRecord

_STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS tw_stage_posts (
    platform text, platform_post_id text, kind text, author_platform_id text, text text, title text,
    lang text, created_at timestamptz, url text, conversation_id text, parent_platform_id text,
    root_platform_id text, community text, like_count int, repost_count int, reply_count int,
    quote_count int, score int, withheld jsonb, removed_by_category text, edit_history_ids jsonb,
    raw jsonb, deleted_reason text, mentions jsonb, author_is_agency boolean
) ON COMMIT DELETE ROWS
"""

_POST_COLS = ("platform", "platform_post_id", "kind", "author_platform_id", "text", "title", "lang",
              "created_at", "url", "conversation_id", "parent_platform_id", "root_platform_id", "community",
              "like_count", "repost_count", "reply_count", "quote_count", "score", "withheld",
              "removed_by_category", "edit_history_ids", "raw", "deleted_reason", "mentions",
              "author_is_agency")
_COPY_POSTS = f"COPY tw_stage_posts ({', '.join(_POST_COLS)}) FROM STDIN"

# The page's authors, upserted in key order so two writers lock the authors they share in the same order.  It
# runs alone for a page without posts; otherwise as the first CTE of the posts merge (one statement and one
# round trip less per page), where every author is upserted before the first post (see _MERGE_POSTS).
_MERGE_AUTHORS = """
INSERT INTO authors (platform, platform_user_id, username, display_name, followers_count, following_count,
                     post_count, account_created_at, verified, location, first_seen_at, last_seen_at)
SELECT platform, platform_user_id, username, display_name, followers_count, following_count, post_count,
       account_created_at, verified, location, :now, :now
FROM json_to_recordset(CAST(:authors AS json)) AS a(
    platform text, platform_user_id text, username text, display_name text, followers_count int,
    following_count int, post_count int, account_created_at timestamptz, verified boolean, location text)
ORDER BY platform, platform_user_id
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

# The conflict targets include the post's time: the keys of the monthly partitioned tables
# (models/partitions.py); validate_post truncates created_at to whole seconds so every sighting matches.
# Same merge rules as the portable path in store.py: first_collected_at never changes, a tombstone keeps
# its scrubbed content, counters keep the last known value when a response omits them.  Mentions and
# metric snapshots join the page's own upserted rows (CTE "up"), never the whole posts table.  A post this
# statement inserted has no mentions yet, so its mentions skip the conflict check (a plain insert costs less
# than ON CONFLICT's speculative one); a post seen before may have them already.  Mentions need no order of
# their own against deadlocks: each writer holds the lock of a post before it adds the post's mentions.
# A post's author id comes from the upsert's RETURNING (CTE "auth", folded into one JSON object by "ids": the
# aggregate reads every upserted author before the first post row exists, which keeps the lock order authors
# then posts; a correlated scan of the CTE per post cost more server time than it saved).  An author the page
# does not carry is a correlated lookup on the authors' unique key, not a join: the staging table has no
# statistics, so with a join the planner hashed the whole authors table for every page (59 of 94 ms of a
# 500-post page with 50,000 authors stored: write_page lost a third of its speed at 1 M posts).
_MERGE_POSTS = f"""
WITH auth AS ({_MERGE_AUTHORS}
    RETURNING id, platform, platform_user_id
),
ids AS (SELECT jsonb_object_agg(platform || ' ' || platform_user_id, id) AS m FROM auth),
up AS (
    INSERT INTO posts (platform, platform_post_id, kind, author_id, author_platform_id, text, title, lang,
                       created_at, url, conversation_id, parent_platform_id, root_platform_id, community,
                       like_count, repost_count, reply_count, quote_count, score, withheld,
                       removed_by_category, edit_history_ids, raw, first_collected_at, last_collected_at,
                       deleted_at, deleted_reason, author_is_agency)
    SELECT s.platform, s.platform_post_id, s.kind,
           COALESCE(CAST(ids.m ->> (s.platform || ' ' || s.author_platform_id) AS bigint),
                    (SELECT a.id FROM authors a
                     WHERE a.platform = s.platform AND a.platform_user_id = s.author_platform_id)),
           s.author_platform_id, s.text, s.title, s.lang,
           s.created_at, s.url, s.conversation_id, s.parent_platform_id, s.root_platform_id, s.community,
           s.like_count, s.repost_count, s.reply_count, s.quote_count, s.score, s.withheld,
           s.removed_by_category, s.edit_history_ids, s.raw, :now, :now,
           CASE WHEN s.deleted_reason IS NOT NULL THEN CAST(:now AS timestamptz) END, s.deleted_reason,
           coalesce(s.author_is_agency, false)
    FROM tw_stage_posts s CROSS JOIN ids
    ORDER BY s.platform, s.platform_post_id
    ON CONFLICT (platform, platform_post_id, created_at) DO UPDATE SET
        kind = CASE WHEN EXCLUDED.kind = 'post' AND posts.kind IN ('reply', 'quote', 'repost') THEN posts.kind
                    ELSE EXCLUDED.kind END,
        author_id = COALESCE(EXCLUDED.author_id, posts.author_id),
        author_platform_id = COALESCE(EXCLUDED.author_platform_id, posts.author_platform_id),
        text = CASE WHEN posts.deleted_at IS NULL THEN EXCLUDED.text ELSE posts.text END,
        title = CASE WHEN posts.deleted_at IS NULL THEN EXCLUDED.title ELSE posts.title END,
        raw = CASE WHEN posts.deleted_at IS NOT NULL THEN posts.raw WHEN EXCLUDED.deleted_reason IS NOT NULL THEN NULL
                   ELSE COALESCE(posts.raw || EXCLUDED.raw, EXCLUDED.raw, posts.raw) END,
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
        deleted_reason = COALESCE(posts.deleted_reason, EXCLUDED.deleted_reason),
        author_is_agency = posts.author_is_agency OR EXCLUDED.author_is_agency
    RETURNING id, platform, platform_post_id, created_at, first_collected_at
),
seen AS (
    SELECT up.id, up.platform, up.created_at, up.first_collected_at = :now AS is_new, s.mentions,
           s.like_count, s.repost_count, s.reply_count, s.quote_count, s.score
    FROM up JOIN tw_stage_posts s ON s.platform = up.platform AND s.platform_post_id = up.platform_post_id
),
new_mentions AS (
    INSERT INTO post_mentions (post_id, agency_id, matched_term, match_kind, start_offset, end_offset,
                               post_created_at, platform, via_repost)
    SELECT seen.id, m.a, m.t, m.k, m.s, m.e, seen.created_at, seen.platform, coalesce(m.r, false)
    FROM seen CROSS JOIN LATERAL jsonb_to_recordset(seen.mentions)
                                 AS m(a int, t text, k text, s int, e int, r boolean)
    WHERE seen.is_new
),
more_mentions AS (
    INSERT INTO post_mentions (post_id, agency_id, matched_term, match_kind, start_offset, end_offset,
                               post_created_at, platform, via_repost)
    SELECT seen.id, m.a, m.t, m.k, m.s, m.e, seen.created_at, seen.platform, coalesce(m.r, false)
    FROM seen CROSS JOIN LATERAL jsonb_to_recordset(seen.mentions)
                                 AS m(a int, t text, k text, s int, e int, r boolean)
    WHERE NOT seen.is_new
    ON CONFLICT (post_id, agency_id, match_kind, matched_term, post_created_at) DO NOTHING
),
snap AS (
    INSERT INTO metric_snapshots (post_id, post_created_at, run_id, observed_at, like_count, repost_count,
                                  reply_count, quote_count, score)
    SELECT id, created_at, :run_id, :now, like_count, repost_count, reply_count, quote_count, score FROM seen
)
SELECT count(*) FILTER (WHERE is_new) FROM seen
"""

# Parsed once: text() scans a statement this long for bind parameters in about 70 µs.
_MERGE_AUTHORS_SQL = text(_MERGE_AUTHORS)
_MERGE_POSTS_SQL = text(_MERGE_POSTS)


def ensure_staging(conn: Connection) -> None:
    """Create the staging table once per connection.

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


def _mentions_by_post(
    mentions: list[MentionRecord], agencies: dict[str, int]
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Each post's mentions (``write_page`` made them unique on the key of post_mentions)."""
    by_post: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for m in mentions:
        by_post.setdefault((m.platform, m.platform_post_id), []).append(
            {"a": agencies[m.agency_slug], "t": m.matched_term[:200], "k": m.match_kind, "s": m.start, "e": m.end,
             "r": m.via_repost}
        )
    return by_post


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

    ``clear_staging``: empty the staging table afterwards, for a caller that keeps the transaction open
    across pages (otherwise ON COMMIT DELETE ROWS does it).
    """
    authors_json = orjson.dumps([
        {"platform": a.platform, "platform_user_id": a.platform_user_id, "username": clean_text(a.username),
         "display_name": clean_text(a.display_name), "followers_count": a.followers_count,
         "following_count": a.following_count, "post_count": a.post_count,
         "account_created_at": a.account_created_at, "verified": a.verified,
         "location": clean_text(a.location)}
        for a in authors
    ]).decode()
    if not posts:
        if authors:
            conn.execute(_MERGE_AUTHORS_SQL, {"now": now, "authors": authors_json})
        return 0
    ensure_staging(conn)
    by_post = _mentions_by_post(mentions, agencies)
    cursor = conn.connection.driver_connection.cursor()  # the psycopg connection under this transaction
    with cursor, cursor.copy(_COPY_POSTS) as copy:
        for p in posts:
            m = p.metrics
            copy.write_row((
                p.platform, p.platform_post_id, p.kind, p.author_platform_id, clean_text(p.text) or "",
                clean_text(p.title), p.lang, p.created_at, p.url, p.conversation_id, p.parent_platform_id,
                p.root_platform_id, p.community, m.likes, m.reposts, m.replies, m.quotes, m.score,
                _json(p.withheld), p.removed_by_category, _json(p.edit_history_ids), _json(p.raw),
                p.deleted_reason, _json(by_post.get((p.platform, p.platform_post_id))), p.author_is_agency,
            ))
    new = conn.execute(_MERGE_POSTS_SQL, {"now": now, "run_id": run_id, "authors": authors_json}).scalar_one()
    if clear_staging:
        conn.exec_driver_sql("DELETE FROM tw_stage_posts")
    return int(new)

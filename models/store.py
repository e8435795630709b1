"""The one write path: every source's normalized pages go through :func:`write_page`.

A page is written in ONE transaction with set-based statements: authors and posts are upserted on
their platform keys, mentions inserted once, a metric snapshot appended for every post seen, rejects
kept aside, and the ledger row advanced with the page's cursor.  Because the cursor commits with the
rows, a crash between pages loses nothing and a retry resumes after the last committed page.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select, tuple_, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from trustwatch.models.tables import (
    Agency,
    Author,
    CollectionRun,
    MetricSnapshot,
    Post,
    PostMention,
    RejectedPayload,
    Watermark,
)
from trustwatch.models.types import clean_text, json_serializer

from trustwatch.records import (
    MAX_COUNTER,
    AuthorRecord,
    MentionRecord,
    Page,
    PostRecord,
    RecordError,
    RejectRecord,
    check_identifier,
    unique_by,
    validate_post,
)

#: Rows per multi-row statement; keeps statements under the drivers' parameter limits.
CHUNK = 1000


class StoreError(RuntimeError):
    """The store refused a page for a reason the operator must fix (the page is not written)."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one page did to the store."""

    seen: int
    new: int
    updated: int
    rejected: int
    mentions: int = 0


def utcnow() -> dt.datetime:
    """Aware UTC now (one helper so tests can reason about it)."""
    return dt.datetime.now(dt.UTC)


def _insert(conn: Connection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _chunks(rows: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def _author_row(a: AuthorRecord, now: dt.datetime) -> dict[str, Any]:
    return {
        "platform": a.platform,
        "platform_user_id": a.platform_user_id,
        "username": clean_text(a.username),
        "display_name": clean_text(a.display_name),
        "followers_count": a.followers_count,
        "following_count": a.following_count,
        "post_count": a.post_count,
        "account_created_at": a.account_created_at,
        "verified": a.verified,
        "location": clean_text(a.location),
        "first_seen_at": now,
        "last_seen_at": now,
    }


def _post_row(p: PostRecord, author_id: int | None, now: dt.datetime) -> dict[str, Any]:
    m = p.metrics
    return {
        "platform": p.platform,
        "platform_post_id": p.platform_post_id,
        "kind": p.kind,
        "author_id": author_id,
        "author_platform_id": p.author_platform_id,
        "text": clean_text(p.text) or "",
        "title": clean_text(p.title),
        "lang": p.lang,
        "created_at": p.created_at,
        "url": p.url,
        "conversation_id": p.conversation_id,
        "parent_platform_id": p.parent_platform_id,
        "root_platform_id": p.root_platform_id,
        "community": p.community,
        "like_count": m.likes,
        "repost_count": m.reposts,
        "reply_count": m.replies,
        "quote_count": m.quotes,
        "score": m.score,
        "withheld": p.withheld,
        "removed_by_category": p.removed_by_category,
        "edit_history_ids": p.edit_history_ids,
        "raw": p.raw,
        "first_collected_at": now,
        "last_collected_at": now,
        "deleted_at": now if p.deleted_reason else None,
        "deleted_reason": p.deleted_reason,
    }


def _upsert_authors(conn: Connection, authors: list[AuthorRecord], now: dt.datetime) -> dict[tuple[str, str], int]:
    if not authors:
        return {}
    table = Author.__table__
    ids: dict[tuple[str, str], int] = {}
    for chunk in _chunks(authors):
        stmt = _insert(conn, table)
        ex = stmt.excluded
        keep = ("username", "display_name", "followers_count", "following_count", "post_count",
                "account_created_at", "verified", "location")
        stmt = stmt.on_conflict_do_update(
            index_elements=["platform", "platform_user_id"],
            set_={
                **{c: func.coalesce(ex[c], table.c[c]) for c in keep},
                "last_seen_at": ex.last_seen_at,
            },
        ).returning(table.c.id, table.c.platform, table.c.platform_user_id)
        for row in conn.execute(stmt, [_author_row(a, now) for a in chunk]):
            ids[(row.platform, row.platform_user_id)] = row.id
    return ids


def _lookup_authors(conn: Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    if not keys:
        return {}
    table = Author.__table__
    found: dict[tuple[str, str], int] = {}
    key_list = sorted(keys)
    for chunk in _chunks(key_list, 500):
        rows = conn.execute(
            select(table.c.id, table.c.platform, table.c.platform_user_id).where(
                tuple_(table.c.platform, table.c.platform_user_id).in_(list(chunk))
            )
        )
        for row in rows:
            found[(row.platform, row.platform_user_id)] = row.id
    return found


def _upsert_posts(
    conn: Connection, rows: list[dict[str, Any]], now: dt.datetime
) -> tuple[dict[tuple[str, str], tuple[int, dt.datetime]], int]:
    """Upsert post rows; return {(platform, id): (row id, created_at)} and how many were new."""
    table = Post.__table__
    out: dict[tuple[str, str], tuple[int, dt.datetime]] = {}
    new = 0
    for chunk in _chunks(rows):
        stmt = _insert(conn, table)
        ex = stmt.excluded
        alive = table.c.deleted_at.is_(None)
        # A tombstoned post (compliance scrubbed it) never gets its content back from a later sighting.
        content = {c: func.coalesce(ex[c], table.c[c]) for c in ("lang", "url", "conversation_id",
                                                                  "parent_platform_id", "root_platform_id",
                                                                  "community", "author_platform_id")}
        stmt = stmt.on_conflict_do_update(
            index_elements=["platform", "platform_post_id"],
            set_={
                **content,
                "kind": ex.kind,
                "author_id": func.coalesce(ex.author_id, table.c.author_id),
                "text": _case_alive(alive, ex.text, table.c.text),
                "title": _case_alive(alive, ex.title, table.c.title),
                "raw": _case_alive(alive, ex.raw, table.c.raw),
                "like_count": func.coalesce(ex.like_count, table.c.like_count),
                "repost_count": func.coalesce(ex.repost_count, table.c.repost_count),
                "reply_count": func.coalesce(ex.reply_count, table.c.reply_count),
                "quote_count": func.coalesce(ex.quote_count, table.c.quote_count),
                "score": func.coalesce(ex.score, table.c.score),
                "withheld": ex.withheld,
                "removed_by_category": func.coalesce(ex.removed_by_category, table.c.removed_by_category),
                "edit_history_ids": func.coalesce(ex.edit_history_ids, table.c.edit_history_ids),
                "last_collected_at": ex.last_collected_at,
                "deleted_at": func.coalesce(table.c.deleted_at, ex.deleted_at),
                "deleted_reason": func.coalesce(table.c.deleted_reason, ex.deleted_reason),
            },
        ).returning(
            table.c.id, table.c.platform, table.c.platform_post_id, table.c.created_at,
            table.c.first_collected_at,
        )
        for row in conn.execute(stmt, list(chunk)):
            out[(row.platform, row.platform_post_id)] = (row.id, row.created_at)
            if row.first_collected_at == now:
                new += 1
    return out, new


def _case_alive(alive: Any, new_value: Any, old_value: Any) -> Any:
    from sqlalchemy import case

    return case((alive, new_value), else_=old_value)


def _cached_agency_ids(conn: Connection, slugs: set[str]) -> dict[str, int]:
    """Agency ids by slug, cached on the pooled connection: an agency's id never changes (sync upserts on
    the slug and never deletes), so only a slug not seen yet costs a query."""
    cache: dict[str, int] = conn.info.setdefault("tw_agency_ids", {})
    missing = slugs - cache.keys()
    if missing:
        cache.update(agency_ids(conn, missing))
    return {slug: cache[slug] for slug in slugs if slug in cache}


def agency_ids(conn: Connection, slugs: Iterable[str]) -> dict[str, int]:
    """Map agency slugs to ids; unknown slugs are absent from the result."""
    wanted = sorted(set(slugs))
    if not wanted:
        return {}
    rows = conn.execute(select(Agency.id, Agency.slug).where(Agency.slug.in_(wanted)))
    return {row.slug: row.id for row in rows}


def _reject_rows(rejects: list[RejectRecord], run_id: int | None, now: dt.datetime) -> list[dict[str, Any]]:
    rows = []
    for r in rejects:
        payload = r.payload
        try:
            json_serializer(payload)
        except (TypeError, ValueError):
            payload = repr(payload)
        rows.append(
            {
                "run_id": run_id,
                "platform": r.platform,
                "platform_post_id": (
                    clean_text(r.platform_post_id[:64]) if isinstance(r.platform_post_id, str) else None
                ),
                "source": clean_text(r.source),
                "reason": clean_text(r.reason) or "unknown",
                "payload": payload,
                "created_at": now,
            }
        )
    return rows


#: Widths of the authors' display columns: longer values are cut, not refused (they are not identifiers).
_AUTHOR_TEXT_WIDTHS = {"username": 100, "display_name": 200, "location": 200}


def _author_key(key: tuple[Any, Any]) -> tuple[str, str]:
    """Sort key for (platform, author id) pairs that may hold a bad id (None, not text)."""
    return (str(key[0]), str(key[1]))


def _checked_author(a: AuthorRecord, rejects: list[RejectRecord]) -> AuthorRecord | None:
    """The author ready for the store, or None (kept aside as a reject) when its id cannot be stored."""
    if not a.platform_user_id:
        return None
    try:
        check_identifier(a.platform_user_id, "author id", 64)
    except RecordError as exc:
        rejects.append(RejectRecord(a.platform, str(exc), repr(a)[:2000]))
        return None
    fixes: dict[str, Any] = {f: getattr(a, f)[:w] for f, w in _AUTHOR_TEXT_WIDTHS.items()
                             if isinstance(getattr(a, f), str) and len(getattr(a, f)) > w}
    # Profile counts and the verified flag describe the author, not the post: a value the columns cannot hold
    # is unknown (NULL, so the last known value stays), never a reason to lose the page.
    for f in ("followers_count", "following_count", "post_count"):
        count = getattr(a, f)
        if count is not None and not (isinstance(count, int) and -MAX_COUNTER <= count <= MAX_COUNTER):
            fixes[f] = None
    if a.verified is not None and not isinstance(a.verified, bool):
        fixes["verified"] = None
    return dataclasses.replace(a, **fixes) if fixes else a


def write_page(engine: Engine | Connection, page: Page, run_id: int | None = None) -> WriteResult:
    """Write one page of normalized records in one transaction; see the module docstring."""
    from trustwatch.models.pseudonymize import agency_handles_of, pseudonymize_key, pseudonymize_page

    key = pseudonymize_key()
    if key is not None:  # people are pseudonymized before anything is stored (models/pseudonymize.py)
        page = pseudonymize_page(page, key, agency_handles_of(engine))
    now = utcnow()
    rejects = list(page.rejects)
    valid: dict[tuple[str, str], PostRecord] = {}
    for post in page.posts:
        try:
            validate_post(post)
        except RecordError as exc:
            rejects.append(
                RejectRecord(post.platform if isinstance(post.platform, str) else "?", str(exc),
                             post.raw if post.raw is not None else repr(post)[:2000],
                             platform_post_id=post.platform_post_id if isinstance(post.platform_post_id, str) else None)
            )
            continue
        valid[(post.platform, post.platform_post_id)] = post
    posts = [valid[k] for k in sorted(valid)]  # a stable order keeps concurrent writers from deadlocking
    # A page repeats an author with each of their posts: the last record of each counts (the same id is
    # valid or not in every copy, so checking one per author is enough).
    latest: dict[tuple[Any, Any], AuthorRecord] = {}
    for a in page.authors:
        try:
            latest[(a.platform, a.platform_user_id)] = a
        except TypeError:  # an id of a type that cannot even be a key: rejected with its reason
            _checked_author(a, rejects)
    authors = [a for a in (_checked_author(latest[k], rejects) for k in sorted(latest, key=_author_key))
               if a is not None]

    if isinstance(engine, Connection):
        return _write(engine, page, run_id, now, posts, authors, rejects, owns_transaction=False)
    with engine.begin() as conn:
        return _write(conn, page, run_id, now, posts, authors, rejects)


def _write(
    conn: Connection,
    page: Page,
    run_id: int | None,
    now: dt.datetime,
    posts: list[PostRecord],
    authors: list[AuthorRecord],
    rejects: list[RejectRecord],
    owns_transaction: bool = True,
) -> WriteResult:
    known = {(p.platform, p.platform_post_id) for p in posts}
    mentions = unique_by(
        (m for m in page.mentions if (m.platform, m.platform_post_id) in known),
        # the key of post_mentions, with the term as stored (cut to its column's 200 characters)
        lambda m: (m.platform, m.platform_post_id, m.agency_slug, m.match_kind, m.matched_term[:200]),
    )
    agencies = _cached_agency_ids(conn, {m.agency_slug for m in mentions})
    unknown = sorted({m.agency_slug for m in mentions} - agencies.keys())
    if unknown:
        raise StoreError(
            f"unknown agencies {unknown}: they are not in the store. Run `trustwatch agencies sync` "
            "(or the DAG's sync task) after adding them to agencies/*.yaml."
        )
    if conn.dialect.name == "postgresql":
        from trustwatch.models.pg_bulk import write_rows_pg

        new = write_rows_pg(conn, posts, authors, mentions, agencies, run_id, now,
                            clear_staging=not owns_transaction)
    else:
        new = _write_rows(conn, posts, authors, mentions, agencies, run_id, now)
    _write_rejects_and_ledger(conn, page, run_id, now, len(posts), new, rejects)
    # mentions were made unique per (post, agency, kind, term) above: each is one row of post_mentions
    return WriteResult(seen=len(posts), new=new, updated=len(posts) - new, rejected=len(rejects),
                       mentions=len(mentions))


def _write_rows(
    conn: Connection,
    posts: list[PostRecord],
    authors: list[AuthorRecord],
    mentions: list[MentionRecord],
    agencies: dict[str, int],
    run_id: int | None,
    now: dt.datetime,
) -> int:
    """Portable path (SQLite): multi-row upserts with RETURNING; returns how many posts were new."""
    author_ids = _upsert_authors(conn, authors, now)
    missing = {(p.platform, p.author_platform_id) for p in posts if p.author_platform_id} - author_ids.keys()
    author_ids.update(_lookup_authors(conn, missing))

    post_rows = [
        _post_row(p, author_ids.get((p.platform, p.author_platform_id)) if p.author_platform_id else None, now)
        for p in posts
    ]
    post_ids, new = _upsert_posts(conn, post_rows, now) if post_rows else ({}, 0)

    mention_rows: dict[tuple[int, int, str, str], dict[str, Any]] = {}
    for m in mentions:
        target = post_ids.get((m.platform, m.platform_post_id))
        if target is None:
            continue  # the post was rejected; its mentions go with it
        key = (target[0], agencies[m.agency_slug], m.match_kind, m.matched_term)
        mention_rows.setdefault(
            key,
            {
                "post_id": target[0],
                "agency_id": agencies[m.agency_slug],
                "matched_term": m.matched_term[:200],
                "match_kind": m.match_kind,
                "start_offset": m.start,
                "end_offset": m.end,
                "post_created_at": target[1],
                "platform": m.platform,
            },
        )
    if mention_rows:
        ordered = [mention_rows[k] for k in sorted(mention_rows)]
        for chunk in _chunks(ordered):
            stmt = _insert(conn, PostMention.__table__).on_conflict_do_nothing(
                index_elements=["post_id", "agency_id", "match_kind", "matched_term"]
            )
            conn.execute(stmt, list(chunk))

    if posts:
        snapshots = [
            {
                "post_id": post_ids[(p.platform, p.platform_post_id)][0],
                "run_id": run_id,
                "observed_at": now,
                "like_count": p.metrics.likes,
                "repost_count": p.metrics.reposts,
                "reply_count": p.metrics.replies,
                "quote_count": p.metrics.quotes,
                "score": p.metrics.score,
            }
            for p in posts
        ]
        for chunk in _chunks(snapshots):
            conn.execute(MetricSnapshot.__table__.insert(), list(chunk))

    return new


def _write_rejects_and_ledger(
    conn: Connection, page: Page, run_id: int | None, now: dt.datetime, seen: int, new: int,
    rejects: list[RejectRecord],
) -> None:
    if rejects:
        conn.execute(RejectedPayload.__table__.insert(), _reject_rows(rejects, run_id, now))
    if run_id is not None:
        t = CollectionRun.__table__
        conn.execute(
            update(t)
            .where(t.c.id == run_id)
            .values(
                pages=t.c.pages + 1,
                requests=t.c.requests + page.requests,
                posts_seen=t.c.posts_seen + seen,
                posts_new=t.c.posts_new + new,
                posts_updated=t.c.posts_updated + (seen - new),
                rejected=t.c.rejected + len(rejects),
                api_errors=t.c.api_errors + page.api_errors,
                rate_limit_waits=t.c.rate_limit_waits + page.rate_limit_waits,
                rate_limit_wait_seconds=t.c.rate_limit_wait_seconds + page.rate_limit_wait_seconds,
                last_cursor=page.cursor,
            )
        )


# --- the ledger -------------------------------------------------------------------------------------


@dataclass(slots=True)
class RunHandle:
    """An open ledger row and how it was obtained."""

    run_id: int
    cursor: str | None
    resumed: bool
    already_done: bool
    notes: dict[str, Any]


def open_run(
    engine: Engine,
    *,
    platform: str,
    query_key: str,
    query_version: str,
    query_text: str,
    window_start: dt.datetime | None,
    window_end: dt.datetime | None,
    source: str = "api",
    run_context: dict[str, Any] | None = None,
    notes: dict[str, Any] | None = None,
) -> RunHandle:
    """Open the ledger row for (platform, query version, window), resuming an unfinished one.

    A window already collected successfully is reported as done, so a rerun reads (and pays for)
    nothing again; a failed or interrupted one is resumed from its last committed cursor.
    """
    ctx = run_context or {}
    t = CollectionRun.__table__
    with engine.begin() as conn:
        same = and_(
            t.c.platform == platform,
            t.c.query_key == query_key,
            t.c.query_version == query_version,
            t.c.source == source,
            t.c.window_start == window_start if window_start is not None else t.c.window_start.is_(None),
            t.c.window_end == window_end if window_end is not None else t.c.window_end.is_(None),
            t.c.status.in_(("running", "failed", "success")),
        )
        rows = conn.execute(select(t).where(same).order_by(t.c.id.desc())).mappings().all()
        done = next((r for r in rows if r["status"] == "success"), None)
        if done is not None:
            return RunHandle(done["id"], None, resumed=False, already_done=True, notes=dict(done["notes"] or {}))
        unfinished = rows[0] if rows else None
        if unfinished is not None:
            conn.execute(
                update(t)
                .where(t.c.id == unfinished["id"])
                .values(status="running", attempts=t.c.attempts + 1, error=None,
                        dag_run_id=ctx.get("dag_run_id", unfinished["dag_run_id"]),
                        task_id=ctx.get("task_id", unfinished["task_id"]))
            )
            return RunHandle(
                unfinished["id"], unfinished["last_cursor"], resumed=True, already_done=False,
                notes=dict(unfinished["notes"] or {}),
            )
        run_id = conn.execute(
            t.insert()
            .values(
                platform=platform,
                source=source,
                dag_id=ctx.get("dag_id"),
                dag_run_id=ctx.get("dag_run_id"),
                task_id=ctx.get("task_id"),
                query_key=query_key,
                query_version=query_version,
                query_text=query_text,
                window_start=window_start,
                window_end=window_end,
                status="running",
                started_at=utcnow(),
                attempts=1,
                pages=0,
                requests=0,
                posts_seen=0,
                posts_new=0,
                posts_updated=0,
                rejected=0,
                api_errors=0,
                rate_limit_waits=0,
                rate_limit_wait_seconds=0.0,
                coverage_gap=False,
                notes=notes or {},
            )
            .returning(t.c.id)
        ).scalar_one()
        return RunHandle(run_id, None, resumed=False, already_done=False, notes=dict(notes or {}))


def update_run(engine: Engine, run_id: int, **values: Any) -> None:
    """Set ledger fields (status, error, notes, coverage_gap, finished_at...)."""
    with engine.begin() as conn:
        conn.execute(update(CollectionRun.__table__).where(CollectionRun.__table__.c.id == run_id).values(**values))


def get_run(engine: Engine, run_id: int) -> dict[str, Any]:
    """One ledger row as a dict."""
    with engine.connect() as conn:
        row = conn.execute(select(CollectionRun.__table__).where(CollectionRun.__table__.c.id == run_id))
        return dict(row.mappings().one())


def newest_of_run(engine: Engine, run_id: int) -> tuple[str, dt.datetime] | None:
    """The newest post (id, created_at) any attempt of this run stored, from its metric snapshots."""
    p, s = Post.__table__, MetricSnapshot.__table__
    with engine.connect() as conn:
        row = conn.execute(
            select(p.c.platform_post_id, p.c.created_at)
            .join(s, s.c.post_id == p.c.id)
            .where(s.c.run_id == run_id)
            .order_by(p.c.created_at.desc(), func.length(p.c.platform_post_id).desc(), p.c.platform_post_id.desc())
            .limit(1)
        ).first()
    return (row.platform_post_id, row.created_at) if row else None


def get_watermark(engine: Engine, platform: str, query_key: str) -> dict[str, Any] | None:
    """The watermark row for a query version, or None."""
    w = Watermark.__table__
    with engine.connect() as conn:
        row = conn.execute(select(w).where(w.c.platform == platform, w.c.query_key == query_key)).mappings().first()
    return dict(row) if row else None


def advance_watermark(
    engine: Engine,
    platform: str,
    query_key: str,
    newest: tuple[str, dt.datetime] | None,
    covered_until: dt.datetime | None,
) -> None:
    """Move the watermark forward (never back): newest post and the end of the complete window."""
    w = Watermark.__table__
    now = utcnow()
    with engine.begin() as conn:
        row = conn.execute(select(w).where(w.c.platform == platform, w.c.query_key == query_key)).mappings().first()
        values: dict[str, Any] = {"updated_at": now}
        if newest is not None and (row is None or row["newest_at"] is None or newest[1] > row["newest_at"]):
            values["newest_id"], values["newest_at"] = newest
        if covered_until is not None and (row is None or row["covered_until"] is None
                                          or covered_until > row["covered_until"]):
            values["covered_until"] = covered_until
        if row is None:
            stmt = _insert(conn, w).values(platform=platform, query_key=query_key, **values)
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["platform", "query_key"]))
        else:
            conn.execute(update(w).where(w.c.id == row["id"]).values(**values))


# --- the registry ----------------------------------------------------------------------------------


#: FBI metadata and tracking of the nationwide registry (issue 16), copied as they are.
_REGISTRY_FIELDS = ("ori", "agency_type", "county", "latitude", "longitude", "nibrs", "timezone", "parent")


def sync_agencies(engine: Engine, entries: Sequence[Any]) -> dict[str, int]:
    """Upsert registry entries; agencies no longer in the registry become inactive, never deleted."""
    t = Agency.__table__
    now = utcnow()
    rows = [
        {
            "slug": e.slug,
            "name": e.name,
            "kind": e.kind,
            "jurisdiction": e.jurisdiction,
            "state": e.state,
            "aliases": list(e.aliases),
            "x_handles": list(e.x_handles),
            "hashtags": list(getattr(e, "hashtags", ()) or ()),
            "subreddits": list(e.subreddits),
            "active": bool(getattr(e, "active", True)),
            "updated_at": now,
            **{f: getattr(e, f, None) for f in _REGISTRY_FIELDS},
            "tracked": bool(getattr(e, "tracked", True)),
            "matched": bool(getattr(e, "matched", True)),
        }
        for e in sorted(entries, key=lambda e: e.slug)
    ]
    slugs = [r["slug"] for r in rows]
    with engine.begin() as conn:
        # A store not yet at the registry migration (0016) gets the columns it has: tests seed old
        # revisions through this function, and a sync must not fail while an upgrade is pending.
        present = {c["name"] for c in sa_inspect(conn).get_columns(t.name)}
        if not present >= {c.name for c in t.columns}:
            rows = [{k: v for k, v in r.items() if k in present} for r in rows]
        existing = {r.slug: r for r in conn.execute(select(*[c for c in t.columns if c.name in present]))}
        changed = 0
        fields = tuple(f for f in ("name", "kind", "jurisdiction", "state", "aliases", "x_handles", "hashtags",
                                   "subreddits", "active", "tracked", "matched", *_REGISTRY_FIELDS) if f in present)
        for chunk in _chunks(rows):
            stmt = _insert(conn, t)
            stmt = stmt.on_conflict_do_update(
                index_elements=["slug"],
                set_={c: stmt.excluded[c] for c in (*fields, "updated_at")},
            )
            todo = [r for r in chunk if r["slug"] not in existing
                    or any(getattr(existing[r["slug"]], f) != r[f] for f in fields)]
            changed += len(todo)
            if todo:
                conn.execute(stmt, todo)
        gone = conn.execute(
            update(t).where(or_(~t.c.slug.in_(slugs) if slugs else t.c.id.isnot(None)), t.c.active.is_(True))
            .values(active=False, updated_at=now)
        ).rowcount
    return {"agencies": len(rows), "changed": changed, "deactivated": gone or 0}

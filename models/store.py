"""The one write path: every source's normalized pages go through :func:`write_page`.

A page is written in ONE transaction with set-based statements: authors and posts are upserted on
their platform keys, mentions inserted once, a metric snapshot appended for every post seen, rejects
kept aside, and the ledger row advanced with the page's cursor.  Because the cursor commits with the
rows, a crash between pages loses nothing and a retry resumes after the last committed page.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, case, func, or_, select, text, tuple_, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError, StatementError
from trustwatch.models.tables import (
    Agency,
    Author,
    CollectionRun,
    MetricSnapshot,
    Post,
    PostMention,
    RegistrySync,
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
    ensure_valid,
    unique_by,
)
from trustwatch.settings import StoreUnreachableError

log = logging.getLogger(__name__)

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
        "author_is_agency": p.author_is_agency,
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
                # a sparser later sighting (no referenced_tweets) never turns a reply/quote/repost into a post
                "kind": case((and_(ex.kind == "post", or_(*(table.c.kind == k for k in ("reply", "quote", "repost")))),
                              table.c.kind), else_=ex.kind),
                "author_id": func.coalesce(ex.author_id, table.c.author_id),
                "text": _case_alive(alive, ex.text, table.c.text),
                "title": _case_alive(alive, ex.title, table.c.title),
                # fields a poorer sighting lacks stay (top-level merge); a deleted one keeps none
                "raw": case((~alive, table.c.raw), (ex.deleted_reason.isnot(None), None),
                            else_=func.coalesce(func.json_patch(table.c.raw, ex.raw), ex.raw, table.c.raw)),
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
                # sticky: a sighting without the registry (an archive import) never unmarks agency speech
                "author_is_agency": or_(table.c.author_is_agency, ex.author_is_agency),
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


#: Longest reject payload kept, in characters of its JSON: a 50 MB line must not land whole in the store
#: (nor in the analyst's view of it); the size and SHA-256 of the whole payload are kept with its head.
MAX_REJECT_PAYLOAD = 10_000


def cap_payload(payload: Any) -> Any:
    """The payload as stored in ``rejected_payloads``: whole when small, else its head, size and hash."""
    try:
        text = json_serializer(payload)
    except (TypeError, ValueError):
        payload = text = repr(payload)
        text = json_serializer(text)
    if len(text) <= MAX_REJECT_PAYLOAD:
        return payload
    data = text.encode("utf-8", "replace")
    return {"truncated": True, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "head": data[:MAX_REJECT_PAYLOAD].decode("utf-8", "ignore")}


def _reject_post_id(r: RejectRecord) -> str | None:
    """The post id a reject belongs to: its own field, else the id (or first edit) its payload names."""
    if isinstance(r.platform_post_id, str) and r.platform_post_id:
        return clean_text(r.platform_post_id[:64])
    if isinstance(r.payload, dict):
        for key in ("id", "id_str"):
            value = r.payload.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return clean_text(str(value)[:64])
    return None


def _tombstoned(conn: Connection, keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (platform, post id) pairs are tombstones (deleted, withheld, removed)."""
    if not keys:
        return set()
    t = Post.__table__
    found: set[tuple[str, str]] = set()
    for platform in sorted({k[0] for k in keys}):  # platform = and id IN: the unique index, every time
        ids = sorted(k[1] for k in keys if k[0] == platform)
        for chunk in _chunks(ids, 500):
            rows = conn.execute(select(t.c.platform_post_id).where(
                t.c.platform == platform, t.c.platform_post_id.in_(list(chunk)), t.c.deleted_at.isnot(None)))
            found.update((platform, r) for r in rows.scalars())
    return found


#: What a reject of a deleted post keeps instead of its payload.
TOMBSTONED_REJECT = {"scrubbed": "the post is deleted or withheld; its payload is not kept"}


def _reject_rows(conn: Connection, rejects: list[RejectRecord], run_id: int | None,
                 now: dt.datetime) -> list[dict[str, Any]]:
    ids = [_reject_post_id(r) for r in rejects]
    # A deleted post's text must not come back through a broken copy of it (an archive, a retry).
    dead = _tombstoned(conn, {(r.platform, i) for r, i in zip(rejects, ids, strict=True) if i})
    rows = []
    for r, post_id in zip(rejects, ids, strict=True):
        gone = post_id is not None and (r.platform, post_id) in dead
        rows.append(
            {
                "run_id": run_id,
                "platform": r.platform,
                "platform_post_id": post_id,
                "source": clean_text(r.source),
                "reason": clean_text(r.reason) or "unknown",
                "payload": TOMBSTONED_REJECT if gone else cap_payload(r.payload),
                "created_at": now,
            }
        )
    return rows


def scrub_tombstoned_rejects(engine: Engine | Connection) -> int:
    """Drop the payload of every reject whose post is a tombstone; compliance calls it on every run, so a
    reject written before its post was deleted (or by an older version) is scrubbed too."""
    r, p = RejectedPayload.__table__, Post.__table__
    dead = select(p.c.id).where(p.c.platform == r.c.platform, p.c.platform_post_id == r.c.platform_post_id,
                                p.c.deleted_at.isnot(None)).exists()
    stmt = update(r).where(r.c.platform_post_id.isnot(None), dead).values(payload=TOMBSTONED_REJECT)
    if isinstance(engine, Connection):
        return engine.execute(stmt).rowcount or 0
    with engine.begin() as conn:
        return conn.execute(stmt).rowcount or 0


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
            post = ensure_valid(clean_post(post))  # checked once: a normalizer's check stands
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
    try:
        with engine.begin() as conn:
            return _write(conn, page, run_id, now, posts, authors, rejects)
    except Exception as exc:
        if not posts or not _is_record_fault(exc):
            raise  # the database is unreachable or refuses the ledger itself: not one record's fault
        # One record the cleaning step did not foresee must not block its whole page (and every retry of it):
        # write the records one by one, each in a savepoint, and keep the refused ones aside with the reason.
        with engine.begin() as conn:
            return _write_one_by_one(conn, page, run_id, now, posts, authors, rejects)


def clean_post(post: PostRecord) -> PostRecord:
    """The one cleaning step every post's free text goes through before the store (text, title, url).

    NUL characters and lone surrogates come from user-controlled fields (a username in a URL, a permalink);
    PostgreSQL refuses them and both drivers fail to encode surrogates, which would fail the page for good.
    Identifiers are not cleaned (a changed id is another post): :func:`validate_post` rejects them instead.
    """
    fixes = {name: clean_text(value) for name in ("text", "title", "url")
             if isinstance(value := getattr(post, name), str) and clean_text(value) != value}
    if post.deleted_reason and post.raw is not None:
        fixes["raw"] = None  # removed or deleted when first seen: its text is kept nowhere, raw included
    if isinstance(post.url, str) and len(post.url) > MAX_URL_CHARS:
        fixes["url"] = None  # a URL is derived, never the content: an absurd one is dropped, not the post
    return dataclasses.replace(post, **fixes) if fixes else post


def _is_record_fault(exc: BaseException) -> bool:
    """Whether the database refused a value (a record's fault), not the connection or the operator's setup."""
    if isinstance(exc, StoreError | OperationalError | InterfaceError):
        return False
    names = {c.__name__ for c in type(exc).__mro__}
    if names & {"OperationalError", "InterfaceError", "ConnectionException", "AdminShutdown"}:
        return False  # the driver's own (psycopg) connection errors, raised outside SQLAlchemy on the COPY path
    if isinstance(exc, DataError | IntegrityError | UnicodeError) or names & {"DataError", "IntegrityError"}:
        return True
    # a value SQLAlchemy could not bind (wrapped, not from the database): e.g. a lone surrogate in a parameter
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError) and isinstance(
        exc.orig, UnicodeError | ValueError | TypeError)


#: Longest post URL kept (real ones are under 200 characters).
MAX_URL_CHARS = 2000


def _write_one_by_one(
    conn: Connection,
    page: Page,
    run_id: int | None,
    now: dt.datetime,
    posts: list[PostRecord],
    authors: list[AuthorRecord],
    rejects: list[RejectRecord],
) -> WriteResult:
    """Fallback of :func:`write_page`: each post (with its author and mentions) in its own savepoint."""
    by_author = {(a.platform, a.platform_user_id): a for a in authors}
    kept: list[PostRecord] = []
    new = mentions = 0
    for post in posts:
        author = by_author.get((post.platform, post.author_platform_id))
        one = Page(posts=[post], authors=[author] if author else [],
                   mentions=[m for m in page.mentions if m.platform_post_id == post.platform_post_id],
                   ambiguities=[a for a in page.ambiguities if a.platform_post_id == post.platform_post_id])
        savepoint = conn.begin_nested()
        try:
            result = _write(conn, one, None, now, [post], one.authors, [], owns_transaction=False,
                            ledger=False, snapshot_run_id=run_id)
        except Exception as exc:
            if not _is_record_fault(exc):
                raise
            savepoint.rollback()
            cause = getattr(exc, "orig", None) or exc
            reason = f"the store refused this record: {type(cause).__name__}: {str(cause).splitlines()[0][:300]}"
            rejects.append(RejectRecord(post.platform, reason, post.raw if post.raw is not None else repr(post)[:2000],
                                        platform_post_id=post.platform_post_id))
            continue
        savepoint.commit()
        kept.append(post)
        new += result.new
        mentions += result.mentions
    _write_rejects_and_ledger(conn, page, run_id, now, len(kept), new, rejects)
    return WriteResult(seen=len(kept), new=new, updated=len(kept) - new, rejected=len(rejects), mentions=mentions)


def _write(
    conn: Connection,
    page: Page,
    run_id: int | None,
    now: dt.datetime,
    posts: list[PostRecord],
    authors: list[AuthorRecord],
    rejects: list[RejectRecord],
    owns_transaction: bool = True,
    ledger: bool = True,
    snapshot_run_id: int | None = None,
) -> WriteResult:
    snapshot_run = run_id if ledger else snapshot_run_id
    posts = _resolve_edit_references(conn, posts)
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

        new = write_rows_pg(conn, posts, authors, mentions, agencies, snapshot_run, now,
                            clear_staging=not owns_transaction)
    else:
        new = _write_rows(conn, posts, authors, mentions, agencies, snapshot_run, now)
    if page.ambiguities:  # shared names the posts leave unsettled: countable, attributed to none (issue 16)
        from trustwatch.models.ambiguous import write_ambiguities

        write_ambiguities(conn, page.ambiguities, known)
    if ledger:
        _write_rejects_and_ledger(conn, page, run_id, now, len(posts), new, rejects)
    # mentions were made unique per (post, agency, kind, term) above: each is one row of post_mentions
    return WriteResult(seen=len(posts), new=new, updated=len(posts) - new, rejected=len(rejects),
                       mentions=len(mentions))


#: X's epoch in ms and the longest edit window: a version id was made at most this long after the first.
_X_EPOCH_MS = 1288834974657
_EDIT_WINDOW = dt.timedelta(hours=1)


def _snowflake_at(post_id: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(((int(post_id) >> 22) + _X_EPOCH_MS) / 1000, tz=dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _resolve_edit_references(conn: Connection, posts: list[PostRecord]) -> list[PostRecord]:
    """Point parent and quoted/reposted references at the id an edited post is stored under (its first
    version): a reply to the second version named an id the store never holds.  Edited posts of the same
    page and stored ones are both looked at; a stored one is found by time (its first version is at most an
    hour older than the version named, X's edit window), so the lookup stays on the created_at index."""
    x_posts = [p for p in posts if p.platform == "x" and (p.parent_platform_id or p.root_platform_id)]
    if not x_posts:
        return posts
    versions = {v: p.platform_post_id for p in posts if p.platform == "x" and p.edit_history_ids
                and len(p.edit_history_ids) > 1 for v in p.edit_history_ids if v != p.platform_post_id}
    refs = {r for p in x_posts for r in (p.parent_platform_id, p.root_platform_id) if r} - versions.keys()
    refs -= {p.platform_post_id for p in posts}
    if refs:
        # one round trip: the edited posts whose first version is at most an hour older than a referenced
        # id (X's edit window), on the created_at index
        t = Post.__table__
        times = sorted(m for m in (_snowflake_at(r) for r in refs) if m is not None)
        spans: list[list[dt.datetime]] = []
        for m in times:  # overlapping hour-long spans merged: a page's references cluster in time
            if spans and m - _EDIT_WINDOW <= spans[-1][1]:
                spans[-1][1] = m
            else:
                spans.append([m - _EDIT_WINDOW, m])
        length = func.jsonb_array_length if conn.dialect.name == "postgresql" else func.json_array_length
        edited = and_(or_(*(t.c.created_at.between(a, b) for a, b in spans)), t.c.edit_history_ids.isnot(None),
                      length(t.c.edit_history_ids) > 1) if spans else None
        if edited is not None:
            # no platform condition: without statistics the planner would take the platform index and read
            # every X post; only X posts have edit histories, and created_at's index bounds the read
            for row in conn.execute(select(t.c.platform_post_id, t.c.edit_history_ids).where(edited)):
                for v in row.edit_history_ids or ():
                    if v != row.platform_post_id and str(v) in refs:
                        versions[str(v)] = row.platform_post_id
    if not versions:
        return posts
    out = []
    for p in posts:
        parent, root = versions.get(p.parent_platform_id or ""), versions.get(p.root_platform_id or "")
        if p.platform == "x" and (parent or root):
            p = dataclasses.replace(p, parent_platform_id=parent or p.parent_platform_id,
                                    root_platform_id=root or p.root_platform_id)
        out.append(p)
    return out


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
                "via_repost": m.via_repost,
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
                "post_created_at": post_ids[(p.platform, p.platform_post_id)][1],
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
        conn.execute(RejectedPayload.__table__.insert(), _reject_rows(conn, rejects, run_id, now))
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
                lease_expires_at=case((t.c.lease_owner.isnot(None), now + dt.timedelta(seconds=LEASE_SECONDS)),
                                      else_=None),
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


#: How long a holder's claim on a ledger row stands without a committed page.  Long enough for X's
#: 15-minute rate-limit window plus a slow page; a holder on this host that died is recognised at once.
LEASE_SECONDS = float(os.environ.get("TRUSTWATCH_LEASE_SECONDS", "1200"))
#: This process's token, so a reused pid is not mistaken for the holder.
_TOKEN = uuid.uuid4().hex[:8]


class RunLeased(StoreError):
    """Another live run holds this window (two runs of the same window would read and bill it twice)."""


def lease_holder() -> str:
    """This process as a lease holder: ``host:pid:token``."""
    return f"{socket.gethostname()[:150]}:{os.getpid()}:{_TOKEN}"


def _holder_alive(holder: str | None, expires: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether a lease still binds: not expired, and, when held on this host, by a process that exists."""
    if not holder or expires is None or expires <= now:
        return False
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host == socket.gethostname()[:150] and pid_text.isdigit():
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            return False  # its process is gone (SIGKILL, a stopped database that ended it): an orphan
        except PermissionError:
            return True
    return True


def _describe_holder(holder: str) -> str:
    host, _, rest = holder.partition(":")
    return f"pid {rest.partition(':')[0]} on {host}"


def _xact_lock(conn: Connection, key: str) -> None:
    """Serialize the transactions that take ``key`` (the claim of one window, the registry sync): a
    transaction-scoped advisory lock on PostgreSQL; on SQLite the transaction already began IMMEDIATE (one
    writer at a time), which serializes it."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})


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
    holder: str | None = None,
) -> RunHandle:
    """Open the ledger row for (platform, query version, window), resuming an unfinished one.

    A window already collected successfully is reported as done, so a rerun reads (and pays for)
    nothing again; a failed or interrupted one is resumed from its last committed cursor.  The row is
    claimed atomically with a lease: while another live process (``holder``, default this process) holds
    it, :class:`RunLeased` says so instead of reading the window a second time; a holder that died (its
    pid gone on this host, or its lease expired) is taken over.
    """
    ctx = run_context or {}
    t = CollectionRun.__table__
    me = holder or lease_holder()
    with engine.begin() as conn:
        _xact_lock(conn, "|".join(map(str, ("trustwatch-run", platform, query_key, query_version, source,
                                               window_start, window_end))))
        now = utcnow()
        same = and_(
            t.c.platform == platform,
            t.c.query_key == query_key,
            t.c.query_version == query_version,
            t.c.source == source,
            t.c.window_start == window_start if window_start is not None else t.c.window_start.is_(None),
            t.c.window_end == window_end if window_end is not None else t.c.window_end.is_(None),
            t.c.status.in_(("running", "failed", "success", "partial")),
        )
        rows = conn.execute(select(t).where(same).order_by(t.c.id.desc())).mappings().all()
        # partial: an archive read to where it was cut; reading the same bytes again cannot get further
        done = next((r for r in rows if r["status"] in ("success", "partial")), None)
        if done is not None:
            return RunHandle(done["id"], None, resumed=False, already_done=True, notes=dict(done["notes"] or {}))
        unfinished = rows[0] if rows else None
        if unfinished is not None:
            other = unfinished["lease_owner"]
            if (unfinished["status"] == "running" and other and other != me
                    and _holder_alive(other, unfinished["lease_expires_at"], now)):
                raise RunLeased(
                    f"{platform} {query_key} is already running (run {unfinished['id']}, {_describe_holder(other)}); "
                    f"its claim lapses at {unfinished['lease_expires_at'].isoformat(timespec='seconds')} "
                    "unless it commits a page: wait for it, or run again after that")
            conn.execute(
                update(t)
                .where(t.c.id == unfinished["id"])
                .values(status="running", attempts=t.c.attempts + 1, error=None, lease_owner=me,
                        lease_expires_at=now + dt.timedelta(seconds=LEASE_SECONDS),
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
                lease_owner=me,
                lease_expires_at=now + dt.timedelta(seconds=LEASE_SECONDS),
            )
            .returning(t.c.id)
        ).scalar_one()
        return RunHandle(run_id, None, resumed=False, already_done=False, notes=dict(notes or {}))


def update_run(engine: Engine, run_id: int, **values: Any) -> None:
    """Set ledger fields (status, error, notes, coverage_gap, finished_at...); a run that ends frees its lease."""
    if values.get("status") not in (None, "running"):
        values = {"lease_owner": None, "lease_expires_at": None, **values}
    with engine.begin() as conn:
        conn.execute(update(CollectionRun.__table__).where(CollectionRun.__table__.c.id == run_id).values(**values))


def record_failure(engine: Engine, run_id: int, **values: Any) -> bool:
    """Mark a run failed, if the store can still be reached; returns whether it could.

    When the database itself went away the update cannot land either: the row stays ``running`` with this
    process's lease, and the next run takes it over as soon as this process has ended (see open_run).
    The original error is what the caller raises, not a second traceback about the failed update.
    """
    try:
        update_run(engine, run_id, status="failed", finished_at=utcnow(), **values)
    except (OperationalError, InterfaceError, StoreUnreachableError) as exc:
        log.warning("run %s: could not record the failure in the ledger (%s); the next run takes the row over",
                    run_id, str(getattr(exc, "orig", exc)).splitlines()[0][:200] if str(exc) else type(exc).__name__)
        return False
    return True


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


def last_registry_sync(engine: Engine) -> dict[str, Any] | None:
    """The digest, size and time of the registry last synced by :func:`sync_agencies`, or None."""
    c = RegistrySync.__table__.c  # Core columns: an ORM statement would configure Airflow's mappers in a task
    with engine.connect() as conn:
        row = conn.execute(select(c.digest, c.agencies, c.synced_at)).first()
    return None if row is None else {"digest": row.digest, "agencies": row.agencies, "synced_at": row.synced_at}


def sync_agencies(engine: Engine, entries: Sequence[Any], digest: str | None = None,
                  if_changed: bool = False) -> dict[str, int]:
    """Upsert registry entries; agencies no longer in the registry become inactive, never deleted.

    ``digest`` identifies the registry the entries came from (``trustwatch.tasks.registry_sync_digest``) and
    is recorded in the same transaction, so the next sync of the same registry can be skipped; entries
    from elsewhere record none, and the next sync compares again.

    Two runs starting together on a new store both sync: the sync holds a lock for its transaction (an
    advisory lock on PostgreSQL, the IMMEDIATE write lock on SQLite), so the second waits instead of
    colliding with the first's inserts on the ``ori`` index; with ``if_changed`` it then finds the
    first's digest and returns ``unchanged`` without writing.
    """
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
        _xact_lock(conn, "trustwatch:registry-sync")
        recorded = sa_inspect(conn).has_table(RegistrySync.__tablename__)  # a store before migration 0024 has none
        if if_changed and digest is not None and recorded:
            c = RegistrySync.__table__.c
            if conn.execute(select(c.digest)).scalar() == digest:
                return {"agencies": len(rows), "changed": 0, "deactivated": 0, "unchanged": True}
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
        # The agencies to deactivate are known from the rows read above: naming them is cheaper than a
        # NOT IN over every registry slug (18,700 bound parameters, most of a second per sync).
        wanted = set(slugs)
        removed = [slug for slug, row in existing.items() if slug not in wanted and row.active]
        gone = 0
        for names in _chunks(removed):
            gone += conn.execute(update(t).where(t.c.slug.in_(names), t.c.active.is_(True))
                                 .values(active=False, updated_at=now)).rowcount or 0
        if recorded:
            record = _insert(conn, RegistrySync.__table__).values(id=1, digest=digest, agencies=len(rows),
                                                                   synced_at=now)
            conn.execute(record.on_conflict_do_update(
                index_elements=["id"], set_={"digest": digest, "agencies": len(rows), "synced_at": now}))
    return {"agencies": len(rows), "changed": changed, "deactivated": gone}

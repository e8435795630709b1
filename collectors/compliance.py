"""Deletion compliance: look stored posts up again and tombstone what the platforms no longer show.

X's and Reddit's terms require that content deleted, suspended or withheld on the platform is not kept
(X's developer policy: remove it within 24 hours of learning of it).  The ``compliance_check`` DAG and
``trustwatch compliance`` run :func:`check_compliance`: every stored, live post younger than
``max_age_days`` is looked up again in batches (X: tweet lookup by up to 100 ids; Reddit: ``/api/info`` by
up to 100 fullnames), and what is gone becomes a tombstone: text emptied, title and raw payload removed,
``deleted_at`` and ``deleted_reason`` kept, so counts over time stay explainable.  Its rejected payloads are
scrubbed too.  The analyst views leave tombstones out; a tombstone never gets its content back
(``write_page`` keeps it scrubbed when the post is seen again).

Reasons: ``not_found`` (X or Reddit no longer return it: deleted, or its account deactivated),
``suspended`` and ``protected`` (X says so for the id: its account is suspended, or protected so that only
approved followers see it), ``withheld`` (X withholds it in some or all countries), ``[deleted]`` /
``[removed]`` (Reddit shows the author deleted it, or a moderator or Reddit removed it).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Engine, null, select, update
from trustwatch.models import store
from trustwatch.models.tables import Post, RejectedPayload

log = logging.getLogger(__name__)

#: The platforms' most ids per lookup request.
MAX_BATCH = 100
SOURCE = "compliance"
QUERY_VERSION = "1"
#: Stored in place of a tombstoned post's rejected payloads.
SCRUBBED = {"scrubbed": "the post was deleted or withheld on the platform"}


class ComplianceError(RuntimeError):
    """A compliance run could not finish; the posts checked so far keep their tombstones."""


def _stored_batches(
    engine: Engine, platform: str, since: dt.datetime, batch: int
) -> Iterator[list[tuple[int, str, str]]]:
    """(row id, platform id, kind) of live posts created since ``since``, ``batch`` at a time (keyset paging,
    so memory stays flat however many posts are stored)."""
    last = 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                select(Post.id, Post.platform_post_id, Post.kind)
                .where(Post.platform == platform, Post.deleted_at.is_(None), Post.created_at >= since,
                       Post.id > last)
                .order_by(Post.id)
                .limit(batch)
            ).all()
        if not rows:
            return
        yield [(r.id, r.platform_post_id, r.kind) for r in rows]
        last = rows[-1].id


def _x_verdicts(collector: Any, ids: Sequence[str]) -> tuple[dict[str, str], Any]:
    """{post id: reason} for the ids X no longer shows, and the lookup page (for the ledger)."""
    page = collector.lookup(list(ids))
    found = {p.platform_post_id: p for p in page.posts}
    unreadable = {r.platform_post_id for r in page.rejects}  # returned, but malformed: not proof of deletion
    verdicts: dict[str, str] = {}
    for post_id in ids:
        post = found.get(post_id)
        if post_id in unreadable:
            continue
        if post is None:
            verdicts[post_id] = page.unavailable.get(post_id, "not_found")
        elif post.withheld:
            verdicts[post_id] = "withheld"
    return verdicts, page


def _fullname(post_id: str, kind: str) -> str:
    return f"{'t3' if kind == 'submission' else 't1'}_{post_id}"


def _reddit_verdicts(collector: Any, rows: Sequence[tuple[int, str, str]]) -> tuple[dict[str, str], Any]:
    """{post id: reason} for the things Reddit shows deleted or removed, or no longer returns."""
    names = [_fullname(post_id, kind) for _, post_id, kind in rows]
    page = collector.info(names)
    found = {p.platform_post_id: p for p in page.posts}
    unreadable = {r.platform_post_id for r in page.rejects}
    verdicts: dict[str, str] = {}
    for _, post_id, _kind in rows:
        post = found.get(post_id)
        if post_id in unreadable:
            continue
        if post is None:
            verdicts[post_id] = "not_found"
        elif post.deleted_reason:
            verdicts[post_id] = post.deleted_reason
    return verdicts, page


def tombstone(engine: Engine, platform: str, verdicts: dict[str, str], now: dt.datetime) -> int:
    """Scrub the posts in ``verdicts`` (platform id -> reason) in one transaction; returns how many changed."""
    if not verdicts:
        return 0
    changed = 0
    with engine.begin() as conn:
        for reason in sorted(set(verdicts.values())):
            ids = sorted(i for i, r in verdicts.items() if r == reason)
            changed += conn.execute(
                update(Post)
                .where(Post.platform == platform, Post.platform_post_id.in_(ids), Post.deleted_at.is_(None))
                .values(text="", title=None, raw=null(), deleted_at=now, deleted_reason=reason[:40])
            ).rowcount or 0
            conn.execute(
                update(RejectedPayload)
                .where(RejectedPayload.platform == platform, RejectedPayload.platform_post_id.in_(ids))
                .values(payload=SCRUBBED)
            )
    if changed and engine.dialect.name == "postgresql":
        # fresh statistics without the deleted rows' values (content columns are never sampled: migration 0020)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE posts")
    return changed


def _check_platform(
    engine: Engine,
    platform: str,
    verdicts_of: Callable[[list[tuple[int, str, str]]], tuple[dict[str, str], Any]],
    *,
    max_age_days: float,
    batch: int,
    now: dt.datetime,
    run_context: dict[str, Any] | None,
    secrets: tuple[str, ...],
) -> dict[str, Any]:
    since = now - dt.timedelta(days=max_age_days)
    handle = store.open_run(
        engine, platform=platform, query_key=SOURCE, query_version=QUERY_VERSION,
        query_text=f"re-check stored posts created since {since.isoformat()} ({max_age_days:g} days)",
        window_start=since, window_end=now, source=SOURCE, run_context=run_context,
    )
    summary: dict[str, Any] = {"platform": platform, "run_id": handle.run_id, "checked": 0, "tombstoned": 0,
                               "reasons": {}, "requests": 0, "batches": 0}
    waits = 0
    wait_seconds = 0.0
    try:
        for rows in _stored_batches(engine, platform, since, batch):
            verdicts, page = verdicts_of(rows)
            changed = tombstone(engine, platform, verdicts, now)
            summary["batches"] += 1
            summary["checked"] += len(rows)
            summary["tombstoned"] += changed
            summary["requests"] += int(getattr(page, "requests", 1) or 0)
            waits += int(getattr(page, "rate_limit_waits", 0) or 0)
            wait_seconds += float(getattr(page, "rate_limit_wait_seconds", 0.0) or 0.0)
            for reason in verdicts.values():
                summary["reasons"][reason] = summary["reasons"].get(reason, 0) + 1
            store.update_run(engine, handle.run_id, pages=summary["batches"], requests=summary["requests"],
                             posts_seen=summary["checked"], posts_updated=summary["tombstoned"],
                             rate_limit_waits=waits, rate_limit_wait_seconds=wait_seconds)
    except BaseException as exc:
        store.update_run(engine, handle.run_id, status="failed", error=_redacted(exc, secrets),
                         finished_at=store.utcnow(), notes=_notes(summary, max_age_days))
        raise
    store.update_run(engine, handle.run_id, status="success", finished_at=store.utcnow(),
                     notes=_notes(summary, max_age_days))
    log.info("compliance %s: %d posts checked, %d tombstoned %s", platform, summary["checked"],
             summary["tombstoned"], summary["reasons"])
    return summary


def _redacted(exc: BaseException, secrets: tuple[str, ...]) -> str:
    text = f"{type(exc).__name__}: {exc}"
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:2000]


def _notes(summary: dict[str, Any], max_age_days: float) -> dict[str, Any]:
    return {"checked": summary["checked"], "tombstoned": summary["tombstoned"], "reasons": summary["reasons"],
            "max_age_days": max_age_days}


def check_compliance(
    engine: Engine,
    *,
    x_collector: Any = None,
    reddit_collector: Any = None,
    max_age_days: float = 30,
    batch: int = MAX_BATCH,
    now: dt.datetime | None = None,
    run_context: dict[str, Any] | None = None,
    secrets: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Re-check the stored posts of each platform given a collector; one ledger row per platform.

    Returns ``{"x": {...}, "reddit": {...}}`` with posts checked, tombstoned, the reasons and the run id.
    """
    if not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"batch must be between 1 and {MAX_BATCH} (the platforms' lookup limit), got {batch}")
    if max_age_days <= 0:
        raise ValueError(f"max_age_days must be positive, got {max_age_days}")
    if x_collector is None and reddit_collector is None:
        raise ComplianceError("no collector given: configure the x_api or reddit_api connection")
    moment = (now or store.utcnow()).astimezone(dt.UTC)
    result: dict[str, Any] = {}
    common = {"max_age_days": max_age_days, "batch": batch, "now": moment, "run_context": run_context,
              "secrets": secrets}
    if x_collector is not None:
        result["x"] = _check_platform(
            engine, "x", lambda rows: _x_verdicts(x_collector, [r[1] for r in rows]), **common
        )
    if reddit_collector is not None:
        result["reddit"] = _check_platform(
            engine, "reddit", lambda rows: _reddit_verdicts(reddit_collector, rows), **common
        )
    # every run, not only for the posts it tombstoned: a reject written before its post was deleted (or
    # from a broken copy of an old tombstone) keeps no deleted text either
    result["rejects_scrubbed"] = store.scrub_tombstoned_rejects(engine)
    return result

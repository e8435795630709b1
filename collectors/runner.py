"""Run one compiled query over one window: ledger, resume, matching, the write path, the watermark.

Collectors only fetch and normalize; this module owns the promises.  A window already collected is
not read again (X bills per post read); an interrupted one resumes from the cursor committed with its
last page; the watermark advances only when a window is complete.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine
from trustwatch.models import store

from trustwatch.records import MentionRecord, Page, PostRecord, Window

log = logging.getLogger(__name__)

#: Longest error text kept in the ledger.
MAX_ERROR_CHARS = 2000


@dataclass
class RunSummary:
    """What one query/window run did; also what the DAG's summary task aggregates."""

    run_id: int
    platform: str
    query_key: str
    window_start: str
    window_end: str
    status: str
    resumed: bool = False
    skipped: bool = False
    pages: int = 0
    requests: int = 0
    posts_seen: int = 0
    posts_new: int = 0
    posts_updated: int = 0
    rejected: int = 0
    mentions: int = 0
    api_errors: int = 0
    coverage_gap: bool = False
    expected_posts: int | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (XCom, CLI output)."""
        return asdict(self)


def post_match_text(post: PostRecord) -> str:
    """The text the matcher reads: the title (Reddit submissions) and the body."""
    return f"{post.title}\n{post.text}" if post.title else post.text


def add_mentions(page: Page, matcher: Any) -> None:
    """Match every post of the page and append direct mentions (kept: what the collector set itself)."""
    have = {(m.platform_post_id, m.agency_slug, m.match_kind, m.matched_term) for m in page.mentions}
    for post in page.posts:
        if not isinstance(post.text, str):
            continue
        for match in matcher.match(post_match_text(post), community=post.community):
            key = (post.platform_post_id, match.agency_slug, match.kind, match.term)
            if key in have:
                continue
            have.add(key)
            page.mentions.append(
                MentionRecord(post.platform, post.platform_post_id, match.agency_slug, match.term, match.kind,
                              match.start, match.end)
            )


def _safe_error(exc: BaseException, secrets: tuple[str, ...]) -> str:
    text = f"{type(exc).__name__}: {exc}"
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:MAX_ERROR_CHARS]


def run_query(
    engine: Engine,
    collector: Any,
    query: Any,
    window: Window,
    *,
    matcher: Any,
    run_context: dict[str, Any] | None = None,
    dry_run: bool = False,
    on_page: Callable[[RunSummary, store.WriteResult], None] | None = None,
    secrets: tuple[str, ...] = (),
) -> RunSummary:
    """Collect ``query`` over ``window`` page by page into the store; see the module docstring."""
    platform = collector.platform
    summary_base = {"platform": platform, "query_key": query.key,
                    "window_start": window.start.isoformat(), "window_end": window.end.isoformat()}
    if dry_run:
        expected = collector.count(query, window)
        handle = store.open_run(
            engine, platform=platform, query_key=query.key, query_version=query.version, query_text=query.text,
            window_start=window.start, window_end=window.end, source="dry_run", run_context=run_context,
        )
        store.update_run(engine, handle.run_id, status="dry_run", expected_posts=expected,
                         requests=1, finished_at=store.utcnow())
        return RunSummary(handle.run_id, status="dry_run", expected_posts=expected, **summary_base)

    watermark = store.get_watermark(engine, platform, query.key)
    since_id = None
    if watermark and watermark["newest_id"] and watermark["newest_at"] and watermark["newest_at"] >= window.start:
        since_id = watermark["newest_id"]
    handle = store.open_run(
        engine, platform=platform, query_key=query.key, query_version=query.version, query_text=query.text,
        window_start=window.start, window_end=window.end, run_context=run_context,
        notes={"since_id": since_id} if since_id else {},
    )
    if handle.already_done:
        row = store.get_run(engine, handle.run_id)
        log.info("%s %s [%s, %s) was collected already (run %s): nothing read", platform, query.key,
                 window.start.isoformat(), window.end.isoformat(), handle.run_id)
        return RunSummary(handle.run_id, status="success", skipped=True, coverage_gap=bool(row["coverage_gap"]),
                          **summary_base)
    if handle.resumed:
        # the pagination token belongs to the original request: resume with the same since_id
        since_id = handle.notes.get("since_id")
        log.info("resuming run %s of %s after its last committed page", handle.run_id, query.key)

    summary = RunSummary(handle.run_id, status="running", resumed=handle.resumed, **summary_base)
    gap = False
    skipped: list[str] = []
    page_notes: dict[str, Any] = {}
    try:
        for page in collector.pages(query, window, cursor=handle.cursor, since_id=since_id):
            add_mentions(page, matcher)
            result = store.write_page(engine, page, handle.run_id)
            summary.pages += 1
            summary.requests += page.requests
            summary.posts_seen += result.seen
            summary.posts_new += result.new
            summary.posts_updated += result.updated
            summary.rejected += result.rejected
            summary.mentions += result.mentions
            summary.api_errors += page.api_errors
            gap = gap or page.coverage_gap
            skipped.extend(page.skipped)
            page_notes.update(getattr(page, "notes", None) or {})
            if on_page is not None:
                on_page(summary, result)
    except BaseException as exc:
        notes = {**handle.notes, **page_notes, **({"skipped": skipped} if skipped else {})}
        store.record_failure(engine, handle.run_id, error=_safe_error(exc, secrets), notes=notes, coverage_gap=gap)
        summary.status = "failed"
        raise

    notes = {**handle.notes, **page_notes, **({"skipped": skipped} if skipped else {})}
    store.update_run(engine, handle.run_id, status="success", finished_at=store.utcnow(), coverage_gap=gap,
                     notes=notes, last_cursor=None)
    store.advance_watermark(engine, platform, query.key, store.newest_of_run(engine, handle.run_id), window.end)
    summary.status = "success"
    summary.coverage_gap = gap
    summary.notes = notes
    return summary

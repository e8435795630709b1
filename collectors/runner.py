"""Run one compiled query over one window: ledger, resume, matching, the write path, the watermark.

Collectors only fetch and normalize; this module owns the promises.  A window already collected is
not read again (X bills per post read); an interrupted one resumes from the cursor committed with its
last page; the watermark advances only when a window is complete.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine, select
from trustwatch.models import store
from trustwatch.models.tables import CollectionRun

from trustwatch.records import AmbiguityRecord, MentionRecord, Page, PostRecord, Window

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


def agency_account(username: str | None, matcher: Any) -> str | None:
    """The agency whose registry X handle ``username`` is, else None (its posts are agency speech)."""
    if not username:
        return None
    handle = "@" + username.lstrip("@")
    for match in matcher.match(handle):
        if match.kind == "handle" and match.start == 0 and match.end == len(handle):
            return str(match.agency_slug)
    return None


def add_mentions(page: Page, matcher: Any) -> None:
    """Match every post of the page and append direct mentions (kept: what the collector set itself), and
    the shared names it leaves unsettled as ``page.ambiguities`` (one per post and term).

    Reposts and agency speech are marked here, where the matcher is at hand: every match in a repost's text
    comes from the reposted text (``via_repost``), and a post whose author is an agency's own X account gets
    ``author_is_agency``.  Analysts' counts of public mentions leave both out (issue 14).
    """
    agency_authors: dict[str, bool] = {}
    for author in page.authors:
        if author.platform == "x":
            agency_authors[author.platform_user_id] = agency_account(author.username, matcher) is not None
    have = {(m.platform_post_id, m.agency_slug, m.match_kind, m.matched_term) for m in page.mentions}
    reposts = {p.platform_post_id for p in page.posts if p.kind == "repost"}
    for mention in page.mentions:
        if mention.platform_post_id in reposts:
            mention.via_repost = True
    have_ambiguous = {(a.platform_post_id, a.term) for a in page.ambiguities}
    for post in page.posts:
        if post.platform == "x" and agency_authors.get(post.author_platform_id or ""):
            post.author_is_agency = True
        if not isinstance(post.text, str):
            continue
        unsettled: list[Any] = []
        for match in matcher.match(post_match_text(post), community=post.community, unsettled=unsettled):
            key = (post.platform_post_id, match.agency_slug, match.kind, match.term)
            if key in have:
                continue
            have.add(key)
            page.mentions.append(
                MentionRecord(post.platform, post.platform_post_id, match.agency_slug, match.term, match.kind,
                              match.start, match.end, via_repost=post.kind == "repost")
            )
        for left in unsettled:  # a shared name the post does not settle: countable, not attributed
            if (post.platform_post_id, left.term) not in have_ambiguous:
                have_ambiguous.add((post.platform_post_id, left.term))
                page.ambiguities.append(AmbiguityRecord(post.platform, post.platform_post_id, left.term,
                                                        tuple(left.candidates), left.start, left.end))


def proof_conditions(t: Any) -> list[Any]:
    """The ledger rows that promise their whole window is stored: API reads that ended ``success`` without
    a coverage gap (rows whose ``notes`` name a skipped part are left out by :func:`proves_whole` too)."""
    return [t.c.source == "api", t.c.status == "success", t.c.coverage_gap.is_(False),
            t.c.window_start.is_not(None), t.c.window_end.is_not(None)]


def proves_whole(notes: dict[str, Any] | None) -> bool:
    """False for a success that left a part (a subreddit, a page) out: it proves nothing whole."""
    return not (notes or {}).get("skipped")


def covered_until(engine: Engine, platform: str, query: Any, start: dt.datetime) -> dt.datetime | None:
    """How far the ledger proves this query version unbroken from ``start``: the end of the run of
    successful, gap-free windows that reaches back to ``start`` (None when none covers ``start`` itself).

    Only ``success`` rows without a coverage gap or a skipped part count: each of them promises its whole
    window is in the store, so their union is what may be skipped.
    """
    t = CollectionRun.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.c.window_start, t.c.window_end, t.c.notes)
            .where(t.c.platform == platform, t.c.query_key == query.key, t.c.query_version == query.version,
                   *proof_conditions(t), t.c.window_end > start)
            .order_by(t.c.window_start)
        ).all()
    reach: dt.datetime | None = None
    for row in rows:
        if not proves_whole(row.notes):
            continue
        if row.window_start > (reach or start):
            break  # a hole: nothing after it is proven contiguous with ``start``
        if reach is None or row.window_end > reach:
            reach = row.window_end
    return reach


def safe_since_id(engine: Engine, platform: str, query: Any, window: Window) -> str | None:
    """The watermark's ``since_id`` when it is safe for ``window``, else None (read the window whole).

    ``since_id`` skips every post older than the watermark, so it is safe only where the ledger proves
    that everything from the window's start up to the watermark's post is stored already. A backfill, or
    a manual window that starts before an hourly one, would otherwise read nothing and still be marked
    ``success`` (issue 14). Reading whole is harmless: upserts make overlaps idempotent.
    """
    watermark = store.get_watermark(engine, platform, query.key)
    if not watermark or not watermark["newest_id"] or not watermark["newest_at"]:
        return None
    newest_at = watermark["newest_at"]
    if newest_at < window.start:
        return None
    reach = covered_until(engine, platform, query, window.start)
    if reach is None or reach <= newest_at:
        return None
    return str(watermark["newest_id"])


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

    since_id = safe_since_id(engine, platform, query, window)
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

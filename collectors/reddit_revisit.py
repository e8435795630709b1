"""Thread revisits: read attributed Reddit threads again as they age, for late comments and final scores.

Most comments on a Reddit submission arrive hours or days after it, and scores settle over days; the
hourly collection reads a thread once, right after its window.  So every stored submission that
mentions an agency is read again at a few ages (default 6 h, 24 h, 72 h and 7 days after posting),
through the comment-tree endpoint with ``morechildren`` up to a per-thread request budget.  What a
revisit reads goes through the one write path: new comments are stored (``thread`` mentions for the
submission's agencies, direct ones where a comment names an agency itself) and a metric snapshot is
appended for the submission and every comment seen.

Each revisit is its own ledger row (``source = 'revisit'``, ``query_key = 'reddit-revisit-t3_<id>'``,
``query_version = 'age-<hours>h'``, the window from posting to the age) whose ``notes`` say how
complete the thread is: ``thread_state``, ``num_comments`` (Reddit's count), ``comments_seen``,
``comments_added``, ``more_unresolved``.  A thread found deleted, removed, locked or unreadable is
recorded with ``final: true`` and not read again; one that fails three times is given up the same way.
When several ages are due at once (a backfill, a stopped scheduler) only the oldest one is read: the
thread as it stands now covers the younger ones.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine, select, update
from trustwatch.collectors.reddit import RedditApiError
from trustwatch.collectors.runner import add_mentions
from trustwatch.models import store
from trustwatch.models.tables import Agency, Author, CollectionRun, Post, PostMention

log = logging.getLogger(__name__)

#: Ages after posting at which a thread is read again.
DEFAULT_AGES: tuple[dt.timedelta, ...] = (
    dt.timedelta(hours=6),
    dt.timedelta(hours=24),
    dt.timedelta(hours=72),
    dt.timedelta(days=7),
)
#: Requests one revisit may spend on a thread: the tree, then ``morechildren`` calls.
DEFAULT_BUDGET = 10
#: Threads older than the last age by more than this are not revisited (an old backfill is not re-read).
DEFAULT_LOOKBACK = dt.timedelta(days=7)
#: A revisit that failed this many times is recorded as given up, not retried every hour.
MAX_ATTEMPTS = 3
SOURCE = "revisit"
PLATFORM = "reddit"
_CHUNK = 500


def revisit_key(submission_id: str) -> str:
    """The ledger key of a thread's revisits."""
    return f"reddit-revisit-t3_{submission_id}"


def age_label(age: dt.timedelta) -> str:
    """``age-6h``, ``age-168h``: the ledger version of one revisit age."""
    return f"age-{int(age.total_seconds() // 3600)}h"


def parse_ages(text: str) -> tuple[dt.timedelta, ...]:
    """``"6h,24h,3d"`` -> ages, for the command line and the connection extra."""
    ages: list[dt.timedelta] = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        unit, number = part[-1], part[:-1]
        if unit not in ("h", "d") or not number.isdigit() or int(number) <= 0:
            raise ValueError(f"revisit age {part!r} is not like '6h' or '7d'")
        ages.append(dt.timedelta(hours=int(number)) if unit == "h" else dt.timedelta(days=int(number)))
    if not ages:
        raise ValueError("no revisit ages given")
    return tuple(sorted(set(ages)))


@dataclass
class DueThread:
    """A thread whose revisit at ``age`` is due."""

    submission_id: str
    created_at: dt.datetime
    age: dt.timedelta
    slugs: list[str]


@dataclass
class RevisitSummary:
    """What one revisit pass did (also the DAG task's return value)."""

    now: str
    due: int = 0
    revisited: int = 0
    failed: int = 0
    requests: int = 0
    comments_added: int = 0
    final: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    #: Authors found deleted and scrubbed (see :func:`scrub_deleted_authors`).
    authors_scrubbed: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def due_threads(
    engine: Engine,
    now: dt.datetime,
    ages: Sequence[dt.timedelta] = DEFAULT_AGES,
    lookback: dt.timedelta = DEFAULT_LOOKBACK,
) -> list[DueThread]:
    """Attributed threads with a revisit due at ``now``, oldest first.

    A thread is attributed when its submission has a direct mention (the agencies its comments
    inherit).  The due age is the oldest one reached; it is due unless the ledger has it (or an older
    one) done, or the thread was recorded final.
    """
    ages = sorted(ages)
    earliest = now - ages[-1] - lookback
    latest = now - ages[0]
    with engine.connect() as conn:
        rows = conn.execute(
            select(Post.platform_post_id, Post.created_at, Agency.slug)
            .join(PostMention, PostMention.post_id == Post.id)
            .join(Agency, Agency.id == PostMention.agency_id)
            .where(
                Post.platform == PLATFORM,
                Post.kind == "submission",
                Post.created_at >= earliest,
                Post.created_at <= latest,
                PostMention.match_kind != "thread",
            )
        ).all()
        threads: dict[str, tuple[dt.datetime, set[str]]] = {}
        for sid, created, slug in rows:
            threads.setdefault(sid, (_aware(created), set()))[1].add(slug)
        done: dict[str, list[tuple[str, str, dict[str, Any], int]]] = {}
        keys = [revisit_key(sid) for sid in threads]
        t = CollectionRun.__table__
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            for key, version, status, notes, attempts in conn.execute(
                select(t.c.query_key, t.c.query_version, t.c.status, t.c.notes, t.c.attempts).where(
                    t.c.platform == PLATFORM, t.c.source == SOURCE, t.c.query_key.in_(chunk)
                )
            ):
                done.setdefault(key, []).append((version, status, notes or {}, attempts or 0))
    hours = {age_label(age): age for age in ages}
    due: list[DueThread] = []
    for sid, (created, slugs) in threads.items():
        reached = [age for age in ages if created + age <= now]
        if not reached:
            continue
        age = reached[-1]
        history = done.get(revisit_key(sid), [])
        if any(notes.get("final") for _, _, notes, _ in history):
            continue
        if any(status == "success" and hours.get(version, dt.timedelta(0)) >= age for version, status, _, _ in history):
            continue
        due.append(DueThread(sid, created, age, sorted(slugs)))
    due.sort(key=lambda d: d.created_at)
    return due


def run_revisits(
    engine: Engine,
    collector: Any,
    *,
    matcher: Any,
    now: dt.datetime,
    ages: Sequence[dt.timedelta] = DEFAULT_AGES,
    budget: int = DEFAULT_BUDGET,
    lookback: dt.timedelta = DEFAULT_LOOKBACK,
    run_context: dict[str, Any] | None = None,
    secrets: tuple[str, ...] = (),
) -> RevisitSummary:
    """Run every revisit due at ``now`` (see the module docstring); one ledger row per thread and age."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    summary = RevisitSummary(now=now.isoformat())
    due = due_threads(engine, now, ages, lookback)
    summary.due = len(due)
    for thread in due:
        handle = store.open_run(
            engine,
            platform=PLATFORM,
            query_key=revisit_key(thread.submission_id),
            query_version=age_label(thread.age),
            query_text=f"t3_{thread.submission_id} read again {age_label(thread.age)[4:]} after posting",
            window_start=thread.created_at,
            window_end=thread.created_at + thread.age,
            source=SOURCE,
            run_context=run_context,
            notes={"agencies": thread.slugs},
        )
        if handle.already_done:
            continue
        try:
            page = collector.read_thread(thread.submission_id, thread.slugs, budget)
        except RedditApiError as exc:
            attempts = int(store.get_run(engine, handle.run_id).get("attempts") or 1)
            give_up = attempts >= MAX_ATTEMPTS
            error = str(exc)
            for secret in secrets:
                if secret:
                    error = error.replace(secret, "***")
            store.update_run(
                engine, handle.run_id, status="success" if give_up else "failed", error=error[:2000],
                finished_at=store.utcnow(), coverage_gap=True,
                notes={**handle.notes, "final": give_up, "thread_state": f"gave up after {attempts} attempts"
                       if give_up else "error"},
            )
            summary.failed += 1
            if give_up:
                summary.final.append(thread.submission_id)
            log.warning("revisit of t3_%s failed: %s", thread.submission_id, error)
            continue
        add_mentions(page, matcher)
        result = store.write_page(engine, page, handle.run_id)
        state = page.notes.get("thread_state", "open")
        final = state != "open"
        # a "continue this thread" stub counts 0 comments but hides some all the same
        incomplete = bool(page.notes.get("more_unresolved") or page.notes.get("more_stubs_unresolved"))
        notes = {**handle.notes, **page.notes, "comments_added": result.new, "final": final}
        store.update_run(
            engine, handle.run_id, status="success", finished_at=store.utcnow(), coverage_gap=incomplete,
            notes=notes, last_cursor=None,
        )
        summary.revisited += 1
        summary.requests += page.requests
        summary.comments_added += result.new
        if final:
            summary.final.append(thread.submission_id)
        if incomplete:
            summary.incomplete.append(thread.submission_id)
    summary.authors_scrubbed = scrub_deleted_authors(engine)
    return summary


def scrub_deleted_authors(engine: Engine) -> int:
    """Remove the username and profile of Reddit accounts that are gone, as Reddit's Data API terms require.

    An account is gone when one of its posts comes back with author ``[deleted]`` and its text intact
    (Reddit's sign of a deleted account; a post its author deleted has its text gone too), or when all
    of its posts come back ``[deleted]``.  The ``authors`` row stays as a tombstone (same id, so counts
    by author stay explainable) with ``platform_user_id = '[deleted]#<id>'`` and no profile; every post
    of it shows ``[deleted]`` as author, in ``author_platform_id`` and in the raw payload.
    """
    posts = Post.__table__
    authors = Author.__table__
    with engine.begin() as conn:
        candidates = set(conn.execute(
            select(posts.c.author_id).join(authors, authors.c.id == posts.c.author_id).where(
                posts.c.platform == PLATFORM, posts.c.author_platform_id == "[deleted]",
                authors.c.platform_user_id.not_like("[deleted]%"),
            ).distinct()
        ).scalars())
        gone: list[int] = []
        for author_id in sorted(candidates):
            rows = conn.execute(
                select(posts.c.author_platform_id, posts.c.deleted_reason).where(posts.c.author_id == author_id)
            ).all()
            account_deleted = any(r.author_platform_id == "[deleted]" and r.deleted_reason is None for r in rows)
            if account_deleted or all(r.author_platform_id == "[deleted]" for r in rows):
                gone.append(author_id)
        for author_id in gone:
            name = conn.execute(select(authors.c.platform_user_id).where(authors.c.id == author_id)).scalar_one()
            conn.execute(
                update(authors).where(authors.c.id == author_id).values(
                    platform_user_id=f"[deleted]#{author_id}", username=None, display_name=None,
                    followers_count=None, following_count=None, post_count=None, account_created_at=None,
                    verified=None, location=None,
                )
            )
            for post_id, raw in conn.execute(select(posts.c.id, posts.c.raw).where(posts.c.author_id == author_id)):
                conn.execute(
                    update(posts).where(posts.c.id == post_id).values(
                        author_platform_id="[deleted]", raw=_scrub_raw(raw, name)
                    )
                )
            log.info("author row %s: the Reddit account is deleted; username and profile removed", author_id)
    return len(gone)


def _scrub_raw(raw: Any, name: str) -> Any:
    """The raw payload without the author's name, id or flair."""
    if not isinstance(raw, dict):
        return raw
    data = raw.get("data") if isinstance(raw.get("data"), dict) else raw
    cleaned = {key: value for key, value in data.items() if not key.startswith("author")}
    cleaned["author"] = "[deleted]"
    for key, value in list(cleaned.items()):
        if isinstance(value, str) and name in value and key not in ("body", "selftext", "title"):
            cleaned[key] = value.replace(name, "[deleted]")
    return {**raw, "data": cleaned} if data is not raw else cleaned

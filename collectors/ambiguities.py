"""Stored ambiguities follow the registry: after a sync, each ``ambiguous_mentions`` row is matched again.

A row records a shared name ("Clinton PD") that its post did not settle, with the agencies it may mean as
the registry stood then.  When the registry changes (an agency with the same name added in another state,
one removed, a curated alias or default referent added), the analyst expects the stored rows to say what
the registry says now, as a freshly collected post would:

- a name the post now settles (the name became one agency's, or a curated agency became its default
  referent) becomes ``post_mentions`` rows with the term and span as evidence, and the ambiguity row goes;
- a name still unsettled gets the current candidates (``candidates``, ``candidate_count``);
- a name that is no agency's term any more is dropped.

The post's own stored text is matched again (title and body, its subreddit for the community rule), so the
outcome is what ``add_mentions`` would give it today.  Tombstoned posts are left as they are (their text is
gone).  Running it twice changes nothing the second time.  New mentions are scored by the next enrichment,
which refreshes the rollups of their days.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from trustwatch.collectors.runner import post_match_text
from trustwatch.models.partitions import mention_key
from trustwatch.models.store import agency_ids
from trustwatch.models.tables import AmbiguousMention, Post, PostMention

log = logging.getLogger(__name__)

#: Posts matched again per transaction.
CHUNK = 500


@dataclass
class Reconciled:
    """What a pass changed, for the sync summary (``ambiguities_*``)."""

    checked: int = 0  #: ambiguity rows read
    attributed: int = 0  #: rows whose name the registry now settles: moved to post_mentions
    refreshed: int = 0  #: rows whose candidates (or term and span) changed
    dropped: int = 0  #: rows whose name is no agency's term any more

    def summary(self) -> dict[str, int]:
        return {f"ambiguities_{k}": v for k, v in asdict(self).items()}


def _overlaps(start: int | None, end: int | None, term: str, found: Any) -> bool:
    """Whether a match or unsettled name of the new pass is the stored row's name (by span; by term for a
    row without offsets)."""
    if start is None or end is None:
        return bool(found.term == term)
    return bool(found.start < end and start < found.end)


def reconcile_ambiguities(engine: Engine, matcher: Callable[[], Any]) -> Reconciled:
    """Match the posts of every stored ambiguity again with the current registry (see the module docstring).

    ``matcher`` builds the matcher, only called when the store holds ambiguities (a sync without any does
    not pay for building it)."""
    result = Reconciled()
    with engine.connect() as conn:
        post_ids = array("q", conn.execute(
            select(AmbiguousMention.post_id).distinct().order_by(AmbiguousMention.post_id)).scalars())
    if not post_ids:
        return result
    match = matcher().match
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    for i in range(0, len(post_ids), CHUNK):
        chunk = list(post_ids[i:i + CHUNK])
        with engine.begin() as conn:
            posts = {row.id: row for row in conn.execute(
                select(Post.id, Post.platform, Post.kind, Post.title, Post.text, Post.community, Post.created_at)
                .where(Post.id.in_(chunk), Post.deleted_at.is_(None)))}
            rows = conn.execute(
                select(AmbiguousMention.id, AmbiguousMention.post_id, AmbiguousMention.term,
                       AmbiguousMention.candidates, AmbiguousMention.start_offset, AmbiguousMention.end_offset)
                .where(AmbiguousMention.post_id.in_(chunk)).order_by(AmbiguousMention.id)).all()
            by_post: dict[int, list[Any]] = {}
            for row in rows:
                by_post.setdefault(row.post_id, []).append(row)
            gone: list[int] = []
            settled: list[tuple[int, list[dict[str, Any]]]] = []  # (ambiguity row, its new mentions)
            for post_id, stored in by_post.items():
                result.checked += len(stored)
                post = posts.get(post_id)
                if post is None or not isinstance(post.text, str):
                    continue  # tombstoned: left as it was
                unsettled: list[Any] = []
                matches = [m for m in match(post_match_text(post), community=post.community, unsettled=unsettled)
                           if m.kind != "community"]
                terms = {r.term for r in stored}
                for row in stored:
                    left = sorted((u for u in unsettled if _overlaps(row.start_offset, row.end_offset, row.term, u)),
                                  key=lambda u: u.term != row.term)
                    found = [m for m in matches if _overlaps(row.start_offset, row.end_offset, row.term, m)]
                    if left:
                        now = left[0]
                        candidates = sorted(now.candidates)
                        same = (now.term, now.start, now.end) == (row.term, row.start_offset, row.end_offset)
                        if same and candidates == sorted(row.candidates or ()):
                            continue
                        values: dict[str, Any] = {"candidates": candidates, "candidate_count": len(candidates)}
                        if now.term == row.term or now.term not in terms:  # one row per post and name
                            values.update(term=now.term[:200], start_offset=now.start, end_offset=now.end)
                            terms.add(now.term)
                        conn.execute(update(AmbiguousMention).where(AmbiguousMention.id == row.id).values(**values))
                        result.refreshed += 1
                    elif found:
                        settled.append((row.id, [
                            {"slug": m.agency_slug, "post_id": post_id, "matched_term": m.term[:200],
                             "match_kind": m.kind, "start_offset": m.start, "end_offset": m.end,
                             "post_created_at": post.created_at, "platform": post.platform,
                             "via_repost": post.kind == "repost"} for m in found]))
                    else:
                        gone.append(row.id)
                        result.dropped += 1
            ids = agency_ids(conn, {m["slug"] for _, found in settled for m in found})
            new_rows: list[dict[str, Any]] = []
            for row_id, found in settled:
                if any(m["slug"] not in ids for m in found):
                    continue  # an agency the store does not know (not synced): the row stays until it is
                new_rows += [{**{k: v for k, v in m.items() if k != "slug"}, "agency_id": ids[m["slug"]]}
                             for m in found]
                gone.append(row_id)
                result.attributed += 1
            if new_rows:
                conn.execute(insert(PostMention.__table__).on_conflict_do_nothing(
                    index_elements=mention_key(conn.dialect.name)), new_rows)
            if gone:
                conn.execute(delete(AmbiguousMention).where(AmbiguousMention.id.in_(gone)))
    log.info("stored ambiguities matched again: %s", result.summary())
    return result

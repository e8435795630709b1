"""What the store must hold for the Reddit submissions a listing keeps as ambiguities (issue 16 §2)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from trustwatch.models.tables import AmbiguousMention, Post, PostMention


def thread_requests(server: Any, submission_ids: Iterable[str]) -> list[str]:
    """The logged requests that read the comment tree of one of the submissions (the tree itself, or a
    ``morechildren`` of it)."""
    wanted = set(submission_ids)
    hits: list[str] = []
    for request in server.request_log:
        parts = request.path.strip("/").split("/")
        if parts[0] == "comments" and len(parts) > 1 and parts[1] in wanted:
            hits.append(request.path)
        elif request.path.rstrip("/").endswith("morechildren") and any(
            link.removeprefix("t3_") in wanted for link in request.query.get("link_id", [])
        ):
            hits.append(request.path)
    return hits


def assert_stored_as_ambiguities(engine: Any, server: Any, submission_ids: Iterable[str]) -> None:
    """Each submission is stored with one ``ambiguous_mentions`` row whose candidates include the sandbox's,
    no ``post_mentions`` row (attributed to none, so no trend counts it), and its comment tree was never
    requested (no agency to pay for it)."""
    ids = set(submission_ids)
    corpus = server.reddit.corpus
    with engine.connect() as conn:
        rows = conn.execute(
            select(Post.platform_post_id, Post.kind, AmbiguousMention.candidates)
            .join(AmbiguousMention, AmbiguousMention.post_id == Post.id)
            .where(Post.platform == "reddit", Post.platform_post_id.in_(ids))
        ).all()
        attributed = conn.execute(
            select(Post.platform_post_id).join(PostMention, PostMention.post_id == Post.id)
            .where(Post.platform == "reddit", Post.platform_post_id.in_(ids))
        ).scalars().all()
    ambiguous = {pid: set(candidates) for pid, kind, candidates in rows if kind == "submission"}
    assert set(ambiguous) == ids and len(rows) == len(ids), "one ambiguous_mentions row per submission"
    for sid in ids:
        assert set(corpus.submissions[sid].unsettled) <= ambiguous[sid]
    assert attributed == [], "an ambiguity is attributed to no agency"
    assert thread_requests(server, ids) == [], "no comment tree is read for an ambiguity"

"""Issue 19: a post is validated once on its way to the store, and no record reaches it unvalidated."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from trustwatch.collectors.reddit import normalize_reddit_listing
from trustwatch.collectors.x import normalize_x_page
from trustwatch.models import store as tw_store
from trustwatch.models.tables import Post, RejectedPayload

from tests.store_helpers import AGENCIES
from trustwatch import records
from trustwatch.records import Page, PostRecord

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture
def synced(store: Engine) -> Engine:
    tw_store.sync_agencies(store, AGENCIES)
    return store


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the executions of validate_post's body, whoever calls it (its shape check runs once per call)."""
    seen: list[str] = []
    original = records._check_shape

    def counting(post: PostRecord) -> None:
        seen.append(post.platform_post_id)
        original(post)

    monkeypatch.setattr(records, "_check_shape", counting)
    return seen


def _x_payload(n: int) -> dict[str, Any]:
    start = 1_900_000_000_000_000_000
    return {
        "data": [{"id": str(start + i), "text": f"the NYPD answered call {i}", "author_id": str(500 + i % 3),
                  "created_at": (NOW - dt.timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
                  "lang": "en", "public_metrics": {"like_count": i, "retweet_count": 0, "reply_count": 0,
                                                   "quote_count": 0}}
                 for i in range(n)],
        "includes": {"users": [{"id": str(500 + k), "username": f"user{k}", "name": f"User {k}"} for k in range(3)]},
    }


def _reddit_payload(n: int) -> dict[str, Any]:
    return {"kind": "Listing", "data": {"after": None, "children": [
        {"kind": "t3", "data": {"id": f"abc{i}", "name": f"t3_abc{i}", "title": f"NYPD thread {i}", "selftext": "hi",
                                "author": f"someone{i % 2}", "subreddit": "nyc",
                                "created_utc": (NOW - dt.timedelta(minutes=i)).timestamp(), "score": i,
                                "num_comments": 0, "permalink": f"/r/nyc/comments/abc{i}/x/"}}
        for i in range(n)]}}


def test_a_collected_x_post_is_validated_once(synced: Engine, checks: list[str]) -> None:
    page = normalize_x_page(_x_payload(40))
    assert len(page.posts) == 40 and not page.rejects
    result = tw_store.write_page(synced, page)
    assert (result.seen, result.rejected) == (40, 0)
    # before issue 19: 80, the normalizer's check and write_page's again
    assert len(checks) == 40 and len(set(checks)) == 40


def test_a_collected_reddit_post_is_validated_once(synced: Engine, checks: list[str]) -> None:
    page = normalize_reddit_listing(_reddit_payload(25))
    assert len(page.posts) == 25 and not page.rejects
    result = tw_store.write_page(synced, page)
    assert (result.seen, result.rejected) == (25, 0)
    assert len(checks) == 25


def _rejects(engine: Engine) -> list[tuple[str | None, str]]:
    t = RejectedPayload.__table__
    with engine.connect() as conn:
        return [(r.platform_post_id, r.reason) for r in conn.execute(select(t.c.platform_post_id, t.c.reason))]


def _stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Post)).scalar_one()


def test_records_that_skipped_a_normalizer_are_still_checked(synced: Engine) -> None:
    """Built by hand (an API user, an importer), changed in place after its check, or rebuilt with
    dataclasses.replace: each bad record goes to the rejects with its reason, the good ones are stored."""
    good = normalize_x_page(_x_payload(4)).posts
    by_hand = PostRecord("x", "12345", "post", dt.datetime(1999, 1, 1, tzinfo=dt.UTC), text="NYPD")
    changed = good[1]
    changed.created_at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)  # after the normalizer passed it
    swapped = good[2]
    swapped.metrics.likes = 2**40  # a nested field changed in place
    rebuilt = dataclasses.replace(good[3], kind="bogus")
    result = tw_store.write_page(synced, Page(posts=[good[0], by_hand, changed, swapped, rebuilt]))
    assert (result.seen, result.rejected) == (1, 4)
    reasons = dict(_rejects(synced))
    assert "outside" in reasons["12345"] and "outside" in reasons[changed.platform_post_id]
    assert "out of range" in reasons[swapped.platform_post_id]
    assert "unknown post kind" in reasons[rebuilt.platform_post_id]
    assert _stored(synced) == 1


def test_an_unchanged_record_keeps_its_check_and_equal_records_stay_equal() -> None:
    post = normalize_x_page(_x_payload(1)).posts[0]
    assert post.validated_as is not None
    again = dataclasses.replace(post)
    assert again == post and again.validated_as is None  # a copy is checked again, not trusted

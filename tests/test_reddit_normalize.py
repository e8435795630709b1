"""The Reddit normalizer against real recorded API responses (praw's cassettes) and edge cases."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from trustwatch.collectors.reddit import normalize_reddit_listing, normalize_reddit_thing

from tests.conftest import REALCASES as SHARED_REALCASES
from trustwatch.records import RecordError

#: Recorded in tests/data/realcases (see tests/data/README.md).
REALCASES = SHARED_REALCASES / "reddit" / "praw"


def recorded(name: str, uri_part: str) -> object:
    """The JSON body of the recorded response whose request URI contains ``uri_part``."""
    cassette = json.loads((REALCASES / name).read_text())
    for interaction in cassette["interactions"]:
        if uri_part in interaction["request"]["uri"]:
            return json.loads(interaction["response"]["body"]["string"])
    raise AssertionError(f"{name} has no request for {uri_part}")


def kinds(page) -> dict[str, int]:
    counts: dict[str, int] = {}
    for post in page.posts:
        counts[post.kind] = counts.get(post.kind, 0) + 1
    return counts


def test_every_recording_with_listings_is_covered():
    """A new cassette in tests/data/realcases must get a test here; this lists the ones that are covered."""
    covered = {
        "TestComment.test_refresh__deleted_comment.json",
        "TestComment.test_refresh__removed_comment.json",
        "TestListingGenerator.test_no_items.json",
        "TestMore.test_comments.json",
        "TestSubmission.test_comments.json",
        "TestSubreddit.test_search.json",
        "TestSubredditListings.test_new.json",
    }
    assert {path.name for path in REALCASES.glob("*.json")} == covered


def test_new_listing_has_100_submissions_and_the_after_cursor():
    page = normalize_reddit_listing(recorded("TestSubredditListings.test_new.json", "/new"), "r/askreddit/new")
    assert kinds(page) == {"submission": 100}
    assert page.cursor == "t3_48f6io"
    assert not page.rejects and not page.more
    first = page.posts[0]
    assert first.platform == "reddit"
    assert first.platform_post_id == "48fbm9"
    assert first.community == "AskReddit"
    assert first.author_platform_id == "RedHeadQc"
    assert first.title.startswith("[Serious] Parents of Reddit")
    assert first.created_at == dt.datetime.fromtimestamp(1456821458, tz=dt.UTC)
    assert first.url == (
        "https://www.reddit.com/r/AskReddit/comments/48fbm9/serious_parents_of_reddit_whats_the_biggest_lie/"
    )
    assert first.metrics.score == 1 and first.metrics.replies == 1
    assert first.deleted_reason is None
    assert len({post.platform_post_id for post in page.posts}) == 100


def test_search_listing_has_six_submissions_and_no_cursor():
    page = normalize_reddit_listing(recorded("TestSubreddit.test_search.json", "/search"))
    assert kinds(page) == {"submission": 6}
    assert page.cursor is None
    assert all(post.raw["kind"] == "t3" for post in page.posts)


def test_empty_listing_gives_an_empty_page():
    page = normalize_reddit_listing(recorded("TestListingGenerator.test_no_items.json", "/user/spez"))
    assert page.posts == [] and page.rejects == [] and page.cursor is None


def test_small_comment_tree_links_comments_to_submission():
    page = normalize_reddit_listing(recorded("TestSubmission.test_comments.json", "/comments/2gmzqe"))
    assert kinds(page) == {"submission": 1, "comment": 2}
    submission = page.posts[0]
    assert submission.platform_post_id == "2gmzqe"
    for comment in page.posts[1:]:
        assert comment.root_platform_id == "2gmzqe"
        assert comment.conversation_id == "2gmzqe"
        assert comment.raw["data"].get("replies") is None, "nested replies are not copied into raw"


def test_large_tree_with_more_stubs_and_deleted_comments():
    payload = recorded("TestMore.test_comments.json", "/comments/3hahrw")
    page = normalize_reddit_listing(payload)
    assert kinds(page) == {"submission": 1, "comment": 476}
    assert len(page.more) == 18
    assert sum(stub.is_continue_thread for stub in page.more) == 6
    assert sum(len(stub.children) for stub in page.more) == 24
    assert all(stub.link_id == "3hahrw" for stub in page.more)
    deleted = [post for post in page.posts if post.deleted_reason]
    assert len(deleted) == 6
    assert {post.deleted_reason for post in deleted} == {"[deleted]"}
    assert all(post.text == "[deleted]" for post in deleted), "tombstones are stored as such"
    assert sum(post.author_platform_id == "[deleted]" for post in page.posts) == 16
    assert "[deleted]" not in {author.platform_user_id for author in page.authors}
    ids = {post.platform_post_id for post in page.posts}
    assert all(post.parent_platform_id in ids for post in page.posts if post.kind == "comment")
    assert len({author.platform_user_id for author in page.authors}) == len(page.authors)


def test_morechildren_resolves_the_top_level_stub():
    tree = normalize_reddit_listing(recorded("TestMore.test_comments.json", "/comments/3hahrw"))
    top = next(stub for stub in tree.more if stub.parent_id == "t3_3hahrw")
    resolved = normalize_reddit_listing(recorded("TestMore.test_comments.json", "/api/morechildren"))
    assert kinds(resolved) == {"comment": 7}
    resolved_ids = {post.platform_post_id for post in resolved.posts}
    assert resolved_ids <= set(top.children)
    assert not resolved_ids & {post.platform_post_id for post in tree.posts}
    assert {post.parent_platform_id for post in resolved.posts} == {"3hahrw"}


def test_context_tree_of_a_busy_thread():
    page = normalize_reddit_listing(recorded("TestComment.test_refresh__removed_comment.json", "/comments/6wmniq"))
    assert kinds(page) == {"submission": 1, "comment": 200}
    assert len(page.more) == 192
    assert sum(len(stub.children) for stub in page.more) == 2859
    assert not page.rejects


def test_deleted_comment_from_info_is_flagged():
    page = normalize_reddit_listing(recorded("TestComment.test_refresh__deleted_comment.json", "/api/info"))
    assert kinds(page) == {"comment": 1}
    comment = page.posts[0]
    assert comment.platform_post_id == "d7ltvl0"
    assert comment.deleted_reason == "[deleted]"
    assert comment.text == "[deleted]"
    assert comment.author_platform_id == "[deleted]"
    assert page.authors == []
    assert comment.parent_platform_id == "52o2fl" and comment.root_platform_id == "52o2fl"


def test_deleted_comment_context_page_holds_only_the_submission():
    page = normalize_reddit_listing(recorded("TestComment.test_refresh__deleted_comment.json", "/comments/52o2fl"))
    assert kinds(page) == {"submission": 1}


def test_info_comment_that_is_still_visible_is_not_flagged():
    page = normalize_reddit_listing(recorded("TestComment.test_refresh__removed_comment.json", "/api/info"))
    assert kinds(page) == {"comment": 1}
    comment = page.posts[0]
    assert comment.deleted_reason is None and comment.removed_by_category is None
    assert comment.parent_platform_id == "dm9ldf0" and comment.root_platform_id == "6wmniq"


def _comment(**data):
    base = {
        "id": "abc1",
        "name": "t1_abc1",
        "link_id": "t3_zz9",
        "parent_id": "t1_abc0",
        "subreddit": "Chicago",
        "author": "someone",
        "body": "hello",
        "score": 3,
        "created_utc": "1700000000",
    }
    base.update(data)
    return {"kind": "t1", "data": base}


def test_removed_comment_keeps_tombstone_and_category():
    post = normalize_reddit_thing(_comment(body="[removed]", author="[deleted]", removed_by_category="moderator"))
    assert post.text == "[removed]"
    assert post.deleted_reason == "[removed]"
    assert post.removed_by_category == "moderator"
    assert post.author_platform_id == "[deleted]"
    assert post.created_at == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)
    assert post.url == "https://www.reddit.com/r/Chicago/comments/zz9/_/abc1/"


def test_removed_link_submission_is_flagged_from_its_category():
    thing = {
        "kind": "t3",
        "data": {
            "id": "q1",
            "title": "CPD news",
            "selftext": "",
            "created_utc": 1700000000.0,
            "subreddit": "chicago",
            "author": "x",
            "removed_by_category": "deleted",
        },
    }
    post = normalize_reddit_thing(thing)
    assert post.deleted_reason == "[deleted]"
    assert post.removed_by_category == "deleted"


@pytest.mark.parametrize(
    ("thing", "reason"),
    [
        (_comment(created_utc=None), "created_utc is missing"),
        (_comment(link_id=None), "no link_id"),
        ({"kind": "t5", "data": {}}, "unsupported Reddit kind"),
        ({"kind": "t3", "data": {"title": "x", "created_utc": 1}}, "has no id"),
    ],
)
def test_broken_things_are_refused_with_a_reason(thing, reason):
    with pytest.raises(RecordError, match=reason):
        normalize_reddit_thing(thing)


def test_broken_child_becomes_a_reject_and_the_rest_is_kept():
    listing = {
        "kind": "Listing",
        "data": {"after": None, "children": [_comment(), _comment(id="b2", created_utc=None)]},
    }
    page = normalize_reddit_listing(listing, "test")
    assert [post.platform_post_id for post in page.posts] == ["abc1"]
    assert len(page.rejects) == 1
    assert page.rejects[0].reason == "created_utc is missing"
    assert page.rejects[0].source == "test"

"""The X normalizer against every real recorded response, and against hostile input."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from trustwatch.collectors.x import normalize_x_page, snowflake_time

from trustwatch.records import Page

# file -> (posts, authors, rejects, api_errors): pinned, and also recounted from the JSON below
TWARC_EXPECTED = {
    "edited.jsonl": (1, 1, 0, 0),
    "entities_test.jsonl": (586, 524, 0, 11),
    "geo_tweets.jsonl": (2, 2, 0, 0),
    "mentions_tweet.jsonl": (2, 2, 0, 0),
    "noflat.jsonl": (130, 124, 0, 1),
    "quoted_edit.jsonl": (1, 1, 0, 0),
    "streaming_output_with_error.jsonl": (7, 7, 1, 0),
    "two_tweets.jsonl": (2, 2, 0, 0),
    "withheld.jsonl": (250, 122, 0, 5),
}
TWEEPY_EXPECTED = {
    "test_client_get_tweets.yaml": 2,
    "test_client_search_all_tweets.yaml": 10,
    "test_client_search_recent_tweets.yaml": 10,
}


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _count_independently(lines: list[str]) -> tuple[int, int, int, int]:
    """Posts (data plus reposted originals in includes), their authors present in includes, bad lines, errors."""
    posts = authors = bad = errors = 0
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            bad += 1
            continue
        data = doc.get("data", [])
        data = [data] if isinstance(data, dict) else data
        included = {t["id"]: t for t in doc.get("includes", {}).get("tweets", [])}
        users = {u["id"] for u in doc.get("includes", {}).get("users", [])}
        ids = {t["id"] for t in data}
        originals = {
            ref["id"] for t in data for ref in t.get("referenced_tweets", [])
            if ref["type"] == "retweeted" and ref["id"] in included and ref["id"] not in ids
        }
        kept = [*data, *(included[i] for i in originals)]
        posts += len(ids) + len(originals)
        authors += len({t.get("author_id") for t in kept} & users)
        errors += len(doc.get("errors", []))
    return posts, authors, bad, errors


def _normalize_lines(lines: list[str], source: str) -> Page:
    total = Page()
    for line in lines:
        page = normalize_x_page(line, source=source)
        total.extend(page)
    return total


@pytest.mark.parametrize("name", sorted(TWARC_EXPECTED))
def test_every_twarc_recording_normalizes_with_the_expected_counts(realcases: Path, name: str) -> None:
    path = realcases / "x" / "twarc-csv" / name
    lines = _lines(path)
    page = _normalize_lines(lines, name)
    got = (len(page.posts), len(page.authors), len(page.rejects), page.api_errors)
    assert got == _count_independently(lines)
    assert got == TWARC_EXPECTED[name]
    assert all(p.platform == "x" and p.created_at.tzinfo is not None for p in page.posts)


def test_the_recordings_folder_holds_no_file_this_test_does_not_know(realcases: Path) -> None:
    assert {p.name for p in (realcases / "x" / "twarc-csv").iterdir()} == set(TWARC_EXPECTED)
    assert {p.name for p in (realcases / "x" / "tweepy").iterdir()} == set(TWEEPY_EXPECTED)


def _tweepy_body(path: Path) -> bytes:
    doc = yaml.safe_load(path.read_text())
    raw = doc["interactions"][0]["response"]["body"]["string"]
    raw = raw if isinstance(raw, bytes) else base64.b64decode(raw)
    return gzip.decompress(raw)


@pytest.mark.parametrize("name", sorted(TWEEPY_EXPECTED))
def test_tweepy_recordings_without_fields_get_their_time_from_the_id(realcases: Path, name: str) -> None:
    body = _tweepy_body(realcases / "x" / "tweepy" / name)
    page = normalize_x_page(body, source=name)
    doc = json.loads(body)
    assert len(page.posts) == len(doc["data"]) == TWEEPY_EXPECTED[name]
    assert page.rejects == [] and page.authors == []
    assert page.cursor == doc.get("meta", {}).get("next_token")
    for post in page.posts:
        # in whole seconds, as every post's time (validate_post): the partitioned store's key needs one time
        assert post.created_at == snowflake_time(post.platform_post_id).replace(microsecond=0)
        assert dt.datetime(2020, 1, 1, tzinfo=dt.UTC) < post.created_at < dt.datetime(2023, 1, 1, tzinfo=dt.UTC)


def test_search_all_recording_text_carries_the_time_the_id_encodes(realcases: Path) -> None:
    # these tweets' text is the time the bot posted them: the id's time must agree to the second
    page = normalize_x_page(_tweepy_body(realcases / "x" / "tweepy" / "test_client_search_all_tweets.yaml"))
    stamped = [p for p in page.posts if p.text.endswith(" tweepy")]
    assert len(stamped) == 9
    for post in stamped:
        written = dt.datetime.fromisoformat(post.text.split(" tweepy")[0]).replace(tzinfo=dt.UTC)
        assert abs((post.created_at - written).total_seconds()) < 1.0


def test_truncated_stream_line_is_a_reject_and_the_rest_survive(realcases: Path) -> None:
    lines = _lines(realcases / "x" / "twarc-csv" / "streaming_output_with_error.jsonl")
    pages = [normalize_x_page(line, source="stream") for line in lines]
    assert [len(p.rejects) for p in pages] == [0] * (len(lines) - 1) + [1]
    reject = pages[-1].rejects[0]
    assert "not valid JSON" in reject.reason
    assert reject.payload == lines[-1]
    assert reject.source == "stream"


def test_repost_keeps_its_original_from_includes(realcases: Path) -> None:
    line = _lines(realcases / "x" / "twarc-csv" / "two_tweets.jsonl")[0]
    doc = json.loads(line)
    page = normalize_x_page(line)
    by_id = {p.platform_post_id: p for p in page.posts}
    repost = by_id[doc["data"][0]["id"]]
    original_id = doc["data"][0]["referenced_tweets"][0]["id"]
    assert repost.kind == "repost" and repost.root_platform_id == original_id
    assert by_id[original_id].text == doc["includes"]["tweets"][0]["text"]
    assert repost.text.startswith("RT @")


def test_withheld_and_edited_recordings(realcases: Path) -> None:
    lines = _lines(realcases / "x" / "twarc-csv" / "withheld.jsonl")
    page = _normalize_lines(lines, "withheld")
    withheld = {p.platform_post_id: p.withheld for p in page.posts if p.withheld}
    assert withheld["1388424788171841537"] == ["IN"]
    assert withheld["25712847277"] == ["DE", "FR"]
    edited = normalize_x_page(_lines(realcases / "x" / "twarc-csv" / "edited.jsonl")[0]).posts[0]
    assert edited.edit_history_ids is not None and len(edited.edit_history_ids) > 1
    assert edited.platform_post_id in edited.edit_history_ids


def test_posts_whose_author_is_missing_from_includes_are_kept(realcases: Path) -> None:
    lines = _lines(realcases / "x" / "twarc-csv" / "withheld.jsonl")
    missing = 0
    for line in lines:
        page = normalize_x_page(line)
        authors = {a.platform_user_id for a in page.authors}
        missing += sum(1 for p in page.posts if p.author_platform_id not in authors)
    assert missing > 0  # the recording has authors X left out; their posts were not dropped


def _tweet(**extra: object) -> dict:
    base = {"id": "1578520094778740736", "text": "short", "created_at": "2022-10-07T22:58:12.000Z",
            "author_id": "42"}
    base.update(extra)
    base.setdefault("edit_history_tweet_ids", [base["id"]])  # as the API sends it: the post's own id
    return base


def test_a_lookup_says_why_each_missing_tweet_is_unavailable(realcases: Path) -> None:
    """Compliance tombstones with X's own reason: the error objects of the recordings, as a lookup (parameter
    ``ids``) returns them, map to not_found / protected / suspended; errors about included objects do not."""
    recorded = [e for line in _lines(realcases / "x" / "twarc-csv" / "entities_test.jsonl")
                for e in json.loads(line).get("errors", [])]
    not_found = next(e for e in recorded if e["title"] == "Not Found Error" and e["resource_type"] == "tweet")
    refused = next(e for e in recorded if e["title"] == "Authorization Error")
    suspended = next(e for e in recorded if "suspended" in e["detail"])

    def as_lookup(error: dict, tweet_id: str) -> dict:
        return {**error, "parameter": "ids", "value": tweet_id, "resource_id": tweet_id}

    body = {"data": [{"id": "1", "text": "still here", "author_id": "9"}],
            "errors": [as_lookup(not_found, "2"), as_lookup(refused, "3"), as_lookup(suspended, "4"),
                       not_found, refused]}  # the last two are about referenced tweets, not the ids asked
    page = normalize_x_page(body, source="tweets")
    assert page.unavailable == {"2": "not_found", "3": "protected", "4": "suspended"}
    assert page.api_errors == 5
    assert normalize_x_page(body, source="search").unavailable == {}  # only a lookup asks for ids


def test_note_tweet_text_wins_over_the_truncated_text() -> None:
    long = "x" * 300 + " LAPD"
    page = normalize_x_page({"data": [_tweet(text=long[:280] + "…", note_tweet={"text": long})]})
    assert page.posts[0].text == long


def test_kinds_metrics_and_author_fields() -> None:
    payload = {
        "data": [
            _tweet(id="10", referenced_tweets=[{"type": "replied_to", "id": "9"}, {"type": "quoted", "id": "8"}],
                   public_metrics={"like_count": 3, "retweet_count": 2, "reply_count": 1, "quote_count": 0}),
            _tweet(id="11", referenced_tweets=[{"type": "quoted", "id": "8"}]),
        ],
        "includes": {"users": [{"id": "42", "username": "someone", "name": "Some One", "verified": False,
                                "created_at": "2010-01-01T00:00:00.000Z",
                                "public_metrics": {"followers_count": 5, "following_count": 6, "tweet_count": 7}}]},
    }
    page = normalize_x_page(payload)
    reply, quote = page.posts
    assert (reply.kind, reply.parent_platform_id, reply.root_platform_id) == ("reply", "9", "8")
    assert (quote.kind, quote.root_platform_id) == ("quote", "8")
    assert (reply.metrics.likes, reply.metrics.reposts, reply.metrics.replies) == (3, 2, 1)
    assert reply.url == "https://x.com/someone/status/10"
    (author,) = page.authors
    assert (author.username, author.followers_count, author.post_count) == ("someone", 5, 7)


def test_bad_tweets_become_rejects_with_reasons_and_errors_are_counted() -> None:
    payload = {
        "data": [_tweet(id="1"), {"text": "no id"}, _tweet(id="2", created_at="yesterday"), "junk",
                 _tweet(id="3", text=None)],
        "errors": [{"title": "Not Found Error"}, {"title": "Forbidden"}],
    }
    page = normalize_x_page(payload)
    assert [p.platform_post_id for p in page.posts] == ["1"]
    assert page.api_errors == 2
    reasons = [r.reason for r in page.rejects]
    assert len(reasons) == 4
    assert any("no id" in r for r in reasons) and any("ISO-8601" in r for r in reasons)


@pytest.mark.parametrize("payload", [None, 3, [], "", "not json", b"\xff\xfe", {"data": "x"}, {"data": 5}])
def test_non_pages_are_rejected_not_raised(payload: object) -> None:
    page = normalize_x_page(payload)
    assert page.posts == [] and len(page.rejects) == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "text", "created_at", "data", "includes", "users", "tweets", "errors", "meta",
                         "author_id", "referenced_tweets", "type", "note_tweet", "withheld", "public_metrics"]),
        inner, max_size=6),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_normalizer_never_raises_on_any_json(payload: object) -> None:
    page = normalize_x_page(payload)
    assert isinstance(page, Page)
    assert all(p.platform_post_id.isdigit() for p in page.posts)


def test_an_edit_updates_the_stored_post_instead_of_adding_one(realcases: Path, sqlite_engine) -> None:
    from sqlalchemy import select
    from trustwatch.models.store import write_page
    from trustwatch.models.tables import Post

    line = _lines(realcases / "x" / "twarc-csv" / "edited.jsonl")[0]
    payload = json.loads(line)
    versions = payload["data"] + payload.get("includes", {}).get("tweets", [])
    first_id = versions[0]["edit_history_tweet_ids"][0]
    latest = max(versions, key=lambda t: int(t["id"]))
    page = normalize_x_page(line)
    assert [p.platform_post_id for p in page.posts] == [first_id]
    assert page.posts[0].text == latest["text"]

    original = next(t for t in versions if t["id"] == first_id)
    write_page(sqlite_engine, normalize_x_page({"data": [original]}))
    write_page(sqlite_engine, normalize_x_page({"data": [latest]}))
    with sqlite_engine.connect() as conn:
        rows = conn.execute(select(Post.platform_post_id, Post.text)).all()
    assert rows == [(first_id, latest["text"])]

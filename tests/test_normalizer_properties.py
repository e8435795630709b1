"""Property-based: mutated API pages never crash a run; bad records go to rejected_payloads, good ones land.

The pages are the recorded real responses (``tests/data/realcases``); hypothesis mutates some of their records
(missing keys, wrong types, nulls, huge strings, lone surrogates, wrong time formats) or the page itself,
then the page goes through the normalizer and ``write_page``, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from trustwatch.collectors.reddit import normalize_reddit_listing
from trustwatch.collectors.x import normalize_x_page
from trustwatch.models import store as store_module
from trustwatch.models.tables import Post, RejectedPayload

from tests.conftest import REALCASES
from trustwatch.records import MAX_TEXT_CHARS, Page

HUGE = "x" * (MAX_TEXT_CHARS + 10)
BAD_VALUES = st.sampled_from([
    None, 0, -1, 2**70, 3.5, True, "", " ", [], {}, ["a"], {"k": "v"},
    "yesterday", "2021-13-45T99:99:99Z", "2021-04-08 19:07", "1e400", "NaN", 1e300, "∞",
])
#: Lone surrogates (what a broken UTF-16 producer leaves) and NULs, in texts and in ids.
SURROGATES = st.sampled_from(["\ud800", "a\udfffb", "emoji \ud83d cut", "nul \x00 byte"])
#: Any field may be huge or longer than its column (the store rejects texts over MAX_TEXT_CHARS and ids or
#: codes wider than their columns).
OVERSIZED = st.one_of(st.just(HUGE), st.just("9" * 80), SURROGATES)
TEXT_KEYS = {"text", "title", "selftext", "body"}
X_TWEET_KEYS = ["id", "text", "created_at", "author_id", "lang", "public_metrics", "referenced_tweets",
                "conversation_id", "edit_history_tweet_ids", "entities", "withheld", "note_tweet"]
REDDIT_KEYS = ["id", "name", "created_utc", "title", "selftext", "body", "author", "subreddit", "score",
               "permalink", "link_id", "parent_id", "num_comments", "removed_by_category"]


@cache
def x_page() -> dict[str, Any]:
    line = (REALCASES / "x" / "twarc-csv" / "noflat.jsonl").read_text().splitlines()[0]
    page = json.loads(line)
    page.pop("__twarc", None)
    return page


@cache
def reddit_listing() -> dict[str, Any]:
    cassette = json.loads((REALCASES / "reddit" / "praw" / "TestSubredditListings.test_new.json").read_text())
    for interaction in cassette["interactions"]:
        body = interaction["response"]["body"]["string"]
        if body.startswith("{") and '"Listing"' in body[:200]:
            return json.loads(body)
    raise AssertionError("no listing in the recording")


@st.composite
def record_mutations(draw: st.DrawFn, count: int, keys: list[str]) -> dict[int, list[tuple[str, str, Any]]]:
    """{record index: [(operation, key, value)]}: which records to break, and how."""
    chosen = draw(st.sets(st.integers(0, count - 1), min_size=0, max_size=min(count, 8)))
    out: dict[int, list[tuple[str, str, Any]]] = {}
    for index in sorted(chosen):
        ops = draw(st.lists(st.tuples(st.sampled_from(["delete", "set"]), st.sampled_from(keys), BAD_VALUES),
                            min_size=1, max_size=3))
        if draw(st.booleans()):
            ops.append(("set", draw(st.sampled_from(keys)), draw(OVERSIZED)))
        out[index] = ops
    return out


def mutate(record: dict[str, Any], ops: list[tuple[str, str, Any]]) -> None:
    for op, key, value in ops:
        if op == "delete":
            record.pop(key, None)
        else:
            record[key] = copy.deepcopy(value)


PAGE_MUTATIONS = st.sampled_from([None, "data-not-list", "includes-wrong", "meta-null", "truncated", "empty"])


def break_page(payload: dict[str, Any], how: str | None, listing: str) -> Any:
    if how is None:
        return payload
    if how == "truncated":
        text = json.dumps(payload)
        return text[: len(text) // 2]
    if how == "empty":
        return {}
    if listing == "x":
        if how == "data-not-list":
            payload["data"] = {"id": None}
        elif how == "includes-wrong":
            payload["includes"] = ["users"]
        else:
            payload["meta"] = None
    else:
        if how == "data-not-list":
            payload["data"]["children"] = "nope"
        elif how == "includes-wrong":
            payload["data"] = None
        else:
            payload["kind"] = None
    return payload


def check_page(engine: Any, page: Page, must_land: set[str]) -> None:
    """The page writes without an error; its valid posts are stored, its rejects kept."""
    with engine.connect() as conn:
        rejects_before = conn.execute(select(func.count()).select_from(RejectedPayload)).scalar()
    result = store_module.write_page(engine, page)
    with engine.connect() as conn:
        rejects_after = conn.execute(select(func.count()).select_from(RejectedPayload)).scalar()
        ids = {p.platform_post_id for p in page.posts}
        stored = set(conn.execute(select(Post.platform_post_id).where(Post.platform_post_id.in_(ids))).scalars())
    assert rejects_after - rejects_before == result.rejected >= len(page.rejects)
    assert result.seen + result.rejected - len(page.rejects) == len(page.posts)
    assert must_land <= stored  # untouched records always land
    assert all(r.reason for r in page.rejects)


def run_x(engine: Any, mutations: dict[int, list[tuple[str, str, Any]]], how: str | None) -> None:
    payload = copy.deepcopy(x_page())
    tweets = payload["data"]
    for index, ops in mutations.items():
        mutate(tweets[index], ops)
    intact = {t["id"] for i, t in enumerate(tweets) if i not in mutations}
    page = normalize_x_page(break_page(payload, how, "x"), source="property")
    if how is None:
        assert intact <= {p.platform_post_id for p in page.posts}
        # a broken tweet that still has its own id is either stored (still valid) or rejected under that id
        landed = {p.platform_post_id for p in page.posts}
        rejected = {r.platform_post_id for r in page.rejects}
        originals = {t["id"] for t in x_page()["data"]}
        for i in mutations:
            tweet_id = tweets[i].get("id")
            if isinstance(tweet_id, str) and tweet_id in originals:
                assert tweet_id in landed | rejected
    check_page(engine, page, intact if how is None else set())


def run_reddit(engine: Any, mutations: dict[int, list[tuple[str, str, Any]]], how: str | None) -> None:
    payload = copy.deepcopy(reddit_listing())
    children = payload["data"]["children"]
    for index, ops in mutations.items():
        mutate(children[index]["data"], ops)
    intact = {c["data"]["id"] for i, c in enumerate(children) if i not in mutations}
    page = normalize_reddit_listing(break_page(payload, how, "reddit"), source="property")
    if how is None:
        assert intact <= {p.platform_post_id for p in page.posts}
        assert len(intact) <= len(page.posts) + len(page.rejects) <= len(children)
    check_page(engine, page, intact if how is None else set())


PROPERTY_SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                                    HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(mutations=record_mutations(100, X_TWEET_KEYS), how=PAGE_MUTATIONS)
def test_mutated_x_pages_never_crash_and_keep_the_good_tweets(sqlite_engine: Any, mutations: Any, how: Any) -> None:
    run_x(sqlite_engine, mutations, how)


@PROPERTY_SETTINGS
@given(mutations=record_mutations(100, REDDIT_KEYS), how=PAGE_MUTATIONS)
def test_mutated_reddit_listings_never_crash_and_keep_the_good_things(sqlite_engine: Any, mutations: Any,
                                                                     how: Any) -> None:
    run_reddit(sqlite_engine, mutations, how)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(x=record_mutations(100, X_TWEET_KEYS), reddit=record_mutations(100, REDDIT_KEYS), how=PAGE_MUTATIONS)
def test_mutated_pages_on_postgresql(pg_engine: Any, x: Any, reddit: Any, how: Any) -> None:
    run_x(pg_engine, x, how)
    run_reddit(pg_engine, reddit, how)


@pytest.mark.parametrize("value", ["\ud800 lone", "nul \x00 byte", HUGE])
def test_each_hostile_text_is_stored_cleaned_or_rejected_with_a_reason(store: Any, value: str) -> None:
    payload = copy.deepcopy(x_page())
    payload["data"] = payload["data"][:3]
    payload["data"][0]["text"] = value
    page = normalize_x_page(payload)
    result = store_module.write_page(store, page)
    with store.connect() as conn:
        texts = dict(conn.execute(select(Post.platform_post_id, Post.text)).all())
        reasons = list(conn.execute(select(RejectedPayload.reason)).scalars())
    first = payload["data"][0]["id"]
    if value is HUGE:
        assert first not in texts and result.rejected == 1 and "over the limit" in reasons[0]
    else:
        assert first in texts and "\x00" not in texts[first] and "\ud800" not in texts[first]
    assert {t["id"] for t in payload["data"][1:]} <= set(texts)


def test_overlong_ids_and_codes_are_rejected_not_crashing(pg_engine: Any) -> None:
    payload = copy.deepcopy(x_page())
    payload["data"] = payload["data"][:3]
    payload["data"][0]["lang"] = "l" * 40
    payload["data"][1]["conversation_id"] = "9" * 80
    page = normalize_x_page(payload)
    listing = copy.deepcopy(reddit_listing())
    listing["data"]["children"] = listing["data"]["children"][:2]
    listing["data"]["children"][0]["data"]["author"] = "a" * 80
    listing["data"]["children"][1]["data"]["id"] = "\ud800"  # also crashes SQLite: ids are not checked
    listing["data"]["children"][1]["data"]["name"] = "t3_\x00"
    page.extend(normalize_reddit_listing(listing))
    store_module.write_page(pg_engine, page)  # the bad records are kept aside; the page is not lost
    with pg_engine.connect() as conn:
        stored = set(conn.execute(select(Post.platform_post_id)).scalars())
        reasons = conn.execute(select(RejectedPayload.reason)).scalars().all()
    assert stored == {payload["data"][2]["id"]}
    assert any(r.startswith("lang is 40 characters") for r in reasons)
    assert any(r.startswith("conversation_id is 80 characters") for r in reasons)
    assert any(r.startswith("author_platform_id is 80 characters") for r in reasons)
    assert any("lone surrogate" in r or "NUL" in r for r in reasons)

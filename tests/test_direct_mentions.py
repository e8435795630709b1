"""Issue 14, points 2 and 7: reposts and agencies' own posts are not people's direct mentions, and
``agency_mentions`` counts posts, not matched terms.

The page is what X returns for the cases the issue names: a citizen writing "@NYPDnews #NYPD" (two terms,
one post), an agency's own post, a repost of it ("RT @NYPDnews: ...", with the original in
``includes.tweets``), and a quote.  It goes through the real normalizer, matcher and write path.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import Engine, text
from trustwatch.analysis import trends
from trustwatch.collectors.runner import add_mentions
from trustwatch.collectors.x import NO_REPOSTS, normalize_x_page, query_suffix
from trustwatch.models.store import sync_agencies, write_page

from tests.sandbox_fixtures import _x_sandbox_server, x_sandbox  # noqa: F401

DAY = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
USERS = [
    {"id": "100", "username": "NYPDnews", "name": "NYPD NEWS"},
    {"id": "200", "username": "citizen_a", "name": "A"},
    {"id": "300", "username": "citizen_b", "name": "B"},
]


def _tweet(tweet_id: str, author: str, body: str, minute: int, refs: list[dict[str, str]] | None = None,
           retweets: int = 0) -> dict[str, Any]:
    tweet: dict[str, Any] = {
        "id": tweet_id, "author_id": author, "text": body, "lang": "en",
        "created_at": (DAY + dt.timedelta(hours=12, minutes=minute)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "edit_history_tweet_ids": [tweet_id],
        "public_metrics": {"like_count": 1, "retweet_count": retweets, "reply_count": 0, "quote_count": 0},
    }
    if refs:
        tweet["referenced_tweets"] = refs
    return tweet


ORIGINAL = _tweet("1001", "100", "Join us at the 5th precinct community meeting tonight #NYPD", 0, retweets=1)
RESPONSE = {
    "data": [
        _tweet("1002", "200", "@NYPDnews #NYPD thank you for the quick response on my street", 5),
        _tweet("1003", "300", "RT @NYPDnews: Join us at the 5th precinct community meeting tonight #NYPD", 6,
               [{"type": "retweeted", "id": "1001"}]),
        _tweet("1004", "300", "This is how @NYPDnews should talk to people", 7, [{"type": "quoted", "id": "1001"}]),
    ],
    "includes": {"users": USERS, "tweets": [ORIGINAL]},
    "meta": {"result_count": 3},
}


@pytest.fixture
def loaded(store: Engine, registry: Any, matcher: Any) -> Engine:
    sync_agencies(store, registry.entries)
    page = normalize_x_page(json.loads(json.dumps(RESPONSE)), source="search/recent")
    add_mentions(page, matcher)
    write_page(store, page)
    return store


def _rows(engine: Engine, sql: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(sql)).mappings()]


def test_reposts_and_agency_posts_are_marked_in_the_store(loaded: Engine) -> None:
    posts = {r["platform_post_id"]: r for r in _rows(
        loaded, "SELECT platform_post_id, kind, root_platform_id, author_is_agency FROM posts")}
    assert posts["1003"]["kind"] == "repost" and posts["1003"]["root_platform_id"] == "1001"
    assert bool(posts["1001"]["author_is_agency"]) is True  # the original from includes.tweets: NYPD's own
    assert {pid for pid, r in posts.items() if r["author_is_agency"]} == {"1001"}
    mentions = _rows(loaded, "SELECT p.platform_post_id, m.via_repost FROM post_mentions m "
                             "JOIN posts p ON p.id = m.post_id")
    assert {r["platform_post_id"] for r in mentions if r["via_repost"]} == {"1003"}
    assert all(not r["via_repost"] for r in mentions if r["platform_post_id"] != "1003")


def test_agency_mentions_is_one_row_per_post_and_agency(loaded: Engine) -> None:
    rows = _rows(loaded, "SELECT platform_post_id, matched_terms, match_kinds, public_mention, author_is_agency "
                         "FROM agency_mentions WHERE agency = 'nypd' ORDER BY platform_post_id")
    assert [r["platform_post_id"] for r in rows] == ["1001", "1002", "1003", "1004"]
    both = rows[1]
    assert both["matched_terms"].split(",") == sorted(both["matched_terms"].split(","))
    assert {t.lower() for t in both["matched_terms"].split(",")} == {"@nypdnews", "#nypd"}
    assert set(both["match_kinds"].split(",")) == {"handle", "hashtag"}
    assert [r["public_mention"] for r in rows] == [0, 1, 0, 1]
    (count,) = _rows(loaded, "SELECT count(*) AS n FROM agency_mentions WHERE agency = 'nypd' "
                             "AND public_mention = 1")
    assert count["n"] == 2  # the README's example: the citizen's post and the quote, each once


def test_trend_views_count_public_mentions_and_keep_reposts_and_agency_posts_apart(loaded: Engine) -> None:
    trends.enrich(loaded)
    (day,) = _rows(loaded, "SELECT mentions, reposts, agency_posts, unique_authors, scored "
                           "FROM agency_daily_trend WHERE agency = 'nypd' AND platform = 'x'")
    assert day == {"mentions": 2, "reposts": 1, "agency_posts": 1, "unique_authors": 2, "scored": 2}
    (week,) = _rows(loaded, "SELECT mentions, reposts, agency_posts FROM agency_weekly_trend "
                            "WHERE agency = 'nypd' AND platform = 'x'")
    assert week == {"mentions": 2, "reposts": 1, "agency_posts": 1}


def test_alert_top_posts_are_public_posts_only(store: Engine, registry: Any, matcher: Any) -> None:
    """A spike day whose most engaged posts are the agency's own and a repost: neither is shown."""
    sync_agencies(store, registry.entries)
    data, users = [], list(USERS)
    n = 2000
    for back in range(1, 21):  # a quiet baseline: one public post a day
        data.append(_tweet(str(n), "200", "#NYPD quiet day", -back * 24 * 60))
        n += 1
    for i in range(12):  # the spike: 12 public posts
        data.append(_tweet(str(n), f"9{i}", f"@NYPDnews spike post {i}", 10 + i))
        users.append({"id": f"9{i}", "username": f"person{i}", "name": "P"})
        n += 1
    agency = _tweet(str(n), "100", "#NYPD statement from the department", 30)
    agency["public_metrics"]["like_count"] = 10_000
    repost = _tweet(str(n + 1), "300", "RT @NYPDnews: #NYPD statement", 31, [{"type": "retweeted", "id": str(n)}])
    repost["public_metrics"]["like_count"] = 9_000
    data += [agency, repost]
    page = normalize_x_page({"data": data, "includes": {"users": users}})
    add_mentions(page, matcher)
    write_page(store, page)
    trends.enrich(store)
    alerts = _rows(store, "SELECT day, mentions, reposts, agency_posts, top_posts FROM agency_alerts "
                          "WHERE agency = 'nypd'")
    assert len(alerts) == 1 and alerts[0]["mentions"] == 12
    assert alerts[0]["reposts"] == 1 and alerts[0]["agency_posts"] == 1
    top = alerts[0]["top_posts"]
    top = json.loads(top) if isinstance(top, str) else top
    assert top and all("spike post" in p["text"] for p in top)


def test_include_reposts_extra_controls_the_repost_filter() -> None:
    assert query_suffix({}) == NO_REPOSTS == "-is:retweet"
    assert query_suffix({"include_reposts": "false", "query_suffix": "lang:en"}) == "lang:en -is:retweet"
    assert query_suffix({"include_reposts": True, "query_suffix": "lang:en"}) == "lang:en"
    assert query_suffix({"query_suffix": "-is:retweet"}) == "-is:retweet"  # not twice


def test_compiled_queries_leave_reposts_out_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from trustwatch import tasks

    monkeypatch.setenv("AIRFLOW_CONN_X_API", '{"conn_type": "http", "password": "t", '
                                             '"extra": {"max_query_length": 512}}')
    queries = tasks.compile_queries("x")
    assert queries and all(q["text"].endswith(" -is:retweet") and len(q["text"]) <= 512 for q in queries)
    assert all(q["text"].startswith("(") for q in queries if " OR " in q["text"])  # the suffix binds to all
    monkeypatch.setenv("AIRFLOW_CONN_X_API", '{"conn_type": "http", "password": "t", '
                                             '"extra": {"max_query_length": 512, "include_reposts": true}}')
    assert all("is:retweet" not in q["text"] for q in tasks.compile_queries("x"))


def test_the_repost_filter_reads_no_reposts_and_loses_nothing_else(x_sandbox: Any) -> None:  # noqa: F811
    """Against the sandbox (which evaluates ``is:retweet`` like X): every read the filter saves is a repost."""
    from trustwatch.collectors.x import XCollector, XSettings

    from tests.sandbox_fixtures import X_TOKEN
    from trustwatch.records import Window

    stop = x_sandbox.config.stop
    window = Window(stop - dt.timedelta(days=3), stop - dt.timedelta(days=1))
    col = XCollector(XSettings(bearer_token=X_TOKEN, base_url=x_sandbox.url, timeout=5.0, max_query_length=4096),
                     sleep=lambda _s: None)

    def read(text_: str) -> tuple[set[str], set[str]]:
        x_sandbox.clear_log()
        pages = list(col.pages(text_, window))
        served = {i for r in x_sandbox.requests_to("/2/") for i in r.served_ids}
        return served, {p.platform_post_id for page in pages for p in page.posts if p.kind == "repost"}

    served_all, reposts = read("police OR sheriff OR NYPD OR LAPD")
    served_filtered, none = read(f"(police OR sheriff OR NYPD OR LAPD) {NO_REPOSTS}")
    assert reposts and none == set()
    assert served_filtered == served_all - reposts and len(served_filtered) < len(served_all)

"""The X collector with the real tweepy client over loopback HTTP against the sandbox, then into the store."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
from typing import Any
from unittest import mock

import pytest
from sqlalchemy import func, select
from trustwatch.collectors import x as x_module
from trustwatch.collectors.agencies import compile_x_queries
from trustwatch.collectors.runner import run_query
from trustwatch.collectors.x import XApiError, XCollector, XSettings
from trustwatch.models.tables import Post
from trustwatch.sandbox.server import SandboxServer
from trustwatch.sandbox.x_corpus import snowflake_time

from tests.sandbox_fixtures import X_TOKEN, _x_sandbox_server, x_sandbox  # noqa: F401
from trustwatch.records import Page, Window


class Sleeper:
    """Records the waits instead of sleeping them (the sandbox answers at once anyway)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def collector(server: SandboxServer, sleeper: Sleeper | None = None, sleep: Any = None,
              **overrides: Any) -> XCollector:
    options: dict[str, Any] = {"bearer_token": X_TOKEN, "base_url": server.url, "timeout": 5.0,
                               "max_query_length": 4096}
    options.update(overrides)
    return XCollector(XSettings(**options), sleep=sleep or sleeper or Sleeper())


@pytest.fixture(scope="module")
def x_queries(registry: Any) -> list[Any]:
    return compile_x_queries(registry, 4096)  # a few big queries: several pages each


def window_of(server: SandboxServer, days_back: float, days: float = 1.0) -> Window:
    end = server.config.stop - dt.timedelta(days=days_back)
    return Window(end - dt.timedelta(days=days), end)


def busiest(server: SandboxServer, queries: list[Any], window: Window) -> Any:
    """The query with the most matches in the window (several pages of 100)."""
    return max(queries, key=lambda q: len(server.x.matching_ids(q.text, window.start, window.end)))


def collect(col: XCollector, query: Any, window: Window, **kw: Any) -> tuple[list[Page], set[str]]:
    pages = list(col.pages(query, window, **kw))
    return pages, {p.platform_post_id for page in pages for p in page.posts}


# --- the collector on its own -------------------------------------------------------------------------


def test_pages_hold_exactly_the_sandbox_matches_without_duplicates(x_sandbox: SandboxServer,  # noqa: F811
                                                                   x_queries: list[Any]) -> None:
    window = window_of(x_sandbox, 1, days=3)
    query = busiest(x_sandbox, x_queries, window)
    pages, ids = collect(collector(x_sandbox), query, window)
    assert len(pages) >= 2
    assert ids == x_sandbox.x.expected_stored_ids([query.text], window.start, window.end)
    all_ids = [p.platform_post_id for page in pages for p in page.posts]
    assert len(all_ids) == len(set(all_ids))
    assert [p.cursor is None for p in pages] == [False] * (len(pages) - 1) + [True]
    assert all(page.requests == 1 for page in pages)
    first = x_sandbox.requests_to("/2/tweets/search/recent")[0].query
    assert first["max_results"] == ["100"]
    assert first["start_time"] == [window.start.strftime("%Y-%m-%dT%H:%M:%SZ")]
    assert first["expansions"] == ["author_id,referenced_tweets.id,referenced_tweets.id.author_id"]
    assert "note_tweet" in first["tweet.fields"][0] and "location" in first["user.fields"][0]


def test_resuming_from_a_cursor_reads_only_the_rest(x_sandbox: SandboxServer, x_queries: list[Any]) -> None:  # noqa: F811
    window = window_of(x_sandbox, 1, days=3)
    query = busiest(x_sandbox, x_queries, window)
    col = collector(x_sandbox)
    first = next(iter(col.pages(query, window)))
    x_sandbox.clear_log()
    _, rest = collect(col, query, window, cursor=first.cursor)
    seen_first = {p.platform_post_id for p in first.posts}
    assert rest | seen_first == x_sandbox.x.expected_stored_ids([query.text], window.start, window.end)
    served = [i for r in x_sandbox.requests_to("/2/") for i in r.served_ids]
    assert not set(served) & set(x_sandbox.x.matching_ids(query.text, window.start, window.end)[:100])


def test_since_id_inside_the_window_reads_only_newer_posts(x_sandbox: SandboxServer,  # noqa: F811
                                                           x_queries: list[Any]) -> None:
    window = window_of(x_sandbox, 1, days=3)
    query = busiest(x_sandbox, x_queries, window)
    matches = x_sandbox.x.matching_ids(query.text, window.start, window.end)
    since = matches[20]
    _, ids = collect(collector(x_sandbox), query, window, since_id=since)
    served = [i for r in x_sandbox.requests_to("/2/") for i in r.served_ids]
    assert served == matches[:20]
    assert ids >= set(matches[:20])
    sent = x_sandbox.requests_to("/2/")[0].query
    assert sent["since_id"] == [since] and "start_time" not in sent
    assert snowflake_time(sent["until_id"][0]) == window.end

    x_sandbox.clear_log()
    newer_than_window = x_sandbox.x.corpus.order[0]
    _, ids = collect(collector(x_sandbox), query, window_of(x_sandbox, 2), since_id=newer_than_window)
    assert ids == set() and x_sandbox.requests_to("/2/") == []


def test_429_mid_pagination_waits_for_the_reset_and_loses_nothing(x_sandbox: SandboxServer,  # noqa: F811
                                                                  x_queries: list[Any]) -> None:
    window = window_of(x_sandbox, 1, days=3)
    query = busiest(x_sandbox, x_queries, window)
    reset = int(time.time()) + 30
    x_sandbox.faults.add("/2/tweets/search", "status", status=429, after=1,
                         headers={"x-rate-limit-reset": str(reset), "x-rate-limit-remaining": "0"},
                         body=b'{"title":"Too Many Requests","detail":"Too Many Requests","status":429}')
    sleeper = Sleeper()
    pages, ids = collect(collector(x_sandbox, sleeper), query, window)
    assert ids == x_sandbox.x.expected_stored_ids([query.text], window.start, window.end)
    assert [p.rate_limit_waits for p in pages][:2] == [0, 1]
    assert pages[1].requests == 2
    assert len(sleeper.waits) == 1 and 25 <= sleeper.waits[0] <= 32


def test_429_longer_than_the_maximum_wait_fails_clearly_after_keeping_pages(x_sandbox: SandboxServer,  # noqa: F811
                                                                           x_queries: list[Any]) -> None:
    window = window_of(x_sandbox, 1, days=3)
    query = busiest(x_sandbox, x_queries, window)
    x_sandbox.faults.add("/2/tweets/search", "status", status=429, after=1,
                         headers={"x-rate-limit-reset": str(int(time.time()) + 3600)})
    kept: list[Page] = []
    with pytest.raises(XApiError, match="maximum wait of 60s") as info:
        for page in collector(x_sandbox, max_rate_limit_wait=60).pages(query, window):
            kept.append(page)
    assert len(kept) == 1 and kept[0].cursor
    assert "again later to resume" in str(info.value)


def test_5xx_burst_reset_and_truncated_json_are_retried_with_backoff(x_sandbox: SandboxServer,  # noqa: F811
                                                                     x_queries: list[Any]) -> None:
    window = window_of(x_sandbox, 1, days=3)
    query = busiest(x_sandbox, x_queries, window)
    x_sandbox.faults.add("/2/tweets/search", "status", status=503, times=3, after=1)
    x_sandbox.faults.add("/2/tweets/search", "reset", after=5)
    x_sandbox.faults.add("/2/tweets/search", "truncate", after=7)
    sleeper = Sleeper()
    pages, ids = collect(collector(x_sandbox, sleeper), query, window)
    assert ids == x_sandbox.x.expected_stored_ids([query.text], window.start, window.end)
    assert x_sandbox.faults.pending == 0
    assert sleeper.waits[:3] == [1.0, 2.0, 4.0]  # bounded exponential backoff
    assert sum(p.requests for p in pages) == len(pages) + 5


def test_persistent_5xx_gives_up_after_the_configured_attempts(x_sandbox: SandboxServer,  # noqa: F811
                                                               x_queries: list[Any]) -> None:
    x_sandbox.faults.add("/2/tweets/search", "status", status=502, times=100)
    with pytest.raises(XApiError, match="HTTP 502 after 3 attempts"):
        list(collector(x_sandbox, max_attempts=3).pages(x_queries[0], window_of(x_sandbox, 1)))
    assert len(x_sandbox.requests_to("/2/")) == 3


def test_a_slow_answer_past_the_timeout_is_retried(x_sandbox: SandboxServer, x_queries: list[Any]) -> None:  # noqa: F811
    x_sandbox.faults.add("/2/tweets/search", "slow", seconds=1.5)
    _, ids = collect(collector(x_sandbox, timeout=0.5), x_queries[0], window_of(x_sandbox, 1))
    w = window_of(x_sandbox, 1)
    assert ids == x_sandbox.x.expected_stored_ids([x_queries[0].text], w.start, w.end)


def test_400_shows_the_query(x_sandbox: SandboxServer) -> None:  # noqa: F811
    with pytest.raises(XApiError) as info:
        list(collector(x_sandbox).pages("LAPD place:denver", window_of(x_sandbox, 1)))
    message = str(info.value)
    assert "400" in message and "invalid operator 'place'" in message and "Query: LAPD place:denver" in message


def test_401_and_403_fail_at_once_without_the_token(x_sandbox: SandboxServer, x_queries: list[Any],  # noqa: F811
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-token-a1b2c3d4"
    with pytest.raises(XApiError, match="401") as info:
        list(collector(x_sandbox, bearer_token=wrong).pages(x_queries[0], window_of(x_sandbox, 1)))
    assert "bearer token" in str(info.value) and wrong not in str(info.value)
    assert len(x_sandbox.requests_to("/2/")) == 1

    x_sandbox.faults.add("/2/tweets/search/all", "status", status=403, body=(
        b'{"title":"Client Forbidden","detail":"This endpoint needs a different access level.",'
        b'"reason":"client-not-enrolled","type":"https://api.twitter.com/2/problems/client-forbidden"}'))
    with pytest.raises(XApiError, match="403") as info:
        list(collector(x_sandbox, endpoint="all").pages(x_queries[0], window_of(x_sandbox, 1)))
    assert "access tier" in str(info.value) and X_TOKEN not in str(info.value)
    assert len(x_sandbox.requests_to("/2/")) == 2

    list(collector(x_sandbox).pages(x_queries[0], window_of(x_sandbox, 1)))
    assert "Authorization" in caplog.text or "Bearer" in caplog.text  # tweepy did log its headers...
    assert X_TOKEN not in caplog.text and wrong not in caplog.text  # ...with the token blanked out


def test_search_all_is_paced_to_one_request_per_second(x_sandbox: SandboxServer,  # noqa: F811
                                                       x_queries: list[Any]) -> None:
    window = window_of(x_sandbox, 0, days=7)
    query = busiest(x_sandbox, x_queries, window)
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # really sleeps: pacing is about wall-clock time
        waits.append(seconds)
        time.sleep(seconds)

    began = time.monotonic()
    pages, ids = collect(collector(x_sandbox, endpoint="all", sleep=sleep), query, window)
    elapsed = time.monotonic() - began
    assert len(pages) >= 2
    assert ids == x_sandbox.x.expected_stored_ids([query.text], window.start, window.end)
    logged = x_sandbox.requests_to("/2/tweets/search/all")
    assert len(logged) == len(pages) and logged[0].query["max_results"] == ["500"]
    arrivals = [r.received_at for r in logged]
    assert all(later - earlier >= 0.99 for earlier, later in itertools.pairwise(arrivals))
    assert all(0 < w <= 1.0 for w in waits) and elapsed >= len(pages) - 1


def test_full_archive_pacing_counts_from_the_answer_so_a_delayed_request_cannot_crowd_the_next() -> None:
    """X counts one request per second by arrival: a request that took 0.4 s to arrive must not let the next
    one arrive 0.6 s after it. A fake transport records arrivals on a clock the test moves."""
    clock = [0.0]
    arrivals: list[float] = []

    class Answer:
        def json(self) -> dict[str, Any]:
            return {"data": []}

    def call(delay: float) -> Any:
        clock[0] += delay  # time on the way to X
        arrivals.append(clock[0])
        return Answer()

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    col = XCollector(XSettings(bearer_token=X_TOKEN, endpoint="all"), sleep=sleep)
    stats = x_module._Stats()
    with mock.patch.object(x_module.time, "monotonic", lambda: clock[0]):
        col._attempt(lambda: call(0.4), stats)
        col._attempt(lambda: call(0.0), stats)
    assert round(arrivals[1] - arrivals[0], 9) >= 1.0


def test_count_reports_the_expected_posts(x_sandbox: SandboxServer, x_queries: list[Any]) -> None:  # noqa: F811
    window = window_of(x_sandbox, 0, days=2)
    for endpoint in ("recent", "all"):
        got = collector(x_sandbox, endpoint=endpoint).count(x_queries[2], window)
        assert got == len(x_sandbox.x.matching_ids(x_queries[2].text, window.start, window.end))
    assert {r.path for r in x_sandbox.requests_to("/2/")} == {"/2/tweets/counts/recent", "/2/tweets/counts/all"}


def test_lookup_returns_live_posts_and_leaves_out_deleted_ones(x_sandbox: SandboxServer) -> None:  # noqa: F811
    corpus = x_sandbox.x.corpus
    deleted = [t.id for t in corpus.tweets.values() if t.deleted][:3]
    alive = [t.id for t in corpus.searchable() if t.kind == "post" and not corpus.users[t.author_id].hidden][:5]
    page = collector(x_sandbox).lookup(alive + deleted)
    assert {p.platform_post_id for p in page.posts} == set(alive)
    assert page.api_errors == len(deleted)
    with pytest.raises(ValueError):
        collector(x_sandbox).lookup([str(i) for i in range(101)])


def test_settings_from_the_airflow_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_X_API", '{"conn_type": "http", "password": "tok-123", '
                       '"extra": {"endpoint": "all", "max_query_length": 1024, "base_url": "http://127.0.0.1:9/"}}')
    settings = XSettings.from_connection()
    assert (settings.endpoint, settings.max_query_length, settings.base_url) == ("all", 1024, "http://127.0.0.1:9")
    assert settings.bearer_token == "tok-123" and "tok-123" not in repr(settings)
    monkeypatch.setenv("AIRFLOW_CONN_X_API", '{"conn_type": "http", "extra": {"endpoint": "recent"}}')
    with pytest.raises(XApiError, match="password"):
        XSettings.from_connection()
    monkeypatch.setenv("AIRFLOW_CONN_X_API", '{"conn_type": "http", "password": "t", "extra": {"endpoint": "v1"}}')
    with pytest.raises(XApiError, match="'recent' or 'all'"):
        XSettings.from_connection()


def test_without_base_url_tweepy_talks_to_the_real_host() -> None:
    col = XCollector(XSettings(bearer_token="t"))
    prepared = col.client.session.prepare_request(
        __import__("requests").Request("GET", "https://api.twitter.com/2/tweets"))
    assert prepared.url.startswith("https://api.twitter.com/2/")
    assert col.client.session.base_url is None


# --- end to end: runner, store, sandbox -----------------------------------------------------------------


def stored_ids(engine: Any) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(Post.platform_post_id).where(Post.platform == "x")).scalars())


def run_all(engine: Any, col: XCollector, queries: list[Any], window: Window, matcher: Any) -> list[Any]:
    return [run_query(engine, col, q, window, matcher=matcher, secrets=(X_TOKEN,)) for q in queries]


@pytest.fixture
def x_store(store: Any, registry: Any) -> Any:  # conftest: SQLite and PostgreSQL
    from trustwatch.models import store as store_module

    store_module.sync_agencies(store, registry.entries)
    return store


def test_collecting_a_window_stores_exactly_the_matches_and_the_next_reads_nothing_stored(
    x_sandbox: SandboxServer, x_store: Any, x_queries: list[Any], matcher: Any  # noqa: F811
) -> None:
    first = window_of(x_sandbox, 2, days=2)
    summaries = run_all(x_store, collector(x_sandbox), x_queries, first, matcher)
    assert all(s.status == "success" for s in summaries)
    ids = stored_ids(x_store)
    assert len(ids) == len(set(ids))
    expected = x_sandbox.x.expected_stored_ids([q.text for q in x_queries], first.start, first.end)
    assert set(ids) == expected
    with x_store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Post)).scalar() == len(expected)
    assert sum(s.requests for s in summaries) == len(x_sandbox.requests_to("/2/"))

    x_sandbox.clear_log()
    second = Window(first.end, first.end + dt.timedelta(days=1))
    run_all(x_store, collector(x_sandbox), x_queries, second, matcher)
    served = {i for r in x_sandbox.requests_to("/2/") for i in r.served_ids}
    assert served and not served & set(ids)

    x_sandbox.clear_log()
    rerun = run_all(x_store, collector(x_sandbox), x_queries, second, matcher)
    assert all(s.skipped for s in rerun) and x_sandbox.requests_to("/2/") == []


def test_429_and_503_burst_end_with_the_same_stored_set(x_sandbox: SandboxServer, x_store: Any,  # noqa: F811
                                                        x_queries: list[Any], matcher: Any) -> None:
    window = window_of(x_sandbox, 1, days=3)
    x_sandbox.faults.add("/2/tweets/search", "status", status=429, after=2,
                         headers={"x-rate-limit-reset": str(int(time.time()) + 5)})
    x_sandbox.faults.add("/2/tweets/search", "status", status=503, times=4, after=6)
    sleeper = Sleeper()
    summaries = run_all(x_store, collector(x_sandbox, sleeper, max_attempts=6), x_queries, window, matcher)
    assert x_sandbox.faults.pending == 0
    assert set(stored_ids(x_store)) == x_sandbox.x.expected_stored_ids([q.text for q in x_queries],
                                                                       window.start, window.end)
    assert sum(s.requests for s in summaries) == len(x_sandbox.requests_to("/2/"))
    with x_store.connect() as conn:
        from trustwatch.models.tables import CollectionRun

        waits = conn.execute(select(func.sum(CollectionRun.rate_limit_waits))).scalar()
    assert waits == 1


def test_an_interrupted_run_resumes_from_its_last_committed_cursor(x_sandbox: SandboxServer, x_store: Any,  # noqa: F811
                                                                   x_queries: list[Any], matcher: Any) -> None:
    window = window_of(x_sandbox, 1, days=3)
    query = busiest(x_sandbox, x_queries, window)
    x_sandbox.faults.add("/2/tweets/search", "status", status=500, times=100, after=1)
    with pytest.raises(XApiError):
        run_query(x_store, collector(x_sandbox, max_attempts=2), query, window, matcher=matcher)
    first_page = set(x_sandbox.requests_to("/2/")[0].served_ids)
    assert first_page and first_page <= set(stored_ids(x_store))
    x_sandbox.faults.clear()
    x_sandbox.clear_log()
    summary = run_query(x_store, collector(x_sandbox), query, window, matcher=matcher)
    assert summary.resumed and summary.status == "success"
    assert "next_token" in x_sandbox.requests_to("/2/")[0].query
    served = {i for r in x_sandbox.requests_to("/2/") for i in r.served_ids}
    assert not served & first_page
    assert set(stored_ids(x_store)) == x_sandbox.x.expected_stored_ids([query.text], window.start, window.end)


def test_dry_run_counts_without_collecting(x_sandbox: SandboxServer, x_store: Any,  # noqa: F811
                                           x_queries: list[Any], matcher: Any) -> None:
    window = window_of(x_sandbox, 1)
    summary = run_query(x_store, collector(x_sandbox), x_queries[0], window, matcher=matcher, dry_run=True)
    assert summary.expected_posts == len(x_sandbox.x.matching_ids(x_queries[0].text, window.start, window.end))
    assert stored_ids(x_store) == []
    assert {r.path for r in x_sandbox.requests_to("/2/")} == {"/2/tweets/counts/recent"}

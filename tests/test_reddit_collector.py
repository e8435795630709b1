"""The Reddit collector end to end: real praw over loopback HTTP against the sandbox, into the store."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
from sqlalchemy import func, select
from trustwatch.collectors.agencies import compile_reddit_queries
from trustwatch.collectors.reddit import RedditApiError, RedditCollector, RedditSettings, plan_queries
from trustwatch.collectors.runner import run_query
from trustwatch.models import store as store_module
from trustwatch.models.tables import Agency, CollectionRun, Post, PostMention
from trustwatch.sandbox.common import CorpusConfig
from trustwatch.sandbox.server import SandboxServer

from tests.conftest import REALCASES as SHARED_REALCASES
from trustwatch.records import Window

PRAWCORE = SHARED_REALCASES / "reddit" / "prawcore"
END = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
SOME = ["austin-pd", "nypd", "denver-pd", "seattle-pd"]
SECRET = "sandbox-secret"


def corpus_config() -> CorpusConfig:
    return CorpusConfig(seed=5, posts=800, end=END, days=7)


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(corpus_config()) as server:
        yield server


@pytest.fixture
def server(sandbox):
    sandbox.faults.clear()
    sandbox.clear_log()
    yield sandbox
    sandbox.faults.clear()


def make_collector(server, matcher, sleeps=None, **overrides) -> RedditCollector:
    settings = RedditSettings(
        client_id="sandbox-client",
        client_secret=SECRET,
        user_agent="trustwatch-tests/0.1 by u/trustwatch",
        base_url=server.url,
        backoff_seconds=0.01,
        **overrides,
    )
    sleep = sleeps.append if sleeps is not None else (lambda seconds: None)
    return RedditCollector(settings, matcher, sleep=sleep)


def collect(engine, server, registry, matcher, window, agencies=None, collector=None):
    store_module.sync_agencies(engine, registry.entries)
    collector = collector or make_collector(server, matcher)
    queries = plan_queries(compile_reddit_queries(registry, agencies=agencies), registry)
    return [run_query(engine, collector, q, window, matcher=matcher, secrets=(SECRET,)) for q in queries]


def stored_ids(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(Post.platform_post_id).where(Post.platform == "reddit")).scalars())


def reddit_requests(server):
    return [r for r in server.request_log if not r.path.startswith("/2/")]


def day(n: int) -> Window:
    """The n-th last day of the corpus (1 = the newest)."""
    return Window(END - dt.timedelta(days=n), END - dt.timedelta(days=n - 1))


# --- settings ---------------------------------------------------------------------------------


def test_settings_come_from_the_airflow_connection(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_REDDIT_API",
        json.dumps(
            {
                "conn_type": "http",
                "login": "cid",
                "password": "s3cr3t-value",
                "extra": {
                    "user_agent": "trustwatch/0.1 by u/me",
                    "base_url": "http://127.0.0.1:9/",
                    "replace_more_limit": "none",
                },
            }
        ),
    )
    settings = RedditSettings.from_connection()
    assert (settings.client_id, settings.user_agent, settings.base_url) == (
        "cid",
        "trustwatch/0.1 by u/me",
        "http://127.0.0.1:9",
    )
    assert settings.replace_more_limit is None
    assert "s3cr3t-value" not in repr(settings)


def test_missing_user_agent_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_REDDIT_API",
        json.dumps({"conn_type": "http", "login": "cid", "password": "s3cr3t-value", "extra": {}}),
    )
    with pytest.raises(RedditApiError, match="user_agent") as info:
        RedditSettings.from_connection()
    assert "s3cr3t-value" not in str(info.value)


# --- collecting a window ------------------------------------------------------------------------


def test_a_window_stores_exactly_the_ground_truth(server, store, registry, matcher):
    """On SQLite and on PostgreSQL: the raw payloads and tombstones go through both backends."""
    engine = store
    window = day(1)
    summaries = collect(engine, server, registry, matcher, window)
    assert {s.status for s in summaries} == {"success"}
    ids = stored_ids(engine)
    truth = server.reddit.ground_truth(window.start, window.end)
    assert len(ids) == len(set(ids)), "no post is stored twice"
    assert set(ids) == truth
    assert any(server.reddit.corpus.comments.get(i) for i in ids), "comments are stored too"

    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Post.platform_post_id,
                Post.kind,
                Post.root_platform_id,
                Post.parent_platform_id,
                Post.deleted_reason,
                Post.text,
                Post.author_platform_id,
                Post.author_id,
            ).where(Post.platform == "reddit")
        ).all()
        thread = conn.execute(
            select(Post.platform_post_id, Agency.slug)
            .join(PostMention, PostMention.post_id == Post.id)
            .join(Agency, Agency.id == PostMention.agency_id)
            .where(PostMention.match_kind == "thread")
        ).all()
    submissions = {r.platform_post_id for r in rows if r.kind == "submission"}
    comments = [r for r in rows if r.kind == "comment"]
    assert all(c.root_platform_id in submissions for c in comments)
    assert all(c.parent_platform_id in submissions | {x.platform_post_id for x in comments} for c in comments)
    # every comment inherits the agencies of its submission, as a "thread" mention
    corpus = server.reddit.corpus
    expected = {
        (c.platform_post_id, slug) for c in comments for slug in corpus.submissions[c.root_platform_id].agencies
    }
    assert set(thread) == expected
    # deleted and removed comments keep their tombstone and are flagged
    gone = [r for r in rows if r.text in ("[deleted]", "[removed]")]
    assert gone and all(r.deleted_reason == r.text for r in gone)
    # a comment its author deleted loses the author; one a moderator removed keeps it, as on Reddit
    assert all(r.author_platform_id == "[deleted]" and r.author_id is None for r in gone if r.text == "[deleted]")


def test_a_second_run_reads_nothing_twice(server, sqlite_engine, registry, matcher):
    first = collect(sqlite_engine, server, registry, matcher, day(1), agencies=SOME)
    assert {s.status for s in first} == {"success"}
    fetched_threads = {r.path for r in reddit_requests(server) if r.path.startswith("/comments/")}
    before = stored_ids(sqlite_engine)
    server.clear_log()

    again = collect(sqlite_engine, server, registry, matcher, day(1), agencies=SOME)
    assert all(s.skipped for s in again), "a window already collected is not read again"
    assert reddit_requests(server) == []
    assert sorted(stored_ids(sqlite_engine)) == sorted(before)

    # the day before: no thread of the first day is fetched again
    older = collect(sqlite_engine, server, registry, matcher, day(2), agencies=SOME)
    assert {s.status for s in older} == {"success"}
    threads = {r.path for r in reddit_requests(server) if r.path.startswith("/comments/")}
    assert threads and not threads & fetched_threads
    truth = server.reddit.ground_truth(day(2).start, day(1).end, SOME)
    assert set(stored_ids(sqlite_engine)) == truth


def test_a_private_subreddit_does_not_fail_the_run(sqlite_engine, registry, matcher):
    private = ("news", "Austin")
    with SandboxServer(corpus_config(), private_subreddits=private) as server:
        window = day(1)
        summaries = collect(sqlite_engine, server, registry, matcher, window, agencies=SOME)
        assert {s.status for s in summaries} == {"success"}
        skipped = sorted({note for s in summaries for note in s.notes.get("skipped", [])})
        assert skipped == ["r/Austin: 403 private", "r/news: 403 private"]
        assert set(stored_ids(sqlite_engine)) == server.reddit.ground_truth(window.start, window.end, SOME)
    with sqlite_engine.connect() as conn:
        notes = conn.execute(select(CollectionRun.notes).where(CollectionRun.query_key.like("reddit-new-austin%")))
        assert notes.scalar_one()["skipped"] == ["r/Austin: 403 private"]


def test_compiled_queries_work_as_they_are(sqlite_engine, registry, matcher):
    """The compiler's queries (no planning): local ones become one combined ``new`` listing, and a
    private member is left out of the combination instead of failing it."""
    with SandboxServer(corpus_config(), private_subreddits=("Denver",)) as server:
        store_module.sync_agencies(sqlite_engine, registry.entries)
        collector = make_collector(server, matcher)
        window = Window(END - dt.timedelta(days=3), END)
        queries = compile_reddit_queries(registry, agencies=SOME)
        assert [collector.kind_of(q) for q in queries] == ["search", "new"]
        summaries = [run_query(sqlite_engine, collector, q, window, matcher=matcher) for q in queries]
        assert {s.status for s in summaries} == {"success"}
        assert summaries[1].notes["skipped"] == ["r/Denver: 403 private"]
        # the combined listing is tried once; refused, its members are probed and Denver left out
        combined = [r for r in reddit_requests(server) if r.path.endswith("/new") and "+" in r.path]
        listed = {r.path for r in combined if r.status == 200}
        assert listed and all("Denver" not in path for path in listed)
        assert all(r.status == 403 for r in combined if "Denver" in r.path)
        assert set(stored_ids(sqlite_engine)) == server.reddit.ground_truth(window.start, window.end, SOME)


def test_a_listing_that_hits_the_cap_leaves_a_gap_in_the_ledger(sqlite_engine, registry, matcher):
    with SandboxServer(corpus_config()) as server:
        server.reddit.corpus.add_filler("Denver", 1100, END - dt.timedelta(hours=3), END)
        window = Window(END - dt.timedelta(days=2), END)
        summaries = collect(sqlite_engine, server, registry, matcher, window, agencies=["denver-pd"])
    gaps = {s.query_key: s.coverage_gap for s in summaries}
    assert [key for key, gap in gaps.items() if gap] == [k for k in gaps if k.startswith("reddit-new-denver")]
    with sqlite_engine.connect() as conn:
        row = conn.execute(
            select(CollectionRun.coverage_gap, CollectionRun.status).where(
                CollectionRun.query_key.like("reddit-new-denver%")
            )
        ).one()
    assert row.coverage_gap is True and row.status == "success"


# --- faults -----------------------------------------------------------------------------------


def recorded_fault(name: str, index: int) -> dict:
    """Status, headers and body of one recorded prawcore response, for the sandbox's FaultPlan."""
    response = json.loads((PRAWCORE / name).read_text())["interactions"][index]["response"]
    headers = {
        key: values[0] for key, values in response["headers"].items() if key.lower() in ("content-type", "retry-after")
    }
    return {"status": response["status"]["code"], "headers": headers, "body": response["body"]["string"].encode()}


def test_recorded_429_502_and_503_are_survived(server, sqlite_engine, registry, matcher):
    too_many = recorded_fault("TestSession.test_request__too__many_requests__with_retry_headers.json", 1)
    token_429 = recorded_fault("TestSession.test_request__too__many_requests__without_retry_headers.json", 0)
    bad_gateway = recorded_fault("TestSession.test_request__bad_gateway.json", 1)
    unavailable = recorded_fault("TestSession.test_request__service_unavailable.json", 1)
    assert (too_many["status"], too_many["headers"]["retry-after"]) == (429, "4")
    assert (token_429["status"], bad_gateway["status"], unavailable["status"]) == (429, 502, 503)
    server.faults.add("/api/v1/access_token", "status", **token_429)
    server.faults.add("/r/", "status", after=1, **too_many)
    server.faults.add("/comments/", "status", times=3, **bad_gateway)
    server.faults.add("/r/", "status", times=3, after=3, **unavailable)
    sleeps: list[float] = []
    collector = make_collector(server, matcher, sleeps=sleeps)
    window = Window(END - dt.timedelta(days=3), END)
    summaries = collect(sqlite_engine, server, registry, matcher, window, agencies=SOME, collector=collector)
    assert {s.status for s in summaries} == {"success"}
    assert server.faults.pending == 0, "every recorded fault was served"
    assert 4.0 in sleeps, "the 429 waited its retry-after"
    assert set(stored_ids(sqlite_engine)) == server.reddit.ground_truth(window.start, window.end, SOME)
    with sqlite_engine.connect() as conn:
        waits = conn.execute(select(func.sum(CollectionRun.rate_limit_waits))).scalar_one()
        errors = conn.execute(select(func.sum(CollectionRun.api_errors))).scalar_one()
    assert waits >= 1 and errors >= 2


def test_dropped_and_truncated_responses_are_retried(server, sqlite_engine, registry, matcher):
    server.faults.add("/r/", "reset", after=1)
    server.faults.add("/comments/", "truncate")
    window = Window(END - dt.timedelta(days=3), END)
    summaries = collect(sqlite_engine, server, registry, matcher, window, agencies=SOME)
    assert {s.status for s in summaries} == {"success"}
    assert server.faults.pending == 0
    assert set(stored_ids(sqlite_engine)) == server.reddit.ground_truth(window.start, window.end, SOME)


def test_rate_limit_headers_are_respected(sqlite_engine, registry, matcher):
    with SandboxServer(corpus_config(), rate_limit=4) as server:
        server.reddit.rate_window = 1.0
        summaries = collect(sqlite_engine, server, registry, matcher, day(1), agencies=["denver-pd"])
        statuses = {r.status for r in reddit_requests(server)}
    assert {s.status for s in summaries} == {"success"}
    assert 429 not in statuses, "prawcore paused when x-ratelimit-remaining reached 0"
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(func.sum(CollectionRun.rate_limit_waits))).scalar_one() >= 1


def test_an_unknown_subreddit_is_named_in_the_error(server, matcher, registry):
    collector = make_collector(server, matcher, global_subreddits=("news", "no_such_subreddit"))
    query = plan_queries(
        compile_reddit_queries(registry, global_subreddits=("news", "no_such_subreddit"), agencies=["nypd"]), registry
    )[0]
    with pytest.raises(RedditApiError, match=r"r/no_such_subreddit was not found \(404"):
        list(collector.pages(query, day(1)))


def test_wrong_credentials_fail_clearly_and_never_show_the_secret(server, matcher, registry, caplog):
    caplog.set_level(logging.DEBUG)
    settings = RedditSettings(
        client_id="sandbox-client",
        client_secret="wrong-secret-123",
        user_agent="trustwatch-tests/0.1",
        base_url=server.url,
        backoff_seconds=0.01,
    )
    collector = RedditCollector(settings, matcher, sleep=lambda s: None)
    query = plan_queries(compile_reddit_queries(registry, agencies=["nypd"]), registry)[-1]
    with pytest.raises(RedditApiError, match="credentials") as info:
        list(collector.pages(query, day(1)))
    assert "wrong-secret-123" not in str(info.value)
    assert "wrong-secret-123" not in caplog.text


# --- comment trees and compliance ----------------------------------------------------------------


@pytest.fixture(scope="module")
def server_at_end():
    """The sandbox with its clock fixed at the corpus end: the comments written by then, at any wall-clock time."""
    with SandboxServer(CorpusConfig(seed=5, posts=800, end=END, days=7, now=END)) as server:
        yield server


def test_replace_more_limit_bounds_the_comment_fetch(server_at_end, matcher, registry):
    server = server_at_end
    query = next(
        q for q in plan_queries(compile_reddit_queries(registry, agencies=["nypd"]), registry) if q.kind == "search"
    )
    window = Window(END - dt.timedelta(days=7), END)
    truth = server.reddit.ground_truth(window.start, window.end, ["nypd"], at=server.config.now)
    later = server.reddit.ground_truth(window.start, window.end, ["nypd"])
    assert truth < later, "some comments of the window's threads come after the clock: not shown, not expected"
    full = make_collector(server, matcher, replace_more_limit=None)
    got = {p.platform_post_id for page in full.pages(query, window) for p in page.posts}
    corpus = server.reddit.corpus
    searched = {i for i in truth if i in corpus.submissions and corpus.submissions[i].subreddit in query.subreddits}
    threads = searched | {c for i in searched for c in corpus.submissions[i].all_comments if c in truth}
    assert got == threads

    none = make_collector(server, matcher, replace_more_limit=0)
    pages = list(none.pages(query, window))
    partial = {p.platform_post_id for page in pages for p in page.posts}
    unresolved = [stub for page in pages for stub in page.more]
    assert unresolved, "stubs that were not replaced are recorded"
    assert partial < got
    hidden = {child for stub in unresolved for child in stub.children}
    assert hidden <= got - partial
    assert sum(page.notes.get("more_unresolved", 0) for page in pages) >= len(hidden)


def test_info_reports_deleted_and_missing_things(server, matcher):
    corpus = server.reddit.corpus
    deleted = next(c for c in corpus.comments.values() if c.body == "[deleted]")
    alive = next(s for s in corpus.submissions.values() if s.removed_by_category is None)
    page = make_collector(server, matcher).info([f"t1_{deleted.id}", f"t3_{alive.id}", "t3_zzzzzzz"])
    flags = {p.platform_post_id: p.deleted_reason for p in page.posts}
    assert flags == {deleted.id: "[deleted]", alive.id: None}
    assert page.notes["missing"] == ["t3_zzzzzzz"]
    assert page.requests >= 1


def test_a_listing_resumes_after_the_last_committed_page(server, matcher, registry):
    """The cursor committed with a page is where an interrupted run picks up: nothing read twice."""
    query = next(q for q in plan_queries(compile_reddit_queries(registry), registry) if q.kind == "search")
    window = Window(END - dt.timedelta(days=7), END)
    collector = make_collector(server, matcher, page_limit=5, replace_more_limit=0)
    pages = list(collector.pages(query, window))
    assert len(pages) > 3 and all(p.cursor for p in pages[:-1]) and pages[-1].cursor is None
    server.clear_log()
    resumed = list(
        make_collector(server, matcher, page_limit=5, replace_more_limit=0).pages(query, window, cursor=pages[1].cursor)
    )
    ids = [[p.platform_post_id for p in page.posts] for page in resumed]
    assert ids == [[p.platform_post_id for p in page.posts] for page in pages[2:]]
    first_listing = next(r for r in server.request_log if r.path.endswith("/search"))
    assert first_listing.query["after"] == [pages[1].cursor.split("|")[0]]
    already = {i for page in pages[:2] for i in page.seen_ids}
    served = {i for r in server.request_log if r.path.endswith("/search") for i in r.served_ids}
    assert not served & already

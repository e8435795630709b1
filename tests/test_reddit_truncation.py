"""Truncation is flagged wherever it happens: searches cut near 250, listings cut at any count."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from trustwatch.collectors.agencies import compile_reddit_queries
from trustwatch.collectors.reddit import RedditCollector, RedditSettings, plan_queries
from trustwatch.collectors.reddit_plan import listing_first_queries
from trustwatch.collectors.runner import run_query
from trustwatch.models import store as store_module
from trustwatch.models.tables import CollectionRun, Post
from trustwatch.sandbox.common import CorpusConfig
from trustwatch.sandbox.server import SandboxServer

from tests.reddit_checks import assert_stored_as_ambiguities
from trustwatch.records import Window

END = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
DAY = Window(END - dt.timedelta(days=1), END)
SECRET = "sandbox-secret"


def corpus_config() -> CorpusConfig:
    return CorpusConfig(seed=5, posts=800, end=END, days=7)


def collect(engine, server, registry, matcher, agencies, window=DAY, queries=None):
    """The search plan for ``agencies`` (or the given ``queries``) over ``window``."""
    store_module.sync_agencies(engine, registry.entries)
    settings = RedditSettings(client_id="sandbox-client", client_secret=SECRET,
                              user_agent="trustwatch-tests/0.1 by u/trustwatch", base_url=server.url,
                              backoff_seconds=0.01)
    collector = RedditCollector(settings, matcher, sleep=lambda seconds: None)
    if queries is None:
        queries = plan_queries(compile_reddit_queries(registry, agencies=agencies), registry)
    return [run_query(engine, collector, q, window, matcher=matcher) for q in queries]


def ledger(engine):
    with engine.connect() as conn:
        return conn.execute(
            select(CollectionRun.query_key, CollectionRun.status, CollectionRun.coverage_gap, CollectionRun.notes)
            .where(CollectionRun.platform == "reddit")
        ).all()


def stored(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(Post.platform_post_id).where(Post.platform == "reddit")).scalars())


def test_a_search_cut_near_250_is_read_again_as_listings(sqlite_engine, registry, matcher):
    """400 posts about NYPD in r/news in three hours: the search stops near 250, long before the day's
    start; the collector reads the global subreddits' new listings instead and the day is complete."""
    with SandboxServer(corpus_config()) as server:
        burst = server.reddit.corpus.add_mentions_burst("news", "nypd", 400, END - dt.timedelta(hours=3), END)
        summaries = collect(sqlite_engine, server, registry, matcher, ["nypd"])
        truth = server.reddit.ground_truth(DAY.start, DAY.end, ["nypd"])
    assert set(burst) <= truth
    assert {s.status for s in summaries} == {"success"}
    assert stored(sqlite_engine) == truth
    rows = {r.query_key: r for r in ledger(sqlite_engine)}
    search = [r for key, r in rows.items() if not key.startswith("reddit-new-")]
    assert len(search) == 1 and "search_truncated" in search[0].notes
    assert "r/news" in search[0].notes["search_truncated"]
    assert search[0].coverage_gap is False, "the listings reached the window start: no gap"


def test_a_listing_cut_at_any_count_is_a_gap(sqlite_engine, registry, matcher):
    """A listing that stops after 150 items (not 900) before the window start is still a gap."""
    with SandboxServer(corpus_config()) as server:
        server.reddit.listing_cap = 150
        server.reddit.corpus.add_filler("Denver", 200, END - dt.timedelta(hours=3), END)
        summaries = collect(sqlite_engine, server, registry, matcher, ["denver-pd"])
    gaps = [s.query_key for s in summaries if s.coverage_gap]
    assert gaps and all(key.startswith("reddit-new-denver") for key in gaps)
    row = next(r for r in ledger(sqlite_engine) if r.query_key in gaps)
    assert row.status == "success" and "ended after 150 items" in row.notes["coverage_gap"]


def test_a_cut_search_whose_listing_is_cut_too_leaves_a_gap(sqlite_engine, registry, matcher):
    with SandboxServer(corpus_config()) as server:
        server.reddit.listing_cap = 300
        server.reddit.corpus.add_mentions_burst("news", "nypd", 400, END - dt.timedelta(hours=3), END)
        summaries = collect(sqlite_engine, server, registry, matcher, ["nypd"])
    search = [s for s in summaries if not s.query_key.startswith("reddit-new-")]
    assert len(search) == 1 and search[0].status == "success" and search[0].coverage_gap
    row = next(r for r in ledger(sqlite_engine) if r.query_key == search[0].query_key)
    assert "r/news/new ended after 300 items" in row.notes["coverage_gap"]
    assert "search_truncated" in row.notes and "fallback" in row.notes


def test_a_search_with_less_than_a_page_in_all_is_exhausted_not_cut(sqlite_engine, registry, matcher):
    """A search whose whole answer is less than a page (a name hardly anyone writes) ended because Reddit
    had nothing more, not because it cut it: no gap, and no listing is read instead.  Here: a corpus with
    no history, so NYPD's few posts are all Reddit has, and a window before them."""
    with SandboxServer(corpus_config()) as server:
        corpus = server.reddit.corpus
        for sid in list(corpus.history):
            del corpus.submissions[sid]
        corpus._index()
        before = Window(END - dt.timedelta(days=8), END - dt.timedelta(days=7))
        summaries = collect(sqlite_engine, server, registry, matcher, ["nypd"], window=before)
        listings = [r for r in server.request_log
                    if r.path.endswith("/new") and "+" not in r.path and r.query.get("limit") != ["1"]]
    search = [s for s in summaries if not s.query_key.startswith("reddit-new-")]
    assert search and not any(s.coverage_gap for s in summaries)
    assert "search_truncated" not in search[0].notes
    assert not [r for r in listings if r.path.startswith("/r/news")]


def test_a_cut_combined_listing_is_split_into_its_subreddits_before_giving_up(sqlite_engine, registry, matcher):
    """The listing-first plan reads 25 subreddits in one listing, which Reddit cuts like any other (here at
    300 items): two busy members fill it before the day's start.  The collector reads each member's own
    listing instead (each has the cap to itself), so the day is complete and no gap is flagged."""
    with SandboxServer(corpus_config()) as server:
        server.reddit.listing_cap = 300
        queries = listing_first_queries(registry)
        first = next(q for q in queries if q.kind == "new")
        busy = first.subreddits[:2]
        for sub in busy:
            server.reddit.corpus.add_filler(sub, 200, END - dt.timedelta(hours=3), END)
        summaries = collect(sqlite_engine, server, registry, matcher, None, queries=queries)
        truth = server.reddit.ground_truth(DAY.start, DAY.end) | server.reddit.comment_truth(DAY.start, DAY.end)
        ambiguous = server.reddit.ambiguous_truth(DAY.start, DAY.end)
        assert_stored_as_ambiguities(sqlite_engine, server, ambiguous)
        alone = {r.path for r in server.request_log if r.path.endswith("/new") and "+" not in r.path
                 and r.query.get("limit") != ["1"]}
    assert len(first.subreddits) > 2
    assert {s.status for s in summaries} == {"success"}
    assert not any(s.coverage_gap for s in summaries), "every member's own listing reached the day's start"
    assert ambiguous and stored(sqlite_engine) == truth | ambiguous
    row = next(r for r in ledger(sqlite_engine) if r.query_key == first.key)
    assert "listing_truncated" in row.notes and "ended after 300 items" in row.notes["listing_truncated"]
    assert {f"/r/{sub}/new" for sub in busy} <= alone


def test_a_subreddit_cut_even_alone_is_searched_for_the_agencies(sqlite_engine, registry, matcher):
    """r/news so busy that its own listing stops three hours back: the NYPD posts of the morning are
    beyond any listing.  The collector searches r/news for the agencies' names (what listings cannot
    reach) and stores them; only the comment listing, which no search can replace, could still be a gap.  Nor
    can the searches find the submissions that only leave a shared acronym unsettled ("APD meeting moved to
    Friday"): r/news's are stored as far as its listing reaches, the others' wherever they are."""
    with SandboxServer(corpus_config()) as server:
        server.reddit.listing_cap = 300
        corpus = server.reddit.corpus
        apd = [a.slug for a in corpus.agencies if "APD" in a.ambiguous]
        lost = corpus.add_submission("news", "APD meeting moved to Friday, sorry all", END - dt.timedelta(hours=15),
                                     unsettled=apd)
        corpus.add_filler("news", 400, END - dt.timedelta(hours=3), END)
        morning = corpus.add_mentions_burst("news", "nypd", 5, END - dt.timedelta(hours=20),
                                            END - dt.timedelta(hours=10))
        queries = listing_first_queries(registry)
        summaries = collect(sqlite_engine, server, registry, matcher, None, queries=queries)
        truth = server.reddit.ground_truth(DAY.start, DAY.end) | server.reddit.comment_truth(DAY.start, DAY.end)
        ambiguous = server.reddit.ambiguous_truth(DAY.start, DAY.end)
        # r/news's own listing shows its 300 newest items (by id), all filler
        beyond = {sid for sid in ambiguous if corpus.submissions[sid].subreddit == "news"} - set(
            corpus.by_subreddit["news"][:300])
        assert_stored_as_ambiguities(sqlite_engine, server, ambiguous - beyond)
        searches = {r.path for r in server.request_log if r.path.endswith("/search")}
    assert {s.status for s in summaries} == {"success"}
    assert searches == {"/r/news/search"}, "a search only where a listing could not reach"
    assert set(morning) <= stored(sqlite_engine)
    assert lost in beyond and ambiguous - beyond, "ambiguities beyond r/news's reach and in other subreddits"
    assert stored(sqlite_engine) == truth | (ambiguous - beyond)
    new = next(s for s in summaries if s.query_key == next(q.key for q in queries if q.kind == "new"))
    assert not new.coverage_gap and "r/news" in new.notes["searched"]

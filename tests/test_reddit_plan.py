"""The listing-first Reddit plan: comment listings, a cost that does not grow with agencies, refusal."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from trustwatch.collectors.reddit import RedditCollector, RedditSettings
from trustwatch.collectors.reddit_plan import (
    PlanError,
    check_budget,
    estimate,
    listing_first_queries,
    plan_subreddits,
)
from trustwatch.collectors.runner import run_query
from trustwatch.models import store as store_module
from trustwatch.models.tables import Post, PostMention
from trustwatch.sandbox.common import CorpusConfig
from trustwatch.sandbox.server import SandboxServer

from tests.reddit_checks import assert_stored_as_ambiguities, thread_requests
from trustwatch.records import Window

END = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
DAY = Window(END - dt.timedelta(days=1), END)
SECRET = "sandbox-secret"


@dataclass
class FakeAgency:
    slug: str
    subreddits: tuple[str, ...]
    active: bool = True


def corpus_config() -> CorpusConfig:
    return CorpusConfig(seed=5, posts=800, end=END, days=7)


def make_collector(server, matcher) -> RedditCollector:
    settings = RedditSettings(client_id="sandbox-client", client_secret=SECRET,
                              user_agent="trustwatch-tests/0.1 by u/trustwatch", base_url=server.url,
                              backoff_seconds=0.01)
    return RedditCollector(settings, matcher, sleep=lambda seconds: None)


def collect(engine, server, registry, matcher, queries, window=DAY):
    store_module.sync_agencies(engine, registry.entries)
    collector = make_collector(server, matcher)
    return [run_query(engine, collector, q, window, matcher=matcher) for q in queries]


def stored(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(Post.platform_post_id, Post.kind).where(Post.platform == "reddit")).all())


def test_comments_naming_an_agency_under_any_submission_are_collected(sqlite_engine, registry, matcher):
    """A comment naming NYPD under a post about the subway: read from r/SUB/comments, kept with its
    submission as context; the plan's listings cover exactly the ground truth: the attributed threads, those
    comments, and the submissions that only leave a shared acronym unsettled, as ambiguities."""
    with SandboxServer(corpus_config()) as server:
        queries = listing_first_queries(registry)
        summaries = collect(sqlite_engine, server, registry, matcher, queries)
        corpus = server.reddit.corpus
        threads = server.reddit.ground_truth(DAY.start, DAY.end)
        comments = corpus.comment_truth(DAY.start, DAY.end)
        ambiguous = server.reddit.ambiguous_truth(DAY.start, DAY.end)
        paths = {r.path.split("/")[-1] or r.path.split("/")[-2] for r in server.request_log if r.path.startswith("/r/")}
        assert ambiguous, "the day has submissions that only name a shared acronym"
        assert_stored_as_ambiguities(sqlite_engine, server, ambiguous)
    assert {s.status for s in summaries} == {"success"}
    assert not any(s.coverage_gap for s in summaries)
    assert "search" not in paths, "listing first: no searches"
    got = stored(sqlite_engine)
    assert set(got) == threads | comments | ambiguous
    # a comment naming an agency under a submission about none of them: both stored, the submission as context
    orphans = [c for c in comments if c in corpus.comments and corpus.comments[c].link_id not in threads]
    assert orphans, "the corpus has agency comments under unattributed submissions"
    with sqlite_engine.connect() as conn:
        mentioned = set(conn.execute(
            select(Post.platform_post_id).join(PostMention, PostMention.post_id == Post.id)
        ).scalars())
    for cid in orphans:
        link = corpus.comments[cid].link_id
        assert got[link] == "submission" and cid in mentioned
        if not corpus.submissions[link].agencies:
            assert link not in mentioned, "context, not a match"


def test_a_private_member_of_a_combined_listing_is_skipped_by_name(sqlite_engine, registry, matcher):
    with SandboxServer(corpus_config(), private_subreddits=("Austin",)) as server:
        queries = listing_first_queries(registry)
        summaries = collect(sqlite_engine, server, registry, matcher, queries)
        truth = server.reddit.ground_truth(DAY.start, DAY.end) | server.reddit.corpus.comment_truth(
            DAY.start, DAY.end, unreadable=("Austin",)
        ) | server.reddit.ambiguous_truth(DAY.start, DAY.end)
    assert {s.status for s in summaries} == {"success"}
    skipped = [note for s in summaries for note in s.notes.get("skipped", [])]
    assert skipped and all(note == "r/Austin: 403 private" for note in skipped)
    assert set(stored(sqlite_engine)) == truth


def synthetic_registry(real, count: int, unique: bool) -> list[FakeAgency]:
    """``count`` agencies: on the real registry's subreddits (shared, as states and big cities are), or each
    on a subreddit of its own."""
    subs = [s for s in plan_subreddits(real) if s.lower() not in {"police", "protectandserve", "bad_cop_no_donut",
                                                                   "news"}]
    if unique:
        return [FakeAgency(f"agency-{n}", (f"town{n}",)) for n in range(count)]
    return [FakeAgency(f"agency-{n}", (subs[n % len(subs)], subs[(n * 7) % len(subs)])) for n in range(count)]


def test_requests_do_not_grow_with_agencies_once_their_subreddits_are_covered(registry):
    small = listing_first_queries(registry)
    big = listing_first_queries(synthetic_registry(registry, 5000, unique=False))
    assert len(small) == len(big) <= 20
    assert {q.kind for q in small} == {"new", "comments"}
    per_hour = estimate(big, agencies=5000, threads_per_hour=20, requests_per_thread=2)
    assert per_hour.fits and per_hour.listing_requests == len(big)
    assert f"{per_hour.total:.0f} requests/hour" in per_hour.describe()


def test_a_plan_that_cannot_fit_is_refused_naming_what_to_drop(registry):
    agencies = synthetic_registry(registry, 5000, unique=True)
    queries = listing_first_queries(agencies)
    plan = estimate(queries, agencies=5000, threads_per_hour=20, requests_per_thread=2, requests_per_minute=10)
    assert not plan.fits
    with pytest.raises(PlanError, match=r"drop \d+ subreddits \(r/town") as info:
        check_budget(plan, agencies, queries)
    assert "requests/hour" in str(info.value)
    dropped = {name.removeprefix("r/") for name in plan.drop}
    kept = [a for a in agencies if not set(a.subreddits) & dropped]
    smaller = listing_first_queries(kept)
    again = estimate(smaller, agencies=len(kept), threads_per_hour=20, requests_per_thread=2, requests_per_minute=10)
    assert again.fits and check_budget(again, kept, smaller) is again
    assert {"news", "police"} <= {s for q in smaller for s in q.subreddits}, "global subreddits are kept"
    with pytest.raises(PlanError, match="alone exceed"):
        check_budget(estimate(queries, agencies=5000, threads_per_hour=5000, requests_per_minute=10), agencies,
                     queries)


def test_the_dry_run_and_the_ledger_show_the_plan_against_the_budget(tmp_path, registry, monkeypatch, capsys):
    import json

    from trustwatch.models.db import make_engine
    from trustwatch.models.tables import CollectionRun

    from trustwatch import cli, migrate

    url = f"sqlite:///{tmp_path / 'plan.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    monkeypatch.setenv("TRUSTWATCH_DATABASE_URL", url)
    monkeypatch.delenv("AIRFLOW_CONN_TRUSTWATCH_DB", raising=False)
    monkeypatch.delenv("TRUSTWATCH_PSEUDONYMIZE_KEY", raising=False)
    with SandboxServer(CorpusConfig(seed=5, posts=800, days=2)) as server:
        monkeypatch.setenv("AIRFLOW_CONN_REDDIT_API", json.dumps({
            "conn_type": "http", "login": "sandbox-client", "password": SECRET,
            "extra": {"base_url": server.url, "user_agent": "trustwatch-tests/0.1 by u/tw"}}))  # the default plan
        end = server.config.stop - dt.timedelta(hours=1)
        window = ["--start", (end - dt.timedelta(hours=1)).isoformat(), "--end", end.isoformat()]
        assert cli.main(["collect", "reddit", *window, "--dry-run"]) == 0
        dry = capsys.readouterr().out
        assert cli.main(["collect", "reddit", *window]) == 0
        capsys.readouterr()
        searches = [r for r in server.request_log if r.path.endswith("/search")]
    assert "requests/hour" in dry and "of a budget of 4800" in dry
    assert not searches
    with engine.connect() as conn:
        notes = conn.execute(
            select(CollectionRun.notes).where(CollectionRun.source == "summary", CollectionRun.platform == "reddit")
        ).scalars().all()
    plan = [n["plan"] for n in notes if n and n.get("plan")]
    assert plan and plan[-1]["fits"] and plan[-1]["total"] <= plan[-1]["budget"]


def use_connection(monkeypatch, tmp_path, server, **extra) -> None:
    """The reddit_api connection (with ``extra``) and a migrated store, as the command line and DAGs read them."""
    import json

    from trustwatch.models.db import make_engine

    from trustwatch import migrate

    url = f"sqlite:///{tmp_path / 'tasks.db'}"
    migrate.upgrade(make_engine(url))
    monkeypatch.setenv("TRUSTWATCH_DATABASE_URL", url)
    monkeypatch.delenv("AIRFLOW_CONN_TRUSTWATCH_DB", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_REDDIT_API", json.dumps({
        "conn_type": "http", "login": "sandbox-client", "password": SECRET,
        "extra": {"base_url": server.url, "user_agent": "trustwatch-tests/0.1 by u/tw", **extra}}))


def test_the_default_plan_is_listing_first_and_stores_exactly_the_ground_truth(
    sqlite_engine, tmp_path, registry, matcher, monkeypatch
):
    """The plan the DAGs and the command line use when nothing is configured: listings of the whole registry's
    subreddits, no searches; collected at the window's end it stores each post once, exactly the threads and
    the comments naming an agency that exist by then."""
    from trustwatch import tasks

    with SandboxServer(CorpusConfig(seed=5, posts=800, end=END, days=7, now=END)) as server:
        use_connection(monkeypatch, tmp_path, server)
        planned = tasks.compile_queries("reddit")
        queries = [tasks._query_obj("reddit", q) for q in planned]
        summaries = collect(sqlite_engine, server, registry, matcher, queries)
        searches = [r for r in server.request_log if r.path.endswith("/search")]
        truth = server.reddit.ground_truth(DAY.start, DAY.end, at=END) | server.reddit.comment_truth(
            DAY.start, DAY.end, at=END)
        ambiguous = server.reddit.ambiguous_truth(DAY.start, DAY.end)
        assert_stored_as_ambiguities(sqlite_engine, server, ambiguous)
        later = server.reddit.ground_truth(DAY.start, DAY.end)
    assert {q["kind"] for q in planned} == {"new", "comments"} and not searches
    assert {s.status for s in summaries} == {"success"} and not any(s.coverage_gap for s in summaries)
    with sqlite_engine.connect() as conn:
        ids = list(conn.execute(select(Post.platform_post_id).where(Post.platform == "reddit")).scalars())
    assert len(ids) == len(set(ids)), "no post is stored twice"
    assert ambiguous and set(ids) == truth | ambiguous
    assert later - truth, "comments written after the window's end wait for the revisits"


def test_the_per_agency_search_plan_stays_an_option(tmp_path, registry, monkeypatch):
    from trustwatch import tasks

    with SandboxServer(CorpusConfig(seed=5, posts=50, end=END, days=1)) as server:
        use_connection(monkeypatch, tmp_path, server, plan="search")
        kinds = [q["kind"] for q in tasks.compile_queries("reddit")]
        estimate_ = tasks.reddit_plan_estimate()
        use_connection(monkeypatch, tmp_path, server, plan="listing")
        listing = tasks.compile_queries("reddit")
    assert "search" in kinds and set(kinds) <= {"search", "new"} and estimate_["plan"] == "search"
    assert len(kinds) > len(listing), "the search plan needs a query per agency subreddit"


def test_a_comment_leaving_a_shared_name_unsettled_is_kept_as_an_ambiguity(sqlite_engine, registry, matcher):
    """"Clinton PD" (19 agencies) in a comment of a global subreddit, under a submission about no agency: the
    comment is stored with its thread as context and one ambiguous_mentions row, attributed to none, as an X
    post would be; the same name settled by "Clinton Iowa" attributes Iowa's agency."""
    from trustwatch.models.tables import AmbiguousMention
    from trustwatch.sandbox.reddit_corpus import GLOBAL_SUBREDDITS

    iowa = "ia-clinton-police-department"
    globals_ = {s.lower() for s in GLOBAL_SUBREDDITS}
    with SandboxServer(corpus_config()) as server:
        corpus = server.reddit.corpus
        link = next(s for s in sorted(corpus.submissions.values(), key=lambda s: s.created, reverse=True)
                    if s.subreddit.lower() in globals_ and not s.agencies and s.created < DAY.start)
        when = DAY.end - dt.timedelta(hours=1)
        unsettled = corpus.add_comment(link.id, "Clinton PD arrested two men downtown", when)
        settled = corpus.add_comment(link.id, "Clinton PD arrested two men downtown, Clinton Iowa",
                                     when + dt.timedelta(minutes=1), agencies=[iowa])
        summaries = collect(sqlite_engine, server, registry, matcher, listing_first_queries(registry))
    assert {s.status for s in summaries} == {"success"}
    got = stored(sqlite_engine)
    assert got.get(unsettled) == "comment" and got.get(settled) == "comment" and got.get(link.id) == "submission"
    with sqlite_engine.connect() as conn:
        ambiguous = conn.execute(
            select(Post.platform_post_id, AmbiguousMention.term, AmbiguousMention.candidates)
            .join(AmbiguousMention, AmbiguousMention.post_id == Post.id).where(Post.platform == "reddit")
        ).all()
        attributed = conn.execute(
            select(Post.platform_post_id, PostMention.match_kind).join(PostMention, PostMention.post_id == Post.id)
            .where(Post.platform_post_id.in_([unsettled, settled]))
        ).all()
    mine = [(pid, term) for pid, term, _ in ambiguous if pid in (unsettled, settled)]
    assert mine == [(unsettled, "Clinton PD")]
    candidates = next(c for pid, _, c in ambiguous if pid == unsettled)
    assert iowa in candidates and len(candidates) >= 2
    assert [pid for pid, _ in attributed] == [settled], "the unsettled comment is attributed to no agency"


def add_ambiguities(corpus, when: dt.datetime) -> tuple[list[str], str, str, str]:
    """"APD arrested two men downtown" (five cities' APD) in r/news and "Clinton PD ..." (19 agencies) in
    r/police, each with a comment that names nobody, the Clinton one with a comment naming NYPD too; the
    same APD title with "Austin" (attributed).  Returns APD's candidates and the three submission ids."""
    apd = [a.slug for a in corpus.agencies if "APD" in a.ambiguous]
    unsettled = corpus.add_submission("news", "APD arrested two men downtown", when, unsettled=apd)
    shared = corpus.add_submission("police", "Clinton PD arrested two men downtown", when + dt.timedelta(minutes=1))
    settled = corpus.add_submission("news", "APD arrested two men downtown in Austin", when + dt.timedelta(minutes=2),
                                    agencies=["austin-pd"])
    for sid in (unsettled, shared, settled):
        corpus.add_comment(sid, "This is wild.", when + dt.timedelta(minutes=10))
    return apd, unsettled, shared, settled


def test_a_submission_leaving_a_shared_name_unsettled_is_stored_as_an_ambiguity_without_its_thread(
    store, registry, matcher
):
    """The listing plan stores "APD arrested two men downtown" and "Clinton PD arrested two men downtown" in
    global subreddits with their ambiguity and candidates, attributed to none, and never requests their
    comment trees; a comment under one that names NYPD is still caught by the comment listing.  The APD title
    with "Austin" is attributed and its thread read."""
    from trustwatch.models.tables import AmbiguousMention

    with SandboxServer(corpus_config()) as server:
        corpus = server.reddit.corpus
        apd, unsettled, shared, settled = add_ambiguities(corpus, DAY.end - dt.timedelta(hours=2))
        named = corpus.add_comment(shared, "NYPD did the same thing last year", DAY.end - dt.timedelta(minutes=30),
                                   agencies=["nypd"])
        summaries = collect(store, server, registry, matcher, listing_first_queries(registry))
        trees = {sid: thread_requests(server, [sid]) for sid in (unsettled, shared, settled)}
        assert_stored_as_ambiguities(store, server, [unsettled, shared])
        quiet = {c for sid in (unsettled, shared) for c in corpus.submissions[sid].all_comments} - {named}
    assert {s.status for s in summaries} == {"success"}
    got = stored(store)
    assert got.get(unsettled) == got.get(shared) == got.get(settled) == "submission"
    assert got.get(named) == "comment", "a comment naming an agency is caught by the comment listing"
    assert not quiet & set(got), "the other comments of an ambiguity are not read"
    assert trees[unsettled] == trees[shared] == [] and trees[settled], "only the attributed thread is read"
    with store.connect() as conn:
        rows = dict(conn.execute(
            select(Post.platform_post_id, AmbiguousMention.candidates)
            .join(AmbiguousMention, AmbiguousMention.post_id == Post.id)
            .where(Post.platform_post_id.in_([unsettled, shared, settled]))
        ).all())
        attributed = set(conn.execute(
            select(Post.platform_post_id).join(PostMention, PostMention.post_id == Post.id)
            .where(Post.platform_post_id.in_([unsettled, shared, settled]))
        ).scalars())
    assert set(rows) == {unsettled, shared} and attributed == {settled}
    assert set(apd) <= set(rows[unsettled]) and len(apd) >= 5
    assert "ia-clinton-police-department" in rows[shared] and len(rows[shared]) >= 19


def test_the_search_plan_leaves_ambiguity_only_submissions_to_the_listings(sqlite_engine, registry, matcher):
    """The per-agency search plan searches the global subreddits for agency names, which a shared acronym
    alone is not: "APD arrested two men downtown" and "Clinton PD ..." are not found (nor stored) there.
    Nor is "APD ... in Austin", though attributed: Reddit searches have no acronym-and-city pairs (X's have),
    a gap of the search plan (docs/REGISTRY.md, Known gaps) that the listing plan does not have."""
    from trustwatch.collectors.agencies import compile_reddit_queries
    from trustwatch.collectors.reddit import plan_queries

    with SandboxServer(corpus_config()) as server:
        _apd, unsettled, shared, settled = add_ambiguities(server.reddit.corpus, DAY.end - dt.timedelta(hours=2))
        summaries = collect(sqlite_engine, server, registry, matcher,
                            plan_queries(compile_reddit_queries(registry), registry))
        truth = server.reddit.ground_truth(DAY.start, DAY.end)
        missed = {settled, *server.reddit.corpus.submissions[settled].all_comments}
    assert {s.status for s in summaries} == {"success"} and not any(s.coverage_gap for s in summaries)
    got = stored(sqlite_engine)
    assert unsettled not in got and shared not in got
    assert set(got) == truth - missed


def test_a_narrowed_run_keeps_the_ambiguities_of_its_agencies_and_its_dry_run_counts_them(
    sqlite_engine, registry, matcher
):
    """A run for NYPD alone leaves "APD arrested two men downtown" out (NYPD is no candidate of APD), a run
    for Austin's police keeps it; "Clinton PD ..." is kept by neither.  The dry run of the submission
    listings counts what they keep: the agencies' submissions and their ambiguities."""
    with SandboxServer(corpus_config()) as server:
        corpus = server.reddit.corpus
        _apd, unsettled, shared, _settled = add_ambiguities(corpus, DAY.end - dt.timedelta(hours=2))
        collector = make_collector(server, matcher)
        listings = {slug: [q for q in listing_first_queries(registry, agencies=[slug]) if q.kind == "new"]
                    for slug in ("nypd", "austin-pd")}
        counted = {slug: sum(collector.count(q, DAY) for q in queries) for slug, queries in listings.items()}
        expected = {slug: len(corpus.submission_ids(DAY.start, DAY.end, [slug])
                              | corpus.ambiguous_truth(DAY.start, DAY.end, [slug])) for slug in listings}
        collect(sqlite_engine, server, registry, matcher, listings["nypd"])
        after_nypd = stored(sqlite_engine)
        collect(sqlite_engine, server, registry, matcher, listings["austin-pd"])
        after_austin = stored(sqlite_engine)
    assert unsettled in corpus.ambiguous_truth(DAY.start, DAY.end, ["austin-pd"])
    assert counted == expected
    assert unsettled not in after_nypd and shared not in after_nypd
    assert unsettled in after_austin and shared not in after_austin

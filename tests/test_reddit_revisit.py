"""Thread revisits: late comments and final scores, read again as threads age (real praw, the sandbox)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select
from trustwatch.collectors.agencies import compile_reddit_queries
from trustwatch.collectors.reddit import RedditCollector, RedditSettings, plan_queries
from trustwatch.collectors.reddit_revisit import due_threads, parse_ages, revisit_key, run_revisits
from trustwatch.collectors.runner import run_query
from trustwatch.models import store as store_module
from trustwatch.models.tables import Agency, CollectionRun, MetricSnapshot, Post, PostMention
from trustwatch.sandbox.common import CorpusConfig
from trustwatch.sandbox.server import SandboxServer

from trustwatch.records import Window

END = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
SOME = ["austin-pd", "nypd", "denver-pd", "seattle-pd"]
SECRET = "sandbox-secret"
#: Two days before the corpus's last day: its threads keep getting comments for a week.
WINDOW = Window(END - dt.timedelta(days=3), END - dt.timedelta(days=1))


@pytest.fixture(scope="module")
def sandbox():
    """The corpus and the sandbox's clock both fixed (at the corpus end): nothing here reads the wall clock."""
    with SandboxServer(CorpusConfig(seed=5, posts=800, end=END, days=7, now=END)) as server:
        yield server


class Clock:
    """The sandbox's now, moved by the tests (like ``--now``) from the fixed start."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def server(sandbox):
    fixed = sandbox.reddit.clock
    clock = Clock(sandbox.config.now)
    sandbox.reddit.clock = clock
    sandbox.clear_log()
    sandbox.clock = clock
    yield sandbox
    sandbox.reddit.clock = fixed


def make_collector(server) -> RedditCollector:
    settings = RedditSettings(
        client_id="sandbox-client", client_secret=SECRET, user_agent="trustwatch-tests/0.1 by u/trustwatch",
        base_url=server.url, backoff_seconds=0.01,
    )
    return RedditCollector(settings, None, sleep=lambda seconds: None)  # type: ignore[arg-type]


def collect_window(engine, server, registry, matcher, window=WINDOW):
    """The hourly collection, run right when the window closes."""
    server.clock.now = window.end
    store_module.sync_agencies(engine, registry.entries)
    collector = make_collector(server)
    collector.matcher = matcher
    queries = plan_queries(compile_reddit_queries(registry, agencies=SOME), registry)
    for query in queries:
        assert run_query(engine, collector, query, window, matcher=matcher).status == "success"


def revisit(engine, server, matcher, now, **kwargs):
    server.clock.now = now
    collector = make_collector(server)
    collector.matcher = matcher
    return run_revisits(engine, collector, matcher=matcher, now=now, **kwargs)


def stored(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(Post.platform_post_id).where(Post.platform == "reddit")).scalars())


def test_revisits_store_every_comment_of_the_attributed_threads(store, server, registry, matcher):
    engine = store
    collect_window(engine, server, registry, matcher)
    truth = server.reddit.ground_truth(WINDOW.start, WINDOW.end, SOME)
    first = stored(engine)
    assert first < truth, "read once at the end of its window, a thread lacks its late comments"
    missing = truth - first

    for hours in (6, 24, 72, 8 * 24):  # the hourly task, at a few moments after the window
        summary = revisit(engine, server, matcher, WINDOW.end + dt.timedelta(hours=hours))
        assert summary.failed == 0
    corpus = server.reddit.corpus
    # a thread its author deleted (or moderators removed) is followed no more: its later comments are not
    # expected; every other thread is complete
    gone = {sid for sid in truth if sid in corpus.submissions and corpus.submissions[sid].removed_by_category}
    open_truth = {i for i in truth if (corpus.comments[i].link_id if i in corpus.comments else i) not in gone}
    assert open_truth < truth, "the window has a deleted or removed thread"
    assert open_truth <= stored(engine) <= truth, "after the revisits the store holds every comment of the threads"
    missing = stored(engine) - first

    with engine.connect() as conn:
        runs = conn.execute(
            select(CollectionRun.query_key, CollectionRun.query_version, CollectionRun.posts_new, CollectionRun.notes,
                   CollectionRun.status)
            .where(CollectionRun.source == "revisit")
        ).all()
        mentions = conn.execute(
            select(Post.platform_post_id, Agency.slug, PostMention.match_kind)
            .join(PostMention, PostMention.post_id == Post.id).join(Agency, Agency.id == PostMention.agency_id)
        ).all()
        snapshots = conn.execute(
            select(Post.platform_post_id, MetricSnapshot.score, MetricSnapshot.reply_count)
            .join(MetricSnapshot, MetricSnapshot.post_id == Post.id)
            .order_by(MetricSnapshot.observed_at, MetricSnapshot.id)
        ).all()
    assert {r.status for r in runs} == {"success"}
    for r in runs:
        sid = r.query_key.removeprefix("reddit-revisit-t3_")
        assert r.notes["final"] == (sid in gone)
    assert sum(r.notes["comments_added"] for r in runs) == len(missing), "each revisit says what it added"
    assert all(r.notes["thread_state"] in ("open", "locked", "deleted", "removed") for r in runs)
    threads = {sid for sid in truth if sid in corpus.submissions}
    assert {r.query_key for r in runs} == {revisit_key(sid) for sid in threads}
    # every late comment carries its thread's agencies
    by_post: dict[str, set[str]] = {}
    for sid, slug, _kind in mentions:
        by_post.setdefault(sid, set()).add(slug)
    for cid in missing:
        link = corpus.comments[cid].link_id
        assert set(corpus.submissions[link].agencies) <= by_post.get(cid, set())
    # the submission's last snapshot has its final score and comment count
    last: dict[str, tuple[int, int]] = {}
    counts: dict[str, int] = {}
    for sid, score, replies in snapshots:
        last[sid] = (score, replies)
        counts[sid] = counts.get(sid, 0) + 1
    for sid in threads:
        submission = corpus.submissions[sid]
        if sid not in gone:
            assert last[sid] == (submission.score, len(submission.all_comments))
        assert counts[sid] >= 2, "a snapshot at collection and at each revisit"

    server.clear_log()
    again = revisit(engine, server, matcher, WINDOW.end + dt.timedelta(hours=8 * 24 + 1))
    assert again.due == 0 and not [r for r in server.request_log if "/comments/" in r.path], "nothing read twice"


def test_a_locked_or_deleted_thread_is_recorded_and_not_read_again(sqlite_engine, server, registry, matcher):
    engine = sqlite_engine
    collect_window(engine, server, registry, matcher)
    corpus = server.reddit.corpus
    threads = sorted(sid for sid in stored(engine) if sid in corpus.submissions)
    locked, deleted = corpus.submissions[threads[0]], corpus.submissions[threads[1]]
    saved = (deleted.author, deleted.selftext, deleted.removed_by_category)
    try:
        locked.locked = True
        deleted.author, deleted.selftext, deleted.removed_by_category = "[deleted]", "[deleted]", "deleted"
        revisit(engine, server, matcher, WINDOW.end + dt.timedelta(hours=24))
        with engine.connect() as conn:
            notes = dict(conn.execute(
                select(CollectionRun.query_key, CollectionRun.notes).where(CollectionRun.source == "revisit")
            ).all())
            tombstone = conn.execute(
                select(Post.deleted_reason).where(Post.platform_post_id == deleted.id)
            ).scalar_one()
        assert notes[revisit_key(locked.id)]["thread_state"] == "locked"
        assert notes[revisit_key(deleted.id)]["thread_state"] == "deleted"
        assert notes[revisit_key(locked.id)]["final"] and notes[revisit_key(deleted.id)]["final"]
        assert tombstone == "[deleted]"

        server.clear_log()
        later = revisit(engine, server, matcher, WINDOW.end + dt.timedelta(days=5))
        paths = [r.path for r in server.request_log]
        assert later.revisited > 0
        assert not [p for p in paths if f"/comments/{locked.id}" in p or f"/comments/{deleted.id}" in p]
    finally:
        locked.locked = False
        deleted.author, deleted.selftext, deleted.removed_by_category = saved


def test_the_budget_bounds_a_revisit_and_leaves_a_visible_gap(sqlite_engine, server, registry, matcher):
    engine = sqlite_engine
    collect_window(engine, server, registry, matcher, Window(END - dt.timedelta(days=7), WINDOW.end))
    revisit(engine, server, matcher, WINDOW.end + dt.timedelta(days=8), budget=1)
    with engine.connect() as conn:
        runs = conn.execute(
            select(CollectionRun.requests, CollectionRun.coverage_gap, CollectionRun.notes)
            .where(CollectionRun.source == "revisit")
        ).all()
    assert runs
    assert max(r.requests for r in runs[1:]) == 1, "one request per thread (the first also got the token)"
    cut = [r for r in runs if r.notes["more_stubs_unresolved"]]
    assert cut, "some threads have more comments than one request shows"
    assert all(r.coverage_gap for r in cut) and not any(r.coverage_gap for r in runs if r not in cut)


def test_due_threads_take_the_oldest_age_reached(sqlite_engine, server, registry, matcher):
    collect_window(sqlite_engine, server, registry, matcher)
    ages = parse_ages("6h,1d,3d")
    due = due_threads(sqlite_engine, WINDOW.end + dt.timedelta(days=2), ages)
    assert due and {d.age for d in due} <= {dt.timedelta(hours=24), dt.timedelta(days=3)}
    assert all(d.created_at + d.age <= WINDOW.end + dt.timedelta(days=2) for d in due)
    with pytest.raises(ValueError, match="not like"):
        parse_ages("6 hours")


def test_the_command_line_runs_the_due_revisits(tmp_path, server, registry, matcher, monkeypatch, capsys):
    from trustwatch.models.db import make_engine

    from trustwatch import cli, migrate

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    monkeypatch.setenv("TRUSTWATCH_DATABASE_URL", url)
    monkeypatch.delenv("AIRFLOW_CONN_TRUSTWATCH_DB", raising=False)
    monkeypatch.delenv("TRUSTWATCH_PSEUDONYMIZE_KEY", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_REDDIT_API", json.dumps({
        "conn_type": "http", "login": "sandbox-client", "password": SECRET,
        "extra": {"base_url": server.url, "user_agent": "trustwatch-tests/0.1 by u/tw"}}))
    collect_window(engine, server, registry, matcher)
    before = stored(engine)
    now = WINDOW.end + dt.timedelta(days=8)
    server.clock.now = now
    assert cli.main(["revisit", "reddit", "--now", now.isoformat().replace("+00:00", "Z")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["revisited"] > 0 and out["comments_added"] == len(stored(engine) - before) > 0
    assert stored(engine) <= server.reddit.ground_truth(WINDOW.start, WINDOW.end, SOME)



def test_a_deleted_account_is_scrubbed_to_a_tombstone(sqlite_engine, server, registry, matcher):
    """Reddit's Data API terms: a deleted account's username and profile leave the store (the row stays)."""
    from trustwatch.models.tables import Author

    engine = sqlite_engine
    collect_window(engine, server, registry, matcher)
    corpus = server.reddit.corpus
    with engine.connect() as conn:
        rows = conn.execute(
            select(Post.platform_post_id, Post.author_id, Post.author_platform_id)
            .where(Post.platform == "reddit", Post.kind == "comment", Post.author_id.is_not(None))
        ).all()
    row = next(r for r in rows if corpus.comments[r.platform_post_id].body not in ("[deleted]", "[removed]"))
    name = row.author_platform_id
    with engine.connect() as conn:
        authors_before = conn.execute(select(Author.id)).scalars().all()
    saved = {t.id: t.author for t in [*corpus.submissions.values(), *corpus.comments.values()] if t.author == name}
    try:
        assert corpus.delete_account(name) >= 1
        summary = revisit(engine, server, matcher, WINDOW.end + dt.timedelta(days=8))
    finally:
        for thing in [*corpus.submissions.values(), *corpus.comments.values()]:
            if thing.id in saved:
                thing.author = saved[thing.id]
    assert summary.authors_scrubbed >= 1
    with engine.connect() as conn:
        tomb = conn.execute(select(Author.__table__).where(Author.id == row.author_id)).one()
        authors_after = conn.execute(select(Author.id)).scalars().all()
        theirs = conn.execute(
            select(Post.author_platform_id, Post.raw, Post.text).where(Post.author_id == row.author_id)
        ).all()
        everything = json.dumps([list(r) for r in conn.execute(select(Post.raw, Post.author_platform_id)).all()])
        author_dump = json.dumps([list(r) for r in conn.execute(select(Author.__table__)).all()], default=str)
    assert set(authors_before) <= set(authors_after), "the tombstone keeps the row id"
    assert tomb.username is None and tomb.platform_user_id == f"[deleted]#{row.author_id}"
    assert theirs and all(p.author_platform_id == "[deleted]" for p in theirs)
    assert all(p.text for p in theirs), "the text stays: only the account is gone"
    assert name not in everything and name not in author_dump

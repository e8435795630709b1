"""Deletion compliance against the sandboxes: what the platforms delete, remove or withhold is tombstoned."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pytest
from sqlalchemy import func, select, text
from trustwatch.collectors.agencies import compile_reddit_queries, compile_x_queries
from trustwatch.collectors.compliance import check_compliance
from trustwatch.collectors.reddit import RedditCollector, RedditSettings, plan_queries
from trustwatch.collectors.runner import run_query
from trustwatch.collectors.x import XCollector, XSettings
from trustwatch.models import store as store_module
from trustwatch.models.tables import CollectionRun, Post
from trustwatch.sandbox.common import CorpusConfig
from trustwatch.sandbox.server import SandboxServer

from trustwatch import cli
from trustwatch.records import Window

END = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
X_TOKEN = "compliance-x-token-99"
SOME = ["austin-pd", "nypd", "denver-pd", "seattle-pd"]
WINDOW = Window(END - dt.timedelta(days=2), END)


@pytest.fixture
def sandbox() -> Any:
    """A fresh sandbox per test: the tests delete posts from its corpus."""
    with SandboxServer(CorpusConfig(seed=31, posts=700, end=END, days=7), x_bearer_token=X_TOKEN) as server:
        yield server


def x_collector(server: SandboxServer) -> XCollector:
    return XCollector(XSettings(bearer_token=X_TOKEN, base_url=server.url, timeout=5, max_query_length=4096),
                      sleep=lambda s: None)


def reddit_collector(server: SandboxServer, matcher: Any) -> RedditCollector:
    settings = RedditSettings(client_id="sandbox-client", client_secret="sandbox-secret",
                              user_agent="trustwatch-tests/0.1 by u/trustwatch", base_url=server.url,
                              backoff_seconds=0.01)
    return RedditCollector(settings, matcher, sleep=lambda s: None)


def collect_x(engine: Any, server: SandboxServer, registry: Any, matcher: Any) -> None:
    store_module.sync_agencies(engine, registry.entries)
    for query in compile_x_queries(registry, 4096):
        run_query(engine, x_collector(server), query, WINDOW, matcher=matcher)


def collect_reddit(engine: Any, server: SandboxServer, registry: Any, matcher: Any) -> None:
    store_module.sync_agencies(engine, registry.entries)
    for query in plan_queries(compile_reddit_queries(registry, agencies=SOME), registry):
        run_query(engine, reddit_collector(server, matcher), query, WINDOW, matcher=matcher)


def posts(engine: Any, platform: str) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(select(Post.__table__).where(Post.platform == platform)).all()
        return {p.platform_post_id: p for p in rows}


def visible_in_view(engine: Any) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT platform_post_id FROM agency_mentions")).scalars())


def test_x_lookup_opt_in_tombstones_deleted_and_withheld_posts_in_batches_of_100(sandbox: SandboxServer, store: Any,
                                                                        registry: Any, matcher: Any) -> None:
    collect_x(store, sandbox, registry, matcher)
    before = posts(store, "x")
    assert len(before) > 100  # more than one lookup batch
    # the corpus withholds a few posts from the start: a first check tombstones those
    first = check_compliance(store, x_collector=x_collector(sandbox), x_jobs=False, x_lookup_hours=30 * 24, now=END)
    assert first["x_lookup"]["reasons"].get("withheld", 0) >= 1
    baseline = {i for i, p in posts(store, "x").items() if p.deleted_at is not None}
    before = {i: p for i, p in posts(store, "x").items() if i not in baseline}
    mentioned = visible_in_view(store)
    tweets = sandbox.x.corpus.tweets
    plain = sorted(i for i in mentioned if i in tweets and not tweets[i].edit_history)
    doomed, withheld, protected = plain[:5], plain[5:7], plain[7:8]
    for tweet_id in doomed:
        sandbox.x.corpus.delete(tweet_id)
    for tweet_id in withheld:
        tweets[tweet_id].withheld = ["DE", "FR"]
    for tweet_id in protected:
        sandbox.x.corpus.protect(tweet_id)
    sandbox.clear_log()

    result = check_compliance(store, x_collector=x_collector(sandbox), x_jobs=False, x_lookup_hours=30 * 24, now=END)

    lookups = sandbox.requests_to("/2/tweets")
    assert [r.path for r in lookups] == ["/2/tweets"] * math.ceil(len(before) / 100)
    assert all(len(r.query["ids"][0].split(",")) <= 100 for r in lookups)
    assert {i for r in lookups for i in r.query["ids"][0].split(",")} == set(before)  # tombstones not asked again
    assert result["x_lookup"]["checked"] == len(before)
    assert result["x_lookup"]["reasons"] == {"not_found": 5, "withheld": 2, "protected": 1}
    after = posts(store, "x")
    for tweet_id in doomed + withheld + protected:
        post = after[tweet_id]
        assert (post.text, post.title, post.raw) == ("", None, None)
        assert post.deleted_at is not None
    assert {after[i].deleted_reason for i in doomed} == {"not_found"}
    assert {after[i].deleted_reason for i in withheld} == {"withheld"}
    assert {after[i].deleted_reason for i in protected} == {"protected"}
    untouched = set(before) - set(doomed) - set(withheld) - set(protected)
    assert all(after[i].text == before[i].text and after[i].deleted_at is None for i in untouched)
    assert visible_in_view(store) == mentioned - set(doomed) - set(withheld) - set(protected)

    with store.connect() as conn:
        ledger = conn.execute(select(CollectionRun.__table__).where(CollectionRun.source == "compliance")
                              .order_by(CollectionRun.id.desc())).first()
    assert (ledger.platform, ledger.status, ledger.posts_seen, ledger.posts_updated) == ("x", "success",
                                                                                         len(before), 8)
    assert ledger.requests == len(lookups)
    assert ledger.notes["reasons"] == {"not_found": 5, "withheld": 2, "protected": 1}

    # the next check has nothing new to tombstone, and a later sighting does not bring content back
    again = check_compliance(store, x_collector=x_collector(sandbox), x_jobs=False, x_lookup_hours=30 * 24, now=END)
    assert again["x_lookup"]["checked"] == len(before) - 8 and again["x_lookup"]["tombstoned"] == 0
    sandbox.x.corpus.tweets[withheld[0]].withheld = None
    page = x_collector(sandbox).lookup([withheld[0]])
    store_module.write_page(store, page)
    assert posts(store, "x")[withheld[0]].text == ""


def test_the_x_lookup_opt_in_reads_only_the_last_hours(sandbox: SandboxServer, sqlite_engine: Any,
                                                               registry: Any, matcher: Any) -> None:
    collect_x(sqlite_engine, sandbox, registry, matcher)
    stored = posts(sqlite_engine, "x")
    cutoff = END - dt.timedelta(days=1)
    young = {i for i, p in stored.items() if p.created_at >= cutoff}
    assert 0 < len(young) < len(stored)
    sandbox.clear_log()
    result = check_compliance(sqlite_engine, x_collector=x_collector(sandbox), x_jobs=False, x_lookup_hours=24,
                              batch=40, now=END)
    asked = {i for r in sandbox.requests_to("/2/tweets") for i in r.query["ids"][0].split(",")}
    assert asked == young and result["x_lookup"]["checked"] == len(young)
    assert all(len(r.query["ids"][0].split(",")) <= 40 for r in sandbox.requests_to("/2/tweets"))
    with pytest.raises(ValueError, match="between 1 and 100"):
        check_compliance(sqlite_engine, x_collector=x_collector(sandbox), batch=101)


def test_reddit_deleted_removed_and_vanished_things_are_tombstoned(sandbox: SandboxServer, store: Any,
                                                                    registry: Any, matcher: Any) -> None:
    collect_reddit(store, sandbox, registry, matcher)
    before = posts(store, "reddit")
    corpus = sandbox.reddit.corpus
    already = {i for i, p in before.items() if p.deleted_at is not None}  # collected as [deleted] already
    submissions = sorted(i for i, p in before.items() if p.kind == "submission" and i not in already)
    comments = sorted(i for i, p in before.items() if p.kind == "comment" and i not in already)
    assert len(submissions) >= 3 and len(comments) >= 3
    corpus.comments[comments[0]].body = "[deleted]"
    corpus.comments[comments[0]].author = "[deleted]"
    corpus.comments[comments[1]].body = "[removed]"
    del corpus.comments[comments[2]]
    removed = corpus.submissions[submissions[0]]
    removed.selftext, removed.removed_by_category = "[removed]", "moderator"
    sandbox.clear_log()

    result = check_compliance(store, reddit_collector=reddit_collector(sandbox, matcher), now=END)

    infos = [r for r in sandbox.request_log if r.path.rstrip("/").endswith("/api/info")]
    assert len(infos) == math.ceil((len(before) - len(already)) / 100)
    assert all(len(r.query["id"][0].split(",")) <= 100 for r in infos)
    sent = {n for r in infos for n in r.query["id"][0].split(",")}
    assert f"t3_{submissions[0]}" in sent and f"t1_{comments[0]}" in sent
    after = posts(store, "reddit")
    expected = {comments[0]: "[deleted]", comments[1]: "[removed]", comments[2]: "not_found",
                submissions[0]: "[removed]"}
    assert {i: p.deleted_reason for i, p in after.items() if p.deleted_at is not None and i not in already} == expected
    assert all((after[i].text, after[i].title, after[i].raw) == ("", None, None) for i in expected)
    assert result["reddit"]["tombstoned"] == 4 and result["reddit"]["checked"] == len(before) - len(already)
    assert not visible_in_view(store) & set(expected)
    with store.connect() as conn:
        ledger = conn.execute(select(CollectionRun.__table__).where(CollectionRun.source == "compliance")).one()
    assert (ledger.platform, ledger.status, ledger.posts_updated) == ("reddit", "success", 4)


def test_trustwatch_compliance_command_uses_the_connections(sandbox: SandboxServer, tmp_path: Any, registry: Any,
                                                            matcher: Any, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from trustwatch.models.db import make_engine

    from trustwatch import migrate

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    collect_x(engine, sandbox, registry, matcher)
    gone = sorted(posts(engine, "x"))[:3]
    for tweet_id in gone:
        sandbox.x.corpus.delete(tweet_id)
    monkeypatch.setenv("TRUSTWATCH_DATABASE_URL", url)
    monkeypatch.delenv("AIRFLOW_CONN_TRUSTWATCH_DB", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_REDDIT_API", raising=False)
    monkeypatch.setenv("TRUSTWATCH_COMPLIANCE_POLL_SECONDS", "0")
    monkeypatch.setenv("AIRFLOW_CONN_X_API", json.dumps(
        {"conn_type": "http", "password": X_TOKEN, "extra": {"base_url": sandbox.url}}))
    # the corpus ends on END (in the past): ask for posts younger than now - END + 2 days
    age = (dt.datetime.now(dt.UTC) - END).total_seconds() / 86400 + 2
    assert cli.main(["compliance", "--max-age-days", f"{age:.3f}"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["x"]["tombstoned"] == 3 and out["left_out"] == ["reddit: connection 'reddit_api' is not configured"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Post).where(Post.deleted_at.isnot(None))).scalar() == 3

    monkeypatch.delenv("AIRFLOW_CONN_X_API")
    assert cli.main(["compliance"]) == 2
    assert "x_api or the reddit_api connection" in capsys.readouterr().err

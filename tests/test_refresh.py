"""Metrics refresh (issue 14, point 5): engagement is read again at 1 and 7 days, billed reads are shown in
the dry run and the ledger, a monthly budget stops it before the cap, and it can be switched off."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select
from trustwatch.collectors.refresh import RefreshError, RefreshSettings, refresh_metrics
from trustwatch.models import store as store_module
from trustwatch.models.tables import CollectionRun, MetricSnapshot, Post
from trustwatch.sandbox.common import CorpusConfig
from trustwatch.sandbox.server import SandboxServer

from tests.test_compliance import END, X_TOKEN, collect_x, x_collector


class Clock:
    """The store's clock, moved by the test: snapshots and ledger rows carry the simulated time.  It ticks
    a millisecond per reading, as a real clock moves between two writes."""

    def __init__(self, moment: dt.datetime) -> None:
        self._moment = moment
        self._ticks = 0

    @property
    def moment(self) -> dt.datetime:
        return self._moment

    @moment.setter
    def moment(self, value: dt.datetime) -> None:
        self._moment, self._ticks = value, 0

    def __call__(self) -> dt.datetime:
        self._ticks += 1
        return self._moment + dt.timedelta(milliseconds=self._ticks)


@pytest.fixture
def sandbox() -> Any:
    with SandboxServer(CorpusConfig(seed=31, posts=700, end=END, days=7), x_bearer_token=X_TOKEN) as server:
        yield server


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moment = Clock(END)
    monkeypatch.setattr(store_module, "utcnow", moment)
    return moment


def live_posts(engine: Any) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(select(Post.__table__).where(Post.platform == "x", Post.deleted_at.is_(None),
                                                         Post.kind != "repost")).all()
    return {r.platform_post_id: r for r in rows}


def snapshots(engine: Any, run_id: int | None = None) -> int:
    query = select(func.count()).select_from(MetricSnapshot)
    if run_id is not None:
        query = query.where(MetricSnapshot.run_id == run_id)
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


def ledger(engine: Any, run_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(CollectionRun.__table__).where(CollectionRun.id == run_id)).one()


def asked_ids(server: SandboxServer) -> list[str]:
    return [i for r in server.requests_to("/2/tweets") for i in r.query["ids"][0].split(",")]


def test_posts_are_read_again_at_one_and_seven_days_and_each_read_appends_a_snapshot(
    sandbox: SandboxServer, store: Any, registry: Any, matcher: Any, clock: Clock
) -> None:
    collect_x(store, sandbox, registry, matcher)
    stored = live_posts(store)
    young = {i for i, p in stored.items() if p.created_at > END - dt.timedelta(days=1)}
    assert 40 < len(young) < len(stored)  # more than one batch of 40, and not everything
    small = RefreshSettings(batch=40)
    for tweet_id in young:
        if tweet_id in sandbox.x.corpus.tweets:
            sandbox.x.corpus.tweets[tweet_id].likes += 1000
    clock.moment = END + dt.timedelta(days=1, hours=1)
    sandbox.clear_log()
    sandbox.x.meter.reset()

    dry = refresh_metrics(store, x_collector(sandbox), small, dry_run=True)
    assert sandbox.requests_to("/2/tweets") == []  # a dry run reads nothing
    assert dry["due"] == len(young) and dry["billed_reads_expected"] == len(young)
    row = ledger(store, dry["run_id"])
    assert (row.status, row.expected_posts, row.notes["due_by_age"]) == ("dry_run", len(young), {"1d": len(young)})

    before = snapshots(store)
    done = refresh_metrics(store, x_collector(sandbox), small)
    lookups = sandbox.requests_to("/2/tweets")
    assert all(len(r.query["ids"][0].split(",")) <= 40 for r in lookups) and len(lookups) == -(-len(young) // 40)
    assert set(asked_ids(sandbox)) == young
    assert all("expansions" not in r.query for r in lookups)  # users returned would be billed too
    # an edited post is stored under its first version's id, which the sandbox's lookup does not serve
    served = {i for i in young if i in sandbox.x.corpus.tweets}
    assert len(served) >= len(young) - 3
    assert sandbox.x.meter.users == 0 and sandbox.x.meter.posts == len(served)
    row = ledger(store, done["run_id"])
    assert (row.status, row.posts_seen, row.notes["billed_reads"]) == ("success", len(served), len(served))
    assert row.notes["unavailable"] == len(young - served)
    assert snapshots(store, done["run_id"]) == len(served) and snapshots(store) == before + len(served)
    after = live_posts(store)
    assert all(after[i].like_count >= 1000 for i in served)

    # the same day again: only what X did not return is due, and nothing is billed
    sandbox.x.meter.reset()
    again = refresh_metrics(store, x_collector(sandbox))
    assert again["due"] == len(young - served) and sandbox.x.meter.total == 0

    # at seven days every post collected in the window is due once more, then never again
    clock.moment = END + dt.timedelta(days=7, hours=1)
    week = refresh_metrics(store, x_collector(sandbox))
    # reposted originals older than the window are stored too; past 7 + 3 days they are not caught up
    recent = {i for i, p in stored.items() if p.created_at > clock.moment - dt.timedelta(days=10)}
    assert len(recent) > len(young)
    assert week["due"] == len(recent) and week["due_by_age"] == {"7d": len(recent)}
    assert week["billed_reads"] == len({i for i in recent if i in sandbox.x.corpus.tweets})
    clock.moment = END + dt.timedelta(days=8)
    unserved = {i for i in recent if i not in sandbox.x.corpus.tweets}
    assert refresh_metrics(store, x_collector(sandbox))["due"] == len(unserved)
    clock.moment = END + dt.timedelta(days=40)
    assert refresh_metrics(store, x_collector(sandbox))["due"] == 0


def test_the_monthly_read_budget_stops_the_refresh_before_the_cap_and_the_ledger_says_so(
    sandbox: SandboxServer, sqlite_engine: Any, registry: Any, matcher: Any, clock: Clock
) -> None:
    collect_x(sqlite_engine, sandbox, registry, matcher)
    with sqlite_engine.connect() as conn:
        spent = conn.execute(select(func.sum(CollectionRun.posts_seen))).scalar_one()
    assert spent > 0  # the collection's reads count against the month
    clock.moment = END + dt.timedelta(days=1, hours=1)
    sandbox.clear_log()
    sandbox.x.meter.reset()
    settings = RefreshSettings.from_extra({"monthly_read_budget": spent + 30})

    dry = refresh_metrics(sqlite_engine, x_collector(sandbox), settings, dry_run=True)
    assert dry["billed_reads_expected"] == 30 and dry["skipped_over_budget"] == dry["due"] - 30

    result = refresh_metrics(sqlite_engine, x_collector(sandbox), settings)
    assert len(asked_ids(sandbox)) == 30  # what fits under the budget; X bills what it returns
    assert sandbox.x.meter.total == result["billed_reads"] <= 30
    assert result["skipped_over_budget"] == result["due"] - 30 > 0
    row = ledger(sqlite_engine, result["run_id"])
    assert row.coverage_gap is True and row.notes["skipped_over_budget"] == result["due"] - 30
    assert row.notes["month_reads_before"] == spent and row.notes["budget"] == spent + 30

    # the budget is spent: the next run reads nothing at all
    sandbox.clear_log()
    with sqlite_engine.connect() as conn:
        spent_now = conn.execute(select(func.sum(CollectionRun.posts_seen))).scalar_one()
    assert spent_now == spent + result["billed_reads"]
    settings = RefreshSettings.from_extra({"monthly_read_budget": spent_now})
    again = refresh_metrics(sqlite_engine, x_collector(sandbox), settings)
    assert again["billed_reads"] == 0 and sandbox.requests_to("/2/tweets") == []
    assert again["skipped_over_budget"] == again["due"] > 0


def test_the_refresh_has_an_off_switch_and_configurable_ages(
    sandbox: SandboxServer, sqlite_engine: Any, registry: Any, matcher: Any, clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    collect_x(sqlite_engine, sandbox, registry, matcher)
    clock.moment = END + dt.timedelta(days=1, hours=1)
    sandbox.clear_log()
    with sqlite_engine.connect() as conn:
        rows_before = conn.execute(select(func.count()).select_from(CollectionRun)).scalar_one()
    off = refresh_metrics(sqlite_engine, x_collector(sandbox), RefreshSettings.from_extra({"metrics_refresh": False}))
    assert off["status"] == "off" and sandbox.requests_to("/2/tweets") == []
    monkeypatch.setenv("TRUSTWATCH_METRICS_REFRESH", "off")
    assert RefreshSettings.from_extra({"metrics_refresh": True}).enabled is False
    monkeypatch.delenv("TRUSTWATCH_METRICS_REFRESH")
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CollectionRun)).scalar_one() == rows_before
    # only a 2-day age: the posts older than 2 days are due (for "2d"), the younger ones are not yet, and
    # those collected (at END) when they were 2 days old already are not either
    two_days = RefreshSettings.from_extra({"refresh_ages_days": [2]})
    planned = refresh_metrics(sqlite_engine, x_collector(sandbox), two_days, dry_run=True)
    expected = {i for i, p in live_posts(sqlite_engine).items()
                if END - dt.timedelta(days=2) < p.created_at <= clock.moment - dt.timedelta(days=2)}
    assert 0 < planned["due"] == len(expected) and planned["due_by_age"] == {"2d": len(expected)}
    with pytest.raises(RefreshError, match="refresh_ages_days"):
        RefreshSettings.from_extra({"refresh_ages_days": ["soon"]})
    with pytest.raises(RefreshError, match="monthly_read_budget"):
        RefreshSettings.from_extra({"monthly_read_budget": "lots"})


def test_trustwatch_refresh_dry_run_shows_the_billed_reads_and_the_budget(
    sandbox: SandboxServer, tmp_path: Any, registry: Any, matcher: Any, clock: Clock,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from trustwatch.models.db import make_engine

    from trustwatch import cli, migrate

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    collect_x(engine, sandbox, registry, matcher)
    monkeypatch.setenv("TRUSTWATCH_DATABASE_URL", url)
    monkeypatch.delenv("AIRFLOW_CONN_TRUSTWATCH_DB", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_X_API", json.dumps(
        {"conn_type": "http", "password": X_TOKEN, "extra": {"base_url": sandbox.url, "monthly_read_budget": 10**6}}))
    clock.moment = END + dt.timedelta(days=1, hours=1)
    sandbox.clear_log()
    assert cli.main(["refresh", "x", "--dry-run"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "dry_run" and out["due"] > 0 and out["billed_reads_expected"] == out["due"]
    assert out["budget"] == 10**6 and out["month_reads_before"] > 0
    assert sandbox.requests_to("/2/tweets") == []
    monkeypatch.setenv("AIRFLOW_CONN_X_API", json.dumps(
        {"conn_type": "http", "password": X_TOKEN, "extra": {"base_url": sandbox.url, "refresh_ages_days": "x"}}))
    assert cli.main(["refresh", "x"]) == 2
    assert "refresh_ages_days" in capsys.readouterr().err

"""Enrichment at scale (issue 19): parallel scoring gives the scores one process gives, scores land through
one bulk statement per batch, the rollups of scattered days are refreshed set-based, and finding the days
to refresh reads indexes, not the whole ``posts`` table."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, event, text
from trustwatch.analysis import trends
from trustwatch.analysis.scoring import MentionSpan, Scorer
from trustwatch.models.store import sync_agencies

from tests.store_helpers import AGENCIES
from tests.test_trends import make_post, oracle, rollup_snapshot, write

MOODS = ("good", "bad", "flat")


def _fill(engine: Engine, posts: int, days: int, step: int = 1) -> None:
    sync_agencies(engine, AGENCIES)
    slugs = [a.slug for a in AGENCIES]
    items = [make_post(i, day=(i % days) * step, mood=MOODS[i % 3],
                       agencies={slugs[i % len(slugs)]: "name", **({slugs[(i + 1) % len(slugs)]: "name"}
                                                                    if i % 4 == 0 else {})})
             for i in range(posts)]
    for i in range(0, len(items), 250):
        write(engine, items[i:i + 250])


def _scores(engine: Engine) -> dict[tuple[int, int], tuple[float, float]]:
    with engine.connect() as conn:
        return {(r.post_id, r.agency_id): (r.sentiment, r.trust_score) for r in conn.execute(
            text("SELECT post_id, agency_id, sentiment, trust_score FROM post_scores"))}


def _expected(engine: Engine) -> dict[tuple[int, int], tuple[float, float]]:
    """The scores one in-process Scorer gives, read straight from posts and mentions."""
    scorer = Scorer()
    spans: dict[int, list[MentionSpan]] = {}
    with engine.connect() as conn:
        for r in conn.execute(text("SELECT post_id, agency_id, start_offset, end_offset FROM post_mentions")):
            spans.setdefault(r.post_id, []).append(MentionSpan(r.agency_id, r.start_offset, r.end_offset))
        texts = {r.id: (r.text, r.title) for r in conn.execute(text("SELECT id, text, title FROM posts"))}
    out = {}
    for post_id, own in spans.items():
        for agency_id, score in scorer.score_post(*texts[post_id], own).items():
            out[(post_id, agency_id)] = (score.sentiment, score.trust)
    return out


def test_parallel_enrich_writes_the_scores_of_one_process(store: Engine, monkeypatch) -> None:
    _fill(store, 600, days=20)
    monkeypatch.setattr(trends, "PARALLEL_MIN_POSTS", 0)  # start the workers on this small store
    result = trends.enrich(store, batch_size=50, workers=2)
    assert result["workers"] == 2 and result["posts_scored"] == 600
    expected = _expected(store)
    assert len(expected) == 750 and result["scores_written"] == 750
    assert _scores(store) == expected
    # Nothing left: a second run scores nothing; the rollups equal a recomputation from the raw tables.
    assert trends.enrich(store, batch_size=50, workers=2)["posts_scored"] == 0
    from tests.test_trends import assert_same

    assert_same(rollup_snapshot(store), oracle(store))


def test_workers_setting(monkeypatch) -> None:
    monkeypatch.setenv(trends.WORKERS_ENV, "3")
    assert trends.enrich_workers() == 3
    assert trends.enrich_workers(1) == 1
    monkeypatch.delenv(trends.WORKERS_ENV)
    assert trends.enrich_workers() >= 1
    monkeypatch.setenv(trends.WORKERS_ENV, "many")
    with pytest.raises(ValueError, match=trends.WORKERS_ENV):
        trends.enrich_workers()
    monkeypatch.setenv(trends.WORKERS_ENV, "0")
    with pytest.raises(ValueError, match="at least 1"):
        trends.enrich_workers()


def _count_statements(engine: Engine, prefix: str) -> list[str]:
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany) -> None:
        if " ".join(statement.split()).upper().startswith(prefix):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    return seen


def test_scattered_days_refresh_in_one_statement_per_grain(store: Engine) -> None:
    # 40 days two days apart: 40 separate runs of days, 40 weeks' worth of day rows.
    _fill(store, 200, days=40, step=2)
    trends.enrich(store, workers=1)  # first run: builds from scratch
    with store.begin() as conn:
        conn.execute(text("DELETE FROM post_scores WHERE post_id % 3 = 0"))
    inserts = _count_statements(store, "INSERT INTO AGENCY_DAILY_TRENDS")
    deletes = _count_statements(store, "DELETE FROM AGENCY_DAILY_TRENDS")
    assert trends.enrich(store, workers=1, margin=dt.timedelta(0))["posts_scored"] > 0
    assert len(inserts) == 2 and len(deletes) == 2  # one per grain (day, week), not one per run of days
    from tests.test_trends import assert_same

    assert_same(rollup_snapshot(store), oracle(store))


def test_scores_go_in_one_statement_per_batch_on_postgres(pg_engine: Engine) -> None:
    _fill(pg_engine, 300, days=5)
    statements = _count_statements(pg_engine, "INSERT INTO POST_SCORES")
    result = trends.enrich(pg_engine, batch_size=100, workers=1)
    assert result["batches"] == 3 and result["scores_written"] == 375
    assert len(statements) == 3


def test_stale_days_reads_indexes_not_the_posts_table(pg_engine: Engine) -> None:
    _fill(pg_engine, 300, days=30)
    since = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with pg_engine.begin() as conn:
        conn.execute(text("ANALYZE"))
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        captured = _count_statements(pg_engine, "SELECT DISTINCT")
        trends.stale_days(conn, since)
        plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + captured[0], {"since": since}))
    # the tables are partitioned by month (migration 0026): each partition's copy of an index may serve
    assert "Seq Scan on posts" not in plan and "Seq Scan on metric_snapshots" not in plan, plan
    assert "Index Cond: (observed_at >=" in plan and "Index Cond: (deleted_at >=" in plan, plan


def test_stale_days_finds_resighted_and_tombstoned_posts(store: Engine) -> None:
    sync_agencies(store, AGENCIES)
    slug = AGENCIES[0].slug
    write(store, [make_post(i, day=i, agencies={slug: "name"}) for i in range(6)])
    since = dt.datetime.now(dt.UTC)
    write(store, [make_post(1, day=1, agencies={slug: "name"}), make_post(4, day=4, agencies={slug: "name"},
                                                                          deleted=True)])
    with store.connect() as conn:
        days = trends.stale_days(conn, since)
    day0 = dt.date(2026, 10, 5)
    assert days == {day0 + dt.timedelta(days=1), day0 + dt.timedelta(days=4)}


def test_workers_read_and_write_their_own_batches(store: Engine, monkeypatch) -> None:
    """With workers, this process only hands out post ids: the texts are read and the scores written by the
    worker processes over their own connections, so that database time overlaps with scoring."""
    _fill(store, 300, days=5)
    monkeypatch.setattr(trends, "PARALLEL_MIN_POSTS", 0)
    inserts = _count_statements(store, "INSERT INTO POST_SCORES")
    reads = _count_statements(store, "SELECT P.ID, P.TEXT")
    result = trends.enrich(store, batch_size=100, workers=2)
    assert result["batches"] == 3 and result["scores_written"] == 375
    assert inserts == [] and reads == []
    assert _scores(store) == _expected(store)

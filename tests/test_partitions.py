"""Monthly partitions on PostgreSQL (issue 18 §2): one row per post across sightings, partitions ready before
rows arrive, retention by detaching a month, and the migration's check of stored times."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import json
import logging
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, select, text
from trustwatch.collectors.x import snowflake_at, tweet_to_record
from trustwatch.models import partitions
from trustwatch.models import store as tw_store
from trustwatch.models.db import make_engine
from trustwatch.models.tables import MetricSnapshot, Post

from tests.store_helpers import AGENCIES, make_page
from trustwatch import cli, migrate
from trustwatch.records import Page

UTC = dt.UTC


@pytest.fixture
def synced(store: Engine) -> Engine:
    tw_store.sync_agencies(store, AGENCIES)
    return store


def rows(engine: Engine, sql: str, **params: object) -> list:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def page_at(ids: list[int], when: dt.datetime) -> Page:
    """A page of posts created at ``when`` (plus i milliseconds: below a second)."""
    page = make_page(ids)
    page.posts = [dataclasses.replace(p, created_at=when + dt.timedelta(milliseconds=7 * n + 3))
                  for n, p in enumerate(page.posts)]
    return page


def test_an_edited_post_stays_one_post(synced: Engine) -> None:
    """X gives the first version's time as '...:50.000Z' text and, once the post is edited, the first id's
    millisecond time: both sightings are one post (on PostgreSQL created_at is part of the posts' key)."""
    first_id = snowflake_at(dt.datetime(2026, 1, 31, 23, 59, 59, 987_000, tzinfo=UTC)) + 5
    edit_id = snowflake_at(dt.datetime(2026, 2, 1, 0, 4, 0, tzinfo=UTC)) + 9
    first = tweet_to_record({"id": str(first_id), "text": "Alpha Police Department thanks",
                             "created_at": "2026-01-31T23:59:59.000Z", "edit_history_tweet_ids": [str(first_id)]})
    edit = tweet_to_record({"id": str(edit_id), "text": "Alpha Police Department thanks (edited)",
                            "edit_history_tweet_ids": [str(first_id), str(edit_id)]})
    # one id, one time: the edit's first-version time (from its id) had 987 ms, the first sighting's text none
    assert edit.platform_post_id == first.platform_post_id
    assert edit.created_at == first.created_at == dt.datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC)
    for record in (first, edit):
        page = Page()
        page.posts.append(record)
        page.mentions.extend(make_page([0]).mentions)
        for m in page.mentions:
            m.platform_post_id = record.platform_post_id
        tw_store.write_page(synced, page)
    with synced.connect() as conn:
        stored = conn.execute(select(Post.platform_post_id, Post.created_at, Post.text)).all()
    assert len(stored) == 1, stored
    assert stored[0].created_at == dt.datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC)
    assert stored[0].text.endswith("(edited)")
    assert rows(synced, "SELECT count(*) FROM post_mentions")[0][0] == 2


def test_a_post_seen_in_two_pages_and_two_months_windows_is_one_row(synced: Engine) -> None:
    """The same posts in two pages of one run, then again in a run of the next month (a revisit), with their
    times given to the millisecond: one row each, mentions once, a snapshot per sighting, all in one month."""
    when = dt.datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC)
    tw_store.write_page(synced, page_at(list(range(5)), when))
    # PostgreSQL: first stored in the default partition, then moved into January's when it is prepared
    partitions.prepare(synced)
    tw_store.write_page(synced, page_at(list(range(5)), when))
    later = page_at(list(range(5)), when)
    for p in later.posts:
        p.metrics.likes = 1000
    result = tw_store.write_page(synced, later)
    assert (result.new, result.updated) == (0, 5)
    assert rows(synced, "SELECT count(*), count(DISTINCT platform_post_id), max(like_count) FROM posts")[0] == (
        5, 5, 1000)
    assert rows(synced, "SELECT count(*) FROM post_mentions")[0][0] == 10
    assert rows(synced, "SELECT count(*) FROM metric_snapshots")[0][0] == 15
    with synced.connect() as conn:
        assert set(conn.execute(select(MetricSnapshot.post_created_at)).scalars()) == {when}
    if synced.dialect.name == "postgresql":
        placed = rows(synced, "SELECT tableoid::regclass::text, count(*) FROM posts GROUP BY 1")
        assert placed == [("posts_2026_01", 5)]


@pytest.mark.postgres
def test_the_migrated_store_is_partitioned_and_never_refuses_a_month(pg_engine: Engine) -> None:
    tw_store.sync_agencies(pg_engine, AGENCIES)
    kinds = dict(rows(pg_engine, "SELECT relname, relkind FROM pg_class WHERE relname = ANY(:n)",
                      n=["posts", "post_mentions", "metric_snapshots"]))
    assert kinds == {"posts": "p", "post_mentions": "p", "metric_snapshots": "p"}
    this_month = partitions.month_of(dt.datetime.now(UTC))
    with pg_engine.connect() as conn:
        names = partitions.partitions_of(conn)
    ahead = [this_month, partitions.next_month(this_month), partitions.next_month(partitions.next_month(this_month))]
    for table in ("posts", "post_mentions", "metric_snapshots"):
        assert f"{table}_default" in names
        assert {partitions.partition_name(table, m) for m in ahead} <= names
    # a post of a month nobody prepared (an archive import from 2019) lands in the default partition...
    old = dt.datetime(2019, 3, 14, 15, 9, 26, tzinfo=UTC)
    tw_store.write_page(pg_engine, page_at([1, 2], old))
    assert rows(pg_engine, "SELECT tableoid::regclass::text, count(*) FROM posts GROUP BY 1") == [("posts_default", 2)]
    # ...and the maintenance step moves it, with its mentions and snapshots, into a month of its own
    created = partitions.prepare(pg_engine)
    assert set(created) == {"posts_2019_03", "post_mentions_2019_03", "metric_snapshots_2019_03"}
    for table in ("posts", "post_mentions", "metric_snapshots"):
        placed = rows(pg_engine, f"SELECT tableoid::regclass::text, count(*) FROM {table} GROUP BY 1")
        assert placed == [(f"{table}_2019_03", 2 if table != "post_mentions" else 4)], placed
    tw_store.write_page(pg_engine, page_at([1, 2], old))  # seen again: still one row each
    assert rows(pg_engine, "SELECT count(*) FROM posts")[0][0] == 2
    assert rows(pg_engine, "SELECT count(*) FROM agency_mentions")[0][0] == 4


@pytest.mark.postgres
def test_the_views_prune_to_the_months_asked(pg_engine: Engine) -> None:
    """An analyst's query on a month reads that month's partitions only."""
    with pg_engine.begin() as conn:
        partitions.ensure_months(conn, [dt.date(2026, 1, 1), dt.date(2026, 2, 1)])
    plan = "\n".join(r[0] for r in rows(pg_engine, (
        "EXPLAIN SELECT count(*) FROM agency_mentions WHERE created_at >= '2026-01-01' AND created_at < '2026-02-01'")))
    assert "posts_2026_01" in plan and "posts_2026_02" not in plan and "posts_default" not in plan, plan


@pytest.mark.postgres
def test_retention_detaches_a_month_in_under_a_second_and_archives_it(pg_engine: Engine, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    tw_store.sync_agencies(pg_engine, AGENCIES)
    jan, feb = dt.datetime(2025, 1, 20, tzinfo=UTC), dt.datetime(2025, 2, 3, tzinfo=UTC)
    with pg_engine.begin() as conn:
        partitions.ensure_months(conn, [jan.date().replace(day=1), feb.date().replace(day=1)])
    tw_store.write_page(pg_engine, page_at(list(range(40)), jan))
    tw_store.write_page(pg_engine, page_at(list(range(40, 70)), feb))
    with pg_engine.begin() as conn:  # scores of January's posts: archived and deleted with them
        conn.execute(text("INSERT INTO post_scores (post_id, agency_id, scorer, scorer_version, sentiment, "
                          "trust_score, scored_at) SELECT post_id, agency_id, 't', '1', 0.1, 0.2, now() "
                          "FROM post_mentions"))
    jan_ids = {r[0] for r in rows(pg_engine, "SELECT id FROM posts WHERE created_at < '2025-02-01'")}
    assert len(jan_ids) == 40
    with pg_engine.begin() as conn:  # the ledger: one run in January, one across the month's end, one in February
        for key, start, end in [("jan", "2025-01-20 00:00", "2025-01-20 01:00"),
                                ("edge", "2025-01-31 23:00", "2025-02-01 01:00"),
                                ("feb", "2025-02-03 00:00", "2025-02-03 01:00")]:
            conn.execute(text(
                "INSERT INTO collection_runs (platform, source, query_key, query_version, query_text, window_start, "
                "window_end, status, started_at, attempts, pages, requests, posts_seen, posts_new, posts_updated, "
                "rejected, api_errors, rate_limit_waits, rate_limit_wait_seconds, coverage_gap) VALUES ('x', 'api', "
                ":k, 'v', 'q', CAST(:s AS timestamptz), CAST(:e AS timestamptz), 'success', now(), 1, 1, 1, 0, 0, "
                "0, 0, 0, 0, 0, false)"), {"k": key, "s": start + "+00", "e": end + "+00"})
    archive = tmp_path / "archive"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRUSTWATCH_DATABASE_URL", pg_engine.url.render_as_string(hide_password=False))
        assert cli.main(["retention", "detach", "--month", "2025-01", "--archive", str(archive)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["detach_seconds"] < 1.0, report
    assert report["rows"] == {"posts": 40, "post_mentions": 80, "metric_snapshots": 40, "post_scores": 80,
                              "ambiguous_mentions": 0}, report
    with gzip.open(archive / "posts_2025_01.csv.gz", "rt", newline="") as f:
        archived = list(csv.DictReader(f))
    assert {int(r["id"]) for r in archived} == jan_ids
    assert rows(pg_engine, "SELECT count(*), min(created_at) >= '2025-02-01' FROM posts")[0] == (30, True)
    assert rows(pg_engine, "SELECT count(*) FROM post_scores")[0][0] == 60
    assert rows(pg_engine, "SELECT to_regclass('posts_2025_01')")[0][0] is None
    assert rows(pg_engine, "SELECT count(*) FROM agency_mentions")[0][0] == 60
    assert (archive / "manifest_2025_01.json").exists()
    # the ledger's success rows of January say where their posts went; February's is untouched
    assert report["ledger_rows_archived"] == 2, report
    noted = dict(rows(pg_engine, "SELECT query_key, notes -> 'archived' ->> 'month' FROM collection_runs"))
    assert noted == {"jan": "2025-01", "edge": "2025-01", "feb": None}, noted


@pytest.mark.postgres
def test_the_migration_truncates_sub_second_times_and_says_so(pg_server, caplog: pytest.LogCaptureFixture) -> None:
    """A store written before 0026 holds an edited post's millisecond time: the migration truncates it (its
    mentions follow) and reports how many rows that touched, and stops on a mention a second or more off."""
    engine = make_engine(pg_server.create("tw_m0026"))
    migrate.upgrade(engine, "0025")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO agencies (id, slug, name, kind, aliases, x_handles, hashtags, subreddits, "
                          "active, updated_at) VALUES (1, 'a', 'A', 'municipal', '[]', '[]', '[]', '[]', true, now())"))
        conn.execute(text("INSERT INTO posts (id, platform, platform_post_id, kind, text, created_at, "
                          "first_collected_at, last_collected_at) VALUES "
                          "(1, 'x', '11', 'post', '', '2026-01-31 23:59:59.987+00', now(), now()), "
                          "(2, 'x', '12', 'post', '', '2026-02-01 10:00:00+00', now(), now())"))
        conn.execute(text("INSERT INTO post_mentions (post_id, agency_id, matched_term, match_kind, "
                          "post_created_at, platform) VALUES (1, 1, 'A', 'name', '2026-01-31 23:59:59.987+00', 'x'), "
                          "(2, 1, 'A', 'name', '2026-02-01 10:00:05+00', 'x')"))
    with pytest.raises(Exception, match="a second or more away"):
        migrate.upgrade(engine)
    assert migrate.current(engine) == "0025"
    with engine.begin() as conn:
        conn.execute(text("UPDATE post_mentions SET post_created_at = '2026-02-01 10:00:00.5+00' WHERE post_id = 2"))
    with caplog.at_level(logging.WARNING):
        migrate.upgrade(engine)
    assert "created_at of 1 posts" in caplog.text and "post_created_at of 1 mentions" in caplog.text
    assert rows(engine, "SELECT id, created_at, tableoid::regclass::text FROM posts ORDER BY id") == [
        (1, dt.datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC), "posts_2026_01"),
        (2, dt.datetime(2026, 2, 1, 10, tzinfo=UTC), "posts_2026_02")]
    assert rows(engine, "SELECT post_id, post_created_at FROM post_mentions ORDER BY post_id") == [
        (1, dt.datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC)), (2, dt.datetime(2026, 2, 1, 10, tzinfo=UTC))]
    engine.dispose()


@pytest.mark.postgres
def test_the_rollup_reads_only_the_months_it_refreshes(pg_engine: Engine) -> None:
    """The enrich step's rollup over January's days reads January's partitions of posts and of post_mentions
    (a mention carries its post's time), not the other months'."""
    from trustwatch.analysis import trends

    with pg_engine.begin() as conn:
        partitions.ensure_months(conn, [dt.date(2026, 1, 1), dt.date(2026, 2, 1), dt.date(2026, 3, 1)])
    stmt = trends._rollup_statement("postgresql", "day", 1)
    explain = text("EXPLAIN " + stmt.text).bindparams(*stmt._bindparams.values())
    params = {"grain": "day", "version": "v", "scorer": "s", "now": dt.datetime.now(UTC),
              "periods": [dt.date(2026, 1, 10)], "start_0": dt.datetime(2026, 1, 9, 12, tzinfo=UTC),
              "end_0": dt.datetime(2026, 1, 11, 12, tzinfo=UTC)}
    with pg_engine.connect() as conn:
        conn.execute(text("SET plan_cache_mode = force_custom_plan"))
        plan = "\n".join(r[0] for r in conn.execute(explain, params))
    assert "posts_2026_01" in plan and "post_mentions_2026_01" in plan, plan
    for other in ("posts_2026_02", "post_mentions_2026_02", "post_mentions_2026_03", "post_mentions_default"):
        assert other not in plan, plan


@pytest.mark.postgres
def test_prepare_creates_the_coming_months_from_the_command_line(pg_engine: Engine,
                                                                  capsys: pytest.CaptureFixture) -> None:
    """`trustwatch partitions prepare` (also run by the DAGs' sync step) creates next month's partitions
    when they are missing, so its posts never wait in the default partition."""
    coming = partitions.next_month(partitions.month_of(dt.datetime.now(UTC)))
    with pg_engine.begin() as conn:
        for table in ("posts", "post_mentions", "metric_snapshots"):
            conn.execute(text(f"DROP TABLE {partitions.partition_name(table, coming)}"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRUSTWATCH_DATABASE_URL", pg_engine.url.render_as_string(hide_password=False))
        assert cli.main(["partitions", "prepare"]) == 0
    created = json.loads(capsys.readouterr().out)["created"]
    assert created == [partitions.partition_name(t, coming) for t in ("posts", "post_mentions", "metric_snapshots")]
    with pg_engine.connect() as conn:
        assert set(created) <= partitions.partitions_of(conn)


@pytest.mark.postgres
def test_posts_written_while_prepare_moves_their_month_out_of_the_default_partition_are_kept(
        pg_engine: Engine) -> None:
    """`partitions prepare` runs in every collect DAG's sync step, beside collect tasks that write.  When it
    moves a month's rows out of the default partition (copy, delete, attach), a page of that month committed
    between the copy and the delete was deleted without having been copied: posts gone, their run a success.
    A writer must wait for the move instead, and land in the new month afterwards."""
    tw_store.sync_agencies(pg_engine, AGENCIES)
    month = dt.datetime(2018, 7, 9, 8, 30, tzinfo=UTC)  # a month no migration prepares: the default partition
    tw_store.write_page(pg_engine, page_at([1, 2, 3], month))
    url = pg_engine.url.render_as_string(hide_password=False)
    writer, maintenance = make_engine(url), make_engine(url)
    watcher = make_engine(url, isolation_level="AUTOCOMMIT")
    outcome: dict[str, object] = {}

    def write_during_the_move() -> None:
        try:
            outcome["result"] = tw_store.write_page(writer, page_at([4, 5], month + dt.timedelta(hours=2)))
        except Exception as exc:  # reported by the assertion below
            outcome["error"] = exc

    thread = threading.Thread(target=write_during_the_move)

    def between_copy_and_delete(conn, cursor, statement, parameters, context, executemany) -> None:
        if not statement.startswith("INSERT INTO posts_2018_07 SELECT") or thread.is_alive():
            return
        thread.start()  # the page commits now, unless the move makes it wait
        deadline = dt.datetime.now(UTC) + dt.timedelta(seconds=30)
        while thread.is_alive() and dt.datetime.now(UTC) < deadline:
            with watcher.connect() as w:  # which table the writer waits for, if it waits
                waiting = w.execute(text("SELECT l.relation::regclass::text FROM pg_locks l JOIN pg_database d "
                                         "ON d.oid = l.database WHERE d.datname = current_database() "
                                         "AND NOT l.granted")).scalars().all()
            if waiting:
                outcome["waited_for"] = waiting
                break
            thread.join(0.05)

    event.listen(maintenance, "after_cursor_execute", between_copy_and_delete)
    try:
        created = partitions.prepare(maintenance)
        thread.join(30)
        assert not thread.is_alive(), "the writer never finished"
    finally:
        for engine in (writer, maintenance, watcher):
            engine.dispose()
    assert "posts_2018_07" in created
    assert "error" not in outcome, outcome["error"]
    # it waited before its statement picked a partition (a row routed to the default partition before the
    # attach would have been refused after it)
    assert outcome.get("waited_for") == ["posts"], outcome
    assert outcome["result"].new == 2
    ids = sorted(r[0] for r in rows(pg_engine, "SELECT platform_post_id FROM posts"))
    assert ids == sorted(make_page([1, 2, 3, 4, 5]).posts[i].platform_post_id for i in range(5))
    for table, count in (("posts", 5), ("post_mentions", 10), ("metric_snapshots", 5)):
        placed = rows(pg_engine, f"SELECT tableoid::regclass::text, count(*) FROM {table} GROUP BY 1")
        assert placed == [(f"{table}_2018_07", count)], placed

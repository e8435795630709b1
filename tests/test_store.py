"""The write path on SQLite and PostgreSQL: idempotent, one transaction per page, bad rows aside."""

from __future__ import annotations

import dataclasses
import datetime as dt
import multiprocessing as mp

import pytest
from sqlalchemy import Engine, func, select, text
from trustwatch.models import store
from trustwatch.models.db import make_engine
from trustwatch.models.tables import (
    Agency,
    Author,
    CollectionRun,
    MetricSnapshot,
    Post,
    PostMention,
    RejectedPayload,
)

from tests.store_helpers import AGENCIES, FakeAgency, make_page
from trustwatch.records import MentionRecord, PostRecord, RejectRecord
from trustwatch.settings import ConfigError

CONTENT_TABLES = (Agency, Author, Post, PostMention)


def counts(engine: Engine) -> dict[str, int]:
    tables = (Agency, Author, Post, PostMention, MetricSnapshot, RejectedPayload, CollectionRun)
    with engine.connect() as conn:
        return {t.__tablename__: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in tables}


def snapshot(engine: Engine, model: type, exclude: tuple[str, ...] = ()) -> list[dict]:
    cols = [c for c in model.__table__.columns if c.name not in exclude]
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(*cols).order_by(model.__table__.c.id)).mappings()]


def open_run(engine: Engine, key: str = "q1") -> int:
    return store.open_run(engine, platform="x", query_key=key, query_version="v1", query_text="nypd",
                          window_start=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
                          window_end=dt.datetime(2026, 11, 1, 1, tzinfo=dt.UTC)).run_id


def test_same_page_twice_is_idempotent(store_engine_synced: Engine) -> None:
    engine = store_engine_synced
    run_id = open_run(engine)
    page = make_page(range(50), cursor="next-1")
    first = store.write_page(engine, page, run_id)
    assert (first.seen, first.new, first.updated, first.rejected) == (50, 50, 0, 0)
    before_counts = counts(engine)
    before_posts = snapshot(engine, Post, exclude=("last_collected_at",))
    before_other = {m: snapshot(engine, m, exclude=("last_seen_at", "updated_at")) for m in (Author, PostMention)}

    second = store.write_page(engine, page, run_id)
    assert (second.seen, second.new, second.updated, second.rejected) == (50, 0, 50, 0)
    after_counts = counts(engine)
    assert after_counts["metric_snapshots"] == before_counts["metric_snapshots"] + 50
    assert {k: v for k, v in after_counts.items() if k != "metric_snapshots"} == {
        k: v for k, v in before_counts.items() if k != "metric_snapshots"
    }
    assert snapshot(engine, Post, exclude=("last_collected_at",)) == before_posts
    after_other = {m: snapshot(engine, m, exclude=("last_seen_at", "updated_at")) for m in (Author, PostMention)}
    assert after_other == before_other
    run = store.get_run(engine, run_id)
    assert (run["pages"], run["posts_seen"], run["posts_new"], run["posts_updated"]) == (2, 100, 50, 50)
    assert run["last_cursor"] == "next-1"


def test_malformed_record_is_kept_aside_and_the_rest_lands(store_engine_synced: Engine) -> None:
    engine = store_engine_synced
    run_id = open_run(engine)
    page = make_page(range(10))
    page.posts[3] = dataclasses.replace(page.posts[3], platform_post_id="")  # missing id
    page.posts[5] = dataclasses.replace(page.posts[5], text="x" * 70_000)  # over the limit
    page.rejects.append(RejectRecord("x", "created_at is not an ISO-8601 time: 'yesterday'", {"id": "9"}))
    result = store.write_page(engine, page, run_id)
    assert (result.seen, result.new, result.rejected) == (8, 8, 3)
    with engine.connect() as conn:
        reasons = sorted(conn.execute(select(RejectedPayload.reason, RejectedPayload.run_id)).all())
        assert len(reasons) == 3 and {r.run_id for r in reasons} == {run_id}
        assert any("post id is missing" in r.reason for r in reasons)
        assert any("over the limit" in r.reason for r in reasons)
        # the mentions of rejected posts are not written; the others are
        assert conn.execute(select(func.count()).select_from(PostMention)).scalar_one() == 16
    assert store.get_run(engine, run_id)["rejected"] == 3


def test_edit_updates_text_and_keeps_first_collected(store_engine_synced: Engine) -> None:
    engine = store_engine_synced
    page = make_page(range(3))
    store.write_page(engine, page)
    first = {r["platform_post_id"]: r for r in snapshot(engine, Post)}
    edited = make_page(range(3))
    edited.posts[0] = dataclasses.replace(edited.posts[0], text="edited text mentioning Alpha Police Department")
    edited.posts[0].metrics.likes = 999
    store.write_page(engine, edited)
    after = {r["platform_post_id"]: r for r in snapshot(engine, Post)}
    pid = page.posts[0].platform_post_id
    assert after[pid]["text"] == "edited text mentioning Alpha Police Department"
    assert after[pid]["like_count"] == 999
    assert after[pid]["first_collected_at"] == first[pid]["first_collected_at"]
    assert after[pid]["last_collected_at"] > first[pid]["last_collected_at"]
    assert after[pid]["created_at"].tzinfo is not None


def test_a_post_seen_again_gains_only_its_new_mentions(store_engine_synced: Engine) -> None:
    """A page mixing new posts and posts seen before: the new ones get all their mentions, the old ones only the
    mentions they did not have (an edit that names another agency), and no mention is stored twice."""
    engine = store_engine_synced
    store.write_page(engine, make_page(range(3)))
    page = make_page(range(5))  # posts 0-2 seen before, 3-4 new
    old_id = page.posts[1].platform_post_id
    page.mentions.append(MentionRecord("x", old_id, AGENCIES[2].slug, AGENCIES[2].name, "name", 5, 10))
    result = store.write_page(engine, page)
    assert (result.seen, result.new, result.updated) == (5, 2, 3)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT p.platform_post_id, a.slug, m.matched_term, m.start_offset FROM post_mentions m "
            "JOIN posts p ON p.id = m.post_id JOIN agencies a ON a.id = m.agency_id"
        )).all()
    assert len(rows) == 5 * 2 + 1
    assert len({(r[0], r[1], r[2]) for r in rows}) == len(rows)
    assert (old_id, AGENCIES[2].slug, AGENCIES[2].name, 5) in rows


def test_terms_equal_in_their_stored_200_characters_are_one_mention(store_engine_synced: Engine) -> None:
    engine = store_engine_synced
    page = make_page(range(1), mentions_per_post=0)
    pid = page.posts[0].platform_post_id
    long_term = "x" * 200
    page.mentions += [MentionRecord("x", pid, AGENCIES[0].slug, long_term + "a", "name", 0, 5),
                      MentionRecord("x", pid, AGENCIES[0].slug, long_term + "b", "name", 0, 5)]
    result = store.write_page(engine, page)
    assert (result.new, result.mentions) == (1, 1)
    with engine.connect() as conn:
        assert conn.execute(select(PostMention.matched_term)).scalars().all() == [long_term]


def test_deleted_state_is_recorded_and_tombstones_keep_scrubbed(store_engine_synced: Engine) -> None:
    engine = store_engine_synced
    page = make_page(range(2))
    page.posts[1] = dataclasses.replace(page.posts[1], text="[removed]", deleted_reason="[removed]",
                                        removed_by_category="moderator")
    store.write_page(engine, page)
    rows = {r["platform_post_id"]: r for r in snapshot(engine, Post)}
    removed = rows[page.posts[1].platform_post_id]
    assert removed["deleted_reason"] == "[removed]" and removed["deleted_at"] is not None
    assert removed["removed_by_category"] == "moderator"
    # a compliance tombstone: text scrubbed; a later sighting does not bring the text back
    with engine.begin() as conn:
        conn.execute(Post.__table__.update().where(Post.platform_post_id == page.posts[0].platform_post_id)
                     .values(text="", raw=None, deleted_at=store.utcnow(), deleted_reason="not_found"))
    store.write_page(engine, make_page(range(2)))
    rows = {r["platform_post_id"]: r for r in snapshot(engine, Post)}
    assert rows[page.posts[0].platform_post_id]["text"] == ""
    assert rows[page.posts[0].platform_post_id]["raw"] is None
    assert rows[page.posts[0].platform_post_id]["deleted_reason"] == "not_found"
    with engine.connect() as conn:
        visible = conn.execute(text("select count(distinct post_id) from agency_mentions")).scalar_one()
    assert visible == 0  # both posts are tombstones or removed: the analyst view leaves them out


def test_unknown_agency_fails_the_page_with_a_clear_error(store_engine_synced: Engine) -> None:
    engine = store_engine_synced
    page = make_page(range(2))
    page.mentions.append(MentionRecord("x", page.posts[0].platform_post_id, "no-such-pd", "NSPD", "alias"))
    with pytest.raises(store.StoreError, match=r"no-such-pd.*trustwatch agencies sync"):
        store.write_page(engine, page)
    assert counts(engine)["posts"] == 0  # one transaction: nothing half-written


def test_author_missing_from_page_does_not_drop_the_post(store_engine_synced: Engine) -> None:
    engine = store_engine_synced
    page = make_page(range(1))
    page.authors.clear()
    store.write_page(engine, page)
    rows = snapshot(engine, Post)
    assert len(rows) == 1 and rows[0]["author_id"] is None and rows[0]["author_platform_id"] == "u0"
    # the author arrives later: the next sighting links it
    store.write_page(engine, make_page(range(1)))
    assert snapshot(engine, Post)[0]["author_id"] is not None


def test_text_postgres_would_refuse_is_cleaned(store_engine_synced: Engine) -> None:
    engine = store_engine_synced
    page = make_page(range(1))
    page.posts[0] = dataclasses.replace(page.posts[0], text="nul\x00 and lone \ud800 surrogate",
                                        raw={"text": "nul\x00 \udfff", "nested": ["\ud83d"]})
    result = store.write_page(engine, page)
    assert result.new == 1
    row = snapshot(engine, Post)[0]
    assert "\x00" not in row["text"] and "surrogate" in row["text"]
    assert row["raw"]["nested"] == ["?"] or row["raw"]["nested"][0] != "\ud83d"


def test_author_counts_the_columns_cannot_hold_become_unknown(store_engine_synced: Engine) -> None:
    """A malformed profile count (over 32 bits, not a number) or verified flag costs the author's field,
    not the page."""
    engine = store_engine_synced
    store.write_page(engine, make_page(range(1)))
    page = make_page(range(1, 3))
    page.authors[0] = dataclasses.replace(page.authors[0], followers_count=10**12, verified="yes")  # type: ignore[arg-type]
    page.authors[1] = dataclasses.replace(page.authors[1], following_count="many")  # type: ignore[arg-type]
    result = store.write_page(engine, page)
    assert (result.new, result.rejected) == (2, 0)
    authors = {r["platform_user_id"]: r for r in snapshot(engine, Author)}
    first = authors[page.authors[0].platform_user_id]
    assert first["followers_count"] is None and first["verified"] is None
    assert authors[page.authors[1].platform_user_id]["following_count"] is None
    assert counts(engine)["posts"] == 3


def test_quotes_backslashes_and_controls_survive_the_bulk_path(store_engine_synced: Engine) -> None:
    """Author fields and mention terms travel as JSON on PostgreSQL: every character that JSON or COPY
    escapes comes back as written (NUL and lone surrogates, which PostgreSQL refuses, are cleaned)."""
    engine = store_engine_synced
    page = make_page(range(1))
    name = 'Ann "the\\cop" O\'Neil\ttab\nline 🚓 \u00e9'
    page.authors[0] = dataclasses.replace(page.authors[0], display_name=name + "\x00", location="\ud800Zürich")
    term = 'Sheriff\'s "Office" \\ {x}'
    page.mentions[0] = dataclasses.replace(page.mentions[0], matched_term=term)
    store.write_page(engine, page)
    author = snapshot(engine, Author)[0]
    assert author["display_name"] == name
    assert author["location"].endswith("Zürich") and "\ud800" not in author["location"]
    with engine.connect() as conn:
        terms = set(conn.execute(select(PostMention.matched_term)).scalars())
    assert term in terms


def test_view_agency_mentions(store_engine_synced: Engine) -> None:
    engine = store_engine_synced
    store.write_page(engine, make_page(range(5)))
    with engine.connect() as conn:
        rows = conn.execute(text(
            "select agency, platform, author, matched_terms, match_kinds, created_at from agency_mentions "
            "order by agency, created_at")).mappings().all()
    assert len(rows) == 10
    assert {r["agency"] for r in rows} == {"alpha-pd", "beta-so"}
    assert rows[0]["author"] == "user0" and rows[0]["matched_terms"] == "Alpha Police Department"


def test_sync_agencies_deactivates_removed_entries(store: Engine) -> None:
    first = store_mod_sync(store, AGENCIES)  # `store` here is the engine fixture
    assert first == {"agencies": 3, "changed": 3, "deactivated": 0}
    again = store_mod_sync(store, AGENCIES)
    assert again["changed"] == 0
    renamed = [dataclasses.replace(AGENCIES[0], name="Alpha PD (renamed)"), AGENCIES[1]]
    result = store_mod_sync(store, renamed)
    assert result == {"agencies": 2, "changed": 1, "deactivated": 1}
    with store.connect() as conn:
        rows = {r.slug: r for r in conn.execute(select(Agency))}
    assert rows["gamma-sp"].active is False and rows["alpha-pd"].name == "Alpha PD (renamed)"
    store_mod_sync(store, [*renamed, FakeAgency("gamma-sp", "Gamma State Police", kind="state")])
    with store.connect() as conn:
        assert conn.execute(select(Agency.active).where(Agency.slug == "gamma-sp")).scalar_one() is True


def store_mod_sync(engine: Engine, entries: list) -> dict:
    return store.sync_agencies(engine, entries)


def test_bad_database_url_names_the_setting_without_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_TRUSTWATCH_DB", raising=False)
    monkeypatch.setenv("TRUSTWATCH_DATABASE_URL", "postgresql+psycopg://ana:s3cr3t-pw@db:notaport/x")
    with pytest.raises(ConfigError) as info:
        make_engine()
    assert "TRUSTWATCH_DATABASE_URL" in str(info.value) and "s3cr3t-pw" not in str(info.value)
    monkeypatch.setenv("TRUSTWATCH_DATABASE_URL", "mysql://ana:s3cr3t-pw@db/x")
    with pytest.raises(ConfigError) as info:
        make_engine()
    assert "not supported" in str(info.value) and "s3cr3t-pw" not in str(info.value)
    monkeypatch.setenv("AIRFLOW_CONN_TRUSTWATCH_DB", '{"conn_type": "oracle", "password": "s3cr3t-pw"}')
    with pytest.raises(ConfigError) as info:
        make_engine()
    assert "trustwatch_db" in str(info.value) and "s3cr3t-pw" not in str(info.value)


def _writer(url: str, offset: int, rounds: int, queue: mp.Queue) -> None:
    try:
        engine = make_engine(url)
        for r in range(rounds):
            # overlapping id ranges: each process writes ids shared with the other, in both orders
            ids = list(range(offset, offset + 60))
            if r % 2:
                ids.reverse()
            store.write_page(engine, make_page(ids, seed=r))
        engine.dispose()
        queue.put("ok")
    except Exception as exc:
        queue.put(f"{type(exc).__name__}: {exc}")


def test_two_processes_writing_overlapping_pages(store_engine_synced: Engine) -> None:
    url = store_engine_synced.url.render_as_string(hide_password=False)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, offset, 6, queue)) for offset in (0, 30)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    results = [queue.get(timeout=5) for _ in procs]
    assert results == ["ok", "ok"]
    with store_engine_synced.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Post)).scalar_one() == 90
        dupes = conn.execute(text(
            "select count(*) from (select platform, platform_post_id from posts group by 1, 2 having count(*) > 1) d"
        )).scalar_one()
        assert dupes == 0
        assert conn.execute(select(func.count()).select_from(PostMention)).scalar_one() == 180
        assert conn.execute(select(func.count()).select_from(MetricSnapshot)).scalar_one() == 2 * 6 * 60


@pytest.fixture
def store_engine_synced(store: Engine) -> Engine:
    from trustwatch.models.store import sync_agencies

    sync_agencies(store, AGENCIES)
    return store


def test_records_types_are_enforced() -> None:
    post = PostRecord("x", "1", "post", dt.datetime(2026, 1, 1))  # naive time
    from trustwatch.records import RecordError, validate_post

    with pytest.raises(RecordError, match="timezone"):
        validate_post(post)



@pytest.mark.postgres
def test_a_failed_first_page_does_not_break_the_next_one(pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The staging table is created once per connection; a rollback of that first transaction undoes the
    creation, and the next page on the same connection must create it again."""
    from trustwatch.models import pg_bulk
    from trustwatch.models.store import sync_agencies

    sync_agencies(pg_engine, AGENCIES)
    pg_engine.dispose()  # a fresh connection: no staging tables yet
    good_sql = pg_bulk._MERGE_POSTS_SQL
    monkeypatch.setattr(pg_bulk, "_MERGE_POSTS_SQL", text("SELECT no_such_column FROM tw_stage_posts"))
    with pytest.raises(Exception, match="no_such_column"):
        store.write_page(pg_engine, make_page(range(3)))
    monkeypatch.setattr(pg_bulk, "_MERGE_POSTS_SQL", good_sql)
    result = store.write_page(pg_engine, make_page(range(3)))
    assert result.new == 3 and counts(pg_engine)["posts"] == 3


def test_pages_in_a_callers_transaction_do_not_leak_staged_rows(store_engine_synced: Engine) -> None:
    with store_engine_synced.begin() as conn:
        store.write_page(conn, make_page(range(0, 5)))
        second = store.write_page(conn, make_page(range(5, 8)))
    assert (second.seen, second.new) == (3, 3)
    assert counts(store_engine_synced)["metric_snapshots"] == 8

"""Issue 20, reliability and security round two: each test reproduces one finding of the adversarial run.

RELIABILITY.md's matrix ("Round two") lists each item with the command that reproduces it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import threading

import pytest
from sqlalchemy import Engine, func, select, text
from trustwatch.collectors.x import normalize_x_page, tweet_to_record
from trustwatch.models import store as tw_store
from trustwatch.models.tables import CollectionRun, Post, RejectedPayload

from tests.store_helpers import AGENCIES, make_page
from trustwatch.records import RecordError, RejectRecord

POISON = "bad\x00name\ud800"


@pytest.fixture
def synced(store: Engine) -> Engine:
    store_module_sync(store)
    return store


def store_module_sync(engine: Engine) -> None:
    tw_store.sync_agencies(engine, AGENCIES)


def posts(engine: Engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {r["platform_post_id"]: dict(r) for r in conn.execute(select(Post.__table__)).mappings()}


def rejects(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(RejectedPayload.__table__)).mappings()]


def tweet(i: int, **extra: object) -> dict:
    tid = str(1_850_000_000_000_000_000 + i)
    return {"id": tid, "text": f"Thanks Alpha Police Department {i}", "author_id": str(100 + i),
            "created_at": "2026-11-01T12:00:00.000Z", "edit_history_tweet_ids": [tid], **extra}


# --- item 1: one bad character never blocks a window -------------------------------------------------


def test_a_poisoned_username_and_permalink_are_cleaned_not_fatal(synced: Engine) -> None:
    """The post URL is built from the username (X) or the permalink (Reddit): NUL and lone surrogates in
    them failed the whole page on both backends, and every retry failed the same way."""
    users = [{"id": "101", "username": POISON, "name": POISON}]
    page = normalize_x_page({"data": [tweet(0), tweet(1)], "includes": {"users": users}})
    reddit = make_page([5], platform="reddit")
    reddit.posts = [dataclasses.replace(reddit.posts[0], platform_post_id="abc1", kind="submission",
                                        url=f"https://www.reddit.com/r/x/comments/abc1/{POISON}/", title=POISON)]
    reddit.mentions = []
    run = tw_store.open_run(synced, platform="x", query_key="q", query_version="v", query_text="q",
                         window_start=None, window_end=None).run_id
    result = tw_store.write_page(synced, page, run)
    assert (result.seen, result.rejected) == (2, 0)
    tw_store.write_page(synced, reddit)
    stored = posts(synced)
    assert len(stored) == 3
    for row in stored.values():
        for column in ("url", "text", "title"):
            value = row[column] or ""
            assert "\x00" not in value
            value.encode("utf-8")  # raises on a lone surrogate


def test_a_record_the_cleaning_misses_is_rejected_alone(synced: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the cleaning step does not foresee (here: it is switched off), the store refuses one record,
    never its page: the page is written record by record and the refused one lands in rejected_payloads."""
    monkeypatch.setattr(tw_store, "clean_post", lambda post: post)
    page = make_page(range(10))
    page.posts[4] = dataclasses.replace(page.posts[4], url=f"https://x.com/{POISON}/status/1")
    run = tw_store.open_run(synced, platform="x", query_key="q", query_version="v", query_text="q",
                         window_start=None, window_end=None).run_id
    result = tw_store.write_page(synced, page, run)
    assert (result.seen, result.rejected) == (9, 1)
    assert len(posts(synced)) == 9
    [reject] = rejects(synced)
    assert reject["platform_post_id"] == page.posts[4].platform_post_id and "refused" in reject["reason"]
    row = tw_store.get_run(synced, run)
    assert (row["pages"], row["posts_seen"], row["rejected"]) == (1, 9, 1)
    with synced.connect() as conn:  # the kept posts' snapshots still belong to the run
        assert conn.execute(text("SELECT count(*) FROM metric_snapshots WHERE run_id = :r"), {"r": run}).scalar() == 9


# --- item 5: impossible values are rejects, not facts ------------------------------------------------


@pytest.mark.parametrize("created_at", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", 12345,
                                        "2006-03-20T23:59:59Z"])
def test_impossible_creation_times_are_rejected_with_the_reason(created_at: object) -> None:
    with pytest.raises(RecordError, match="created_at"):
        tweet_to_record(tweet(0, created_at=created_at))


def test_an_edit_history_of_foreign_ids_does_not_merge_posts() -> None:
    """``["1", "2"]`` made the tweet the post "1"; X's histories hold the tweet's own id, oldest first,
    versions within the edit window."""
    for history in (["1", "2"], ["x1", "2"], ["1850000000000000002", tweet(0)["id"]]):
        with pytest.raises(RecordError, match="edit history"):
            tweet_to_record(tweet(0, edit_history_tweet_ids=history))
    page = normalize_x_page({"data": [tweet(0, edit_history_tweet_ids=["1", "2"])]})
    assert page.posts == [] and "edit history" in page.rejects[0].reason


def test_reddit_times_and_ids_outside_the_platform_are_rejected() -> None:
    from trustwatch.collectors.reddit import normalize_reddit_thing

    base = {"id": "abc123", "name": "t3_abc123", "title": "police", "selftext": "", "author": "someone",
            "subreddit": "nyc", "permalink": "/r/nyc/comments/abc123/police/", "created_utc": 1_764_000_000}
    normalize_reddit_thing({"kind": "t3", "data": base})
    for bad in ({"created_utc": 0}, {"created_utc": 4e10}, {"id": "ABC!", "name": "t3_ABC!"}):
        with pytest.raises(RecordError):
            normalize_reddit_thing({"kind": "t3", "data": {**base, **bad}})


# --- item 6: a reject payload is capped ----------------------------------------------------------------


def test_every_reject_payload_is_capped_with_its_size_and_hash(synced: Engine) -> None:
    huge = {"id": "1850000000000000009", "text": "x" * 3_000_000}
    page = make_page([1])
    page.rejects.append(RejectRecord("x", "text is over the limit", huge, platform_post_id=huge["id"]))
    tw_store.write_page(synced, page)
    [row] = rejects(synced)
    stored = row["payload"]
    assert len(json.dumps(stored)) < 11_000
    whole = json.dumps(huge, separators=(",", ":")).encode()
    assert stored["bytes"] == len(whole) and stored["sha256"] == hashlib.sha256(whole).hexdigest()
    assert stored["truncated"] is True and stored["head"].startswith('{"id":"1850000000000000009"')


# --- item 12: deleted content stays deleted ------------------------------------------------------------


def _tombstone(engine: Engine, post_id: str) -> None:
    from trustwatch.collectors.compliance import tombstone

    tombstone(engine, "x", {post_id: "not_found"}, dt.datetime.now(dt.UTC))


def test_a_tombstone_is_never_restored_through_a_reject(synced: Engine) -> None:
    page = make_page([1, 2])
    tw_store.write_page(synced, page)
    dead = page.posts[0].platform_post_id
    _tombstone(synced, dead)
    with synced.connect() as conn:
        assert conn.execute(select(Post.raw.is_(None)).where(Post.platform_post_id == dead)).scalar() is True
    broken = make_page([1])
    broken.posts = []
    broken.rejects.append(RejectRecord("x", "a broken copy", {"id": dead, "text": "THE DELETED WORDS"}))
    tw_store.write_page(synced, broken)
    dump = json.dumps([r["payload"] for r in rejects(synced)])
    assert "THE DELETED WORDS" not in dump and "scrubbed" in dump


def test_compliance_scrubs_rejects_of_every_tombstone_on_every_run(synced: Engine) -> None:
    from trustwatch.collectors.compliance import check_compliance

    page = make_page([1])
    tw_store.write_page(synced, page)
    dead = page.posts[0].platform_post_id
    _tombstone(synced, dead)
    with synced.begin() as conn:  # a reject written before the check existed (an older version, a race)
        conn.execute(RejectedPayload.__table__.insert().values(
            platform="x", platform_post_id=dead, reason="old", payload={"text": "OLD DELETED WORDS"},
            created_at=dt.datetime.now(dt.UTC)))

    class NoLookups:
        def lookup(self, ids: list[str]) -> object:
            from trustwatch.records import Page
            return Page(requests=1)

    # the billed lookup path (no batch job): the run tombstones nothing and still scrubs the old rejects
    check_compliance(synced, x_collector=NoLookups(), max_age_days=1, x_jobs=False, x_lookup_hours=24,
                     now=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    assert "OLD DELETED WORDS" not in json.dumps([r["payload"] for r in rejects(synced)])


def test_a_reddit_post_removed_at_ingest_keeps_no_raw_text(synced: Engine) -> None:
    page = make_page([3], platform="reddit")
    page.posts = [dataclasses.replace(page.posts[0], platform_post_id="zz9", kind="comment", text="[removed]",
                                      deleted_reason="removed", raw={"body": "[removed]", "secret": "words"})]
    page.mentions = []
    tw_store.write_page(synced, page)
    with synced.connect() as conn:
        assert conn.execute(select(Post.raw.is_(None)).where(Post.platform_post_id == "zz9")).scalar() is True


# --- items 4 and 7: a lease on the ledger row ----------------------------------------------------------

WINDOW = (dt.datetime(2026, 11, 1, tzinfo=dt.UTC), dt.datetime(2026, 11, 1, 1, tzinfo=dt.UTC))


def _open(engine: Engine, holder: str | None = None) -> tw_store.RunHandle:
    return tw_store.open_run(engine, platform="x", query_key="q1", query_version="v1", query_text="nypd",
                          window_start=WINDOW[0], window_end=WINDOW[1], holder=holder)


def test_a_window_held_by_a_live_run_is_refused_with_who_holds_it(store: Engine) -> None:
    first = _open(store, holder="worker-7:4242:abcd")
    with pytest.raises(tw_store.RunLeased, match=rf"already running \(run {first.run_id}, pid 4242 on worker-7\)"):
        _open(store)
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CollectionRun)).scalar() == 1


def test_an_expired_lease_or_a_dead_holder_is_taken_over(store: Engine) -> None:
    first = _open(store, holder="worker-7:4242:abcd")
    with store.begin() as conn:
        conn.execute(CollectionRun.__table__.update().values(
            lease_expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    again = _open(store)
    assert again.run_id == first.run_id and again.resumed
    # on this host, a holder whose process is gone is an orphan at once (SIGKILL, a stopped database)
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    with store.begin() as conn:
        conn.execute(CollectionRun.__table__.update().values(
            lease_owner=f"{socket.gethostname()}:{dead}:dead", lease_expires_at=dt.datetime(2100, 1, 1, tzinfo=dt.UTC)))
    third = _open(store)
    assert third.run_id == first.run_id
    row = tw_store.get_run(store, first.run_id)
    assert row["attempts"] == 3 and row["lease_owner"] == tw_store.lease_holder()


def test_pages_renew_the_lease_and_the_end_of_a_run_frees_it(sqlite_engine: Engine) -> None:
    store_module_sync(sqlite_engine)
    handle = _open(sqlite_engine)
    before = tw_store.get_run(sqlite_engine, handle.run_id)["lease_expires_at"]
    tw_store.write_page(sqlite_engine, make_page([1]), handle.run_id)
    assert tw_store.get_run(sqlite_engine, handle.run_id)["lease_expires_at"] >= before
    tw_store.update_run(sqlite_engine, handle.run_id, status="success")
    row = tw_store.get_run(sqlite_engine, handle.run_id)
    assert (row["lease_owner"], row["lease_expires_at"]) == (None, None)


def test_concurrent_claims_of_one_window_make_one_row_and_one_holder(pg_engine: Engine) -> None:
    """On PostgreSQL two runs of the same window both inserted a ledger row; the claim is now atomic."""
    outcomes: list[object] = []
    barrier = threading.Barrier(6)

    def claim(n: int) -> None:
        barrier.wait()
        try:
            outcomes.append(_open(pg_engine, holder=f"host-{n}:{1000 + n}:t").run_id)
        except tw_store.RunLeased as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([o for o in outcomes if isinstance(o, int)]) == 1
    with pg_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CollectionRun)).scalar() == 1


def test_a_failure_the_store_cannot_record_leaves_one_line_not_a_second_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    """Item 7: the database is gone; the failure update cannot land, says so in one line, and does not
    replace the run's own error with a second traceback (the next run takes the row over: see above)."""
    from trustwatch.models.db import make_engine

    gone = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/stopped", connect_args={"connect_timeout": 2})
    with caplog.at_level("WARNING"):
        assert tw_store.record_failure(gone, 1, error="boom") is False
    assert any("next run takes the row over" in r.getMessage() for r in caplog.records)


# --- items 14 and 15: errors that leak or sprawl -------------------------------------------------------


def test_a_password_with_an_unencoded_at_sign_is_masked_and_explained(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """The driver said ``failed to resolve host 'PASS-XYZ789@127.0.0.1'``: the password's tail, in a traceback."""
    from trustwatch import cli
    from trustwatch.settings import redact_url

    url = "postgresql://trust:s3cr@PASS-XYZ789@127.0.0.1:5432/trustwatch"
    assert redact_url(url) == "postgresql://trust:***@127.0.0.1:5432/trustwatch"
    assert redact_url("postgresql://postgres@127.0.0.1/tw") == "postgresql://postgres@127.0.0.1/tw"  # no secret
    for name in [k for k in os.environ if k.startswith("AIRFLOW_CONN_TRUSTWATCH")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TRUSTWATCH_DATABASE_URL", url)
    assert cli.main(["db", "upgrade"]) == 2
    out, err = capsys.readouterr()
    assert "XYZ789" not in out + err and "s3cr" not in out + err
    assert len(err.strip().splitlines()) == 1 and "URL-encode the password" in err


@pytest.mark.parametrize(("start", "end"), [("0001-01-01T00:00:00+01:00", "2026-11-20T00:00:00Z"),
                                            ("2026-11-20T00:00:00Z", "9999-12-31T23:59:59-01:00")])
def test_a_window_beyond_the_calendar_is_one_line_not_an_overflow(start: str, end: str,
                                                                  capsys: pytest.CaptureFixture) -> None:
    from trustwatch import cli

    assert cli.main(["collect", "reddit", "--start", start, "--end", end]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "out of range" in err and "Traceback" not in err


def test_a_window_with_microseconds_is_widened_to_whole_seconds() -> None:
    """tweepy sends X whole seconds: an end of 11:00:00.5 would leave its half second unread."""
    from trustwatch import tasks

    now = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    request = tasks.validate_request("reddit", "2026-11-29T10:00:00.250Z", "2026-11-29T11:00:00.500Z", None,
                                     manual=True, now=now)
    assert (request["start"], request["end"]) == ("2026-11-29T10:00:00+00:00", "2026-11-29T11:00:01+00:00")

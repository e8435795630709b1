"""X batch compliance jobs (issue 14, point 3): the sandbox speaks X's documented job flow, and the
compliance check uses it for every stored post and author instead of billed lookups."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest
import requests
from sqlalchemy import select
from trustwatch.collectors.compliance import ComplianceError, check_compliance
from trustwatch.models.tables import Author, CollectionRun, Post
from trustwatch.sandbox.common import CorpusConfig
from trustwatch.sandbox.server import SandboxServer

from tests.test_compliance import (
    END,
    X_TOKEN,
    collect_reddit,
    collect_x,
    posts,
    reddit_collector,
    visible_in_view,
    x_collector,
)

AUTH = {"Authorization": f"Bearer {X_TOKEN}"}


@pytest.fixture
def sandbox() -> Any:
    with SandboxServer(CorpusConfig(seed=31, posts=700, end=END, days=7), x_bearer_token=X_TOKEN) as server:
        yield server


def _create(server: SandboxServer, kind: str = "tweets", **extra: Any) -> requests.Response:
    return requests.post(f"{server.url}/2/compliance/jobs", json={"type": kind, **extra}, headers=AUTH, timeout=10)


def _job(server: SandboxServer, job_id: str) -> dict[str, Any]:
    response = requests.get(f"{server.url}/2/compliance/jobs/{job_id}", headers=AUTH, timeout=10)
    assert response.status_code == 200
    return response.json()["data"]


def _shift_clock(server: SandboxServer, seconds: float) -> None:
    server.x.compliance.clock = lambda: time.time() + seconds


def test_sandbox_jobs_follow_the_documented_flow_shapes_and_expiry(sandbox: SandboxServer) -> None:
    tweets = sandbox.x.corpus.tweets
    live = [i for i, t in tweets.items() if not t.deleted and not t.protected and not t.edit_history][:5]
    sandbox.x.corpus.delete(live[0])
    created = _create(sandbox, name="weekly-check")
    assert created.status_code == 200
    job = created.json()["data"]
    assert set(job) == {"id", "type", "name", "status", "resumable", "created_at", "upload_url", "upload_expires_at",
                        "download_url", "download_expires_at"}
    assert (job["type"], job["status"], job["name"]) == ("tweets", "created", "weekly-check")
    made = dt.datetime.fromisoformat(job["created_at"].replace("Z", "+00:00"))
    assert dt.datetime.fromisoformat(job["upload_expires_at"].replace("Z", "+00:00")) - made == dt.timedelta(minutes=15)
    assert dt.datetime.fromisoformat(job["download_expires_at"].replace("Z", "+00:00")) - made == dt.timedelta(days=7)
    # one open job per type; the other type is free; an unknown type is refused
    assert _create(sandbox).status_code == 400
    assert _create(sandbox, "users").status_code == 200
    assert _create(sandbox, "spaces").status_code == 400
    # the signed URLs take no bearer token, but a wrong signature is refused
    forged = job["upload_url"].split("?")[0] + "?signature=forged"
    assert requests.put(forged, data=b"1\n", timeout=10).status_code == 403
    assert requests.get(job["download_url"], timeout=10).status_code == 404  # nothing to download yet
    upload = requests.put(job["upload_url"], data="\n".join(live).encode(), headers={"Content-Type": "text/plain"},
                          timeout=10)
    assert upload.status_code == 200
    assert _job(sandbox, job["id"])["status"] == "in_progress"
    assert _job(sandbox, job["id"])["status"] == "complete"
    lines = [json.loads(line) for line in requests.get(job["download_url"], timeout=10).text.splitlines()]
    assert [(ln["id"], ln["action"], ln["reason"]) for ln in lines] == [(live[0], "delete", "deleted")]
    assert set(lines[0]) == {"id", "action", "created_at", "redacted_at", "reason"}
    # a second tweets job may open now; its upload URL dies after 15 minutes, its download after 7 days
    late = _create(sandbox).json()["data"]
    _shift_clock(sandbox, 16 * 60)
    expired = requests.put(late["upload_url"], data=b"1\n", timeout=10)
    assert expired.status_code == 400 and "ExpiredToken" in expired.text
    _shift_clock(sandbox, 7 * 86400 + 60)
    assert _job(sandbox, job["id"])["status"] == "expired"
    assert requests.get(job["download_url"], timeout=10).status_code == 400
    # a file that is not one id per line fails the job
    _shift_clock(sandbox, 0)
    sandbox.x.compliance.jobs.clear()
    bad = _create(sandbox).json()["data"]
    requests.put(bad["upload_url"], data=b"123\nnot-an-id\n", timeout=10)
    _job(sandbox, bad["id"])
    assert _job(sandbox, bad["id"])["status"] == "failed"
    # the job endpoints need the bearer token and have X's rate-limit headers
    assert requests.get(f"{sandbox.url}/2/compliance/jobs", params={"type": "tweets"}, timeout=10).status_code == 401
    listed = requests.get(f"{sandbox.url}/2/compliance/jobs", params={"type": "tweets"}, headers=AUTH, timeout=10)
    assert listed.status_code == 200 and listed.headers["x-rate-limit-limit"] == "150"
    assert [j["id"] for j in listed.json()["data"]] == [bad["id"]]


def test_x_compliance_checks_every_stored_post_and_author_through_jobs_not_billed_lookups(
    sandbox: SandboxServer, store: Any, registry: Any, matcher: Any
) -> None:
    collect_x(store, sandbox, registry, matcher)
    stored = posts(store, "x")
    live = {i for i, p in stored.items() if p.deleted_at is None}
    mentioned = visible_in_view(store)
    corpus = sandbox.x.corpus
    plain = sorted(i for i in mentioned if i in corpus.tweets and not corpus.tweets[i].edit_history)
    doomed, protected, geo = plain[:3], plain[3:4], plain[4:5]
    for tweet_id in doomed:
        corpus.delete(tweet_id)
    for tweet_id in protected:
        corpus.protect(tweet_id)
    sandbox.x.compliance.scrub_geo(geo[0])
    # an account that is suspended: its posts and its profile must go
    with store.connect() as conn:
        authors = conn.execute(select(Author.__table__).where(Author.platform == "x", Author.username.is_not(None))
                               .order_by(Author.id)).all()
    taken = {p.author_platform_id for p in stored.values() if p.platform_post_id in doomed + protected + geo}
    suspended = next(a for a in authors if a.platform_user_id not in taken
                     and any(p.author_platform_id == a.platform_user_id and p.deleted_at is None
                             for p in stored.values()))
    sandbox.x.compliance.set_account(suspended.platform_user_id, "suspended")
    theirs = {i for i, p in stored.items() if p.author_platform_id == suspended.platform_user_id and i in live}
    sandbox.x.compliance.polls_to_complete = 3  # the check must keep polling
    sandbox.clear_log()
    slept: list[float] = []

    # run it long after the posts were made: the jobs reach posts of any age
    result = check_compliance(store, x_collector=x_collector(sandbox), now=END + dt.timedelta(days=90),
                              poll_interval=7.0, sleep=slept.append)

    assert sandbox.requests_to("/2/tweets") == []  # no billed lookups at all
    created = [r for r in sandbox.requests_to("/2/compliance/jobs") if r.method == "POST"]
    assert len(created) == 2
    uploaded = {job.type: set(job.ids) for job in sandbox.x.compliance.jobs.values()}
    assert uploaded["tweets"] == live
    assert uploaded["users"] == {a.platform_user_id for a in authors}
    assert 7.0 in slept
    x = result["x"]
    assert x["reasons"] == {"deleted": 3, "protected": 1, "suspended": len(theirs), "scrub_geo": 1}
    assert x["billed_reads"] == 0 and x["authors_scrubbed"] == 1
    after = posts(store, "x")
    for tweet_id in doomed + protected + sorted(theirs):
        assert (after[tweet_id].text, after[tweet_id].raw) == ("", None) and after[tweet_id].deleted_at is not None
    assert after[geo[0]].deleted_at is None and "geo" not in (after[geo[0]].raw or {})
    assert visible_in_view(store) == mentioned - set(doomed) - set(protected) - theirs
    with store.connect() as conn:
        row = conn.execute(select(Author.__table__).where(Author.platform == "x",
                                                          Author.platform_user_id == suspended.platform_user_id)).one()
        ledger = conn.execute(select(CollectionRun.__table__).where(CollectionRun.source == "compliance")).one()
    assert (row.username, row.display_name, row.location) == (None, None, None)
    assert suspended.username not in json.dumps([after[i].url for i in theirs])
    assert (ledger.platform, ledger.status, ledger.posts_seen, ledger.posts_updated) == (
        "x", "success", 0, 4 + len(theirs))
    assert ledger.notes["billed_reads"] == 0 and ledger.notes["jobs"]["tweets"]["uploaded"] == len(live)
    assert ledger.requests >= 2 + 2 + 2 * 4  # create, upload, polls, download per job


def test_a_suspended_authors_posts_lose_the_profile_in_their_raw_payloads(
    sandbox: SandboxServer, store: Any, registry: Any, matcher: Any
) -> None:
    collect_x(store, sandbox, registry, matcher)
    stored = posts(store, "x")
    victim = next(p for p in stored.values() if p.author_platform_id and p.deleted_at is None)
    user = sandbox.x.corpus.users[victim.author_platform_id]
    # an imported (twarc2 flattened) payload embeds the author object: plant one
    raw = dict(victim.raw, author={"id": user.id, "username": user.username, "name": user.name})
    with store.begin() as conn:
        conn.execute(Post.__table__.update().where(Post.id == victim.id).values(raw=raw))
    sandbox.x.compliance.set_account(user.id, "deactivated")
    theirs_live = [t.id for t in sandbox.x.corpus.tweets.values() if t.author_id == user.id]
    lookup = requests.get(f"{sandbox.url}/2/tweets", params={"ids": ",".join(theirs_live[:100])}, headers=AUTH,
                          timeout=10).json()
    assert "data" not in lookup and {e["title"] for e in lookup["errors"]} == {"Not Found Error"}
    check_compliance(store, x_collector=x_collector(sandbox), now=END, poll_interval=0, sleep=lambda s: None)
    with store.connect() as conn:
        row = conn.execute(select(Author.__table__).where(Author.platform_user_id == user.id)).one()
        their_posts = conn.execute(select(Post.__table__).where(Post.author_platform_id == user.id)).all()
    assert (row.platform_user_id, row.username, row.display_name) == (user.id, None, None)
    dumped = json.dumps([(p.raw, p.url, p.text) for p in their_posts])
    assert user.username not in dumped and user.name not in dumped


def test_a_job_that_does_not_finish_fails_the_ledger_row_and_keeps_nothing_silent(
    sandbox: SandboxServer, sqlite_engine: Any, registry: Any, matcher: Any
) -> None:
    collect_x(sqlite_engine, sandbox, registry, matcher)
    sandbox.x.compliance.polls_to_complete = 10**6
    ticks = iter(range(0, 10**6, 600))
    from trustwatch.collectors import compliance as module

    jobs = module.XComplianceJobs(x_collector(sandbox), poll_interval=600, max_wait=3600, sleep=lambda s: None,
                                  clock=lambda: float(next(ticks)))
    with pytest.raises(ComplianceError, match="still in_progress"):
        module._check_x_jobs(sqlite_engine, jobs, now=END, run_context=None, secrets=())
    with sqlite_engine.connect() as conn:
        ledger = conn.execute(select(CollectionRun.__table__).where(CollectionRun.source == "compliance")).one()
    assert ledger.status == "failed" and "still in_progress" in ledger.error
    assert "signature" not in ledger.error  # the signed URLs are credentials
    assert ledger.notes["jobs"]["tweets"]["uploaded"] > 0


def test_a_reddit_author_that_comes_back_deleted_is_scrubbed(sandbox: SandboxServer, store: Any, registry: Any,
                                                             matcher: Any) -> None:
    collect_reddit(store, sandbox, registry, matcher)
    stored = posts(store, "reddit")
    corpus = sandbox.reddit.corpus
    counts: dict[str, int] = {}
    for p in stored.values():
        if p.deleted_at is None and p.author_platform_id and p.author_platform_id != "[deleted]":
            counts[p.author_platform_id] = counts.get(p.author_platform_id, 0) + 1
    name = max(counts, key=lambda n: counts[n])
    for thing in list(corpus.comments.values()) + list(corpus.submissions.values()):
        if thing.author == name:
            thing.author = "[deleted]"  # the account was deleted; its posts stay, without a name
    result = check_compliance(store, reddit_collector=reddit_collector(sandbox, matcher), now=END)
    assert result["reddit"]["authors_scrubbed"] == 1
    with store.connect() as conn:
        row = conn.execute(select(Author.__table__).where(Author.platform == "reddit",
                                                          Author.platform_user_id == name)).one()
        theirs = conn.execute(select(Post.__table__).where(Post.author_platform_id == name)).all()
    assert (row.username, row.display_name, row.location) == (None, None, None)
    assert theirs and all(p.raw is None or p.raw["data"]["author"] == "[deleted]" for p in theirs)
    assert all("author_fullname" not in (p.raw or {}).get("data", {}) for p in theirs)
    assert any(p.deleted_at is None for p in theirs)  # the posts themselves stay


def test_a_retry_adopts_the_job_an_earlier_attempt_left_open_at_x(sandbox: SandboxServer, sqlite_engine: Any,
                                                                  registry: Any, matcher: Any) -> None:
    collect_x(sqlite_engine, sandbox, registry, matcher)
    stored = sorted(posts(sqlite_engine, "x"))
    sandbox.x.corpus.delete(stored[0])
    # the first attempt created and filled a job, then its worker died: X keeps the job open
    sandbox.x.compliance.polls_to_complete = 5
    left = _create(sandbox, name="trustwatch-tweets-20261101T000000Z").json()["data"]
    requests.put(left["upload_url"], data="\n".join(stored).encode(), timeout=10)
    assert _create(sandbox).status_code == 400  # X allows no second tweets job now
    result = check_compliance(sqlite_engine, x_collector=x_collector(sandbox), now=END, poll_interval=0,
                              sleep=lambda s: None)
    assert result["x"]["jobs"]["tweets"] == {"id": left["id"], "adopted": True, "uploaded": None, "results": 1,
                                             "malformed_lines": 0}
    assert posts(sqlite_engine, "x")[stored[0]].deleted_reason == "deleted"
    # a job nobody uploaded to expires with its upload URL and blocks nothing
    stale = _create(sandbox, name="trustwatch-tweets-stale").json()["data"]
    _shift_clock(sandbox, 16 * 60)
    assert _job(sandbox, stale["id"])["status"] == "expired"
    assert _create(sandbox).status_code == 200


def test_signed_url_failures_are_retried_and_a_refusal_fails_the_run_with_the_storage_code(
    sandbox: SandboxServer, sqlite_engine: Any, registry: Any, matcher: Any
) -> None:
    collect_x(sqlite_engine, sandbox, registry, matcher)
    sandbox.faults.add("/compliance-storage/", "status", status=503, times=2)
    sandbox.faults.add("/compliance-storage/", "reset", times=1, after=3)
    result = check_compliance(sqlite_engine, x_collector=x_collector(sandbox), now=END, poll_interval=0,
                              sleep=lambda s: None)
    assert result["x"]["jobs"]["tweets"]["uploaded"] > 0 and sandbox.faults.pending == 0
    assert [r.status for r in sandbox.requests_to("/compliance-storage/")][:3] == [503, 503, 200]
    # an upload refused by the storage (here: a forged signature) fails the run, naming the storage's code
    sandbox.x.compliance.jobs.clear()
    real = sandbox.x.compliance.handle_storage
    sandbox.x.compliance.handle_storage = lambda request: real(  # type: ignore[method-assign]
        type(request)(request.method, request.path, {"signature": ["forged"]}, request.headers, request.body))
    with pytest.raises(ComplianceError, match="HTTP 403 SignatureDoesNotMatch"):
        check_compliance(sqlite_engine, x_collector=x_collector(sandbox), now=END + dt.timedelta(days=7),
                         poll_interval=0, sleep=lambda s: None)
    with sqlite_engine.connect() as conn:
        failed = conn.execute(select(CollectionRun.__table__).where(CollectionRun.status == "failed")).one()
    assert "SignatureDoesNotMatch" in failed.error and "signature=" not in failed.error

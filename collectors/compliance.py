"""Deletion compliance: find what the platforms no longer show and tombstone or scrub it in the store.

X's and Reddit's terms require that content deleted, suspended or withheld on the platform is not kept
(X's developer policy: remove it within 24 hours of learning of it).  The ``compliance_check`` DAG and
``trustwatch compliance`` run :func:`check_compliance`.

X: every stored live post id and every stored author id goes through X's batch compliance jobs
(``POST /2/compliance/jobs`` for ``tweets`` and ``users``, upload the ids, poll, download the result
lines).  X does not bill those per post, whereas looking posts up again (``GET /2/tweets``) bills every
post and every expanded user each time, about 30 reads per stored post a month when done daily.  Lookups
stay only as an opt-in for the newest hours (``x_lookup_hours``), the one path that also sees withheld
posts.  Reddit: ``/api/info`` by up to 100 fullnames (not billed), posts younger than ``max_age_days``.

What is gone becomes a tombstone: text emptied, title and raw payload removed, ``deleted_at`` and
``deleted_reason`` kept, so counts over time stay explainable.  Its rejected payloads are scrubbed too.
The analyst views leave tombstones out; a tombstone never gets its content back (``write_page`` keeps it
scrubbed when the post is seen again).  An account that X reports deleted, deactivated or suspended (or a
Reddit author that comes back ``[deleted]``) loses its username, display name and location in
``authors`` and in its posts' raw payloads and URLs; its platform id stays, as a tombstone.

Reasons: ``deleted``, ``deactivated``, ``suspended``, ``protected`` (X's batch compliance reasons);
``not_found``, ``suspended``, ``protected``, ``withheld`` from a lookup; ``[deleted]`` / ``[removed]``
(Reddit shows the author deleted it, or a moderator or Reddit removed it).  ``scrub_geo`` keeps the
post and drops its place from the raw payload.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from sqlalchemy import Engine, bindparam, null, select, update
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential
from trustwatch.models import store
from trustwatch.models.tables import Author, Post, RejectedPayload

log = logging.getLogger(__name__)

#: The platforms' most ids per lookup request.
MAX_BATCH = 100
SOURCE = "compliance"
QUERY_VERSION = "1"
#: Stored in place of a tombstoned post's rejected payloads.
SCRUBBED = {"scrubbed": "the post was deleted or withheld on the platform"}
#: Batch compliance reasons that take a post out of the store.
POST_GONE = frozenset({"deleted", "deactivated", "suspended", "protected"})
#: Batch compliance reasons (users job) that scrub an account's profile.
ACCOUNT_GONE = frozenset({"deleted", "deactivated", "suspended"})
#: Keys of a raw payload that name or describe the author (X user objects, Reddit ``author_*`` fields).
_AUTHOR_OBJECT_KEYS = ("author", "user")


class ComplianceError(RuntimeError):
    """A compliance run could not finish; the posts checked so far keep their tombstones."""


class _StorageUnavailable(Exception):
    """A signed-URL request answered 5xx: worth another try."""


# --- the stored ids ----------------------------------------------------------------------------------


def _stored_batches(
    engine: Engine, platform: str, since: dt.datetime | None, batch: int
) -> Iterator[list[tuple[int, str, str, str | None]]]:
    """(row id, platform id, kind, author id) of live posts created since ``since`` (all when None),
    ``batch`` at a time (keyset paging, so memory stays flat however many posts are stored)."""
    last = 0
    while True:
        conditions = [Post.platform == platform, Post.deleted_at.is_(None), Post.id > last]
        if since is not None:
            conditions.append(Post.created_at >= since)
        with engine.connect() as conn:
            rows = conn.execute(
                select(Post.id, Post.platform_post_id, Post.kind, Post.author_platform_id)
                .where(*conditions).order_by(Post.id).limit(batch)
            ).all()
        if not rows:
            return
        yield [(r.id, r.platform_post_id, r.kind, r.author_platform_id) for r in rows]
        last = rows[-1].id


def _stored_author_ids(engine: Engine, platform: str) -> list[str]:
    """Authors whose profile is still held (a scrubbed one has no username left to remove)."""
    with engine.connect() as conn:
        return list(conn.execute(
            select(Author.platform_user_id)
            .where(Author.platform == platform, Author.username.is_not(None))
            .order_by(Author.id)
        ).scalars())


# --- verdicts from lookups ---------------------------------------------------------------------------


def _x_verdicts(collector: Any, ids: Sequence[str]) -> tuple[dict[str, str], Any]:
    """{post id: reason} for the ids X no longer shows, and the lookup page (for the ledger)."""
    page = collector.lookup(list(ids))
    found = {p.platform_post_id: p for p in page.posts}
    unreadable = {r.platform_post_id for r in page.rejects}  # returned, but malformed: not proof of deletion
    verdicts: dict[str, str] = {}
    for post_id in ids:
        post = found.get(post_id)
        if post_id in unreadable:
            continue
        if post is None:
            verdicts[post_id] = page.unavailable.get(post_id, "not_found")
        elif post.withheld:
            verdicts[post_id] = "withheld"
    return verdicts, page


def _fullname(post_id: str, kind: str) -> str:
    return f"{'t3' if kind == 'submission' else 't1'}_{post_id}"


def _reddit_verdicts(
    collector: Any, rows: Sequence[tuple[int, str, str, str | None]]
) -> tuple[dict[str, str], Any, set[str]]:
    """{post id: reason} for the things Reddit shows deleted or removed, or no longer returns; also the
    stored authors that now come back ``[deleted]`` (the account is gone)."""
    names = [_fullname(post_id, kind) for _, post_id, kind, _ in rows]
    page = collector.info(names)
    found = {p.platform_post_id: p for p in page.posts}
    unreadable = {r.platform_post_id for r in page.rejects}
    verdicts: dict[str, str] = {}
    gone_authors: set[str] = set()
    for _, post_id, _kind, author in rows:
        post = found.get(post_id)
        if post_id in unreadable:
            continue
        if post is None:
            verdicts[post_id] = "not_found"
            continue
        if post.deleted_reason:
            verdicts[post_id] = post.deleted_reason
        if post.author_platform_id == "[deleted]" and author and author != "[deleted]":
            gone_authors.add(author)
    return verdicts, page, gone_authors


# --- what the store does with a verdict ------------------------------------------------------------


def tombstone(engine: Engine, platform: str, verdicts: dict[str, str], now: dt.datetime) -> int:
    """Scrub the posts in ``verdicts`` (platform id -> reason) in one transaction; returns how many changed."""
    if not verdicts:
        return 0
    changed = 0
    with engine.begin() as conn:
        for reason in sorted(set(verdicts.values())):
            ids = sorted(i for i, r in verdicts.items() if r == reason)
            for start in range(0, len(ids), 1000):  # bounded IN lists
                chunk = ids[start:start + 1000]
                changed += conn.execute(
                    update(Post)
                    .where(Post.platform == platform, Post.platform_post_id.in_(chunk), Post.deleted_at.is_(None))
                    .values(text="", title=None, raw=null(), deleted_at=now, deleted_reason=reason[:40])
                ).rowcount or 0
                conn.execute(
                    update(RejectedPayload)
                    .where(RejectedPayload.platform == platform, RejectedPayload.platform_post_id.in_(chunk))
                    .values(payload=SCRUBBED)
                )
    if changed and engine.dialect.name == "postgresql":
        # fresh statistics without the deleted rows' values (content columns are never sampled: migration 0020)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE posts")
    return changed


def _without_author(raw: Any) -> Any:
    """A raw payload with the author's identity taken out: embedded user objects (twarc's flattened
    ``author``, ``includes.users``) dropped, Reddit's ``author`` set to ``[deleted]`` and its ``author_*``
    fields dropped; ``author_id`` stays (the tombstone)."""
    if isinstance(raw, list):
        return [_without_author(v) for v in raw]
    if not isinstance(raw, dict):
        return raw
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _AUTHOR_OBJECT_KEYS and isinstance(value, dict):
            continue
        if key == "users" and isinstance(value, list):
            continue
        if key == "author" and isinstance(value, str):
            out[key] = "[deleted]"
            continue
        if key.startswith("author_") and key != "author_id":
            continue
        out[key] = _without_author(value)
    return out


def scrub_authors(engine: Engine, platform: str, user_ids: Sequence[str]) -> dict[str, int]:
    """Remove username, display name and location of these accounts from ``authors`` and the account's
    identity from its posts' raw payloads and URLs (the platform id stays); returns what changed."""
    ids = sorted(set(user_ids))
    counts = {"authors": 0, "posts": 0}
    if not ids:
        return counts
    with engine.begin() as conn:
        for start in range(0, len(ids), 1000):
            chunk = ids[start:start + 1000]
            counts["authors"] += conn.execute(
                update(Author)
                .where(Author.platform == platform, Author.platform_user_id.in_(chunk))
                .values(username=None, display_name=None, location=None)
            ).rowcount or 0
            rows = conn.execute(
                select(Post.id, Post.platform_post_id, Post.raw, Post.url)
                .where(Post.platform == platform, Post.author_platform_id.in_(chunk))
            ).all()
            with_raw = [{"pid": row.id, "new_raw": _without_author(row.raw), "new_url": _scrubbed_url(platform, row)}
                        for row in rows if row.raw is not None]
            without_raw = [{"pid": row.id, "new_url": _scrubbed_url(platform, row)}
                           for row in rows if row.raw is None]
            if with_raw:
                conn.execute(_UPDATE_RAW_AND_URL, with_raw)
            if without_raw:
                conn.execute(_UPDATE_URL, without_raw)
            counts["posts"] += len(rows)
    return counts


def _scrubbed_url(platform: str, row: Any) -> str | None:
    """X's status URL names the account (x.com/<username>/status/<id>): the account-free form keeps the post
    reachable; Reddit's permalink names no user."""
    return f"https://x.com/i/web/status/{row.platform_post_id}" if platform == "x" else row.url


# One statement with many parameter sets (executemany), not a statement per post.
_UPDATE_RAW_AND_URL = (update(Post).where(Post.id == bindparam("pid"))
                       .values(raw=bindparam("new_raw", type_=Post.__table__.c.raw.type),
                               url=bindparam("new_url")))
_UPDATE_URL = update(Post).where(Post.id == bindparam("pid")).values(url=bindparam("new_url"))


def scrub_geo(engine: Engine, platform: str, post_ids: Sequence[str]) -> int:
    """Drop the place of these posts (``geo`` in the raw payload and any ``includes.places``)."""
    changed = 0
    with engine.begin() as conn:
        ids = sorted(set(post_ids))
        for start in range(0, len(ids), 1000):
            rows = conn.execute(
                select(Post.id, Post.raw)
                .where(Post.platform == platform, Post.platform_post_id.in_(ids[start:start + 1000]),
                       Post.raw.is_not(None))
            ).all()
            params = [{"pid": row.id, "new_raw": {k: v for k, v in row.raw.items() if k not in _PLACE_KEYS}}
                      for row in rows]
            if params:
                conn.execute(_UPDATE_RAW, params)
            changed += len(params)
    return changed


_PLACE_KEYS = ("geo", "place", "places")
_UPDATE_RAW = (update(Post).where(Post.id == bindparam("pid"))
               .values(raw=bindparam("new_raw", type_=Post.__table__.c.raw.type)))


# --- X batch compliance jobs -----------------------------------------------------------------------


@dataclass
class JobResult:
    """One finished compliance job: its id, the lines X returned and what could not be read."""

    job_id: str
    kind: str
    uploaded: int
    lines: list[dict[str, Any]] = field(default_factory=list)
    malformed: int = 0


class XComplianceJobs:
    """X's batch compliance flow: create a job (tweepy), PUT the ids to its signed upload URL, poll the
    job (tweepy) until ``complete``, GET the result lines from its signed download URL.

    The signed URLs carry their own credential, so they get no bearer token and never reach a log or an
    error message.  ``poll_interval``/``max_wait`` bound the wait (X gives no time; jobs take minutes to
    hours for millions of ids).
    """

    def __init__(
        self,
        collector: Any,
        *,
        poll_interval: float = 30.0,
        max_wait: float = 3 * 3600.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 120.0,
    ) -> None:
        self.collector = collector
        self.poll_interval = poll_interval
        self.max_wait = max_wait
        self.sleep = sleep
        self.clock = clock
        self.timeout = timeout
        self.requests = 0
        self._http = requests.Session()

    def _api(self, call: Callable[[], Any], what: str) -> dict[str, Any]:
        from trustwatch.collectors.x import _Stats  # the collector's retry and rate-limit policy

        stats = _Stats()
        try:
            return self.collector._request(call, what, None, stats)
        finally:
            self.requests += stats.requests

    def create(self, kind: str, name: str) -> dict[str, Any]:
        """POST /2/compliance/jobs; the job object (status ``created``)."""
        body = self._api(lambda: self.collector.client.create_compliance_job(type=kind, name=name),
                         f"compliance job create ({kind})")
        job = body.get("data")
        if not isinstance(job, dict) or not job.get("upload_url") or not job.get("id"):
            raise ComplianceError(f"X answered the {kind} compliance job creation without a job: "
                                  f"{json.dumps(body.get('errors') or body)[:300]}")
        return job

    def open_job(self, kind: str) -> dict[str, Any] | None:
        """A job of ours (named ``trustwatch-...``) that X still holds open for ``kind``: an earlier attempt
        of this task that died while X worked.  X allows one open job per type, so a retry adopts it."""
        for status in ("in_progress", "created"):
            body = self._api(lambda s=status: self.collector.client.get_compliance_jobs(type=kind, status=s),
                             f"compliance job list ({kind})")
            for job in body.get("data") or []:
                if isinstance(job, dict) and str(job.get("name", "")).startswith("trustwatch-"):
                    return job
        return None

    def _storage(self, method: str, url: str, what: str, data: bytes | None = None) -> requests.Response:
        """One request to a signed URL: transient failures (connection, 5xx) retried by tenacity, a
        refusal (expired or wrong signature) raised with the storage's error code, never the URL."""

        def attempt() -> requests.Response:
            self.requests += 1
            headers = {"Content-Type": "text/plain"} if data is not None else {}
            response = self._http.request(method, url, data=data, timeout=self.timeout, headers=headers)
            if response.status_code >= 500:
                raise _StorageUnavailable(f"HTTP {response.status_code}")
            return response

        try:
            response = Retrying(
                retry=retry_if_exception_type((requests.RequestException, _StorageUnavailable)),
                stop=stop_after_attempt(3), wait=wait_exponential(multiplier=1, max=30), sleep=self.sleep,
                reraise=True,
            )(attempt)
        except (requests.RequestException, _StorageUnavailable) as exc:
            raise ComplianceError(f"{what} kept failing after 3 attempts ({type(exc).__name__}: "
                                  f"{str(exc).split('?')[0][:200]})") from None
        if response.status_code >= 400:
            text = response.text
            code = text.split("<Code>")[1].split("</Code>")[0] if "<Code>" in text else response.reason
            raise ComplianceError(f"{what} failed: HTTP {response.status_code} {code}")
        return response

    def upload(self, job: dict[str, Any], ids: Sequence[str]) -> None:
        """PUT the ids, one per line, to the job's signed upload URL (valid 15 minutes)."""
        payload = "".join(f"{i}\n" for i in ids).encode()
        self._storage("PUT", job["upload_url"], f"upload of {len(ids)} ids to {job['type']} job {job['id']}",
                      payload)

    def wait(self, job: dict[str, Any]) -> dict[str, Any]:
        """Poll the job until it is ``complete``; ComplianceError when it fails, expires or takes too long."""
        started = self.clock()
        while True:
            body = self._api(lambda: self.collector.client.get_compliance_job(job["id"]),
                             f"compliance job status ({job['type']})")
            current = body.get("data") if isinstance(body.get("data"), dict) else {}
            status = current.get("status")
            if status == "complete":
                return current
            if status in ("failed", "expired") or not status:
                raise ComplianceError(f"X {job['type']} compliance job {job['id']} ended {status or 'unknown'}"
                                      f"{'' if status else ': ' + json.dumps(body)[:300]}; run the check again")
            if self.clock() - started > self.max_wait:
                raise ComplianceError(f"X {job['type']} compliance job {job['id']} still {status} after "
                                      f"{self.max_wait:.0f}s; it keeps running at X, run the check again later")
            self.sleep(self.poll_interval)

    def download(self, job: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
        """The result lines (one JSON object per id that needs action) and how many lines were unreadable."""
        response = self._storage("GET", job["download_url"], f"download of {job['type']} job {job['id']}")
        lines: list[dict[str, Any]] = []
        malformed = 0
        for line in response.text.splitlines():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                malformed += 1
                continue
            if isinstance(item, dict) and isinstance(item.get("id"), str | int):
                item["id"] = str(item["id"])
                lines.append(item)
            else:
                malformed += 1
        return lines, malformed


def _check_x_jobs(
    engine: Engine,
    jobs: XComplianceJobs,
    *,
    now: dt.datetime,
    run_context: dict[str, Any] | None,
    secrets: tuple[str, ...],
) -> dict[str, Any]:
    """Every stored live X post and every stored X author through one tweets job and one users job."""
    handle = store.open_run(
        engine, platform="x", query_key="compliance-jobs", query_version=QUERY_VERSION,
        query_text="X batch compliance jobs: every stored live post id (tweets) and author id (users)",
        window_start=None, window_end=now, source=SOURCE, run_context=run_context,
    )
    summary: dict[str, Any] = {"platform": "x", "method": "batch_compliance_jobs", "run_id": handle.run_id,
                               "checked": 0, "tombstoned": 0, "reasons": {}, "requests": 0, "billed_reads": 0,
                               "jobs": {}, "authors_scrubbed": 0, "geo_scrubbed": 0}
    try:
        post_ids = [r[1] for rows in _stored_batches(engine, "x", None, 10_000) for r in rows]
        author_ids = _stored_author_ids(engine, "x")
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        opened: list[tuple[dict[str, Any], int]] = []
        for kind, ids in (("tweets", post_ids), ("users", author_ids)):
            if not ids:
                summary["jobs"][kind] = {"uploaded": 0, "skipped": "nothing stored"}
                continue
            job = jobs.open_job(kind)
            if job is not None and job.get("status") == "in_progress":
                # its upload came from an earlier attempt: apply its results; the next run covers the rest
                opened.append((job, 0))
                summary["jobs"][kind] = {"id": job["id"], "adopted": True, "uploaded": None}
                continue
            job = job or jobs.create(kind, f"trustwatch-{kind}-{stamp}")
            jobs.upload(job, ids)
            opened.append((job, len(ids)))
            summary["jobs"][kind] = {"id": job["id"], "uploaded": len(ids)}
        summary["checked"] = len(post_ids)
        for job, _uploaded in opened:
            done = jobs.wait(job)
            lines, malformed = jobs.download(done)
            kind = job["type"]
            summary["jobs"][kind].update({"results": len(lines), "malformed_lines": malformed})
            if kind == "tweets":
                gone = {ln["id"]: str(ln.get("reason") or "deleted") for ln in lines
                        if ln.get("action") == "delete" or ln.get("reason") in POST_GONE}
                summary["tombstoned"] += tombstone(engine, "x", gone, now)
                geo = [ln["id"] for ln in lines if ln.get("action") == "scrub_geo" and ln["id"] not in gone]
                summary["geo_scrubbed"] += scrub_geo(engine, "x", geo)
                for reason in list(gone.values()) + ["scrub_geo"] * len(geo):
                    summary["reasons"][reason] = summary["reasons"].get(reason, 0) + 1
            else:
                accounts = [ln["id"] for ln in lines if ln.get("reason") in ACCOUNT_GONE]
                summary["authors_scrubbed"] += scrub_authors(engine, "x", accounts)["authors"]
                summary["jobs"][kind]["reasons"] = _count(str(ln.get("reason")) for ln in lines)
            summary["requests"] = jobs.requests
            store.update_run(engine, handle.run_id, requests=jobs.requests, posts_updated=summary["tombstoned"],
                             notes=_job_notes(summary))
    except BaseException as exc:
        summary["requests"] = jobs.requests
        store.update_run(engine, handle.run_id, status="failed", error=_redacted(exc, secrets),
                         requests=jobs.requests, finished_at=store.utcnow(), notes=_job_notes(summary))
        raise
    summary["requests"] = jobs.requests
    store.update_run(engine, handle.run_id, status="success", finished_at=store.utcnow(), requests=jobs.requests,
                     pages=len(summary["jobs"]), posts_seen=0, posts_updated=summary["tombstoned"],
                     notes=_job_notes(summary))
    log.info("compliance x (batch jobs): %d posts and %d authors checked, %d tombstoned, %d accounts scrubbed %s",
             summary["checked"], len(_stored_author_ids(engine, "x")) + summary["authors_scrubbed"],
             summary["tombstoned"], summary["authors_scrubbed"], summary["reasons"])
    return summary


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return out


def _job_notes(summary: dict[str, Any]) -> dict[str, Any]:
    return {"method": "batch_compliance_jobs", "billed_reads": 0, "checked": summary["checked"],
            "tombstoned": summary["tombstoned"], "reasons": summary["reasons"], "jobs": summary["jobs"],
            "authors_scrubbed": summary["authors_scrubbed"], "geo_scrubbed": summary["geo_scrubbed"]}


# --- lookups (X opt-in for the newest hours; Reddit) ------------------------------------------------


def _check_platform(
    engine: Engine,
    platform: str,
    verdicts_of: Callable[[list[tuple[int, str, str, str | None]]], tuple[dict[str, str], Any, set[str]]],
    *,
    since: dt.datetime,
    label: str,
    batch: int,
    now: dt.datetime,
    run_context: dict[str, Any] | None,
    secrets: tuple[str, ...],
) -> dict[str, Any]:
    handle = store.open_run(
        engine, platform=platform, query_key=SOURCE, query_version=QUERY_VERSION,
        query_text=f"re-check stored posts created since {since.isoformat()} ({label})",
        window_start=since, window_end=now, source=SOURCE, run_context=run_context,
    )
    summary: dict[str, Any] = {"platform": platform, "method": "lookup", "run_id": handle.run_id, "checked": 0,
                               "tombstoned": 0, "reasons": {}, "requests": 0, "batches": 0, "authors_scrubbed": 0,
                               "billed_reads": 0}
    waits = 0
    wait_seconds = 0.0
    try:
        for rows in _stored_batches(engine, platform, since, batch):
            verdicts, page, gone_authors = verdicts_of(rows)
            changed = tombstone(engine, platform, verdicts, now)
            summary["authors_scrubbed"] += scrub_authors(engine, platform, sorted(gone_authors))["authors"]
            summary["batches"] += 1
            summary["checked"] += len(rows)
            summary["tombstoned"] += changed
            summary["requests"] += int(getattr(page, "requests", 1) or 0)
            if platform == "x":  # X bills every post and every expanded user a lookup returns
                summary["billed_reads"] += len(page.posts) + len(page.authors)
            waits += int(getattr(page, "rate_limit_waits", 0) or 0)
            wait_seconds += float(getattr(page, "rate_limit_wait_seconds", 0.0) or 0.0)
            for reason in verdicts.values():
                summary["reasons"][reason] = summary["reasons"].get(reason, 0) + 1
            store.update_run(engine, handle.run_id, pages=summary["batches"], requests=summary["requests"],
                             posts_seen=summary["checked"], posts_updated=summary["tombstoned"],
                             rate_limit_waits=waits, rate_limit_wait_seconds=wait_seconds)
    except BaseException as exc:
        store.update_run(engine, handle.run_id, status="failed", error=_redacted(exc, secrets),
                         finished_at=store.utcnow(), notes=_notes(summary, label))
        raise
    store.update_run(engine, handle.run_id, status="success", finished_at=store.utcnow(),
                     notes=_notes(summary, label))
    log.info("compliance %s: %d posts checked, %d tombstoned %s", platform, summary["checked"],
             summary["tombstoned"], summary["reasons"])
    return summary


def _redacted(exc: BaseException, secrets: tuple[str, ...]) -> str:
    text = f"{type(exc).__name__}: {exc}"
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:2000]


def _notes(summary: dict[str, Any], label: str) -> dict[str, Any]:
    return {"method": "lookup", "checked": summary["checked"], "tombstoned": summary["tombstoned"],
            "reasons": summary["reasons"], "window": label, "billed_reads": summary["billed_reads"],
            "authors_scrubbed": summary["authors_scrubbed"]}


def check_compliance(
    engine: Engine,
    *,
    x_collector: Any = None,
    reddit_collector: Any = None,
    max_age_days: float = 30,
    x_jobs: bool = True,
    x_lookup_hours: float = 0.0,
    batch: int = MAX_BATCH,
    now: dt.datetime | None = None,
    run_context: dict[str, Any] | None = None,
    secrets: tuple[str, ...] = (),
    poll_interval: float = 30.0,
    max_wait: float = 3 * 3600.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Check the stored posts of each platform given a collector; one ledger row per platform and method.

    X: batch compliance jobs over every stored post and author (``x_jobs``, not billed per post), plus,
    when ``x_lookup_hours`` > 0, a billed lookup of the posts created in those last hours (it also sees
    withheld posts).  Reddit: lookups of the posts younger than ``max_age_days``.  Returns ``{"x": {...},
    "x_lookup": {...}, "reddit": {...}}`` with posts checked, tombstoned, the reasons and the run id.
    """
    if not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"batch must be between 1 and {MAX_BATCH} (the platforms' lookup limit), got {batch}")
    if max_age_days <= 0:
        raise ValueError(f"max_age_days must be positive, got {max_age_days}")
    if x_lookup_hours < 0:
        raise ValueError(f"x_lookup_hours must be 0 (off) or positive, got {x_lookup_hours}")
    if x_collector is None and reddit_collector is None:
        raise ComplianceError("no collector given: configure the x_api or reddit_api connection")
    moment = (now or store.utcnow()).astimezone(dt.UTC)
    result: dict[str, Any] = {}
    common = {"batch": batch, "now": moment, "run_context": run_context, "secrets": secrets}
    if x_collector is not None and x_jobs:
        jobs = XComplianceJobs(x_collector, poll_interval=poll_interval, max_wait=max_wait, sleep=sleep)
        result["x"] = _check_x_jobs(engine, jobs, now=moment, run_context=run_context, secrets=secrets)
    if x_collector is not None and x_lookup_hours > 0:
        result["x_lookup"] = _check_platform(
            engine, "x", lambda rows: (*_x_verdicts(x_collector, [r[1] for r in rows]), set()),
            since=moment - dt.timedelta(hours=x_lookup_hours), label=f"{x_lookup_hours:g} hours, lookup opt-in",
            **common,
        )
    if reddit_collector is not None:
        result["reddit"] = _check_platform(
            engine, "reddit", lambda rows: _reddit_verdicts(reddit_collector, rows),
            since=moment - dt.timedelta(days=max_age_days), label=f"{max_age_days:g} days", **common,
        )
    # every run, not only for the posts it tombstoned: a reject written before its post was deleted (or
    # from a broken copy of an old tombstone) keeps no deleted text either
    result["rejects_scrubbed"] = store.scrub_tombstoned_rejects(engine)
    return result

"""The sandbox's X batch compliance jobs: ``/2/compliance/jobs`` and the signed upload/download URLs.

X's documented flow (developer.x.com, "Batch compliance"): ``POST /2/compliance/jobs`` with ``{"type":
"tweets"|"users", "name"?, "resumable"?}`` answers a job in status ``created`` with an ``upload_url``
(expires 15 minutes after creation) and a ``download_url`` (expires one week after creation); the client
PUTs a plain-text file of ids, one per line, to the upload URL (a signed cloud-storage URL: no bearer
token); ``GET /2/compliance/jobs/:id`` moves through ``in_progress`` to ``complete`` (or ``failed``), and
``expired`` once the download URL is past its date; the result file holds one JSON object per line for
each id that needs action: ``id``, ``action``, ``created_at``, ``redacted_at``, ``reason`` (``deleted``,
``deactivated``, ``suspended``, ``protected``, ``scrub_geo``).  One job per type may be open at a time.

The state of accounts (suspended, deactivated, deleted) and scrubbed geo live here, set by tests and the
benchmark through :meth:`XComplianceJobs.set_account` and :meth:`XComplianceJobs.scrub_geo`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trustwatch.sandbox.common import SandboxRequest, SandboxResponse, json_response
from trustwatch.sandbox.x_corpus import XCorpus, XTweet, api_time

#: Where the sandbox serves the signed URLs (the real ones point at storage.googleapis.com).
STORAGE_PREFIX = "/compliance-storage/"
JOB_TYPES = ("tweets", "users")
UPLOAD_TTL = dt.timedelta(minutes=15)
DOWNLOAD_TTL = dt.timedelta(days=7)
ACCOUNT_STATES = ("deleted", "deactivated", "suspended", "protected")
_OPEN = ("created", "in_progress")


@dataclass
class Job:
    """One compliance job and what was uploaded to it."""

    id: str
    type: str
    name: str | None
    resumable: bool
    created_at: dt.datetime
    signature: str
    status: str = "created"
    ids: list[str] = field(default_factory=list)
    polls_left: int = 1
    result: bytes = b""

    def to_api(self, host: str) -> dict[str, Any]:
        base = f"http://{host}{STORAGE_PREFIX}{self.id}"
        out: dict[str, Any] = {
            "id": self.id, "type": self.type, "status": self.status, "resumable": self.resumable,
            "created_at": api_time(self.created_at),
            "upload_url": f"{base}/upload?signature={self.signature}",
            "upload_expires_at": api_time(self.created_at + UPLOAD_TTL),
            "download_url": f"{base}/download?signature={self.signature}",
            "download_expires_at": api_time(self.created_at + DOWNLOAD_TTL),
        }
        if self.name:
            out["name"] = self.name
        return out


def _storage_error(status: int, code: str, details: str) -> SandboxResponse:
    """Cloud storage answers signed-URL problems in XML, not X's JSON."""
    body = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
            f"<Message>{code}</Message><Details>{details}</Details></Error>").encode()
    return SandboxResponse(status, body, {"content-type": "application/xml; charset=UTF-8"})


def _invalid(message: str, parameter: str = "type", value: str = "") -> SandboxResponse:
    return json_response(400, {
        "errors": [{"parameters": {parameter: [value]}, "message": message}],
        "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    })


class XComplianceJobs:
    """Compliance jobs over an :class:`XCorpus`; the clock is settable so tests can step past expiry."""

    def __init__(self, corpus: XCorpus, clock: Callable[[], float]) -> None:
        self.corpus = corpus
        self.clock = clock
        self.jobs: dict[str, Job] = {}
        #: user id -> (state, since); set through :meth:`set_account`.
        self.accounts: dict[str, tuple[str, dt.datetime]] = {}
        #: tweet id -> when its geo was scrubbed.
        self.geo_scrubbed: dict[str, dt.datetime] = {}
        #: Status polls a job answers ``in_progress`` before it completes (tests raise it to exercise polling).
        self.polls_to_complete = 1
        self._next = 1460000000000000000
        self._lock = threading.Lock()
        self._by_stored: dict[str, XTweet] | None = None

    # -- ground truth setters ------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        """The sandbox's current time (UTC) from its clock."""
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    def set_account(self, user_id: str, state: str) -> None:
        """Suspend, deactivate, delete or protect an account.  Suspended, deleted and deactivated ones leave
        ``includes.users``; a deleted or deactivated account's posts are gone from search and lookup (X
        answers "Not Found" for them), a protected one's are refused.  A suspended account's posts stay
        served here: what X's lookup answers for them is not in the recordings."""
        if state not in ACCOUNT_STATES:
            raise ValueError(f"account state must be one of {ACCOUNT_STATES}, got {state!r}")
        self.accounts[user_id] = (state, self.now())
        user = self.corpus.users.get(user_id)
        if user is not None and state != "protected":
            user.hidden = True
        for tweet in self.corpus.tweets.values():
            if tweet.author_id == user_id:
                if state in ("deleted", "deactivated"):
                    tweet.deleted = True
                elif state == "protected":
                    tweet.protected = True
        self.corpus.version += 1

    def scrub_geo(self, tweet_id: str) -> None:
        """The author removed the location from a post."""
        self.geo_scrubbed[tweet_id] = self.now()

    # -- HTTP ----------------------------------------------------------------------------------------

    def handle_api(self, request: SandboxRequest) -> SandboxResponse:
        """``/2/compliance/jobs`` (POST create, GET list) and ``/2/compliance/jobs/:id`` (GET)."""
        path = request.path.rstrip("/")
        host = request.headers.get("host", "127.0.0.1")
        if path == "/2/compliance/jobs":
            if request.method == "POST":
                return self._create(request, host)
            if request.method == "GET":
                return self._list(request, host)
        elif path.startswith("/2/compliance/jobs/") and request.method == "GET":
            job = self.jobs.get(path.rsplit("/", 1)[1])
            if job is None:
                job_id = path.rsplit("/", 1)[1]
                return json_response(200, {"errors": [{
                    "value": job_id, "detail": f"Could not find job with id: [{job_id}].",
                    "title": "Not Found Error", "resource_type": "job", "parameter": "id", "resource_id": job_id,
                    "type": "https://api.twitter.com/2/problems/resource-not-found"}]})
            self._advance(job)
            return json_response(200, {"data": job.to_api(host)})
        return json_response(405, {"title": "Method Not Allowed", "status": 405, "type": "about:blank",
                                   "detail": f"{request.method} is not allowed on {request.path}"})

    def _create(self, request: SandboxRequest, host: str) -> SandboxResponse:
        try:
            body = json.loads(request.body.decode("utf-8") or "{}")
        except (ValueError, UnicodeDecodeError):
            return _invalid("The request body is not valid JSON", "body")
        if not isinstance(body, dict):
            return _invalid("The request body must be a JSON object", "body")
        kind = body.get("type")
        if kind not in JOB_TYPES:
            return _invalid(f"The `type` body parameter value [{kind}] is not one of [tweets,users]", "type",
                            str(kind))
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > 64):
            return _invalid("The `name` body parameter must be a string of at most 64 characters", "name",
                            str(name))
        with self._lock:
            for job in self.jobs.values():
                self._advance(job)
                if job.type == kind and job.status in _OPEN:
                    return _invalid(f"You already have an open {kind} compliance job ({job.id}); only one job "
                                    "per type may be open at a time", "type", kind)
            job_id = str(self._next)
            self._next += 1
            signature = hashlib.sha256(f"{job_id}:{self.clock()}".encode()).hexdigest()[:32]
            job = Job(job_id, kind, name, bool(body.get("resumable", False)), self.now(), signature,
                      polls_left=self.polls_to_complete)
            self.jobs[job_id] = job
        return json_response(200, {"data": job.to_api(host)})

    def _list(self, request: SandboxRequest, host: str) -> SandboxResponse:
        kind = request.param("type")
        if kind not in JOB_TYPES:
            return _invalid(f"The `type` query parameter value [{kind}] is not one of [tweets,users]", "type",
                            str(kind))
        status = request.param("status")
        jobs = [j for j in self.jobs.values() if j.type == kind]
        for job in jobs:
            self._advance(job)
        if status:
            jobs = [j for j in jobs if j.status == status]
        return json_response(200, {"data": [j.to_api(host) for j in jobs], "meta": {"result_count": len(jobs)}})

    def _advance(self, job: Job) -> None:
        """Expire a job past its download date; complete an uploaded one after ``polls_left`` polls."""
        now = self.now()
        if now >= job.created_at + DOWNLOAD_TTL or (job.status == "created" and now >= job.created_at + UPLOAD_TTL):
            job.status = "expired"  # "expired before completion": never uploaded, or past its download date
            return
        if job.status == "in_progress":
            if job.polls_left > 0:
                job.polls_left -= 1
                return
            self._finish(job)

    def _finish(self, job: Job) -> None:
        if any(not i.isdigit() for i in job.ids):
            job.status = "failed"
            return
        lines = self._tweet_results(job.ids) if job.type == "tweets" else self._user_results(job.ids)
        job.result = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode()
        job.status = "complete"

    def handle_storage(self, request: SandboxRequest) -> SandboxResponse:
        """PUT the id file to ``.../upload``, GET the results from ``.../download`` (signed, no bearer)."""
        parts = request.path[len(STORAGE_PREFIX):].strip("/").split("/")
        job = self.jobs.get(parts[0]) if len(parts) == 2 else None
        if job is None or request.param("signature") != job.signature:
            return _storage_error(403, "SignatureDoesNotMatch", "The request signature does not match.")
        now = self.now()
        if parts[1] == "upload" and request.method == "PUT":
            if now >= job.created_at + UPLOAD_TTL:
                return _storage_error(400, "ExpiredToken", "The provided token has expired. Request signature "
                                      f"expired at: {api_time(job.created_at + UPLOAD_TTL)}")
            if job.status != "created":
                return _storage_error(409, "Conflict", f"The job is {job.status}; its ids were uploaded already.")
            text = request.body.decode("utf-8", errors="replace")
            job.ids = [line.strip() for line in text.splitlines() if line.strip()]
            job.status = "in_progress"
            return SandboxResponse(200, b"", {"content-type": "text/html; charset=UTF-8"})
        if parts[1] == "download" and request.method == "GET":
            if now >= job.created_at + DOWNLOAD_TTL:
                return _storage_error(400, "ExpiredToken", "The provided token has expired. Request signature "
                                      f"expired at: {api_time(job.created_at + DOWNLOAD_TTL)}")
            if job.status != "complete":
                return _storage_error(404, "NoSuchKey", "The specified key does not exist.")
            return SandboxResponse(200, job.result, {"content-type": "application/octet-stream"})
        return _storage_error(405, "MethodNotAllowed", f"{request.method} is not allowed here.")

    # -- results -------------------------------------------------------------------------------------

    def _tweet(self, tweet_id: str) -> XTweet | None:
        tweet = self.corpus.tweets.get(tweet_id)
        if tweet is not None:
            return tweet
        if self._by_stored is None:
            self._by_stored = {t.stored_id: t for t in self.corpus.tweets.values()}
        return self._by_stored.get(tweet_id)

    def _tweet_results(self, ids: list[str]) -> list[dict[str, Any]]:
        now = self.now()
        out = []
        for tweet_id in ids:
            tweet = self._tweet(tweet_id)
            reason: str | None = None
            action = "delete"
            redacted = now
            if tweet is None or tweet.deleted:
                reason = "deleted"
            elif tweet.author_id in self.accounts:
                reason, redacted = self.accounts[tweet.author_id]
            elif tweet.protected:
                reason = "protected"
            elif tweet_id in self.geo_scrubbed:
                reason, action, redacted = "scrub_geo", "scrub_geo", self.geo_scrubbed[tweet_id]
            if reason is None:
                continue  # nothing to do: X lists only the ids that need action
            created = tweet.created_at if tweet is not None else now
            out.append({"id": tweet_id, "action": action, "created_at": api_time(created),
                        "redacted_at": api_time(redacted), "reason": reason})
        return out

    def _user_results(self, ids: list[str]) -> list[dict[str, Any]]:
        now = self.now()
        out = []
        for user_id in ids:
            user = self.corpus.users.get(user_id)
            if user is None:
                out.append({"id": user_id, "action": "delete", "created_at": api_time(now),
                            "redacted_at": api_time(now), "reason": "deleted"})
            elif user_id in self.accounts:
                state, since = self.accounts[user_id]
                out.append({"id": user_id, "action": "delete", "created_at": api_time(user.created_at),
                            "redacted_at": api_time(since), "reason": state})
        return out

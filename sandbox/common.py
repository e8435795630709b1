"""What the sandbox's platform APIs share: the corpus settings, the request/response shapes, fault injection.

The sandbox stands in for the X and Reddit APIs over real HTTP so the collectors are exercised with their
real client libraries.  Each platform API is a plain object with ``handle(request)``; the server in
``trustwatch.sandbox.server`` owns the sockets, the fault plan and the request log, so the APIs stay easy to test.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

FAULT_KINDS: tuple[str, ...] = ("status", "reset", "truncate", "slow", "poison")

#: The free-text fields a "poison" fault corrupts: what users type (names, texts, titles) and what is built
#: from it (Reddit's permalink and url), never the ids the client needs to page on.
POISONED_FIELDS = {
    "x": frozenset({"text", "username", "name", "location", "description"}),
    "reddit": frozenset({"title", "selftext", "body", "permalink", "url", "link_flair_text",
                         "author_flair_text", "domain"}),
}
#: What the fault adds: a NUL (PostgreSQL text refuses it) and a lone surrogate (no UTF-8 encoder takes it).
POISON = "\u0000\ud800"


def poison_body(body: bytes, platform: str) -> bytes:
    """The same JSON answer with ``POISON`` after every free-text field of every record (after, so the
    words the matcher looks for stay whole and the same posts are kept)."""
    import json

    fields = POISONED_FIELDS[platform]

    def walk(value: object) -> object:
        if isinstance(value, dict):
            return {k: (v + POISON if k in fields and isinstance(v, str) and v else walk(v))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return json.dumps(walk(json.loads(body))).encode()  # ensure_ascii: the surrogate travels as \ud800


def _default_end() -> dt.datetime:
    now = dt.datetime.now(dt.UTC)
    return now.replace(minute=0, second=0, microsecond=0)


@dataclass
class CorpusConfig:
    """Seed, size and time span of the synthetic corpus; both platforms use the same span.

    The corpus covers ``[end - days, end)``.  ``end`` defaults to now rounded down to the hour (UTC) and is
    fixed when the config is created, so both platforms and the tests agree on it.  ``now`` fixes the
    Reddit sandbox's clock (what is written by then is shown: comments arrive over days after the
    corpus end too), so a test that passes ``end`` and ``now`` sees the same thing at any wall-clock time.
    """

    seed: int = 7
    posts: int = 2000
    end: dt.datetime | None = None
    days: int = 7
    #: Demo story lines (X corpus): a weekly rhythm, a spike of distrust after an incident for one agency,
    #: a slow recovery of trust for another (see ``trustwatch.sandbox.x_corpus.DEMO_EVENTS``).
    events: bool = False
    #: The sandbox's fixed "now" (Reddit's clock); None shows every comment as the threads end up.
    now: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.end is None:
            self.end = _default_end()
        elif self.end.tzinfo is None:
            raise ValueError("CorpusConfig.end must be timezone-aware")
        else:
            self.end = self.end.astimezone(dt.UTC)
        if self.now is not None:
            if self.now.tzinfo is None:
                raise ValueError("CorpusConfig.now must be timezone-aware")
            self.now = self.now.astimezone(dt.UTC)
        if self.posts < 0 or self.days <= 0:
            raise ValueError("CorpusConfig needs posts >= 0 and days > 0")

    @property
    def start(self) -> dt.datetime:
        """Beginning of the corpus span (inclusive)."""
        assert self.end is not None
        return self.end - dt.timedelta(days=self.days)

    @property
    def stop(self) -> dt.datetime:
        """End of the corpus span (exclusive); ``end`` typed as always set."""
        assert self.end is not None
        return self.end


@dataclass
class SandboxRequest:
    """One HTTP request as the platform APIs see it (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""

    def param(self, name: str) -> str | None:
        """The last value of a query parameter, or None."""
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass
class SandboxResponse:
    """What a platform API answers; ``served_ids`` are the post ids returned, for the request log."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    served_ids: list[str] = field(default_factory=list)


def json_response(
    status: int, payload: Any, headers: dict[str, str] | None = None, served_ids: list[str] | None = None
) -> SandboxResponse:
    """Serialize ``payload`` the way the real APIs do (UTF-8 JSON, no ASCII escaping)."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    all_headers = {"content-type": "application/json; charset=utf-8"}
    all_headers.update(headers or {})
    return SandboxResponse(status, body, all_headers, list(served_ids or []))


@dataclass
class Fault:
    """One armed fault: what to do to the matching requests, after letting ``after`` of them pass."""

    path_prefix: str
    kind: str
    times: int = 1
    after: int = 0
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0
    fired: int = 0


class FaultPlan:
    """Faults a test switches on per request; thread-safe because the server answers in many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        path_prefix: str,
        kind: str,
        *,
        times: int = 1,
        after: int = 0,
        status: int = 503,
        headers: dict | None = None,
        body: bytes = b"",
        seconds: float = 0.0,
    ) -> None:
        """Arm a fault for requests whose path starts with ``path_prefix``.

        kind: "status" answers ``status``/``headers``/``body`` instead of the API; "reset" closes the
        socket without a reply; "truncate" sends the real response cut in half; "slow" sleeps ``seconds``
        and then answers normally; "poison" answers normally with a NUL and a lone surrogate in every
        free-text field (:data:`POISONED_FIELDS`).  ``after`` lets that many matching requests pass first; ``times`` is
        how many requests the fault hits.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if times < 1 or after < 0:
            raise ValueError("a fault needs times >= 1 and after >= 0")
        fault = Fault(path_prefix, kind, times, after, status, dict(headers or {}), body, seconds)
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    def take(self, path: str) -> Fault | None:
        """The fault that hits this request, if any; counts the request against every matching fault."""
        hit: Fault | None = None
        with self._lock:
            for fault in self._faults:
                if not path.startswith(fault.path_prefix) or fault.fired >= fault.times:
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                if hit is None:
                    fault.fired += 1
                    hit = fault
            self._faults = [f for f in self._faults if f.fired < f.times]
        return hit

    @property
    def pending(self) -> int:
        """How many armed faults have not fired all their times yet."""
        with self._lock:
            return len(self._faults)


@dataclass
class LoggedRequest:
    """A request the server answered (status 0: the connection was reset without a reply)."""

    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    served_ids: list[str] = field(default_factory=list)
    #: time.monotonic() when the request arrived (pacing tests compare these).
    received_at: float = 0.0


class Api(Protocol):
    """A platform API mounted on the shared server."""

    def handle(self, request: SandboxRequest) -> SandboxResponse | None:
        """Answer the request, or None when the path is not this API's."""
        ...

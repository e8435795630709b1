"""The sandbox X API v2: search (recent, all), counts (recent, all) and tweet lookup, with real shapes.

It evaluates the part of X's query language the query compiler emits (OR, implicit AND, quoted phrases,
``@handle``, ``#hashtag``, ``is:retweet``/``is:reply``/``is:quote``, ``lang:``, ``from:``, negation,
parentheses) and answers anything else with the real 400 shape.  Responses carry ``data``,
``includes.users``, ``includes.tweets``, ``meta`` and ``errors`` as the recordings in
``../shared/realcases/x/`` show, plus the ``x-rate-limit-*`` headers and 429s when a window is spent.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from trustwatch.sandbox.common import CorpusConfig, SandboxRequest, SandboxResponse, json_response
from trustwatch.sandbox.x_billing import ReadMeter
from trustwatch.sandbox.x_compliance import STORAGE_PREFIX, XComplianceJobs
from trustwatch.sandbox.x_corpus import XCorpus, XTweet, api_time, snowflake_time, tokens

SEARCH_PARAMS = {
    "query", "start_time", "end_time", "since_id", "until_id", "max_results", "next_token",
    "pagination_token", "sort_order", "expansions", "tweet.fields", "media.fields", "poll.fields",
    "place.fields", "user.fields",
}
COUNT_PARAMS = {"query", "start_time", "end_time", "since_id", "until_id", "granularity", "next_token",
                "search_count.fields"}
LOOKUP_PARAMS = {"ids", "expansions", "tweet.fields", "media.fields", "poll.fields", "place.fields",
                 "user.fields"}
TWEET_FIELDS = {"attachments", "author_id", "context_annotations", "conversation_id", "created_at",
                "edit_controls", "edit_history_tweet_ids", "entities", "geo", "id", "in_reply_to_user_id",
                "lang", "note_tweet", "possibly_sensitive", "public_metrics", "referenced_tweets",
                "reply_settings", "source", "text", "withheld"}
USER_FIELDS = {"created_at", "description", "entities", "id", "location", "name", "pinned_tweet_id",
               "profile_image_url", "protected", "public_metrics", "url", "username", "verified",
               "withheld"}
EXPANSIONS = {"author_id", "referenced_tweets.id", "referenced_tweets.id.author_id", "in_reply_to_user_id",
              "entities.mentions.username", "attachments.media_keys", "geo.place_id"}
OPERATORS = {"is", "lang", "from"}
IS_VALUES = {"retweet", "reply", "quote"}
_TOKEN_PREFIX = "b26v89c19zqg8o3f"  # noqa: S105 - the look of real tokens, not a secret


class QueryError(ValueError):
    """The query cannot be evaluated; ``position`` is where, as X reports it."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position
        #: The request parameter at fault and its value, when it is not the query itself.
        self.parameter = "query"
        self.value: str | None = None


# --- query language --------------------------------------------------------------------------------

Predicate = Callable[[XTweet], bool]


@dataclass
class _Tok:
    kind: str  # "(", ")", "OR", "term"
    text: str
    pos: int
    negated: bool = False
    phrase: bool = False


def _lex(query: str) -> list[_Tok]:
    out: list[_Tok] = []
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c.isspace():
            i += 1
            continue
        if c in "()":
            out.append(_Tok(c, c, i))
            i += 1
            continue
        start = i
        negated = False
        if c == "-" and i + 1 < n and not query[i + 1].isspace():
            negated = True
            i += 1
        if i < n and query[i] == '"':
            end = query.find('"', i + 1)
            if end < 0:
                raise QueryError("Unterminated quoted phrase", start)
            out.append(_Tok("term", query[i + 1 : end], start, negated, phrase=True))
            i = end + 1
            continue
        if negated and query[i] == "(":
            out.append(_Tok("-(", "-(", start))
            i += 1
            continue
        j = i
        while j < n and not query[j].isspace() and query[j] not in '()"':
            j += 1
        word = query[i:j]
        if word == "OR" and not negated:
            out.append(_Tok("OR", word, start))
        else:
            out.append(_Tok("term", word, start, negated))
        i = j
    return out


def _contains_seq(haystack: list[str], needle: list[str]) -> bool:
    if not needle:
        return False
    first, k = needle[0], len(needle)
    return any(haystack[i] == first and haystack[i : i + k] == needle for i in range(len(haystack) - k + 1))


def _term_predicate(tok: _Tok, users_by_id: Callable[[str], str | None]) -> Predicate:
    text = tok.text
    if tok.phrase:
        needle = tokens(text)
        pred: Predicate = lambda t: _contains_seq(t.search_tokens, needle)  # noqa: E731
    elif text.startswith("@") and len(text) > 1:
        name = text[1:].lower()
        pred = lambda t: name in t.mentions  # noqa: E731
    elif text.startswith("#") and len(text) > 1:
        tag = text[1:].lower()
        pred = lambda t: tag in t.hashtags  # noqa: E731
    elif ":" in text and re.match(r"^[a-z_.]+:", text):
        op, _, value = text.partition(":")
        if op not in OPERATORS:
            raise QueryError(
                f"Reference to invalid operator '{op}'. Operator is not available in current product or "
                f"product packaging. Please refer to complete available operator list at "
                f"http://t.co/operators.",
                tok.pos,
            )
        if not value:
            raise QueryError(f"Operator '{op}' needs a value", tok.pos)
        if op == "is":
            if value not in IS_VALUES:
                raise QueryError(f"Reference to invalid operator 'is:{value}'.", tok.pos)
            kind = {"retweet": "repost", "reply": "reply", "quote": "quote"}[value]
            pred = lambda t: t.kind == kind  # noqa: E731
        elif op == "lang":
            lang = value.lower()
            pred = lambda t: t.lang == lang  # noqa: E731
        else:
            handle = value.lstrip("@").lower()
            pred = lambda t: (users_by_id(t.author_id) or "").lower() == handle  # noqa: E731
    else:
        needle = tokens(text)
        if not needle:
            raise QueryError(f"There is nothing to match in '{text}'", tok.pos)
        if len(needle) == 1:
            word = needle[0]
            pred = lambda t: word in t.search_tokens  # noqa: E731
        else:
            pred = lambda t: _contains_seq(t.search_tokens, needle)  # noqa: E731
    if tok.negated:
        inner = pred
        return lambda t: not inner(t)
    return pred


class _Parser:
    def __init__(self, toks: list[_Tok], users_by_id: Callable[[str], str | None]) -> None:
        self.toks = toks
        self.i = 0
        self.users_by_id = users_by_id
        self.positive_terms = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def parse(self) -> Predicate:
        if not self.toks:
            raise QueryError("The query is empty", 0)
        pred = self.or_expr()
        tok = self.peek()
        if tok is not None:
            raise QueryError(f"Unexpected '{tok.text}'", tok.pos)
        if self.positive_terms == 0:
            raise QueryError("Queries must contain at least one positive, non-stand-alone operator or term", 0)
        return pred

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.i += 1
            parts.append(self.and_expr())
        if len(parts) == 1:
            return parts[0]
        return lambda t: any(p(t) for p in parts)

    def and_expr(self) -> Predicate:
        parts: list[Predicate] = []
        while (tok := self.peek()) is not None and tok.kind in ("term", "(", "-("):
            parts.append(self.unary())
        if not parts:
            tok = self.peek()
            where = tok.pos if tok is not None else (self.toks[-1].pos if self.toks else 0)
            what = tok.text if tok is not None else "end of query"
            raise QueryError(f"Expected a term before '{what}'", where)
        if len(parts) == 1:
            return parts[0]
        return lambda t: all(p(t) for p in parts)

    def unary(self) -> Predicate:
        tok = self.toks[self.i]
        self.i += 1
        if tok.kind in ("(", "-("):
            inner = self.or_expr()
            close = self.peek()
            if close is None or close.kind != ")":
                raise QueryError("Unbalanced parentheses", tok.pos)
            self.i += 1
            if tok.kind == "-(":
                return lambda t: not inner(t)
            return inner
        if not tok.negated and not (tok.text.startswith(("is:", "lang:"))):
            self.positive_terms += 1
        return _term_predicate(tok, self.users_by_id)


def compile_query(query: str, users_by_id: Callable[[str], str | None] = lambda _: None) -> Predicate:
    """Compile an X search query into a predicate over corpus posts; QueryError when unsupported."""
    return _Parser(_lex(query), users_by_id).parse()


# --- helpers ----------------------------------------------------------------------------------------


def _parse_time(value: str, name: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"Invalid '{name}':'{value}'. '{name}' must be a valid RFC 3339 date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _invalid(parameter: str, value: str, message: str) -> SandboxResponse:
    return json_response(400, {
        "errors": [{"parameters": {parameter: [value]}, "message": message}],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    })


def _csv(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


def encode_token(last_id: str, query: str) -> str:
    """An opaque pagination token: resume after ``last_id``, bound to the query."""
    digest = hashlib.sha256(query.encode()).hexdigest()[:8]
    raw = f"{last_id}:{digest}".encode()
    return _TOKEN_PREFIX + base64.b32encode(raw).decode().rstrip("=").lower()


def decode_token(token: str, query: str) -> str | None:
    """The id a token resumes after, or None when the token is not one of ours for this query."""
    if not token.startswith(_TOKEN_PREFIX):
        return None
    body = token[len(_TOKEN_PREFIX) :].upper()
    body += "=" * (-len(body) % 8)
    try:
        last_id, digest = base64.b32decode(body).decode().split(":")
    except (ValueError, UnicodeDecodeError):
        return None
    if digest != hashlib.sha256(query.encode()).hexdigest()[:8] or not last_id.isdigit():
        return None
    return last_id


@dataclass
class _Bucket:
    remaining: int
    reset: int


class XApi:
    """The X API v2 routes under ``/2/`` over a generated corpus; also the ground truth for tests."""

    #: Per-endpoint request limits per window, as X documents them for app-only (bearer) auth.
    DEFAULT_LIMITS: ClassVar[dict[str, int]] = {
        "search/recent": 450, "search/all": 300, "counts/recent": 300, "counts/all": 300, "lookup": 3500,
        "compliance/jobs": 150,
    }
    #: Least seconds between two requests of the app: full-archive search also allows 1 request per second.
    MIN_INTERVALS: ClassVar[dict[str, float]] = {"search/all": 1.0}
    #: Arrival jitter forgiven on the per-second rule (a paced client's requests reach us a few ms apart).
    INTERVAL_SLACK = 0.05
    #: X refuses an ``end_time`` later than this many seconds before the request.
    END_TIME_MARGIN = 10.0

    def __init__(
        self,
        config: CorpusConfig | None = None,
        bearer_token: str = "sandbox-x-token",  # noqa: S107 - sandbox credential
        rate_limit: int | None = None,
        rate_window: float = 900.0,
        agencies: Iterable[Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or CorpusConfig()
        self.corpus = XCorpus(self.config, list(agencies) if agencies is not None else None)
        self.bearer_token = bearer_token
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.max_query_length = 4096
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._last_sent: dict[str, float] = {}
        #: Requests refused by the per-second rule (tests read it: a paced app never sees one).
        self.interval_refusals = 0
        #: Search results by (query, window, ids, corpus version): paging re-asks the same question.
        self._cache: dict[tuple[Any, ...], list[XTweet]] = {}
        self._lock = threading.Lock()
        #: Batch compliance jobs (``sandbox/x_compliance.py``), over the same corpus and clock.
        self.compliance = XComplianceJobs(self.corpus, clock)
        #: What X would bill for the reads served (``sandbox/x_billing.py``).
        self.meter = ReadMeter(clock)

    # -- ground truth ------------------------------------------------------------------------------

    def _username(self, user_id: str) -> str | None:
        user = self.corpus.users.get(user_id)
        return user.username if user else None

    def matching_ids(
        self,
        query: str,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        since_id: str | None = None,
        until_id: str | None = None,
    ) -> list[str]:
        """Ids search returns for ``query`` in [start, end), newest first (the ground truth)."""
        return [t.id for t in self._matching(query, start, end, since_id, until_id)]

    def expected_stored_ids(self, queries: Iterable[str], start: dt.datetime, end: dt.datetime) -> set[str]:
        """What collecting these queries over [start, end) should store: the matches and reposted originals."""
        ids: set[str] = set()
        for query in queries:
            for tweet in self._matching(query, start, end, None, None):
                ids.add(tweet.stored_id)
                for ref_type, ref_id in tweet.referenced:
                    ref = self.corpus.tweets.get(ref_id)
                    if ref_type == "retweeted" and ref is not None and not (ref.deleted or ref.protected):
                        ids.add(ref.stored_id)
        return ids

    def _matching(
        self,
        query: str,
        start: dt.datetime | None,
        end: dt.datetime | None,
        since_id: str | None,
        until_id: str | None,
    ) -> list[XTweet]:
        key = (query, start, end, since_id, until_id, self.corpus.version)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        out = self._evaluate(query, start, end, since_id, until_id)
        with self._lock:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = out
        return out

    def _evaluate(
        self,
        query: str,
        start: dt.datetime | None,
        end: dt.datetime | None,
        since_id: str | None,
        until_id: str | None,
    ) -> list[XTweet]:
        pred = compile_query(query, self._username)
        since = int(since_id) if since_id else None
        until = int(until_id) if until_id else None
        out = []
        for tweet in self.corpus.searchable_between(start, end):
            if start is not None and tweet.created_at < start:
                continue
            if end is not None and tweet.created_at >= end:
                continue
            if since is not None and int(tweet.id) <= since:
                continue
            if until is not None and int(tweet.id) >= until:
                continue
            if pred(tweet):
                out.append(tweet)
        return out

    def reset_rate_limits(self) -> None:
        """Start a fresh rate-limit window for every endpoint."""
        with self._lock:
            self._buckets.clear()
            self._last_sent.clear()
            self.interval_refusals = 0

    # -- HTTP --------------------------------------------------------------------------------------

    def handle(self, request: SandboxRequest) -> SandboxResponse | None:
        """Route ``/2/...`` requests; None for any other path."""
        path = request.path.rstrip("/")
        routes = {
            "/2/tweets/search/recent": ("search/recent", self._search),
            "/2/tweets/search/all": ("search/all", self._search),
            "/2/tweets/counts/recent": ("counts/recent", self._counts),
            "/2/tweets/counts/all": ("counts/all", self._counts),
            "/2/tweets": ("lookup", self._lookup),
        }
        if path.startswith(STORAGE_PREFIX):
            return self.compliance.handle_storage(request)  # signed URLs: no bearer token, no X rate limit
        if not path.startswith("/2/"):
            return None
        compliance = path == "/2/compliance/jobs" or path.startswith("/2/compliance/jobs/")
        if path not in routes and not compliance:
            return json_response(404, {"errors": [{"message": "Sorry, that page does not exist", "code": 34}]})
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {self.bearer_token}":
            return json_response(401, {"title": "Unauthorized", "type": "about:blank", "status": 401,
                                       "detail": "Unauthorized"})
        name, handler = routes[path] if not compliance else ("compliance/jobs", None)
        headers, allowed = self._spend(name)
        if not allowed:
            body = {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank",
                    "status": 429}
            return json_response(429, body, headers)
        response = handler(name, request) if handler is not None else self.compliance.handle_api(request)
        response.headers.update(headers)
        return response

    def _spend(self, name: str) -> tuple[dict[str, str], bool]:
        limit = self.rate_limit if self.rate_limit is not None else self.DEFAULT_LIMITS[name]
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None or now >= bucket.reset:
                bucket = _Bucket(limit, int(now + self.rate_window) + 1)
                self._buckets[name] = bucket
            allowed = bucket.remaining > 0
            interval = self.MIN_INTERVALS.get(name, 0.0)
            last = self._last_sent.get(name)
            too_soon = interval > 0 and last is not None and now - last < interval - self.INTERVAL_SLACK
            if allowed and too_soon:
                self.interval_refusals += 1
                return {"x-rate-limit-limit": str(limit), "x-rate-limit-remaining": str(bucket.remaining),
                        "x-rate-limit-reset": str(int(last + interval) + 1)}, False
            if allowed:
                bucket.remaining -= 1
                self._last_sent[name] = now
            headers = {
                "x-rate-limit-limit": str(limit),
                "x-rate-limit-remaining": str(bucket.remaining),
                "x-rate-limit-reset": str(bucket.reset),
            }
        return headers, allowed

    def _check_params(self, request: SandboxRequest, allowed: set[str]) -> SandboxResponse | None:
        for key in request.query:
            if key not in allowed:
                return _invalid(key, request.param(key) or "",
                                f"The query parameter [{key}] is not one of [{','.join(sorted(allowed))}]")
        for key, known in (("tweet.fields", TWEET_FIELDS), ("user.fields", USER_FIELDS),
                           ("expansions", EXPANSIONS)):
            for value in _csv(request.param(key)):
                if value not in known:
                    return _invalid(key, value, f"The `{key}` query parameter value [{value}] is not one of "
                                                f"[{','.join(sorted(known))}]")
        return None

    def _window(self, request: SandboxRequest) -> tuple[dt.datetime | None, dt.datetime | None]:
        start = request.param("start_time")
        end = request.param("end_time")
        start_at = _parse_time(start, "start_time") if start else None
        end_at = _parse_time(end, "end_time") if end else None
        if end_at is not None and end_at.timestamp() > self.clock() - self.END_TIME_MARGIN:
            error = QueryError(f"Invalid 'end_time':'{end}'. 'end_time' must be a minimum of "
                               f"{self.END_TIME_MARGIN:.0f} seconds prior to the request time.")
            error.parameter, error.value = "end_time", end
            raise error
        if start_at and end_at and end_at <= start_at:
            raise QueryError(f"Invalid 'start_time':'{start}'. 'start_time' must be before 'end_time'")
        return start_at, end_at

    def _query(self, request: SandboxRequest) -> str:
        query = request.param("query")
        if not query:
            raise QueryError("The `query` query parameter can not be empty")
        if len(query) > self.max_query_length:
            raise QueryError(f"There were errors processing your request: Query length {len(query)} is longer "
                             f"than the maximum of {self.max_query_length} characters")
        return query

    def _search(self, name: str, request: SandboxRequest) -> SandboxResponse:
        bad = self._check_params(request, SEARCH_PARAMS)
        if bad is not None:
            return bad
        query = request.param("query") or ""
        ids_given = request.param("since_id") or request.param("until_id")
        if ids_given and (request.param("start_time") or request.param("end_time")):
            return _invalid("since_id", ids_given, "Invalid use of 'since_id' or 'until_id' in conjunction with "
                                                    "'start_time' or 'end_time'.")
        try:
            query = self._query(request)
            start, end = self._window(request)
            matches = self._matching(query, start, end, request.param("since_id"), request.param("until_id"))
        except QueryError as exc:
            where = f" (at position {exc.position + 1})" if exc.position is not None else ""
            message = str(exc)
            if not message.startswith("There were errors"):
                message = f"There were errors processing your request: {message}{where}"
            return _invalid(exc.parameter, exc.value if exc.value is not None else query, message)
        limit_max = 500 if name == "search/all" else 100
        raw_max = request.param("max_results") or "10"
        if not raw_max.isdigit() or not 10 <= int(raw_max) <= limit_max:
            return _invalid("max_results", raw_max, f"The `max_results` query parameter value [{raw_max}] is not "
                                                    f"between 10 and {limit_max}")
        max_results = int(raw_max)
        token = request.param("next_token") or request.param("pagination_token")
        if token:
            after = decode_token(token, query)
            if after is None:
                return _invalid("next_token", token,
                                f"The `next_token` query parameter value [{token}] is not valid")
            matches = [t for t in matches if int(t.id) < int(after)]
        page = matches[:max_results]
        more = len(matches) > max_results
        payload = self._render(page, request)
        meta: dict[str, Any] = {"result_count": len(page)}
        if page:
            meta = {"newest_id": page[0].id, "oldest_id": page[-1].id, "result_count": len(page)}
        if more:
            meta["next_token"] = encode_token(page[-1].id, query)
        payload["meta"] = meta
        return json_response(200, payload, served_ids=[t.stored_id for t in page])

    def _render(self, page: list[XTweet], request: SandboxRequest, errors: list[dict] | None = None) -> dict:
        tweet_fields = set(_csv(request.param("tweet.fields")))
        user_fields = set(_csv(request.param("user.fields")))
        expansions = set(_csv(request.param("expansions")))
        users_by_name = self.corpus.users_by_name
        payload: dict[str, Any] = {}
        errors = list(errors or [])
        if page:
            payload["data"] = [t.to_api(tweet_fields, users_by_name) for t in page]
        included: dict[str, XTweet] = {}
        if "referenced_tweets.id" in expansions:
            for tweet in page:
                for _, ref_id in tweet.referenced:
                    ref = self.corpus.tweets.get(ref_id)
                    error = _unavailable_tweet(ref, ref_id, "referenced_tweets.id", "includes")
                    if error is not None:
                        errors.append(error)
                    elif ref_id not in included:
                        included[ref_id] = ref  # type: ignore[assignment]
        author_ids: list[str] = []
        if "author_id" in expansions:
            author_ids.extend(t.author_id for t in page)
        if "referenced_tweets.id.author_id" in expansions:
            author_ids.extend(t.author_id for t in included.values())
        users = []
        seen: set[str] = set()
        for uid in author_ids:
            if uid in seen:
                continue
            seen.add(uid)
            user = self.corpus.users.get(uid)
            if user is None or user.hidden:
                errors.append({
                    "value": uid, "detail": f"Could not find user with author_id: [{uid}].",
                    "title": "Not Found Error", "resource_type": "user", "parameter": "author_id",
                    "resource_id": uid, "type": "https://api.twitter.com/2/problems/resource-not-found",
                })
                continue
            users.append(user.to_api(user_fields))
        self.meter.bill([t.id for t in page] + list(included), [u["id"] for u in users])
        includes: dict[str, Any] = {}
        if users:
            includes["users"] = users
        if included:
            includes["tweets"] = [t.to_api(tweet_fields, users_by_name) for t in included.values()]
        if includes:
            payload["includes"] = includes
        if errors:
            payload["errors"] = errors
        return payload

    def _counts(self, name: str, request: SandboxRequest) -> SandboxResponse:
        bad = self._check_params(request, COUNT_PARAMS)
        if bad is not None:
            return bad
        query = request.param("query") or ""
        try:
            query = self._query(request)
            start, end = self._window(request)
            matches = self._matching(query, start, end, request.param("since_id"), request.param("until_id"))
        except QueryError as exc:
            return _invalid(exc.parameter, exc.value if exc.value is not None else query,
                            f"There were errors processing your request: {exc}")
        granularity = request.param("granularity") or "hour"
        step = {"minute": dt.timedelta(minutes=1), "hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1)}
        if granularity not in step:
            return _invalid("granularity", granularity,
                            f"The `granularity` query parameter value [{granularity}] is not one of [minute,hour,day]")
        lo = start or self.config.start
        hi = end or self.config.stop
        buckets: list[dict[str, Any]] = []
        cursor = lo
        while cursor < hi:
            nxt = min(cursor + step[granularity], hi)
            count = sum(1 for t in matches if cursor <= t.created_at < nxt)
            buckets.append({"end": api_time(nxt), "start": api_time(cursor), "tweet_count": count})
            cursor = nxt
        return json_response(200, {"data": buckets, "meta": {"total_tweet_count": len(matches)}})

    def _lookup(self, name: str, request: SandboxRequest) -> SandboxResponse:
        bad = self._check_params(request, LOOKUP_PARAMS)
        if bad is not None:
            return bad
        ids = _csv(request.param("ids"))
        if not ids:
            return _invalid("ids", "", "The ids query parameter can not be empty")
        if len(ids) > 100:
            return _invalid("ids", request.param("ids") or "", "The `ids` query parameter can hold at most 100 ids")
        found: list[XTweet] = []
        errors: list[dict[str, Any]] = []
        for tweet_id in ids:
            tweet = self.corpus.tweets.get(tweet_id)
            error = _unavailable_tweet(tweet, tweet_id, "ids", "data")
            if error is not None:
                errors.append(error)
            else:
                found.append(tweet)  # type: ignore[arg-type]
        payload = self._render(found, request, errors)
        return json_response(200, payload, served_ids=[t.stored_id for t in found])


def _unavailable_tweet(tweet: XTweet | None, tweet_id: str, parameter: str, section: str) -> dict[str, Any] | None:
    """X's error object for a tweet it will not return (the shapes recorded in twarc's files: "Not Found Error"
    for a deleted or unknown tweet, "Authorization Error" for a protected one), or None when it is visible."""
    if tweet is None or tweet.deleted:
        return {
            "value": tweet_id, "detail": f"Could not find tweet with {parameter}: [{tweet_id}].",
            "title": "Not Found Error", "resource_type": "tweet", "parameter": parameter, "resource_id": tweet_id,
            "type": "https://api.twitter.com/2/problems/resource-not-found",
        }
    if tweet.protected:
        return {
            "resource_id": tweet_id, "parameter": parameter, "resource_type": "tweet", "section": section,
            "title": "Authorization Error", "value": tweet_id,
            "detail": f"Sorry, you are not authorized to see the Tweet with {parameter}: [{tweet_id}].",
            "type": "https://api.twitter.com/2/problems/not-authorized-for-resource",
        }
    return None


def tweet_time(tweet_id: str) -> dt.datetime:
    """Creation time of a sandbox (or real) tweet id, from its snowflake bits."""
    return snowflake_time(tweet_id)

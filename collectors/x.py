"""X (Twitter) API v2 collector: tweepy's Client for the HTTP, this module for paging, faults and shapes.

Three small parts, in the spirit of twarc: ``normalize_x_page`` flattens one raw response (data plus
expansions) into records and never raises; ``_Transport`` owns the request policy (pacing, bounded
exponential backoff for 5xx and dropped connections, waiting out 429s up to a limit, clear errors for
400/401/403 without the token); ``XCollector`` turns a compiled query and a window into pages for the
runner, which writes each page in one transaction with its ``next_token``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests
import tweepy
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from trustwatch.records import (
    AuthorRecord,
    Metrics,
    Page,
    PostRecord,
    RecordError,
    RejectRecord,
    Window,
    int_or_none,
    parse_timestamp,
    validated,
)

log = logging.getLogger(__name__)

PLATFORM = "x"
#: The host tweepy's Client hard-codes; ``base_url`` replaces it on the client's own session.
TWITTER_HOST = "https://api.twitter.com"
#: X's snowflake epoch in milliseconds: an id's top bits are milliseconds since it.
TWITTER_EPOCH_MS = 1288834974657

EXPANSIONS = ["author_id", "referenced_tweets.id", "referenced_tweets.id.author_id"]
TWEET_FIELDS = [
    "created_at", "author_id", "conversation_id", "lang", "public_metrics", "referenced_tweets", "entities",
    "in_reply_to_user_id", "edit_history_tweet_ids", "note_tweet", "withheld",
]
USER_FIELDS = ["username", "name", "created_at", "public_metrics", "verified", "location"]
MAX_RESULTS = {"recent": 100, "all": 500}
#: X refuses an ``end_time`` less than this long before the request ("must be a minimum of 10 seconds prior
#: to the request time").
END_TIME_MARGIN = dt.timedelta(seconds=10)
#: A window ending this close to now is waited for (a scheduled run starts right after its interval ends);
#: one ending later is refused: its end is in the future.
MAX_END_WAIT = dt.timedelta(seconds=60)
#: Longest raw text kept for a reject (a truncated page can be large).
MAX_REJECT_TEXT = 20_000


class XApiError(RuntimeError):
    """The X API refused or kept failing; the message says what to do and never contains the token."""


# --- normalization ---------------------------------------------------------------------------------


def snowflake_time(tweet_id: str | int) -> dt.datetime:
    """The creation time encoded in an X id (used when a response carries no ``created_at``)."""
    try:
        ms = (int(tweet_id) >> 22) + TWITTER_EPOCH_MS
        return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise RecordError(f"no created_at, and the id {str(tweet_id)[:30]!r} holds no valid time") from None


def snowflake_at(moment: dt.datetime) -> int:
    """The smallest id X could give a post created at ``moment`` (for ``until_id`` = a window's end)."""
    ms = int(moment.timestamp() * 1000) - TWITTER_EPOCH_MS
    return max(ms, 0) << 22


def _tweet_id(raw: Any) -> str:
    value = raw.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise RecordError("tweet has no id")
    if not value.isdigit():
        raise RecordError(f"tweet id is not numeric: {value[:40]!r}")
    return value


#: X's edit rules (docs.x.com, "Edit posts"): up to 5 edits (6 versions), oldest id first, each edit a new id,
#: within 30 minutes of the original (an hour for some paid tiers), edits exist since 2022-09-01.
MAX_EDIT_VERSIONS = 6
EDIT_WINDOW = dt.timedelta(hours=1)
EDITS_SINCE = dt.datetime(2022, 9, 1, tzinfo=dt.UTC)


def _first_version(tweet_id: str, edits: list[Any]) -> str:
    """The id the post is stored under (its first version), from an edit history that must be X's shape:
    otherwise a poisoned history (``["1", "2"]``) would merge this tweet into an unrelated post."""
    ids = [str(e) if isinstance(e, int) and not isinstance(e, bool) else e for e in edits]
    if not all(isinstance(e, str) and e.isdigit() and len(e) <= 19 for e in ids):
        raise RecordError(f"edit history holds ids that are not X ids: {str(edits)[:80]}")
    if tweet_id not in ids:
        raise RecordError(f"edit history {str(ids)[:80]} does not contain the tweet's own id {tweet_id}")
    if len(ids) == 1:
        return tweet_id
    if len(ids) > MAX_EDIT_VERSIONS or [int(e) for e in ids] != sorted({int(e) for e in ids}):
        raise RecordError(f"edit history {str(ids)[:80]} is not X's: at most 6 versions, oldest id first")
    first, last = snowflake_time(ids[0]), snowflake_time(ids[-1])
    if first < EDITS_SINCE or last - first > EDIT_WINDOW:
        raise RecordError(f"edit history {str(ids)[:80]} spans {last - first} from {first:%Y-%m-%d}: X allows "
                          "edits within 30 minutes, since 2022-09-01")
    return ids[0]


def _kind(raw: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """(kind, parent id, referenced id): a repost wins over a reply, a reply over a quote."""
    refs = raw.get("referenced_tweets") or []
    by_type: dict[str, str] = {}
    if isinstance(refs, list):
        for ref in refs:
            if isinstance(ref, dict) and isinstance(ref.get("type"), str) and ref.get("id") is not None:
                by_type.setdefault(ref["type"], str(ref["id"]))
    parent = by_type.get("replied_to")
    if "retweeted" in by_type:
        return "repost", parent, by_type["retweeted"]
    if parent is not None:
        return "reply", parent, by_type.get("quoted")
    if "quoted" in by_type:
        return "quote", None, by_type["quoted"]
    return "post", None, None


def _withheld(raw: dict[str, Any]) -> list[str] | None:
    withheld = raw.get("withheld")
    if not isinstance(withheld, dict):
        return None
    codes = withheld.get("country_codes")
    if isinstance(codes, list) and codes:
        return [str(c) for c in codes]
    # withheld everywhere (e.g. copyright) has no list; X's convention for "all countries" is XX
    return ["XX"]


def tweet_to_record(raw: Any, users: dict[str, dict[str, Any]] | None = None) -> PostRecord:
    """One tweet object as a PostRecord; RecordError says why it cannot be stored."""
    if not isinstance(raw, dict):
        raise RecordError(f"tweet is a {type(raw).__name__}, expected an object")
    tweet_id = _tweet_id(raw)
    text = raw.get("text", "")
    note = raw.get("note_tweet")
    if isinstance(note, dict) and isinstance(note.get("text"), str) and note["text"]:
        text = note["text"]  # the full text of a long post; ``text`` is cut at 280 characters
    if not isinstance(text, str):
        raise RecordError(f"tweet text has type {type(text).__name__}, expected a string")
    if raw.get("created_at") is not None:
        if not isinstance(raw["created_at"], str):  # X sends ISO 8601 text; 12345 is not a time it gives
            raise RecordError(f"created_at is a {type(raw['created_at']).__name__}, X sends ISO 8601 text")
        created = parse_timestamp(raw["created_at"])
    else:
        created = snowflake_time(tweet_id)  # requests that asked for no fields still carry the id
    kind, parent, root = _kind(raw)
    author_id = raw.get("author_id")
    author_id = str(author_id) if isinstance(author_id, str | int) and not isinstance(author_id, bool) else None
    user = (users or {}).get(author_id or "")
    username = user.get("username") if isinstance(user, dict) else None
    metrics = raw.get("public_metrics") if isinstance(raw.get("public_metrics"), dict) else {}
    edits = raw.get("edit_history_tweet_ids")
    # An edited post keeps the id of its first version: every version has its own id, and storing them
    # as one post makes an edit update the stored text instead of adding a second post.
    post_id = tweet_id
    if isinstance(edits, list) and edits:
        post_id = _first_version(tweet_id, edits)
        if post_id != tweet_id:
            created = snowflake_time(post_id)  # the first version's posting time, not the edit's
    conversation = raw.get("conversation_id")
    lang = raw.get("lang")
    record = PostRecord(
        platform=PLATFORM,
        platform_post_id=post_id,
        kind=kind,
        created_at=created,
        text=text,
        author_platform_id=author_id,
        lang=lang if isinstance(lang, str) else None,
        url=f"https://x.com/{username if isinstance(username, str) else 'i/web'}/status/{tweet_id}",
        conversation_id=str(conversation) if isinstance(conversation, str | int) else None,
        parent_platform_id=parent,
        root_platform_id=root,
        metrics=Metrics(
            likes=int_or_none(metrics.get("like_count")),
            reposts=int_or_none(metrics.get("retweet_count")),
            replies=int_or_none(metrics.get("reply_count")),
            quotes=int_or_none(metrics.get("quote_count")),
        ),
        withheld=_withheld(raw),
        edit_history_ids=[str(e) for e in edits] if isinstance(edits, list) and edits else None,
        raw=raw,
    )
    return validated(record)


def user_to_record(raw: dict[str, Any]) -> AuthorRecord | None:
    """One user object as an AuthorRecord (None when it has no usable id)."""
    user_id = raw.get("id")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str) or not user_id:
        return None
    metrics = raw.get("public_metrics") if isinstance(raw.get("public_metrics"), dict) else {}
    try:
        joined = parse_timestamp(raw["created_at"], "user created_at") if raw.get("created_at") else None
    except RecordError:
        joined = None
    verified = raw.get("verified")
    location = raw.get("location")
    return AuthorRecord(
        platform=PLATFORM,
        platform_user_id=user_id,
        username=raw.get("username") if isinstance(raw.get("username"), str) else None,
        display_name=raw.get("name") if isinstance(raw.get("name"), str) else None,
        followers_count=int_or_none(metrics.get("followers_count")),
        following_count=int_or_none(metrics.get("following_count")),
        post_count=int_or_none(metrics.get("tweet_count")),
        account_created_at=joined,
        verified=verified if isinstance(verified, bool) else None,
        location=location if isinstance(location, str) and location else None,
    )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _reject(reason: str, payload: Any, source: str | None, post_id: str | None = None) -> RejectRecord:
    return RejectRecord(platform=PLATFORM, reason=reason, payload=payload, source=source, platform_post_id=post_id)


def _version_key(record: PostRecord) -> tuple[int, str]:
    """Order versions of one post by their own tweet id (length first: ids are decimal strings)."""
    own = str((record.raw or {}).get("id", ""))
    return (len(own), own)


def _unavailable_ids(errors: list[Any]) -> dict[str, str]:
    """{tweet id: reason} from the per-id ``errors[]`` of a tweet lookup (parameter ``ids``).

    The shapes are X's (see the recordings): "Not Found Error" (``resource-not-found``) for a deleted tweet,
    the same type with "User has been suspended" when its account is, and "Authorization Error"
    (``not-authorized-for-resource``) when the account is protected.  Errors about included objects
    (``referenced_tweets.id``, mentioned users) say nothing about the looked-up tweets and are left out.
    """
    reasons: dict[str, str] = {}
    for error in errors:
        if not isinstance(error, dict) or error.get("parameter") not in ("ids", "id"):
            continue
        tweet_id = error.get("resource_id") or error.get("value")
        if not isinstance(tweet_id, str | int) or not str(tweet_id).isdigit():
            continue
        kind = str(error.get("type") or "")
        detail = str(error.get("detail") or "").lower()
        if "suspended" in detail:
            reasons[str(tweet_id)] = "suspended"
        elif kind.endswith("/not-authorized-for-resource"):
            reasons[str(tweet_id)] = "protected"
        elif kind.endswith("/resource-not-found"):
            reasons[str(tweet_id)] = "not_found"
    return reasons


def normalize_x_page(payload: Any, source: str | None = None) -> Page:
    """One raw X API v2 response (or one line of it as text) as a Page; never raises on bad input.

    Tweets that cannot be stored become rejects with the reason; ``errors[]`` of a 200 response (deleted
    referenced tweets, suspended users) are counted in ``api_errors``; a repost's original from
    ``includes.tweets`` is returned as a post too, because the repost's own text is cut short.
    """
    if isinstance(payload, bytes | bytearray):
        payload = bytes(payload).decode("utf-8", errors="replace")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError as exc:
            return Page(rejects=[_reject(f"response is not valid JSON ({exc})", payload[:MAX_REJECT_TEXT], source)])
    if not isinstance(payload, dict):
        return Page(rejects=[_reject(f"response is a {type(payload).__name__}, expected a JSON object",
                                     payload, source)])
    page = Page()
    errors = payload.get("errors")
    page.api_errors = len(errors) if isinstance(errors, list) else 0
    if source == "tweets" and isinstance(errors, list):
        page.unavailable = _unavailable_ids(errors)
    meta = payload.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("next_token"), str):
        page.cursor = meta["next_token"]
    data = payload.get("data")
    if isinstance(data, dict):  # the filtered stream sends one tweet per message
        data = [data]
    elif data is None:
        data = []
    elif not isinstance(data, list):
        page.rejects.append(_reject(f"data is a {type(data).__name__}, expected a list", data, source))
        data = []
    includes = payload.get("includes") if isinstance(payload.get("includes"), dict) else {}
    users = {
        str(u["id"]): u for u in _list(includes.get("users"))
        if isinstance(u, dict) and isinstance(u.get("id"), str | int) and not isinstance(u.get("id"), bool)
    }
    included_tweets = {
        str(t["id"]): t for t in _list(includes.get("tweets"))
        if isinstance(t, dict) and isinstance(t.get("id"), str | int) and not isinstance(t.get("id"), bool)
    }
    seen: set[str] = set()
    position: dict[str, int] = {}

    def add(raw: Any) -> PostRecord | None:
        post_id = raw.get("id") if isinstance(raw, dict) else None
        try:
            record = tweet_to_record(raw, users)
        except RecordError as exc:
            page.rejects.append(_reject(str(exc), raw, source, str(post_id) if post_id is not None else None))
            return None
        if record.platform_post_id in seen:
            # two versions of an edited post: keep the latest (ids grow with time)
            i = position[record.platform_post_id]
            if _version_key(record) > _version_key(page.posts[i]):
                page.posts[i] = record
            return None
        seen.add(record.platform_post_id)
        position[record.platform_post_id] = len(page.posts)
        page.posts.append(record)
        return record

    reposted: list[str] = []
    for raw in data:
        record = add(raw)
        if record is not None and record.kind == "repost" and record.root_platform_id:
            reposted.append(record.root_platform_id)
    for original_id in reposted:
        original = included_tweets.get(original_id)
        if original is not None and original_id not in seen:
            add(original)
    authors: dict[str, AuthorRecord] = {}
    for post in page.posts:
        raw_user = users.get(post.author_platform_id or "")
        if raw_user is not None and post.author_platform_id not in authors:
            author = user_to_record(raw_user)
            if author is not None:
                authors[author.platform_user_id] = author
    page.authors = list(authors.values())
    return page


# --- settings ----------------------------------------------------------------------------------------

#: X's operator that leaves reposts out of a search (X bills every post read; a repost's text adds nothing).
NO_REPOSTS = "-is:retweet"


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def query_suffix(extra: dict[str, Any] | None) -> str:
    """The suffix every compiled X query gets from the ``x_api`` connection's extra.

    ``query_suffix`` as given, plus ``-is:retweet`` unless ``include_reposts`` is true: each repost read is
    billed and its text is the original's, whose ``retweet_count`` still carries the amplification.  The
    query compiler wraps an ``OR`` group in parentheses before the suffix and packs with its length counted.
    """
    extra = extra or {}
    parts = str(extra.get("query_suffix") or "").split()
    if not _flag(extra.get("include_reposts", False)) and NO_REPOSTS not in parts:
        parts.append(NO_REPOSTS)
    return " ".join(parts)



@dataclass
class XSettings:
    """How to reach X: the bearer token (never logged), which search endpoint, and the fault policy."""

    bearer_token: str = field(repr=False)
    endpoint: str = "recent"
    max_query_length: int = 512
    base_url: str | None = None
    max_rate_limit_wait: float = 900.0
    timeout: float = 30.0
    max_attempts: int = 5
    backoff_initial: float = 1.0
    backoff_max: float = 60.0

    def __post_init__(self) -> None:
        if self.endpoint not in MAX_RESULTS:
            raise XApiError(f"X endpoint must be 'recent' or 'all', got {self.endpoint!r}")
        if not self.bearer_token:
            raise XApiError("the X bearer token is empty")
        if self.base_url:
            self.base_url = self.base_url.rstrip("/")

    @classmethod
    def from_connection(cls, conn_id: str = "x_api") -> XSettings:
        """Read the Airflow connection: password = bearer token; extra endpoint, max_query_length, base_url."""
        from trustwatch.settings import get_connection

        conn = get_connection(conn_id)
        if not conn.password:
            raise XApiError(
                f"Airflow connection '{conn_id}' has no bearer token: put the token in its password field"
            )
        extra = conn.extra or {}

        def number(name: str, default: float) -> float:
            try:
                return float(extra.get(name, default))
            except (TypeError, ValueError):
                raise XApiError(f"connection '{conn_id}': extra {name} must be a number") from None

        return cls(
            bearer_token=conn.password,
            endpoint=str(extra.get("endpoint", "recent")),
            max_query_length=int(number("max_query_length", 512)),
            base_url=extra.get("base_url") or None,
            max_rate_limit_wait=number("max_rate_limit_wait", 900.0),
            timeout=number("timeout", 30.0),
        )


# --- transport ---------------------------------------------------------------------------------------


class _BearerRedactingFilter(logging.Filter):
    """tweepy logs request headers (and bodies) at DEBUG: blank out ``Bearer ...`` and every configured token,
    so not even a server echoing the bare token puts it in a log."""

    pattern = re.compile(r"(Bearer\s+)[^\s'\"},]+")
    #: Tokens of the collectors created in this process (registered by XCollector).
    secrets: ClassVar[set[str]] = set()

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return self.pattern.sub(r"\1***", text) if "Bearer" in text else text

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self._clean(record.msg)
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(self._clean(a) if isinstance(a, str) else a for a in args)
        return True


_tweepy_log = logging.getLogger("tweepy.client")
if not any(isinstance(f, _BearerRedactingFilter) for f in _tweepy_log.filters):
    _tweepy_log.addFilter(_BearerRedactingFilter())


class _RebasedSession(requests.Session):
    """tweepy's session with a default timeout and, when configured, the API host swapped for base_url."""

    def __init__(self, base_url: str | None, timeout: float) -> None:
        super().__init__()
        self.base_url = base_url
        self.timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        """Send with the default timeout; rewrite the hard-coded X host when a base_url is set."""
        if self.base_url and isinstance(url, str) and url.startswith(TWITTER_HOST):
            url = self.base_url + url[len(TWITTER_HOST) :]
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


class _BadBody(Exception):
    """A 2xx response whose body is not a JSON object (a cut connection leaves truncated JSON)."""


def _transient(exc: BaseException) -> bool:
    return isinstance(
        exc,
        tweepy.TwitterServerError | requests.ConnectionError | requests.Timeout
        | requests.exceptions.ChunkedEncodingError | _BadBody,
    )


@dataclass
class _Stats:
    requests: int = 0
    rate_limit_waits: int = 0
    rate_limit_wait_seconds: float = 0.0


def _api_messages(exc: tweepy.HTTPException) -> str:
    messages = [m for m in exc.api_messages if isinstance(m, str)]
    return "; ".join(messages)[:500]


class XCollector:
    """Pages of normalized X posts for a compiled query and a window; see the module docstring."""

    platform = PLATFORM

    def __init__(
        self,
        settings: XSettings,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        pacer: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._clock = clock
        #: Paces requests across every task of the app (``SharedPacer``); None: this collector paces alone.
        self._pacer = pacer
        if settings.bearer_token:
            _BearerRedactingFilter.secrets.add(settings.bearer_token)
        self.client = tweepy.Client(bearer_token=settings.bearer_token, return_type=requests.Response)
        self.client.session = _RebasedSession(settings.base_url, settings.timeout)
        self._min_interval = 1.0 if settings.endpoint == "all" else 0.0
        self._last_request: float | None = None

    # -- public --------------------------------------------------------------------------------------

    def pages(
        self, query: Any, window: Window, cursor: str | None = None, since_id: str | None = None
    ) -> Iterator[Page]:
        """Yield pages newest first; resume after ``cursor``; use ``since_id`` when it falls in the window.

        X refuses since_id together with start_time/end_time, so with a since_id the window's end becomes
        ``until_id`` (the first id X could mint at that instant).
        """
        text = self._query_text(query)
        params: dict[str, Any] = {
            "max_results": MAX_RESULTS[self.settings.endpoint],
            "expansions": EXPANSIONS,
            "tweet_fields": TWEET_FIELDS,
            "user_fields": USER_FIELDS,
        }
        since = self._since_in_window(since_id, window)
        if since == "after-window":
            yield Page(requests=0)  # everything up to a post newer than the window is stored already
            return
        self._await_end(window)
        if since is not None:
            params["since_id"] = since
            params["until_id"] = str(snowflake_at(window.end))
        else:
            params["start_time"] = window.start
            params["end_time"] = window.end
        search = self.client.search_all_tweets if self.settings.endpoint == "all" else self.client.search_recent_tweets
        token = cursor
        yielded: set[str] = set()  # a reposted original can come back as a match on a later page
        while True:
            call_params = dict(params)
            if token:
                call_params["next_token"] = token
            stats = _Stats()
            body = self._request(lambda p=call_params: search(text, **p), f"search/{self.settings.endpoint}", text,
                                 stats)
            page = normalize_x_page(body, source=f"search/{self.settings.endpoint}")
            page.requests = stats.requests
            page.rate_limit_waits = stats.rate_limit_waits
            page.rate_limit_wait_seconds = stats.rate_limit_wait_seconds
            page.posts = [p for p in page.posts if p.platform_post_id not in yielded]
            yielded.update(p.platform_post_id for p in page.posts)
            yield page
            token = page.cursor
            if not token:
                return

    def count(self, query: Any, window: Window) -> int:
        """Expected posts for ``query`` in ``window`` from the counts endpoint (what --dry-run reports)."""
        text = self._query_text(query)
        endpoint = self.settings.endpoint
        counts = self.client.get_all_tweets_count if endpoint == "all" else self.client.get_recent_tweets_count
        total = 0
        token: str | None = None
        self._await_end(window)
        while True:
            params: dict[str, Any] = {"start_time": window.start, "end_time": window.end, "granularity": "day"}
            if token:
                params["next_token"] = token
            body = self._request(lambda p=params: counts(text, **p), f"counts/{endpoint}", text, _Stats())
            meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
            if isinstance(meta.get("total_tweet_count"), int):
                total += meta["total_tweet_count"]
            else:
                total += sum(b.get("tweet_count", 0) for b in body.get("data") or [] if isinstance(b, dict))
            token = meta.get("next_token") if isinstance(meta.get("next_token"), str) else None
            if not token:
                return total

    def lookup(self, ids: Sequence[str]) -> Page:
        """Fetch up to 100 posts by id (compliance): ids missing from the page are deleted or unavailable."""
        ids = [str(i) for i in ids]
        if not ids:
            return Page(requests=0)
        if len(ids) > 100:
            raise ValueError(f"X looks up at most 100 ids per request, got {len(ids)}")
        stats = _Stats()
        body = self._request(
            lambda: self.client.get_tweets(ids, expansions=EXPANSIONS, tweet_fields=TWEET_FIELDS,
                                           user_fields=USER_FIELDS),
            "tweets lookup", None, stats,
        )
        page = normalize_x_page(body, source="tweets")
        page.requests = stats.requests
        page.rate_limit_waits = stats.rate_limit_waits
        page.rate_limit_wait_seconds = stats.rate_limit_wait_seconds
        return page

    # -- internals -----------------------------------------------------------------------------------

    def _query_text(self, query: Any) -> str:
        text = query if isinstance(query, str) else getattr(query, "text", None)
        if not isinstance(text, str) or not text.strip():
            raise XApiError(f"query has no text: {query!r}")
        if len(text) > self.settings.max_query_length:
            raise XApiError(
                f"query is {len(text)} characters, over this access tier's limit of "
                f"{self.settings.max_query_length}; recompile the queries with that limit. Query: {text}"
            )
        return text

    @staticmethod
    def _since_in_window(since_id: str | None, window: Window) -> str | None:
        if not since_id or not str(since_id).isdigit():
            return None
        moment = snowflake_time(since_id)
        if moment < window.start:
            return None
        if moment >= window.end:
            return "after-window"
        return str(since_id)

    def _redact(self, text: str) -> str:
        token = self.settings.bearer_token
        return text.replace(token, "***") if token else text

    def _await_end(self, window: Window) -> None:
        """Wait until X accepts the window's end (10 s before the request), or refuse a future end.

        Shortening the window instead would leave its last seconds uncollected under a ``success`` row.
        """
        now = dt.datetime.fromtimestamp(self._clock(), tz=dt.UTC)
        ready = window.end + END_TIME_MARGIN
        if ready <= now:
            return
        if window.end - now > MAX_END_WAIT:
            raise XApiError(
                f"the window ends at {window.end.isoformat()}, in the future; X only searches up to "
                f"{END_TIME_MARGIN.total_seconds():.0f} seconds before the request: end it at now or earlier"
            )
        wait = (ready - now).total_seconds() + 0.5
        log.info("window ends at %s: waiting %.1fs, X accepts an end_time only %ds before the request",
                 window.end.isoformat(), wait, END_TIME_MARGIN.total_seconds())
        self._sleep(wait)

    def _pace(self) -> None:
        if self._pacer is not None:
            self._pacer()
            return
        if self._min_interval <= 0:
            return
        now = time.monotonic()
        if self._last_request is not None:
            gap = self._min_interval - (now - self._last_request)
            if gap > 0:
                self._sleep(gap)
        self._last_request = time.monotonic()

    def _attempt(self, call: Callable[[], requests.Response], stats: _Stats) -> dict[str, Any]:
        self._pace()
        stats.requests += 1
        try:
            response = call()
        finally:
            if self._pacer is None and self._min_interval > 0:
                # Count the interval from the answer, not the send: X measures arrivals, and a request delayed
                # on its way would otherwise let the next one arrive less than a second after it.
                self._last_request = time.monotonic()
        try:
            body = response.json()
        except ValueError as exc:
            raise _BadBody(f"{response.status_code} response body is not valid JSON ({exc})") from None
        if not isinstance(body, dict):
            raise _BadBody(f"{response.status_code} response body is a {type(body).__name__}, not an object")
        return body

    def _with_retries(self, call: Callable[[], requests.Response], what: str, stats: _Stats) -> dict[str, Any]:
        s = self.settings

        def before_sleep(state: Any) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("X %s failed (%s); retrying in %.1fs (attempt %d of %d)", what,
                        self._redact(f"{type(exc).__name__}: {exc}")[:300],
                        state.next_action.sleep if state.next_action else 0.0, state.attempt_number, s.max_attempts)

        retrying = Retrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(s.max_attempts),
            wait=wait_exponential(multiplier=s.backoff_initial, max=s.backoff_max),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(self._attempt, call, stats)

    def _request(
        self, call: Callable[[], requests.Response], what: str, query_text: str | None, stats: _Stats
    ) -> dict[str, Any]:
        """One logical request: retries, rate-limit waits, and every failure as an XApiError."""
        s = self.settings
        while True:
            try:
                return self._with_retries(call, what, stats)
            except tweepy.TooManyRequests as exc:
                wait = self._rate_limit_wait(exc)
                if wait > s.max_rate_limit_wait:
                    raise XApiError(
                        f"X rate limit for {what} is spent and resets in {wait:.0f}s, longer than the "
                        f"configured maximum wait of {s.max_rate_limit_wait:.0f}s. The pages written so far "
                        f"are kept; run the task again later to resume."
                    ) from None
                stats.rate_limit_waits += 1
                stats.rate_limit_wait_seconds += wait
                log.warning("X rate limit for %s reached; waiting %.0fs until it resets", what, wait)
                self._sleep(wait)
            except tweepy.BadRequest as exc:
                detail = self._redact(_api_messages(exc) or str(exc))
                shown = f" Query: {query_text}" if query_text else ""
                raise XApiError(f"X API rejected the {what} request (400 Bad Request): {detail}.{shown}") from None
            except tweepy.Unauthorized:
                raise XApiError(
                    f"X API refused the bearer token for {what} (401 Unauthorized): check the password of "
                    "the Airflow connection 'x_api' holds a valid app bearer token."
                ) from None
            except tweepy.Forbidden as exc:
                detail = self._redact(_api_messages(exc))
                raise XApiError(
                    f"X API forbade {what} (403 Forbidden{': ' + detail if detail else ''}). The token's access "
                    "tier does not include this endpoint: search/all needs Pro or Enterprise access (use "
                    "extra endpoint='recent' otherwise), and the app must belong to a project."
                ) from None
            except tweepy.HTTPException as exc:
                status = getattr(exc.response, "status_code", "?")
                attempts = f" after {stats.requests} attempts" if isinstance(exc, tweepy.TwitterServerError) else ""
                raise XApiError(
                    f"X API {what} failed with HTTP {status}{attempts}: {self._redact(str(exc))[:300]}"
                ) from None
            except (requests.RequestException, _BadBody) as exc:
                raise XApiError(
                    f"X API {what} kept failing after {stats.requests} attempts: "
                    f"{self._redact(f'{type(exc).__name__}: {exc}')[:300]}"
                ) from None

    def _rate_limit_wait(self, exc: tweepy.TooManyRequests) -> float:
        reset = exc.reset_time
        if reset is None:
            headers = getattr(exc.response, "headers", {}) or {}
            reset = int_or_none(headers.get("x-rate-limit-reset"))
        if reset is None:
            return 60.0  # no reset header: X's windows are 15 minutes, try again in a minute
        return max(float(reset) - self._clock(), 0.0) + 1.0

"""Reddit collector: praw (read-only, application-only auth) into normalized records.

Three sources per window: a ``search`` (sort new) of the compiled queries over the configured
subreddits, the ``new`` listings of the agencies' own subreddits, and the comment tree of every
submission that mentions an agency.  Raw API JSON goes through one normalizer
(:func:`normalize_reddit_listing`), the same one the recorded responses in ``shared/realcases`` are
tested against, so what the collector stores is what Reddit sent.

Reddit listings stop at about 1,000 items and searches far earlier (often near 250 results).  A
listing or search that ends before reaching the window start after full pages was cut, whatever its
count (one that has less than a page in all is exhausted, not cut): a cut search
is read again as the ``new`` listings of its subreddits, a cut combined listing (``r/a+b+c``, the
listing-first plan's) as each member's own listing, and what still ends early is flagged on the
page (``coverage_gap``, with the reason in ``notes``); the runner writes it to the ledger, so analysts
see that a window is incomplete rather than assume nobody posted.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from trustwatch.collectors.agencies import DEFAULT_GLOBAL_SUBREDDITS

from trustwatch.records import (
    AuthorRecord,
    MentionRecord,
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

PLATFORM = "reddit"
REDDIT_WWW = "https://www.reddit.com"
#: Deleted and removed content as Reddit shows it in bodies and author names.
TOMBSTONES: tuple[str, ...] = ("[deleted]", "[removed]")
#: removed_by_category values that mean the author deleted the post (others mean a moderator,
#: an admin or a filter removed it).
_AUTHOR_DELETION = {"deleted", "author"}
#: Reddit lists at most about 1,000 items (searches far fewer); kept as a setting for planning only:
#: any listing that ends before the window start is a gap, whatever its count.
LISTING_CAP = 1000
PAGE_LIMIT = 100
INFO_BATCH = 100

T = TypeVar("T")


class RedditApiError(RuntimeError):
    """A Reddit request failed for good; the message names what failed, never a credential."""


# --------------------------------------------------------------------------------------------
# Normalizer: raw Reddit JSON -> records
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class MoreStub:
    """A ``kind: more`` placeholder: comments Reddit did not include in the tree it sent.

    ``children`` empty with ``count`` 0 is a "continue this thread" link (the replies of
    ``parent_id`` are fetched from the comment's own page instead).
    """

    parent_id: str
    children: list[str]
    count: int
    link_id: str | None = None

    @property
    def is_continue_thread(self) -> bool:
        """True for the "continue this thread" link rather than a list of comment ids."""
        return not self.children


@dataclass(slots=True)
class RedditPage(Page):
    """A page plus the Reddit bookkeeping the runner reads with ``getattr`` for the ledger."""

    #: The listing ended (Reddit's ~1,000 item cap) before it reached the window start.
    coverage_gap: bool = False
    #: Sources left out of this run, each with the reason, e.g. ``"r/foo: 403 private"``.
    skipped: list[str] = field(default_factory=list)
    #: ``more`` stubs that were not resolved (limit reached or the thread was cut off).
    more: list[MoreStub] = field(default_factory=list)
    #: Free-form facts for the ledger's ``notes`` column (JSON-serializable).
    notes: dict[str, Any] = field(default_factory=dict)
    #: Ids (without prefix) of the listing items this page covered, inside or outside the window.
    seen_ids: list[str] = field(default_factory=list)


def _strip_prefix(fullname: Any) -> str | None:
    """``t3_abc`` -> ``abc``; ids without a prefix are returned as they are."""
    if not isinstance(fullname, str) or not fullname:
        return None
    kind, sep, rest = fullname.partition("_")
    if sep and len(kind) == 2 and kind[0] == "t" and kind[1].isdigit():
        return rest or None
    return fullname


def _deletion_state(body: Any, removed_by_category: Any) -> str | None:
    """``[deleted]`` or ``[removed]`` when the content is gone, from the body or the category."""
    if isinstance(body, str) and body.strip() in TOMBSTONES:
        return body.strip()
    if isinstance(removed_by_category, str) and removed_by_category:
        return "[deleted]" if removed_by_category in _AUTHOR_DELETION else "[removed]"
    return None


def _author_name(data: dict[str, Any]) -> str | None:
    """The author's username; None for ``[deleted]`` (no account to record) or a missing author."""
    author = data.get("author")
    if isinstance(author, str) and author and author not in TOMBSTONES:
        return author
    return None


def _author_as_shown(data: dict[str, Any]) -> str | None:
    """The author as Reddit shows it, ``[deleted]`` included, so analysts see who is gone."""
    author = data.get("author")
    return author if isinstance(author, str) and author else None


def normalize_reddit_thing(thing: dict) -> PostRecord:
    """Turn a ``t3`` (submission) or ``t1`` (comment) thing into a PostRecord.

    Deleted and removed content keeps its tombstone text (``[deleted]``/``[removed]``) so analysts
    see that something was there; ``deleted_reason`` flags it and ``removed_by_category`` says who
    removed it.  A deleted account stays ``[deleted]`` in ``author_platform_id`` (with no author
    record).  Raises RecordError with the reason when the thing cannot be stored.
    """
    if not isinstance(thing, dict):
        raise RecordError(f"expected a Reddit thing object, got {type(thing).__name__}")
    kind = thing.get("kind")
    data = thing.get("data")
    if kind not in ("t1", "t3"):
        raise RecordError(f"unsupported Reddit kind {kind!r} (expected t1 or t3)")
    if not isinstance(data, dict):
        raise RecordError(f"{kind} thing has no data object")
    post_id = data.get("id") or _strip_prefix(data.get("name"))
    if not isinstance(post_id, str) or not post_id:
        raise RecordError(f"{kind} thing has no id")
    created_at = parse_timestamp(data.get("created_utc"), "created_utc")
    community = data.get("subreddit") if isinstance(data.get("subreddit"), str) else None
    permalink = data.get("permalink")
    url = REDDIT_WWW + permalink if isinstance(permalink, str) and permalink.startswith("/") else None
    removed_by_category = data.get("removed_by_category")
    if not isinstance(removed_by_category, str) or not removed_by_category:
        removed_by_category = None
    raw = {"kind": kind, "data": {key: value for key, value in data.items() if key != "replies"}}

    if kind == "t3":
        text = data.get("selftext")
        title = data.get("title")
        post = PostRecord(
            platform=PLATFORM,
            platform_post_id=post_id,
            kind="submission",
            created_at=created_at,
            text=text if isinstance(text, str) else "",
            title=title if isinstance(title, str) else None,
            author_platform_id=_author_as_shown(data),
            url=url or (data.get("url") if isinstance(data.get("url"), str) else None),
            conversation_id=post_id,
            community=community,
            metrics=Metrics(score=int_or_none(data.get("score")), replies=int_or_none(data.get("num_comments"))),
            deleted_reason=_deletion_state(text, removed_by_category),
            removed_by_category=removed_by_category,
            raw=raw,
        )
    else:
        body = data.get("body")
        link_id = _strip_prefix(data.get("link_id"))
        parent_id = _strip_prefix(data.get("parent_id"))
        if link_id is None:
            raise RecordError(f"comment {post_id} has no link_id (its submission)")
        if url is None and community:
            url = f"{REDDIT_WWW}/r/{community}/comments/{link_id}/_/{post_id}/"
        post = PostRecord(
            platform=PLATFORM,
            platform_post_id=post_id,
            kind="comment",
            created_at=created_at,
            text=body if isinstance(body, str) else "",
            author_platform_id=_author_as_shown(data),
            url=url,
            conversation_id=link_id,
            parent_platform_id=parent_id or link_id,
            root_platform_id=link_id,
            community=community,
            metrics=Metrics(score=int_or_none(data.get("score"))),
            deleted_reason=_deletion_state(body, removed_by_category),
            removed_by_category=removed_by_category,
            raw=raw,
        )
    return validated(post)


def _author_record(data: dict[str, Any]) -> AuthorRecord | None:
    """The author of a thing, keyed by username (permanent on Reddit); None when deleted."""
    name = _author_name(data)
    if name is None:
        return None
    return AuthorRecord(platform=PLATFORM, platform_user_id=name, username=name)


def _things_of(payload: Any) -> Iterator[Any]:
    """The top-level things of any listing-shaped payload Reddit returns."""
    if isinstance(payload, list):
        for part in payload:
            yield from _things_of(part)
        return
    if not isinstance(payload, dict):
        return
    if payload.get("kind") == "Listing":
        children = (payload.get("data") or {}).get("children")
        if isinstance(children, list):
            yield from children
        return
    body = payload.get("json")
    if isinstance(body, dict):  # /api/morechildren: {"json": {"errors": [], "data": {"things": [...]}}}
        things = (body.get("data") or {}).get("things")
        if isinstance(things, list):
            yield from things
        return
    if "kind" in payload:
        yield payload


def _listing_after(payload: Any) -> str | None:
    """The ``after`` cursor of a Listing (the last Listing for a comment page)."""
    if isinstance(payload, list):
        payload = payload[-1] if payload else None
    if isinstance(payload, dict) and payload.get("kind") == "Listing":
        after = (payload.get("data") or {}).get("after")
        return after if isinstance(after, str) and after else None
    return None


def normalize_reddit_listing(payload: Any, source: str | None = None) -> RedditPage:
    """Normalize a Listing, a list of Listings (a comment page) or a morechildren answer.

    Nested comment ``replies`` are walked depth-first; ``more`` stubs are kept on the page so the
    caller can resolve or record them; things that cannot be normalized become rejects.
    """
    page = RedditPage(cursor=_listing_after(payload))
    seen: set[str] = set()
    authors: set[str] = set()
    stack: list[Any] = list(_things_of(payload))
    stack.reverse()
    while stack:
        thing = stack.pop()
        if not isinstance(thing, dict):
            page.rejects.append(RejectRecord(PLATFORM, "listing child is not an object", thing, source))
            continue
        kind = thing.get("kind")
        data = thing.get("data") if isinstance(thing.get("data"), dict) else {}
        if kind == "more":
            children = data.get("children") if isinstance(data.get("children"), list) else []
            page.more.append(
                MoreStub(
                    parent_id=str(data.get("parent_id") or ""),
                    children=[str(child) for child in children],
                    count=int_or_none(data.get("count")) or 0,
                )
            )
            continue
        try:
            post = normalize_reddit_thing(thing)
        except RecordError as exc:
            page.rejects.append(
                RejectRecord(PLATFORM, str(exc), thing, source, _strip_prefix(data.get("name")) or data.get("id"))
            )
        else:
            if post.platform_post_id not in seen:
                seen.add(post.platform_post_id)
                page.posts.append(post)
                page.seen_ids.append(post.platform_post_id)
                author = _author_record(data)
                if author is not None and author.platform_user_id not in authors:
                    authors.add(author.platform_user_id)
                    page.authors.append(author)
        replies = data.get("replies")
        if isinstance(replies, dict):
            nested = list(_things_of(replies))
            nested.reverse()
            stack.extend(nested)
    for stub in page.more:
        stub.link_id = _first_link_id(page.posts)
    return page


def _first_link_id(posts: Sequence[PostRecord]) -> str | None:
    for post in posts:
        if post.kind == "submission":
            return post.platform_post_id
        if post.root_platform_id:
            return post.root_platform_id
    return None


# --------------------------------------------------------------------------------------------
# Settings and queries
# --------------------------------------------------------------------------------------------


@dataclass
class RedditSettings:
    """How to reach Reddit: app credentials, the user agent Reddit requires, and collection limits."""

    client_id: str
    client_secret: str = field(repr=False)
    user_agent: str
    base_url: str | None = None
    #: How many ``more`` stubs praw's ``replace_more`` may resolve per thread (None: all, 0: none).
    replace_more_limit: int | None = 32
    #: Subreddits the compiled queries are searched in (combined with ``+``).
    global_subreddits: tuple[str, ...] = DEFAULT_GLOBAL_SUBREDDITS
    timeout: float = 30.0
    #: Our own retries on top of prawcore's (which retries 5xx and dropped connections twice).
    max_retries: int = 4
    backoff_seconds: float = 2.0
    #: Longest single wait for a rate limit (``retry-after``); longer means give up with an error.
    max_wait_seconds: float = 900.0
    listing_cap: int = LISTING_CAP
    page_limit: int = PAGE_LIMIT

    def __post_init__(self) -> None:
        if not self.client_id or not self.client_secret:
            raise RedditApiError("Reddit needs a client id (login) and a client secret (password)")
        if not self.user_agent or len(self.user_agent.strip()) < 7:
            raise RedditApiError(
                "Reddit requires a descriptive user_agent (extra 'user_agent' of the reddit_api connection), "
                "e.g. 'trustwatch/0.1 by u/yourname'"
            )
        self.global_subreddits = tuple(s.strip().removeprefix("r/") for s in self.global_subreddits if s.strip())

    @classmethod
    def from_connection(cls, conn_id: str = "reddit_api") -> RedditSettings:
        """Read the Airflow connection (login = client id, password = secret, extra user_agent)."""
        from trustwatch.settings import get_connection

        conn = get_connection(conn_id)
        extra = conn.extra or {}
        user_agent = extra.get("user_agent")
        if not user_agent:
            raise RedditApiError(
                f"connection '{conn_id}' has no extra 'user_agent'; Reddit refuses clients without one. "
                'Add e.g. "extra": {"user_agent": "trustwatch/0.1 by u/yourname"}'
            )
        if not conn.login or not conn.password:
            raise RedditApiError(f"connection '{conn_id}' needs login (client id) and password (client secret)")
        kwargs: dict[str, Any] = {}
        if extra.get("replace_more_limit") is not None:
            value = extra["replace_more_limit"]
            kwargs["replace_more_limit"] = None if str(value).lower() in ("none", "all") else int(value)
        subreddits = extra.get("subreddits")
        if subreddits:
            if isinstance(subreddits, str):
                subreddits = subreddits.replace("+", ",").split(",")
            kwargs["global_subreddits"] = tuple(str(s) for s in subreddits)
        base_url = extra.get("base_url") or None
        return cls(
            client_id=conn.login,
            client_secret=conn.password,
            user_agent=str(user_agent),
            base_url=str(base_url).rstrip("/") if base_url else None,
            **kwargs,
        )


@dataclass(frozen=True)
class RedditQuery:
    """One unit of collection with its own ledger row and watermark.

    Same fields as the compiler's ``trustwatch.collectors.agencies.RedditQuery`` plus ``kind``: "search" reads
    ``text`` (sort new) over ``subreddits`` combined with ``+``; "new" reads the ``new`` listing of
    the subreddits back to the window start and keeps what the matcher attributes (the community
    rule makes "police" in r/Austin mean Austin's police).
    """

    key: str
    text: str
    subreddits: tuple[str, ...]
    version: str
    agency_slugs: tuple[str, ...] = ()
    kind: str = "search"


def _version(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def agency_subreddits(registry: Any) -> dict[str, list[str]]:
    """Lower-cased subreddit name -> slugs of the (active) agencies that own it."""
    owners: dict[str, list[str]] = {}
    entries = getattr(registry, "entries", registry) or ()
    for entry in entries:
        if not getattr(entry, "active", True):
            continue
        for sub in getattr(entry, "subreddits", None) or ():
            name = str(sub).strip().removeprefix("/").removeprefix("r/").strip("/").lower()
            if name:
                owners.setdefault(name, []).append(entry.slug)
    return owners


def plan_queries(compiled: Iterable[Any], registry: Any) -> list[RedditQuery]:
    """Turn the compiled queries into what the collector reads, one ledger row each.

    Searches over the global subreddits stay searches.  A query over agencies' own subreddits becomes
    one ``new`` listing per subreddit (a watermark per subreddit): a listing sees every post there,
    where Reddit's search index lags and misses recent ones.
    """
    owners = agency_subreddits(registry)
    planned: dict[str, RedditQuery] = {}
    for query in compiled:
        subs = tuple(query.subreddits)
        slugs = tuple(getattr(query, "agency_slugs", ()) or ())
        if subs and all(sub.lower() in owners for sub in subs):
            for sub in subs:
                version = _version(f"new:{sub.lower()}")
                own = tuple(s for s in owners[sub.lower()] if not slugs or s in slugs)
                key = f"reddit-new-{sub.lower()}"[:90] + f"-{version[:8]}"
                if key in planned:
                    merged = tuple(dict.fromkeys(planned[key].agency_slugs + own))
                    planned[key] = RedditQuery(key, f"r/{sub}/new", (sub,), version, merged, "new")
                else:
                    planned[key] = RedditQuery(key, f"r/{sub}/new", (sub,), version, own, "new")
        else:
            planned[query.key] = RedditQuery(query.key, query.text, subs, query.version, slugs, "search")
    return list(planned.values())


# --------------------------------------------------------------------------------------------
# The collector
# --------------------------------------------------------------------------------------------


class Matcher(Protocol):
    """What the collector needs from the agency matcher (``trustwatch.collectors.agencies.Matcher``)."""

    def match(self, text: str, community: str | None = None, unsettled: list[Any] | None = None) -> Sequence[Any]:
        """The mentions in a text; each has ``agency_slug``.  ``unsettled`` receives the shared names the text
        leaves unsettled (each with ``candidates``)."""
        ...


@dataclass
class _Stats:
    """Requests and rate-limit waits since the last page, for the ledger."""

    requests: int = 0
    waits: int = 0
    wait_seconds: float = 0.0
    errors: int = 0

    def drain_into(self, page: Page) -> None:
        page.requests = self.requests
        page.rate_limit_waits = self.waits
        page.rate_limit_wait_seconds = round(self.wait_seconds, 3)
        page.api_errors += self.errors
        self.requests, self.waits, self.wait_seconds, self.errors = 0, 0, 0.0, 0


def _counting_requestor(stats: _Stats) -> type:
    """A prawcore Requestor (praw's documented ``requestor_class`` hook) that counts requests and
    notes when Reddit's rate-limit headers make prawcore pause before the next one."""
    import prawcore

    class CountingRequestor(prawcore.Requestor):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            response = super().request(*args, **kwargs)
            stats.requests += 1
            remaining = response.headers.get("x-ratelimit-remaining")
            reset = response.headers.get("x-ratelimit-reset")
            try:
                if remaining is not None and float(remaining) <= 0 and reset is not None:
                    stats.waits += 1
                    stats.wait_seconds += float(reset)
            except ValueError:
                pass
            return response

    return CountingRequestor


class _CombinedRefused(Exception):
    """A combined ``r/a+b`` listing answered 403: one member is private, which one is not said."""


class _SourceUnavailable(Exception):
    """A subreddit or thread answered 403/404: recorded and skipped, or reported by name."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


def _reason_of(response: Any, default: str) -> str:
    """Reddit's ``reason`` field of an error body ("private", "quarantined", "banned"...)."""
    try:
        body = response.json()
    except ValueError:
        return default
    if isinstance(body, dict) and isinstance(body.get("reason"), str) and body["reason"]:
        return body["reason"]
    return default


def _retry_after(response: Any) -> float | None:
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _thing_from_praw(obj: Any, kind: str) -> dict[str, Any]:
    """Rebuild the API ``data`` of a praw model: praw keeps every field as an attribute and only
    turns ``author`` and ``subreddit`` into objects (a ``[deleted]`` author into None)."""
    data: dict[str, Any] = {}
    for key, value in vars(obj).items():
        if key.startswith("_") or key in ("replies", "submission", "comments", "comment_sort", "comment_limit"):
            continue
        if key == "author":
            value = getattr(value, "name", None) or "[deleted]"
        elif key == "subreddit":
            value = getattr(value, "display_name", None) or str(value)
        elif not isinstance(value, str | int | float | bool | list | dict | type(None)):
            value = str(value)
        data[key] = value
    return {"kind": kind, "data": data}


class RedditCollector:
    """Collects one :class:`RedditQuery` over one window as pages of normalized records."""

    platform = "reddit"

    def __init__(self, settings: RedditSettings, matcher: Matcher, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.matcher = matcher
        self._sleep = sleep
        self._stats = _Stats()
        self._client: Any = None
        #: subreddit (lower case) -> None when readable, else why not; probed once per collector
        self._probed: dict[str, str | None] = {}

    # -- the client ------------------------------------------------------------------------------

    @property
    def reddit(self) -> Any:
        """The praw client: read-only, application-only auth, pointed at ``base_url`` when set."""
        if self._client is None:
            import praw

            urls: dict[str, str] = {}
            if self.settings.base_url:
                base = self.settings.base_url.rstrip("/")
                urls = {"oauth_url": base, "reddit_url": base, "short_url": base}
            self._client = praw.Reddit(
                client_id=self.settings.client_id,
                client_secret=self.settings.client_secret,
                user_agent=self.settings.user_agent,
                check_for_updates=False,
                check_for_async=False,
                requestor_class=_counting_requestor(self._stats),
                requestor_kwargs={"timeout": self.settings.timeout},
                **urls,
            )
            self._client.read_only = True
        return self._client

    def _call(self, label: str, fn: Callable[[], T]) -> T:
        """Run one API call with the fault policy: 429 waits ``retry-after``; 5xx, dropped and
        truncated responses are retried with bounded exponential backoff; 403/404 raise
        :class:`_SourceUnavailable`; anything else becomes a :class:`RedditApiError` naming ``label``."""
        import prawcore

        attempt = 0
        while True:
            try:
                return fn()
            except prawcore.Forbidden as exc:
                raise _SourceUnavailable(403, _reason_of(exc.response, "forbidden")) from None
            except (prawcore.NotFound, prawcore.Redirect) as exc:
                raise _SourceUnavailable(404, _reason_of(exc.response, "not found")) from None
            except prawcore.OAuthException as exc:
                raise RedditApiError(
                    f"{label}: Reddit refused the app credentials ({exc.error}); check login and password "
                    "of the reddit_api connection"
                ) from None
            except prawcore.ResponseException as exc:
                status = exc.response.status_code
                if status == 401:
                    raise RedditApiError(
                        f"{label}: Reddit refused the app credentials (401); check login and password "
                        "of the reddit_api connection"
                    ) from None
                if status == 429:
                    wait = _retry_after(exc.response)
                    wait = wait if wait is not None else self.settings.backoff_seconds * (2**attempt)
                    if wait > self.settings.max_wait_seconds:
                        raise RedditApiError(
                            f"{label}: rate limited for {wait:.0f}s, over the limit of "
                            f"{self.settings.max_wait_seconds:.0f}s"
                        ) from None
                    attempt += 1
                    if attempt > self.settings.max_retries:
                        raise RedditApiError(f"{label}: still rate limited (429) after {attempt - 1} waits") from None
                    log.warning("%s: 429 from Reddit, waiting %.1fs", label, wait)
                    self._stats.waits += 1
                    self._stats.wait_seconds += wait
                    self._sleep(wait)
                    continue
                if status >= 500 or isinstance(exc, prawcore.BadJSON):
                    what = f"HTTP {status}" if status >= 500 else "a truncated response"
                    self._backoff_or_fail(label, what, attempt)
                    attempt += 1
                    continue
                raise RedditApiError(f"{label}: Reddit answered HTTP {status}") from None
            except prawcore.RequestException as exc:
                self._backoff_or_fail(label, type(exc.original_exception).__name__, attempt)
                attempt += 1

    def _backoff_or_fail(self, label: str, what: str, attempt: int) -> None:
        self._stats.errors += 1
        if attempt >= self.settings.max_retries:
            raise RedditApiError(f"{label}: {what} after {attempt + 1} attempts") from None
        delay = min(60.0, self.settings.backoff_seconds * (2**attempt)) * (1 + random.random() / 4)
        log.warning("%s: %s, retrying in %.1fs", label, what, delay)
        self._sleep(delay)

    # -- matching --------------------------------------------------------------------------------

    def _named(self, post: PostRecord) -> tuple[set[str], set[str]]:
        """Slugs of the agencies a post mentions by itself (name, alias, handle, or its community), and the
        candidates of the shared names it leaves unsettled ("Clinton PD": 19 agencies), from one pass.

        Only used to choose what to keep and which threads to fetch: the runner matches every stored
        post again and records the mentions and ambiguities with their terms and offsets.
        """
        text = f"{post.title}\n{post.text}" if post.title else post.text
        unsettled: list[Any] = []
        matches = self.matcher.match(text, community=post.community, unsettled=unsettled)
        return {match.agency_slug for match in matches}, {slug for left in unsettled for slug in left.candidates}

    # -- listings ----------------------------------------------------------------------------------

    def pages(
        self, query: RedditQuery, window: Window, cursor: str | None = None, since_id: str | None = None
    ) -> Iterator[RedditPage]:
        """Pages of one query's listing, newest first, read back to the window start.

        Each page carries the submissions in the window that mention an agency, their comment trees,
        and the ``thread`` mentions of those comments.  A listing that ends before the window start was
        cut by Reddit (search stops near 250 results, listings near 1,000), whatever its count: a cut
        search is read again as the ``new`` listings of its subreddits (one each, matched locally), and
        whatever still ends early is flagged as a coverage gap with the reason in the ledger notes.
        ``cursor`` resumes a listing (or the fallback listings); ``since_id`` is not used: Reddit has no
        such parameter and submission and comment ids count separately, so the window (``created_utc``)
        is what bounds a run.
        """
        del since_id
        kind = self.kind_of(query)
        fallback_from, after, count = _parse_cursor(cursor)
        subreddits = list(query.subreddits)
        skipped: list[str] = []
        if kind == "search":
            # one private member can make Reddit refuse a combined r/a+b search: leave those out
            subreddits, skipped = self._usable_subreddits(subreddits)
            if not subreddits:
                page = RedditPage(skipped=skipped, notes={"skipped": skipped})
                self._stats.drain_into(page)
                yield page
                return
        if fallback_from is None:
            cut = False
            while True:
                try:
                    for page in self._listing_pages(kind, subreddits, query, window, after, count, skipped):
                        cut = cut or "search_truncated" in page.notes or "listing_truncated" in page.notes
                        skipped = []
                        yield page
                except _CombinedRefused:
                    # a combined listing (r/a+b+c) refused: probe its members once, read the readable ones
                    subreddits, refused = self._usable_subreddits(subreddits)
                    skipped = [*skipped, *refused]
                    if not subreddits:
                        page = RedditPage(skipped=skipped, notes={"skipped": skipped})
                        self._stats.drain_into(page)
                        yield page
                        return
                    continue
                break
            if not cut:
                return
            fallback_from, after, count = 0, None, 0
        # the search (or a combined listing) was cut: each subreddit's own listing, matched locally, instead
        single = "comments" if kind == "comments" else "new"
        for index in range(fallback_from, len(subreddits)):
            sub = subreddits[index]
            label = f"r/{sub}/{single}"
            listing = self._read_listing(label, label, single, query, window, after, count)
            for page, state, next_after, depth in listing:
                page.notes["fallback"] = f"{'search' if kind == 'search' else 'combined listing'} cut short: " \
                    f"read {label} instead"
                # a member cut even alone: search it for what its listing cannot reach (submissions only:
                # Reddit's search has no comments), unless it was a search that got us here
                texts = self._search_texts(sub, query) if state == "ended" and kind == "new" else []
                if state == "ended" and not texts:
                    self._flag_gap(page, label, depth, window)
                if state == "more":
                    page.cursor = _format_cursor(next_after, depth, fallback=index)
                elif texts:  # resumed from here, the member is read again, its searches too
                    page.cursor = _format_cursor(None, 0, fallback=index)
                elif index + 1 < len(subreddits):
                    page.cursor = _format_cursor(None, 0, fallback=index + 1)
                else:
                    page.cursor = None
                self._stats.drain_into(page)
                yield page
                for found in self._member_searches(sub, texts, query, window):
                    found.cursor = page.cursor
                    yield found
            after, count = None, 0

    def _search_texts(self, sub: str, query: RedditQuery) -> list[str]:
        """What to search r/sub for when even its own listing is cut: the names of the agencies the query
        wants (every tracked one when it names none) and, in an agency's own subreddit, that agency's
        police words (the community rule).  Empty without a registry to compile them from."""
        registry = getattr(self.matcher, "registry", None)
        if registry is None or not hasattr(registry, "select"):
            return []
        from trustwatch.collectors.agencies import compile_reddit_queries

        wanted = list(getattr(query, "agency_slugs", ()) or ()) or None
        owners = agency_subreddits(registry).get(sub.lower())
        if owners:
            slugs: list[str] | None = [s for s in owners if wanted is None or s in wanted]
            compiled = compile_reddit_queries(registry, global_subreddits=(sub,), agencies=slugs) if slugs else []
        else:
            compiled = [q for q in compile_reddit_queries(registry, global_subreddits=(sub,), agencies=wanted)
                        if [s.lower() for s in q.subreddits] == [sub.lower()]]
        return list(dict.fromkeys(q.text for q in compiled))

    def _member_searches(
        self, sub: str, texts: Sequence[str], query: RedditQuery, window: Window
    ) -> Iterator[RedditPage]:
        """Pages of the searches of r/sub (sort new, matched locally like the listing); a search that is cut
        before the window start too is the gap."""
        note = f"r/{sub}/new cut short: searched r/{sub} for the agencies ({len(texts)} queries)"
        for n, text in enumerate(texts, start=1):
            search = RedditQuery(query.key, text, (sub,), query.version, query.agency_slugs, "search")
            label = f"r/{sub}/search {n}/{len(texts)}"
            for page, state, _after, depth in self._read_listing(
                f"r/{sub}/search", label, "search", search, window, None, 0
            ):
                page.notes["searched"] = note
                if state == "ended":
                    self._flag_gap(page, label, depth, window)
                self._stats.drain_into(page)
                yield page

    def _listing_pages(
        self, kind: str, subreddits: list[str], query: RedditQuery, window: Window, after: str | None, count: int,
        skipped: list[str],
    ) -> Iterator[RedditPage]:
        """The pages of the query's own listing or search; a cut search, or a cut listing of several
        subreddits combined (``r/a+b``: one cap of about 1,000 items for all of them), ends with a page whose
        notes say ``search_truncated`` or ``listing_truncated`` and whose cursor starts the fallback: each
        subreddit's own listing, which has the cap to itself."""
        path = f"r/{'+'.join(subreddits)}/{kind}"
        label = path
        listing = self._read_listing(path, label, kind, query, window, after, count)
        for page, state, next_after, depth in listing:
            if skipped:  # reported once, with the first page
                page.skipped[:0] = skipped
                page.notes["skipped"] = list(page.skipped)
                skipped = []
            if state == "ended" and (kind == "search" or len(subreddits) > 1):
                what = "search" if kind == "search" else "listing"
                single = "comments" if kind == "comments" else "new"
                page.notes[f"{what}_truncated"] = (
                    f"{label} ended after {depth} {'results' if kind == 'search' else 'items'} before reaching "
                    f"{window.start.isoformat()}: read the {single} listings of "
                    f"{', '.join('r/' + sub for sub in subreddits)} instead"
                )
                log.warning("%s cut short: %s", what, page.notes[f"{what}_truncated"])
                page.cursor = _format_cursor(None, 0, fallback=0)
                self._stats.drain_into(page)
                yield page
                return
            if state == "ended":
                self._flag_gap(page, label, depth, window)
            page.cursor = _format_cursor(next_after, depth) if state == "more" else None
            self._stats.drain_into(page)
            yield page

    def _flag_gap(self, page: RedditPage, label: str, count: int, window: Window) -> None:
        page.coverage_gap = True
        page.notes["coverage_gap"] = (
            f"{label} ended after {count} items (cut by Reddit) before reaching {window.start.isoformat()}"
        )
        log.warning("coverage gap: %s", page.notes["coverage_gap"])

    def _read_listing(
        self, path: str, label: str, kind: str, query: RedditQuery, window: Window, after: str | None, count: int
    ) -> Iterator[tuple[RedditPage, str, str | None, int]]:
        """Pages of one listing or search with how it stands after each: ``more`` (read on),
        ``reached`` (the window start is reached), ``exhausted`` (everything Reddit has fit in less than a
        page) or ``ended`` (Reddit stopped after full pages before the start: cut)."""
        while True:
            params: dict[str, Any] = {"limit": self.settings.page_limit, "count": count}
            if after:
                params["after"] = after
            if kind == "search":
                params.update(q=query.text, sort="new", restrict_sr="on", t="all", include_over_18="on")
            try:
                payload = self._call(label, lambda p=params: self.reddit.request(method="GET", path=path, params=p))
            except _SourceUnavailable as exc:
                where = path.rsplit("/", 1)[0]
                if exc.status == 404:
                    raise RedditApiError(
                        f"{where} was not found (404, {exc.reason}): check the "
                        "subreddit name in the agency registry or the reddit_api connection"
                    ) from None
                if "+" in where and kind != "search":
                    raise _CombinedRefused from None
                note = f"{where}: 403 {exc.reason}"
                log.warning("skipping %s", note)
                yield RedditPage(skipped=[note], notes={"skipped": [note]}), "reached", None, count
                return
            listing = normalize_reddit_listing(payload, source=label)
            if kind == "comments":
                page, reached_start = self._comment_listing_page(listing, query, window)
            else:
                page, reached_start = self._listing_page(listing, query, window)
            count += len(listing.seen_ids)
            next_after = listing.cursor
            if reached_start:
                state = "reached"
            elif next_after is not None:
                state = "more"
            elif count < self.settings.page_limit:
                # Reddit answered everything it has in less than one page: exhausted, not cut (its cuts,
                # near 250 for searches and 1,000 for listings, come after full pages)
                state = "exhausted"
            else:
                state = "ended"
            yield page, state, next_after, count
            if state != "more":
                return
            after = next_after

    def kind_of(self, query: Any) -> str:
        """ "search" or "new": a query without ``kind`` (the compiler's) over agencies' own subreddits
        is read as a ``new`` listing, any other as a search."""
        kind = getattr(query, "kind", None)
        if kind is None:
            owners = agency_subreddits(getattr(self.matcher, "registry", ()))
            subs = [sub.lower() for sub in query.subreddits]
            kind = "new" if subs and all(sub in owners for sub in subs) else "search"
        if kind not in ("search", "new", "comments"):
            raise RedditApiError(f"unknown Reddit query kind {kind!r}")
        return kind

    def count(self, query: Any, window: Window) -> int:
        """Dry run: how many posts in the window the query would keep (comment trees not fetched)."""
        kind = self.kind_of(query)
        subs = "+".join(query.subreddits)
        after: str | None = None
        total = 0
        while True:
            params: dict[str, Any] = {"limit": self.settings.page_limit}
            if after:
                params["after"] = after
            if kind == "search":
                params.update(q=query.text, sort="new", restrict_sr="on", t="all", include_over_18="on")
            path = f"r/{subs}/{kind}"
            try:
                payload = self._call(
                    path, lambda p=params, path=path: self.reddit.request(method="GET", path=path, params=p)
                )
            except _SourceUnavailable as exc:
                if exc.status == 404:
                    raise RedditApiError(f"r/{subs} was not found (404, {exc.reason})") from None
                return total  # a private subreddit counts nothing, as the collection would skip it
            listing = normalize_reddit_listing(payload, source=path)
            # the collection's own choice, ambiguity-only posts included
            kept, reached_start = self._listed_matches(
                listing, query, window, "comment" if kind == "comments" else "submission"
            )
            total += len(kept)
            after = listing.cursor
            if reached_start or after is None:
                return total

    def _usable_subreddits(self, subreddits: list[str]) -> tuple[list[str], list[str]]:
        """Drop the subreddits a combined ``r/a+b`` request cannot read (private, quarantined, banned).

        One unreadable member can make Reddit refuse the whole combined request, and the refusal does
        not say which member it was; so each member is probed once per collector (a one-item ``new``
        listing) and the unreadable ones are left out and reported.  A missing one is an error that
        names it.
        """
        usable: list[str] = []
        skipped: list[str] = []
        for sub in subreddits:
            if sub.lower() not in self._probed:
                self._probed[sub.lower()] = self._probe(sub)
            refusal = self._probed[sub.lower()]
            if refusal is None:
                usable.append(sub)
            else:
                skipped.append(refusal)
        return usable, skipped

    def _probe(self, sub: str) -> str | None:
        """None when r/sub is readable, else the skip note ("r/sub: 403 private")."""
        try:
            self._call(f"r/{sub}", lambda: self.reddit.request(method="GET", path=f"r/{sub}/new", params={"limit": 1}))
        except _SourceUnavailable as exc:
            if exc.status == 404:
                raise RedditApiError(
                    f"r/{sub} was not found (404, {exc.reason}): check the subreddit list of the reddit_api connection"
                ) from None
            log.warning("skipping r/%s: 403 %s", sub, exc.reason)
            return f"r/{sub}: 403 {exc.reason}"
        return None

    def _listing_page(self, listing: RedditPage, query: RedditQuery, window: Window) -> tuple[RedditPage, bool]:
        """Keep the listing's submissions in the window that mention one of the query's agencies,
        with their comment trees; report whether the listing reached the window start.

        A submission whose only agency-like name is shared and unsettled ("APD arrested two men") is kept
        without its comment tree: the runner stores the name in ``ambiguous_mentions``, and a tree would be
        paid for with no agency to attribute it to (its comments that name one come from the comment
        listings)."""
        page = RedditPage(rejects=list(listing.rejects))
        authors = {author.platform_user_id: author for author in listing.authors}
        kept, reached_start = self._listed_matches(listing, query, window, "submission")
        for post, slugs in kept:
            page.posts.append(post)
            if post.author_platform_id in authors:
                page.authors.append(authors[post.author_platform_id])
            if slugs:
                self._add_thread(page, post, sorted(slugs))
        page.notes["listed"] = len(listing.seen_ids)
        return page, reached_start

    def _listed_matches(
        self, listing: RedditPage, query: RedditQuery, window: Window, kind: str
    ) -> tuple[list[tuple[PostRecord, set[str]]], bool]:
        """The listed posts of ``kind`` inside the window that name an agency the query wants, with their
        agencies, and whether the listing reached the window start (listings are newest first: the caller
        finishes the page, then stops).  A post whose only agency-like name is a shared name it leaves
        unsettled, with a wanted agency among the candidates, is kept with no agencies, like an X post: the
        runner stores the name in ambiguous_mentions, attributed to none."""
        reached_start = False
        wanted = set(getattr(query, "agency_slugs", ()) or ())
        kept: list[tuple[PostRecord, set[str]]] = []
        for post in listing.posts:
            if post.kind != kind:
                continue
            if post.created_at < window.start:
                reached_start = True
                continue
            if post.created_at >= window.end:
                continue
            slugs, candidates = self._named(post)
            if slugs and not (wanted and not slugs & wanted):
                kept.append((post, slugs))
            elif not slugs and candidates and not (wanted and not candidates & wanted):
                kept.append((post, set()))
        return kept, reached_start

    def _comment_listing_page(
        self, listing: RedditPage, query: RedditQuery, window: Window
    ) -> tuple[RedditPage, bool]:
        """Keep the listed comments in the window that name an agency (the matcher, with the community
        rule), each with its thread's submission as context (stored matched or not, read by ``api/info``
        100 at a time); report whether the listing reached the window start."""
        page = RedditPage(rejects=list(listing.rejects))
        authors = {author.platform_user_id: author for author in listing.authors}
        links: list[str] = []
        kept, reached_start = self._listed_matches(listing, query, window, "comment")
        for post, _slugs in kept:
            page.posts.append(post)
            if post.author_platform_id in authors:
                page.authors.append(authors[post.author_platform_id])
            if post.root_platform_id and post.root_platform_id not in links:
                links.append(post.root_platform_id)
        for start in range(0, len(links), INFO_BATCH):
            names = [f"t3_{link}" for link in links[start : start + INFO_BATCH]]
            try:
                payload = self._call(
                    "api/info (context)",
                    lambda n=names: self.reddit.request(method="GET", path="api/info/", params={"id": ",".join(n)}),
                )
            except _SourceUnavailable as exc:
                page.skipped.append(f"context submissions: {exc.status} {exc.reason}")
                continue
            context = normalize_reddit_listing(payload, source="api/info (context)")
            page.posts.extend(context.posts)
            page.authors.extend(context.authors)
            page.rejects.extend(context.rejects)
        page.notes["listed"] = len(listing.seen_ids)
        return page, reached_start

    # -- comment trees -----------------------------------------------------------------------------

    def _add_thread(self, page: RedditPage, submission: PostRecord, slugs: list[str]) -> None:
        """Add a submission's comment tree; every comment inherits the submission's agencies."""
        label = f"comments of t3_{submission.platform_post_id}"
        try:
            comments, unresolved = self._call(label, lambda: self._fetch_comments(submission.platform_post_id))
        except _SourceUnavailable as exc:
            page.skipped.append(f"t3_{submission.platform_post_id}: {exc.status} {exc.reason}")
            return
        tree = normalize_reddit_listing(
            {"kind": "Listing", "data": {"children": comments, "after": None}}, source=label
        )
        page.rejects.extend(tree.rejects)
        known = {a.platform_user_id for a in page.authors}
        for author in tree.authors:
            if author.platform_user_id not in known:
                known.add(author.platform_user_id)
                page.authors.append(author)
        for comment in tree.posts:
            page.posts.append(comment)
            for slug in slugs:
                page.mentions.append(
                    MentionRecord(
                        platform=PLATFORM,
                        platform_post_id=comment.platform_post_id,
                        agency_slug=slug,
                        matched_term=f"t3_{submission.platform_post_id}",
                        match_kind="thread",
                    )
                )
        for stub in unresolved:
            stub.link_id = submission.platform_post_id
            page.more.append(stub)
        if unresolved:
            page.notes["more_unresolved"] = page.notes.get("more_unresolved", 0) + sum(
                max(stub.count, len(stub.children)) for stub in unresolved
            )

    def _fetch_comments(self, submission_id: str) -> tuple[list[dict[str, Any]], list[MoreStub]]:
        """The whole comment tree via praw, ``more`` stubs replaced up to the configured limit."""
        submission = self.reddit.submission(id=submission_id)
        submission.comment_sort = "new"
        forest = submission.comments
        skipped = forest.replace_more(limit=self.settings.replace_more_limit)
        comments = [_thing_from_praw(comment, "t1") for comment in forest.list()]
        stubs = [
            MoreStub(parent_id=str(more.parent_id), children=list(more.children), count=int(more.count or 0))
            for more in skipped
        ]
        return comments, stubs

    # -- revisits ---------------------------------------------------------------------------------

    def read_thread(self, submission_id: str, slugs: Sequence[str], budget: int) -> RedditPage:
        """Read a thread again (a revisit): the submission as it stands now (score, comment count,
        deleted or locked), its comment tree with at most ``budget`` requests (one for the tree, the
        rest ``morechildren``), and a ``thread`` mention of every comment for each of ``slugs``.

        ``notes`` says how complete the thread is: ``thread_state`` (open, locked, deleted, removed,
        or unavailable with the status), ``num_comments`` (what Reddit counts), ``comments_seen`` and
        ``more_unresolved`` (comments left behind ``more`` stubs when the budget ran out).
        """
        label = f"revisit of t3_{submission_id}"
        page = RedditPage()
        try:
            submission, comments, unresolved = self._call(
                label, lambda: self._fetch_thread(submission_id, max(0, budget - 1))
            )
        except _SourceUnavailable as exc:
            page.notes["thread_state"] = f"unavailable ({exc.status} {exc.reason})"
            self._stats.drain_into(page)
            return page
        tree = normalize_reddit_listing(
            {"kind": "Listing", "data": {"children": [submission, *comments], "after": None}}, source=label
        )
        page.posts, page.authors, page.rejects = tree.posts, tree.authors, tree.rejects
        for comment in tree.posts:
            if comment.kind != "comment":
                continue
            for slug in slugs:
                page.mentions.append(
                    MentionRecord(PLATFORM, comment.platform_post_id, slug, f"t3_{submission_id}", "thread")
                )
        data = submission["data"]
        page.notes.update(
            thread_state=_thread_state(data),
            num_comments=int_or_none(data.get("num_comments")),
            comments_seen=sum(1 for post in tree.posts if post.kind == "comment"),
            more_unresolved=sum(max(stub.count, len(stub.children)) for stub in unresolved),
            more_stubs_unresolved=len(unresolved),
        )
        self._stats.drain_into(page)
        return page

    def _fetch_thread(
        self, submission_id: str, more_limit: int
    ) -> tuple[dict[str, Any], list[dict[str, Any]], list[MoreStub]]:
        submission = self.reddit.submission(id=submission_id)
        submission.comment_sort = "new"
        forest = submission.comments
        skipped = forest.replace_more(limit=more_limit)
        comments = [_thing_from_praw(comment, "t1") for comment in forest.list()]
        stubs = [
            MoreStub(parent_id=str(more.parent_id), children=list(more.children), count=int(more.count or 0))
            for more in skipped
        ]
        return _thing_from_praw(submission, "t3"), comments, stubs

    # -- compliance --------------------------------------------------------------------------------

    def info(self, fullnames: Sequence[str]) -> RedditPage:
        """Re-read up to 100 things by fullname (``t3_...``/``t1_...``) for the compliance check:
        what comes back ``[deleted]``/``[removed]`` is flagged; ids missing from the answer are gone."""
        names = [name for name in fullnames if name]
        if len(names) > INFO_BATCH:
            raise ValueError(f"info takes at most {INFO_BATCH} fullnames per call, got {len(names)}")
        page = RedditPage()
        if names:
            payload = self._call(
                "api/info",
                lambda: self.reddit.request(method="GET", path="api/info/", params={"id": ",".join(names)}),
            )
            page = normalize_reddit_listing(payload, source="api/info")
            returned = set(page.seen_ids)
            page.notes["missing"] = [n for n in names if _strip_prefix(n) not in returned]
        self._stats.drain_into(page)
        return page


def _thread_state(data: dict[str, Any]) -> str:
    """open, locked, deleted (by its author) or removed (by moderators, admins or filters)."""
    state = _deletion_state(data.get("selftext"), data.get("removed_by_category"))
    if state == "[deleted]" or (state is None and data.get("author") in (None, "[deleted]") and not data.get("title")):
        return "deleted"
    if state == "[removed]":
        return "removed"
    return "locked" if data.get("locked") else "open"


def _format_cursor(after: str | None, count: int, fallback: int | None = None) -> str:
    """The resumable position in a listing: Reddit's ``after`` fullname and how deep it is, prefixed
    with ``fallback:<n>:`` while the ``new`` listings that replace a cut search are read."""
    position = f"{after or ''}|{count}"
    return position if fallback is None else f"fallback:{fallback}:{position}"


def _parse_cursor(cursor: str | None) -> tuple[int | None, str | None, int]:
    """(fallback listing index or None, after, count) of a cursor written by :func:`_format_cursor`."""
    if not cursor:
        return None, None, 0
    fallback: int | None = None
    if cursor.startswith("fallback:"):
        _, index, cursor = cursor.split(":", 2)
        fallback = int(index)
    after, _, count = cursor.partition("|")
    try:
        return fallback, after or None, int(count or 0)
    except ValueError:
        return fallback, after or None, 0

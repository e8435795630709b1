"""Normalized records: the one shape every source (X, Reddit, the sandbox, archives) produces.

Collectors and importers turn raw API JSON into these records; ``trustwatch.models.store.write_page`` is the
only code that writes them.  Keeping the shape small and platform-neutral is what lets one write
path serve every source.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Platform = Literal["x", "reddit"]
PLATFORMS: tuple[str, ...] = ("x", "reddit")

PostKind = Literal["post", "reply", "quote", "repost", "submission", "comment"]
POST_KINDS: tuple[str, ...] = ("post", "reply", "quote", "repost", "submission", "comment")

MatchKind = Literal["handle", "hashtag", "name", "alias", "community", "thread"]
MATCH_KINDS: tuple[str, ...] = ("handle", "hashtag", "name", "alias", "community", "thread")

#: Longest text a post may carry (X note tweets reach 25,000 characters, Reddit self posts 40,000).
MAX_TEXT_CHARS = 60_000


class RecordError(ValueError):
    """A raw record that cannot be normalized; the message is the reason kept in rejected_payloads."""


@dataclass(slots=True)
class Metrics:
    """Engagement counters at one observation; None where the platform does not report one."""

    likes: int | None = None
    reposts: int | None = None
    replies: int | None = None
    quotes: int | None = None
    score: int | None = None


@dataclass(slots=True)
class AuthorRecord:
    """An account as seen in one response."""

    platform: str
    platform_user_id: str
    username: str | None = None
    display_name: str | None = None
    followers_count: int | None = None
    following_count: int | None = None
    post_count: int | None = None
    account_created_at: dt.datetime | None = None
    verified: bool | None = None
    location: str | None = None


@dataclass(slots=True)
class PostRecord:
    """A post, reply, repost, quote, submission or comment, platform ids kept as text."""

    platform: str
    platform_post_id: str
    kind: str
    created_at: dt.datetime
    text: str = ""
    author_platform_id: str | None = None
    title: str | None = None
    lang: str | None = None
    url: str | None = None
    conversation_id: str | None = None
    parent_platform_id: str | None = None
    #: For Reddit comments: the submission's id; for X: the referenced (reposted/quoted) tweet's id.
    root_platform_id: str | None = None
    community: str | None = None
    metrics: Metrics = field(default_factory=Metrics)
    #: Countries where the content is withheld (X), or None.
    withheld: list[str] | None = None
    #: '[deleted]' / '[removed]' state as the platform reported it at collection time.
    deleted_reason: str | None = None
    removed_by_category: str | None = None
    edit_history_ids: list[str] | None = None
    raw: dict[str, Any] | None = None
    #: Written by an agency's own account (a registry handle): agency speech, not public opinion.
    author_is_agency: bool = False
    #: The values :func:`validated` passed (None: never checked).  Not an init field, so a record made by
    #: ``dataclasses.replace`` starts unchecked; not compared, so equal records stay equal.
    validated_as: tuple[Any, ...] | None = field(default=None, init=False, repr=False, compare=False)


@dataclass(slots=True)
class MentionRecord:
    """Evidence that a post mentions an agency: which term matched, of which kind, where."""

    platform: str
    platform_post_id: str
    agency_slug: str
    matched_term: str
    match_kind: str
    start: int | None = None
    end: int | None = None
    #: Found only in the reposted text of a repost (amplification, not the reposter's own mention).
    via_repost: bool = False


@dataclass(slots=True)
class AmbiguityRecord:
    """A name several agencies share, found in a post that does not settle which one it means.

    Not attributed to any agency, but kept so analysts can count what attribution left out (issue 16).
    """

    platform: str
    platform_post_id: str
    #: The shared name as the registry writes it, e.g. "Clinton PD".
    term: str
    #: Slugs of the agencies it may mean, sorted.
    candidates: tuple[str, ...]
    start: int | None = None
    end: int | None = None


@dataclass(slots=True)
class RejectRecord:
    """A raw record that could not be normalized, kept aside with the reason."""

    platform: str
    reason: str
    payload: Any
    source: str | None = None
    platform_post_id: str | None = None


@dataclass(slots=True)
class Page:
    """One page of normalized records plus the bookkeeping for the ledger.

    ``cursor`` is the pagination token that fetches the *next* page; it is committed together with
    the page's rows so a crashed run resumes exactly after the last committed page.
    """

    authors: list[AuthorRecord] = field(default_factory=list)
    posts: list[PostRecord] = field(default_factory=list)
    mentions: list[MentionRecord] = field(default_factory=list)
    rejects: list[RejectRecord] = field(default_factory=list)
    #: Shared names the matcher could not settle (not attributed; stored in ambiguous_mentions).
    ambiguities: list[AmbiguityRecord] = field(default_factory=list)
    cursor: str | None = None
    requests: int = 1
    api_errors: int = 0
    rate_limit_waits: int = 0
    rate_limit_wait_seconds: float = 0.0
    #: True when the source could not reach back to the window start (Reddit's ~1,000-item listings).
    coverage_gap: bool = False
    #: Parts of the source left out with the reason, e.g. "r/foo: 403 private"; kept in the ledger notes.
    skipped: list[str] = field(default_factory=list)
    #: Ids a lookup asked for that the platform reported unavailable, with its reason ("not_found",
    #: "suspended", "protected"); compliance tombstones them with it.
    unavailable: dict[str, str] = field(default_factory=dict)

    def extend(self, other: Page) -> None:
        """Merge another page's records into this one (used when a source yields sub-pages)."""
        self.authors.extend(other.authors)
        self.posts.extend(other.posts)
        self.mentions.extend(other.mentions)
        self.rejects.extend(other.rejects)
        self.ambiguities.extend(other.ambiguities)
        self.api_errors += other.api_errors
        self.coverage_gap = self.coverage_gap or other.coverage_gap
        self.skipped.extend(other.skipped)
        self.unavailable.update(other.unavailable)


@dataclass(slots=True)
class Window:
    """A half-open time window [start, end) in UTC."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value.tzinfo is None:
                raise ValueError(f"window {name} must be timezone-aware, got {value.isoformat()}")
            setattr(self, name, value.astimezone(dt.UTC))
        if self.end <= self.start:
            raise ValueError(
                f"window end {self.end.isoformat()} must be after start {self.start.isoformat()}"
            )

    def __contains__(self, moment: dt.datetime) -> bool:
        return self.start <= moment < self.end


class Collector(Protocol):
    """What every source offers the runner: pages of normalized records for one query and window."""

    platform: str

    def pages(self, query: Any, window: Window, cursor: str | None) -> Iterator[Page]:
        """Yield pages newest first, resuming after ``cursor`` when given."""
        ...


def ensure_utc(value: dt.datetime) -> dt.datetime:
    """Return ``value`` as an aware UTC datetime; naive values are refused, not guessed."""
    if value.tzinfo is None:
        raise RecordError(f"timestamp without a timezone: {value.isoformat()}")
    return value.astimezone(dt.UTC)


def parse_timestamp(value: Any, field_name: str = "created_at") -> dt.datetime:
    """Parse an ISO-8601 string or epoch seconds (number or numeric string) into aware UTC."""
    if isinstance(value, bool) or value is None:
        raise RecordError(f"{field_name} is missing")
    if isinstance(value, int | float):
        try:
            return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise RecordError(f"{field_name} is not a valid epoch time: {value!r}") from exc
    if isinstance(value, str):
        text = value.strip()
        try:
            return dt.datetime.fromtimestamp(float(text), tz=dt.UTC)
        except ValueError:
            pass
        except (OverflowError, OSError) as exc:
            raise RecordError(f"{field_name} is not a valid epoch time: {value[:40]!r}") from exc
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise RecordError(f"{field_name} is not an ISO-8601 time: {value[:40]!r}") from exc
        return ensure_utc(parsed)
    raise RecordError(f"{field_name} has type {type(value).__name__}, expected a time")


#: Identifier and code fields of a post and the widths of their columns (models/tables.py).
_ID_FIELDS: tuple[tuple[str, int], ...] = (
    ("author_platform_id", 64), ("conversation_id", 64), ("parent_platform_id", 64), ("root_platform_id", 64),
    ("lang", 16), ("community", 100), ("removed_by_category", 40), ("deleted_reason", 40),
)


def check_identifier(value: Any, name: str, width: int) -> None:
    """An id or code must be text that fits its column, without NUL or lone surrogates (PostgreSQL refuses
    those, and an id silently changed by cleaning would no longer be the platform's id)."""
    if not isinstance(value, str):
        raise RecordError(f"{name} has type {type(value).__name__}, expected text")
    if len(value) > width:
        raise RecordError(f"{name} is {len(value)} characters, longer than {width}: {value[:40]!r}...")
    if "\x00" in value:
        raise RecordError(f"{name} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RecordError(f"{name} contains a lone surrogate") from None


#: Counters are stored as 32-bit integers.
MAX_COUNTER = 2**31 - 1


def int_or_none(value: Any) -> int | None:
    """A counter from an API field: ints, integral floats and numeric strings; anything else is unknown."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def validate_post(post: PostRecord) -> None:
    """Check what the store relies on; raise RecordError with the reason otherwise.

    Also truncates ``created_at`` to whole seconds (the one change it makes), so that every sighting of a
    post carries the same time, which the partitioned store's key needs."""
    if post.platform not in PLATFORMS:
        raise RecordError(f"unknown platform {post.platform!r}")
    if not isinstance(post.platform_post_id, str) or not post.platform_post_id.strip():
        raise RecordError("post id is missing")
    check_identifier(post.platform_post_id, "post id", 64)
    for name, width in _ID_FIELDS:
        value = getattr(post, name)
        # The common case (short ASCII text without NUL) in one expression; anything else gets the full check.
        if value is not None and not (
            value.__class__ is str and len(value) <= width and value.isascii() and "\x00" not in value
        ):
            check_identifier(value, name, width)
    if post.kind not in POST_KINDS:
        raise RecordError(f"unknown post kind {post.kind!r}")
    if not isinstance(post.created_at, dt.datetime) or post.created_at.tzinfo is None:
        raise RecordError("created_at is missing or has no timezone")
    # Whole seconds for every source: on PostgreSQL created_at is part of the posts' key (monthly partitions),
    # and one post arrives as X's "...:50.000Z" text and, once edited, as its id's millisecond time, or as
    # Reddit's float created_utc and a dump's integer one.  Truncated, every sighting names the same row.
    if post.created_at.microsecond:
        post.created_at = post.created_at.replace(microsecond=0)
    _check_shape(post)
    for name in ("likes", "reposts", "replies", "quotes", "score"):
        count = getattr(post.metrics, name)
        if count is not None and not -MAX_COUNTER <= count <= MAX_COUNTER:
            raise RecordError(f"{name} {count} is out of range for a counter")
    if not isinstance(post.text, str):
        raise RecordError(f"text has type {type(post.text).__name__}, expected a string")
    if len(post.text) > MAX_TEXT_CHARS:
        raise RecordError(f"text is {len(post.text)} characters, over the limit of {MAX_TEXT_CHARS}")
    if post.title is not None and len(post.title) > MAX_TEXT_CHARS:
        raise RecordError("title is over the text limit")


#: Every field :func:`validate_post` reads: the values it passed are kept on the record, and a record whose values
#: are still those needs no second check (issue 19: the normalizers and write_page each checked every post).
_CHECKED_FIELDS = operator.attrgetter(
    "platform", "platform_post_id", "kind", "created_at", "text", "title", *(name for name, _ in _ID_FIELDS),
    "metrics.likes", "metrics.reposts", "metrics.replies", "metrics.quotes", "metrics.score")


def validated(post: PostRecord) -> PostRecord:
    """:func:`validate_post`, remembering on the record the values it passed; the normalizers call this."""
    validate_post(post)
    post.validated_as = _CHECKED_FIELDS(post)
    return post


def ensure_valid(post: PostRecord) -> PostRecord:
    """Validate a record unless it passed :func:`validated` with the values it holds now.

    The store calls this for every post: a record built by hand, changed in place after its check (another
    text, created_at or id), or rebuilt with ``dataclasses.replace`` is checked again, so no path skips it.
    """
    if post.validated_as is None or post.validated_as != _CHECKED_FIELDS(post):
        validated(post)
    return post


#: The first day a post can carry on each platform (X's first tweet, Reddit's launch); a time before it,
#: or more than a day ahead of now, is a broken record (year 0001, 9999, an epoch number read as 1970).
PLATFORM_BIRTH = {"x": dt.datetime(2006, 3, 21, tzinfo=dt.UTC), "reddit": dt.datetime(2005, 6, 23, tzinfo=dt.UTC)}
#: What each platform's post ids look like: X snowflakes (decimal, at most 19 digits), Reddit base 36.
ID_SHAPES = {"x": re.compile(r"[0-9]{1,19}"), "reddit": re.compile(r"[0-9a-z]{1,13}")}


def _check_shape(post: PostRecord) -> None:
    """Reject values no platform gives, instead of storing them as facts."""
    birth = PLATFORM_BIRTH[post.platform]
    latest = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    if not birth <= post.created_at <= latest:
        raise RecordError(f"created_at {post.created_at.isoformat()} is outside [{birth:%Y-%m-%d}, now + 1 day] "
                          f"for {post.platform}")
    shape = ID_SHAPES[post.platform]
    for name in ("platform_post_id", "parent_platform_id", "root_platform_id", "conversation_id"):
        value = getattr(post, name)
        if value is not None and not shape.fullmatch(value) and not (
                post.platform == "reddit" and name != "platform_post_id" and _REDDIT_FULLNAME.fullmatch(value)):
            raise RecordError(f"{name} {value[:40]!r} is not a {post.platform} id")


_REDDIT_FULLNAME = re.compile(r"t[1-6]_[0-9a-z]{1,13}")


def unique_by(items: Iterable[Any], key: Any) -> list[Any]:
    """Keep the last item for each key, in first-seen order (a page may repeat an author or post)."""
    chosen: dict[Any, Any] = {}
    for item in items:
        chosen[key(item)] = item
    return list(chosen.values())

"""The sandbox Reddit API: the endpoints praw uses for read-only collection, over the seeded corpus.

Routes (mounted on the shared sandbox server):
``POST /api/v1/access_token`` (client_credentials with Basic auth), ``GET /r/{subs}/search``,
``GET /r/{subs}/new``, ``GET /r/{subs}/comments`` (newest comments),
``GET /comments/{id}`` (and ``/comments/{id}/_/{comment}``, praw's "continue
this thread"), ``POST|GET /api/morechildren``, ``GET /api/info``.  Shapes follow the recorded
responses in ``shared/realcases/reddit``: Listings with ``after``/``before`` cursors and the ~1,000
item cap (searches cut near 250 results, as Reddit's do), ``t3``/``t1`` things, ``more`` stubs (ids and
continue-thread ones), the
``x-ratelimit-used/remaining/reset`` headers, 429 with ``retry-after`` past the limit, 403 for a
private subreddit and 404 for an unknown one.  A clock (``RedditApi.clock``) makes the corpus unfold in
time: comments not written yet are not shown, scores grow, ``num_comments`` counts what exists.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
import re
import secrets
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import parse_qs

from trustwatch.sandbox.common import CorpusConfig, SandboxRequest, SandboxResponse, json_response
from trustwatch.sandbox.reddit_corpus import RedditComment, RedditCorpus, RedditSubmission

#: Reddit answers at most this many items per listing page.
MAX_PAGE = 100
DEFAULT_PAGE = 25
#: How deep a listing can be paged (Reddit's cap).
LISTING_CAP = 1000
#: Where Reddit's search stops (about; each query gets its own cut within +-20).
SEARCH_CAP = 250
#: Comment trees: replies shown per comment before a ``more`` stub, and depth before "continue this thread".
MAX_CHILDREN = 3
MAX_DEPTH = 4
#: Without a configured limit the sandbox still sends the headers, with room to spare.
UNLIMITED = 1_000_000

_LISTING_RE = re.compile(r"^/r/(?P<subs>[A-Za-z0-9_+]+)/(?P<kind>new|search|comments)(?:\.json)?/?$")
_COMMENTS_RE = re.compile(r"^/comments/(?P<id>[a-z0-9]+)(?:/[^/]*)?(?:/(?P<comment>[a-z0-9]+))?/?$")


def fixed_clock(moment: dt.datetime) -> Callable[[], dt.datetime]:
    """A clock that always says ``moment`` (tests; ``CorpusConfig.now``)."""
    return lambda: moment


def _listing(children: list[dict[str, Any]], after: str | None = None, before: str | None = None) -> dict[str, Any]:
    return {
        "kind": "Listing",
        "data": {
            "after": after,
            "dist": len(children),
            "modhash": "",
            "geo_filter": "",
            "children": children,
            "before": before,
        },
    }


def _error(
    status: int, message: str, reason: str | None = None, headers: dict[str, str] | None = None
) -> SandboxResponse:
    body: dict[str, Any] = {"message": message, "error": status}
    if reason:
        body["reason"] = reason
    return json_response(status, body, headers)


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(phrase.lower()) + r"(?!\w)")


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quotes and parentheses."""
    parts: list[str] = []
    depth, quoted, start, i = 0, False, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth = max(0, depth - 1)
        elif not quoted and depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def compile_search(query: str) -> list[list[re.Pattern[str]]]:
    """A Lucene-like subset: alternatives joined by ``OR``, each a conjunction of quoted phrases and
    bare words (parentheses group).  Matching is case-insensitive on word boundaries."""
    alternatives: list[list[re.Pattern[str]]] = []
    for alt in _split_top(query, " OR "):
        alt = alt.strip()
        while alt.startswith("(") and alt.endswith(")"):
            alt = alt[1:-1].strip()
        if " OR " in alt:
            alternatives.extend(compile_search(alt))
            continue
        terms = [m.group(1) or m.group(2) for m in re.finditer(r'"([^"]+)"|([^\s()"]+)', alt)]
        terms = [t for t in terms if t and t.upper() != "AND"]
        if terms:
            alternatives.append([_phrase_pattern(t) for t in terms])
    return alternatives


def search_matches(compiled: list[list[re.Pattern[str]]], text: str) -> bool:
    """True when any alternative has all its terms in ``text``."""
    lowered = text.lower()
    return any(all(p.search(lowered) for p in alt) for alt in compiled)


class RedditApi:
    """The Reddit side of the sandbox server (see the module docstring)."""

    def __init__(
        self,
        corpus_config: CorpusConfig,
        client_id: str = "sandbox-client",
        client_secret: str = "sandbox-secret",  # noqa: S107 - a sandbox credential
        private_subreddits: Sequence[str] = (),
        rate_limit: int | None = None,
        corpus: RedditCorpus | None = None,
    ) -> None:
        self.config = corpus_config
        self.corpus = corpus if corpus is not None else RedditCorpus(corpus_config)
        self.client_id = client_id
        self.client_secret = client_secret
        self.private_subreddits = {s.lower().removeprefix("r/") for s in private_subreddits}
        self.rate_limit = rate_limit
        #: Seconds in one rate-limit window (Reddit: 600); tests shorten it.
        self.rate_window = 600.0
        self.listing_cap = LISTING_CAP
        #: Reddit's search stops far earlier than listings, near 250 results, a little more or less
        #: per query (None: no cut).
        self.search_cap: int | None = SEARCH_CAP
        #: The sandbox's "now": things created later do not exist yet (comments arrive over days,
        #: scores grow).  None shows the whole corpus as it ends up; ``corpus_config.now`` fixes it (tests
        #: then move it forward from there), the live sandbox sets the wall clock.
        self.clock: Callable[[], dt.datetime] | None = None
        if corpus_config.now is not None:
            self.clock = fixed_clock(corpus_config.now)
        self._lock = threading.Lock()
        self._tokens: set[str] = set()
        self._window_start = time.monotonic()
        self._used = 0

    # -- ground truth ---------------------------------------------------------------------------

    def ground_truth(
        self, start: Any, end: Any, agencies: Iterable[str] | None = None, at: dt.datetime | None = None
    ) -> set[str]:
        """Ids (submissions and comments) a collector must store for [start, end) as attributed threads:
        every comment of the threads, or only those written by ``at`` (what a read at that moment can see)."""
        ids = self.corpus.ground_truth(start, end, agencies, unreadable=self.private_subreddits)
        return ids if at is None else self._written_by(ids, at)

    def comment_truth(
        self, start: Any, end: Any, agencies: Iterable[str] | None = None, at: dt.datetime | None = None
    ) -> set[str]:
        """Comments in [start, end) that name one of the agencies, with their submissions (the
        ``r/SUB/comments`` listings' share of the ground truth), less the private subreddits'; those
        written by ``at`` when given."""
        ids = self.corpus.comment_truth(start, end, agencies, unreadable=self.private_subreddits)
        return ids if at is None else self._written_by(ids, at)

    def ambiguous_truth(self, start: Any, end: Any, agencies: Iterable[str] | None = None) -> set[str]:
        """Submissions in [start, end) whose only agency-like name is a shared name they leave unsettled (a
        listing stores them as ambiguities, without their comment trees), less the private subreddits'."""
        return self.corpus.ambiguous_truth(start, end, agencies, unreadable=self.private_subreddits)

    def _written_by(self, ids: set[str], at: dt.datetime) -> set[str]:
        comments = self.corpus.comments
        return {i for i in ids if i not in comments or comments[i].created <= at}

    def _now(self) -> dt.datetime | None:
        return self.clock() if self.clock is not None else None

    def _exists(self, created: dt.datetime, now: dt.datetime | None) -> bool:
        return now is None or created <= now

    def _submission_data(self, submission: RedditSubmission, now: dt.datetime | None) -> dict[str, Any]:
        visible = None
        if now is not None:
            visible = sum(1 for c in submission.all_comments if self.corpus.comments[c].created <= now)
        return submission.to_data(now, visible)

    # -- routing ----------------------------------------------------------------------------------

    def handle(self, request: SandboxRequest) -> SandboxResponse | None:
        """Answer a Reddit route, or None for paths that are not Reddit's."""
        path = request.path
        if path.rstrip("/") == "/api/v1/access_token":
            return self._access_token(request)
        listing = _LISTING_RE.match(path)
        comments = _COMMENTS_RE.match(path)
        is_more = path.rstrip("/") in ("/api/morechildren", "/api/morechildren.json")
        is_info = path.rstrip("/") in ("/api/info", "/api/info.json")
        if not (listing or comments or is_more or is_info):
            return None
        if not self._authorized(request):
            return _error(401, "Unauthorized")
        limited, headers = self._count_request()
        if limited is not None:
            return limited
        if listing:
            response = self._listing(request, listing.group("subs"), listing.group("kind"))
        elif comments:
            response = self._comments(request, comments.group("id"), comments.group("comment"))
        elif is_more:
            response = self._morechildren(request)
        else:
            response = self._info(request)
        response.headers.update(headers)
        return response

    # -- auth and rate limit ----------------------------------------------------------------------

    def _access_token(self, request: SandboxRequest) -> SandboxResponse:
        if request.method != "POST":
            return _error(405, "Method Not Allowed")
        auth = request.headers.get("authorization", "")
        user = password = None
        if auth.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth[6:].strip()).decode("utf-8")
                user, _, password = decoded.partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = None
        if user != self.client_id or password != self.client_secret:
            return _error(401, "Unauthorized")
        form = parse_qs(request.body.decode("utf-8", "replace"))
        if form.get("grant_type", [""])[0] != "client_credentials":
            return json_response(200, {"error": "unsupported_grant_type"})
        token = "sandbox-" + secrets.token_hex(12)
        with self._lock:
            self._tokens.add(token)
        return json_response(200, {"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"})

    def _authorized(self, request: SandboxRequest) -> bool:
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return False
        with self._lock:
            return auth[7:].strip() in self._tokens

    def _count_request(self) -> tuple[SandboxResponse | None, dict[str, str]]:
        """Count a request against the window; a 429 (with ``retry-after``) when over the limit."""
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= self.rate_window:
                self._window_start, self._used = now, 0
            limit = self.rate_limit if self.rate_limit is not None else UNLIMITED
            reset = max(1, math.ceil(self.rate_window - (now - self._window_start)))
            if self._used >= limit:
                headers = {
                    "x-ratelimit-used": str(self._used),
                    "x-ratelimit-remaining": "0.0",
                    "x-ratelimit-reset": str(reset),
                    "retry-after": str(reset),
                }
                return _error(429, "Too Many Requests", headers=headers), {}
            self._used += 1
            headers = {
                "x-ratelimit-used": str(self._used),
                "x-ratelimit-remaining": f"{float(limit - self._used):.1f}",
                "x-ratelimit-reset": str(reset),
            }
        return None, headers

    # -- listings ---------------------------------------------------------------------------------

    def _check_subreddits(self, names: list[str]) -> SandboxResponse | None:
        for name in names:
            low = name.lower()
            if low in self.private_subreddits:
                return _error(403, "Forbidden", reason="private")
            if low not in self.corpus.subreddit_names:
                return _error(404, "Not Found")
        return None

    def _listing(self, request: SandboxRequest, subs: str, kind: str) -> SandboxResponse:
        names = [s for s in subs.split("+") if s]
        if not names:
            return _error(404, "Not Found")
        if kind == "comments":
            return self._comment_listing(request, names)
        if len(names) == 1 and names[0].lower() == "all":
            ids = sorted(self.corpus.submissions, key=lambda s: int(s, 36), reverse=True)
        else:
            refused = self._check_subreddits(names)
            if refused is not None:
                return refused
            merged: list[str] = []
            for name in names:
                merged.extend(self.corpus.by_subreddit.get(name.lower(), []))
            ids = sorted(set(merged), key=lambda s: int(s, 36), reverse=True)
        now = self._now()
        if now is not None:
            ids = [i for i in ids if self.corpus.submissions[i].created <= now]
        if kind == "search":
            query = request.param("q") or ""
            compiled = compile_search(query)
            ids = [i for i in ids if search_matches(compiled, self._search_text(self.corpus.submissions[i]))]
            if self.search_cap is not None:
                ids = ids[: self.search_cap - 20 + zlib.crc32(query.encode("utf-8")) % 41]
        ids = ids[: self.listing_cap]
        return self._page(request, ids)

    def _comment_listing(self, request: SandboxRequest, names: list[str]) -> SandboxResponse:
        """``r/a+b/comments``: the subreddits' newest comments, newest first, capped like any listing."""
        if not (len(names) == 1 and names[0].lower() == "all"):
            refused = self._check_subreddits(names)
            if refused is not None:
                return refused
            merged = [cid for name in names for cid in self.corpus.comments_by_subreddit.get(name.lower(), [])]
        else:
            merged = list(self.corpus.comments)
        now = self._now()
        ids = sorted(
            (c for c in set(merged) if self._exists(self.corpus.comments[c].created, now)),
            key=lambda c: int(c, 36), reverse=True,
        )[: self.listing_cap]
        return self._page(request, ids, kind="t1")

    @staticmethod
    def _search_text(submission: RedditSubmission) -> str:
        return f"{submission.title}\n{submission.selftext}"

    def _page(self, request: SandboxRequest, ids: list[str], kind: str = "t3") -> SandboxResponse:
        """One page of ``ids`` (newest first, submissions or comments) by Reddit's ``after``/``before``
        cursors."""
        try:
            limit = int(request.param("limit") or DEFAULT_PAGE)
        except ValueError:
            limit = DEFAULT_PAGE
        limit = max(1, min(MAX_PAGE, limit))
        position = {sid: n for n, sid in enumerate(ids)}
        after = request.param("after")
        before = request.param("before")
        if after:
            n = position.get(after.removeprefix(f"{kind}_"))
            if n is None:
                return json_response(200, _listing([]))
            start = n + 1
            chosen = ids[start : start + limit]
        elif before:
            n = position.get(before.removeprefix(f"{kind}_"))
            if n is None:
                return json_response(200, _listing([]))
            start = max(0, n - limit)
            chosen = ids[start:n]
        else:
            start = 0
            chosen = ids[:limit]
        end = start + len(chosen)
        next_after = f"{kind}_{chosen[-1]}" if chosen and end < len(ids) else None
        prev_before = f"{kind}_{chosen[0]}" if chosen and start > 0 else None
        now = self._now()
        if kind == "t1":
            children = [{"kind": "t1", "data": self._listed_comment(self.corpus.comments[cid], now)} for cid in chosen]
        else:
            children = [
                {"kind": "t3", "data": self._submission_data(self.corpus.submissions[sid], now)} for sid in chosen
            ]
        return json_response(200, _listing(children, next_after, prev_before), served_ids=list(chosen))

    def _listed_comment(self, comment: RedditComment, now: dt.datetime | None) -> dict[str, Any]:
        """A comment as a listing shows it: with its submission's title, author and permalink."""
        submission = self.corpus.submissions[comment.link_id]
        data = comment.to_data(submission.slug_title, now)
        data.update(
            link_title=submission.title,
            link_author=submission.author,
            link_permalink=f"https://www.reddit.com/r/{submission.subreddit}/comments/{submission.id}/"
            f"{submission.slug_title}/",
        )
        return data

    # -- comment trees ----------------------------------------------------------------------------

    def _comments(self, request: SandboxRequest, sid: str, focus: str | None) -> SandboxResponse:
        submission = self.corpus.submissions.get(sid)
        now = self._now()
        if submission is None or not self._exists(submission.created, now):
            return _error(404, "Not Found")
        if submission.subreddit.lower() in self.private_subreddits:
            return _error(403, "Forbidden", reason="private")
        newest_first = (request.param("sort") or "confidence") == "new"
        served: list[str] = [sid]
        if focus and focus != "_":
            comment = self.corpus.comments.get(focus)
            if comment is None or comment.link_id != sid or not self._exists(comment.created, now):
                return _error(404, "Not Found")
            tree = [self._render(comment, 0, submission, newest_first, served)]
        else:
            tree = self._render_level(submission.comments, submission.fullname, 0, submission, newest_first, served)
        payload = [
            _listing([{"kind": "t3", "data": self._submission_data(submission, now)}]),
            _listing(tree),
        ]
        return json_response(200, payload, served_ids=served)

    def _ordered(self, ids: list[str], newest_first: bool) -> list[str]:
        return sorted(ids, key=lambda c: int(c, 36), reverse=newest_first)

    def _render_level(
        self,
        ids: list[str],
        parent: str,
        depth: int,
        submission: RedditSubmission,
        newest_first: bool,
        served: list[str],
    ) -> list[dict[str, Any]]:
        now = self._now()
        ordered = self._ordered([c for c in ids if self._exists(self.corpus.comments[c].created, now)], newest_first)
        shown, hidden = ordered[:MAX_CHILDREN], ordered[MAX_CHILDREN:]
        children = [self._render(self.corpus.comments[c], depth, submission, newest_first, served) for c in shown]
        if hidden:
            count = sum(1 + len(self._descendants(self.corpus.comments[c])) for c in hidden)
            children.append(
                {
                    "kind": "more",
                    "data": {
                        "count": count,
                        "name": f"t1_{hidden[0]}",
                        "id": hidden[0],
                        "parent_id": parent,
                        "depth": depth,
                        "children": hidden,
                    },
                }
            )
        return children

    def _render(
        self,
        comment: RedditComment,
        depth: int,
        submission: RedditSubmission,
        newest_first: bool,
        served: list[str],
    ) -> dict[str, Any]:
        now = self._now()
        data = comment.to_data(submission.slug_title, now)
        data["depth"] = depth
        served.append(comment.id)
        if any(self._exists(self.corpus.comments[r].created, now) for r in comment.replies):
            if depth + 1 >= MAX_DEPTH:
                stub = {
                    "kind": "more",
                    "data": {
                        "count": 0,
                        "name": "t1__",
                        "id": "_",
                        "parent_id": comment.fullname,
                        "depth": depth + 1,
                        "children": [],
                    },
                }
                data["replies"] = _listing([stub])
            else:
                data["replies"] = _listing(
                    self._render_level(comment.replies, comment.fullname, depth + 1, submission, newest_first, served)
                )
        return {"kind": "t1", "data": data}

    def _descendants(self, comment: RedditComment) -> list[str]:
        now = self._now()
        out: list[str] = []
        stack = list(reversed(comment.replies))
        while stack:
            cid = stack.pop()
            if not self._exists(self.corpus.comments[cid].created, now):
                continue  # not written yet (a reply is never older than its parent)
            out.append(cid)
            stack.extend(reversed(self.corpus.comments[cid].replies))
        return out

    def _morechildren(self, request: SandboxRequest) -> SandboxResponse:
        params = dict(request.query)
        if request.body:
            params.update(parse_qs(request.body.decode("utf-8", "replace")))
        link = (params.get("link_id") or [""])[-1].removeprefix("t3_")
        children = [c for c in (params.get("children") or [""])[-1].split(",") if c]
        submission = self.corpus.submissions.get(link)
        if submission is None:
            return json_response(200, {"json": {"errors": [["INVALID_ID", "no such link", "link_id"]], "data": {}}})
        if submission.subreddit.lower() in self.private_subreddits:
            return _error(403, "Forbidden", reason="private")
        things: list[dict[str, Any]] = []
        served: list[str] = []
        seen: set[str] = set()
        now = self._now()
        for cid in children:
            comment = self.corpus.comments.get(cid)
            if comment is None or comment.link_id != link or cid in seen or not self._exists(comment.created, now):
                continue
            for each in [cid, *self._descendants(comment)]:
                if each in seen:
                    continue
                seen.add(each)
                data = self.corpus.comments[each].to_data(submission.slug_title, now)
                things.append({"kind": "t1", "data": data})
                served.append(each)
        return json_response(200, {"json": {"errors": [], "data": {"things": things}}}, served_ids=served)

    def _info(self, request: SandboxRequest) -> SandboxResponse:
        names = [n for n in (request.param("id") or "").split(",") if n]
        if len(names) > MAX_PAGE:
            return _error(400, "Bad Request", reason="TOO_MANY_IDS")
        children: list[dict[str, Any]] = []
        served: list[str] = []
        now = self._now()
        for name in names:
            kind, _, bare = name.partition("_")
            if kind == "t3" and bare in self.corpus.submissions:
                submission = self.corpus.submissions[bare]
                if submission.subreddit.lower() in self.private_subreddits or not self._exists(submission.created, now):
                    continue
                children.append({"kind": "t3", "data": self._submission_data(submission, now)})
                served.append(bare)
            elif kind == "t1" and bare in self.corpus.comments:
                comment = self.corpus.comments[bare]
                if not self._exists(comment.created, now):
                    continue
                title = self.corpus.submissions[comment.link_id].slug_title
                children.append({"kind": "t1", "data": comment.to_data(title, now)})
                served.append(bare)
        return json_response(200, _listing(children), served_ids=served)

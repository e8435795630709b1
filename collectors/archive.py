"""Archive import: twarc2 JSONL (X) and Pushshift-style dumps (Reddit) into the same store.

Recent search reaches back 7 days and Reddit listings about 1,000 items, so long trust studies bring
history from archives.  Files are streamed line by line (plain, .gz or .zst), normalized by the same
normalizers as the collectors, matched, and written through ``write_page`` in batches, so memory stays
flat whatever the file size.  Each file is a ledger row keyed by its content hash: importing the same
file again reads nothing, and an interrupted import resumes after its last committed line.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, select
from trustwatch.collectors.runner import add_mentions
from trustwatch.models import store

from trustwatch.records import AuthorRecord, MentionRecord, Page, PostRecord, RecordError, RejectRecord

#: Posts per write_page batch (the X search/all page size).
BATCH_POSTS = 500
#: Longest raw line kept in a reject.
MAX_REJECT_LINE = 10_000


class ArchiveError(RuntimeError):
    """A file that cannot be read at all (missing, unreadable, not an archive)."""


class TruncatedArchive(EOFError):
    """The compressed stream ends inside a block or frame: everything before it was read."""


#: Exceptions of a compressed stream that ends early or is damaged part way (what was read before stands).
def _damage_errors() -> tuple[type[BaseException], ...]:
    import zlib

    import zstandard

    return (EOFError, zlib.error, gzip.BadGzipFile, zstandard.ZstdError)


@dataclass
class ImportSummary:
    """What one file's import did."""

    file: str
    platform: str
    run_id: int
    status: str
    lines: int = 0
    posts_read: int = 0
    posts_kept: int = 0
    posts_new: int = 0
    authors: int = 0
    rejected: int = 0
    api_errors: int = 0
    skipped: bool = False
    resumed_after_line: int = 0
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def line(self) -> str:
        """The summary line printed at the end."""
        if self.status == "failed":
            return f"{self.file}: FAILED: {self.error}"
        if self.skipped:
            partial = f" PARTIAL: {self.error}" if self.status == "partial" else ""
            return f"{self.file}: imported already (run {self.run_id}); nothing read{partial}"
        if self.status == "partial":
            return f"{self.file}: {self.lines:,} lines read, {self.posts_kept:,} kept; PARTIAL: {self.error}"
        rate = self.lines / self.seconds if self.seconds else 0.0
        return (f"{self.file}: {self.lines:,} lines, {self.posts_read:,} posts read, {self.posts_kept:,} kept "
                f"({self.posts_new:,} new), {self.rejected:,} rejected, {self.api_errors:,} API errors, "
                f"{rate:,.0f} lines/s")


def open_text(path: Path) -> IO[str]:
    """Open a plain, gzip or zstandard file as UTF-8 text, streamed."""
    if not path.is_file():
        raise ArchiveError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    if name.endswith(".zst") or name.endswith(".zstd"):
        return io.TextIOWrapper(io.BufferedReader(_ZstdFrames(path.open("rb"))), encoding="utf-8",
                                errors="replace")
    return path.open("r", encoding="utf-8", errors="replace")


class _ZstdFrames(io.RawIOBase):
    """Zstandard frames one after another, raising :class:`TruncatedArchive` when the file ends inside one.

    zstandard's ``stream_reader`` returns what it decoded and then a clean end of file when the last frame is
    cut, so a truncated dump imported as a ``success``; a decompression object per frame knows (``eof``).
    """

    def __init__(self, raw: IO[bytes]) -> None:
        import zstandard

        super().__init__()
        self._raw = raw
        # Pushshift dumps use a long window; allow it rather than failing on "frame requires too much memory".
        self._dctx = zstandard.ZstdDecompressor(max_window_size=2**31)
        self._obj = self._dctx.decompressobj()
        self._fed = False
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = self._raw.read(1 << 17)
            if not chunk:
                if self._fed and not self._obj.eof:
                    raise TruncatedArchive("the zstandard stream ends inside a frame (the file is cut short)")
                return 0
            while chunk:
                if self._obj.eof:  # the previous frame ended: the rest starts the next one
                    self._obj, self._fed = self._dctx.decompressobj(), False
                self._fed = True
                self._pending += self._obj.decompress(chunk)
                chunk = self._obj.unused_data if self._obj.eof else b""
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


#: First bytes of what is not an archive, with what it is, to say so instead of reading it as posts.
_NOT_ARCHIVES = ((b"SQLite format 3\x00", "a SQLite database"), (b"PK\x03\x04", "a zip file"),
                 (b"%PDF", "a PDF document"), (b"\x89PNG", "a PNG image"), (b"PAR1", "a Parquet file"))


def sniff(path: Path) -> str | None:
    """What the file is when it is plainly not an archive (by content, not name); None when it may be one:
    gzip or zstandard, or text whose first character opens JSON."""
    with path.open("rb") as fh:
        head = fh.read(64)
    if head[:2] == b"\x1f\x8b" or head[:4] == b"\x28\xb5\x2f\xfd":
        return None
    for magic, what in _NOT_ARCHIVES:
        if head.startswith(magic):
            return what
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        return None  # empty (a search that found nothing) or blank: imports as zero lines
    if text[:1] in (b"{", b"["):
        return None
    return f"not JSON lines (it starts with {head[:16]!r})"


def fingerprint(path: Path) -> str:
    """SHA-256 of the file as stored: the same file imported twice is recognised whatever its name."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- per-platform line parsers ---------------------------------------------------------------------


def loads(text: str) -> Any:
    """Parse a JSON line fast (orjson), falling back to ``json`` for what orjson refuses (lone surrogates)."""
    import orjson

    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _tweet_text(raw: dict[str, Any]) -> Any:
    """The text the X normalizer stores and the matcher reads: a long post's note_tweet, else ``text``."""
    note = raw.get("note_tweet")
    if isinstance(note, dict) and isinstance(note.get("text"), str) and note["text"]:
        return note["text"]
    return raw.get("text", "")


def _tweet_key(raw: dict[str, Any]) -> str:
    """The post a tweet is stored as: an edited tweet's versions all count as the first version's id."""
    edits = raw.get("edit_history_tweet_ids")
    if isinstance(edits, list) and edits and isinstance(edits[0], str | int) and str(edits[0]).isdigit():
        return str(edits[0])
    return str(raw.get("id"))


def _matched_only(payload: dict[str, Any], matcher: Any) -> tuple[dict[str, Any], int]:
    """The page with only the tweets that may be kept: match the raw text before building any record.

    A post is kept when its stored text names an agency (or a name several share), so a tweet is built only
    when some version of its post matches (the normalizer then keeps the latest version, and the usual match
    decides); tweets whose text cannot even be read stay in, so they are rejected with their reason as before.
    About 97 % of an archive mentions no agency: their records, validation and author records were the bulk of the
    import's parse time.  Returns the page and how many posts it left out (counted as read).
    """
    def may_match(raw: Any) -> bool:
        if not isinstance(raw, dict):
            return True
        body = _tweet_text(raw)
        if not isinstance(body, str):
            return True
        unsettled: list[Any] = []  # a shared name left unsettled is kept too: countable as ambiguous
        return bool(matcher.match(body, unsettled=unsettled)) or bool(unsettled)

    data = payload.get("data")
    includes = payload.get("includes")
    tweets = includes.get("tweets") if isinstance(includes, dict) else None
    if isinstance(data, dict) and not tweets and isinstance(_tweet_text(data), str):
        # the common line (one streamed tweet, nothing it quotes or reposts): one match decides
        if may_match(data):
            return payload, 0
        out = dict(payload)
        out["data"] = []
        return out, 1
    pool = ([data] if isinstance(data, dict) else data if isinstance(data, list) else []) + (
        tweets if isinstance(tweets, list) else [])
    keyed = [(raw, _tweet_key(raw)) for raw in pool if isinstance(raw, dict)]
    keys = {key for raw, key in keyed if may_match(raw)}
    left_out = len({key for _, key in keyed} - keys)

    def wanted(raw: Any) -> bool:
        return not isinstance(raw, dict) or _tweet_key(raw) in keys or not isinstance(_tweet_text(raw), str)

    out = dict(payload)
    if isinstance(data, dict):
        out["data"] = [data] if wanted(data) else []
    elif isinstance(data, list):
        out["data"] = [raw for raw in data if wanted(raw)]
    if isinstance(tweets, list):
        out["includes"] = {**includes, "tweets": [raw for raw in tweets if wanted(raw)]}
    return out, left_out


def parse_x_line(text: str, source: str, matcher: Any = None, stats: dict[str, int] | None = None) -> Page:
    """One twarc2 line (a raw API page): every tweet of ``data`` and ``includes.tweets``, its authors.

    With ``matcher``, only tweets that may mention an agency become records (see :func:`_matched_only`);
    the posts left out are added to ``stats["left_out"]``.
    """
    from trustwatch.collectors.x import normalize_x_page, tweet_to_record, user_to_record

    try:
        payload = loads(text)
    except ValueError as exc:
        return Page(rejects=[RejectRecord("x", f"{source}: response is not valid JSON ({exc})",
                                          text[:MAX_REJECT_LINE], source=source)])
    kind = x_line_kind(payload)
    if kind == "flattened":
        payload = unflatten_tweet(payload)
    elif kind != "tweets":
        return Page(requests=0, skipped=[LINE_KIND + kind])  # said once per file by import_file
    if matcher is not None and isinstance(payload, dict):
        payload, left_out = _matched_only(payload, matcher)
        if stats is not None:
            stats["left_out"] = stats.get("left_out", 0) + left_out
        includes = payload.get("includes")
        if left_out and not payload.get("data") and not (isinstance(includes, dict) and includes.get("tweets")):
            # every tweet of the line was left out (about 97 % of an archive's lines): no record to build,
            # and the normalizer would only have counted the response's errors
            errors = payload.get("errors")
            return Page(api_errors=len(errors) if isinstance(errors, list) else 0)
    page = normalize_x_page(payload, source=source)
    includes = payload.get("includes") if isinstance(payload, dict) else None
    if not isinstance(includes, dict):
        return page
    users = {str(u.get("id")): u for u in includes.get("users") or [] if isinstance(u, dict)}
    have = {p.platform_post_id for p in page.posts}
    for raw in includes.get("tweets") or []:
        if not isinstance(raw, dict) or str(raw.get("id")) in have:
            continue
        try:
            record = tweet_to_record(raw, users)
        except RecordError as exc:
            page.rejects.append(RejectRecord("x", str(exc), raw, source=source,
                                             platform_post_id=str(raw.get("id")) if raw.get("id") else None))
            continue
        have.add(record.platform_post_id)
        page.posts.append(record)
    known_authors = {a.platform_user_id for a in page.authors}
    for post in page.posts:
        uid = post.author_platform_id
        if uid and uid not in known_authors and uid in users:
            author = user_to_record(users[uid])
            if author is not None:
                page.authors.append(author)
                known_authors.add(uid)
    return page


#: Marks a line that holds no posts (a users, lists or counts line); import_file counts them per file.
LINE_KIND = "line-kind:"
#: What each kind of line means, for the one message a file gets.
LINE_KINDS = {
    "users": "a twarc2 users file (user objects: `twarc2 users`, `followers`, `following`, lookups of users); "
             "trustwatch imports posts, and stores authors only with their posts",
    "lists": "a twarc2 lists file (list objects: `twarc2 lists`, `owned-lists`); it holds no posts",
    "counts": "a twarc2 counts file (tweet counts per time bucket: `twarc2 counts`); it holds no posts",
    "other": "JSON that is neither an X API page of posts nor a twarc2 flattened tweet",
}


def x_line_kind(payload: Any) -> str:
    """``tweets`` (an API page), ``flattened`` (one tweet with its expansions inlined, ``twarc2 flatten``),
    ``users``, ``lists``, ``counts`` or ``other``: a data object without ``text`` is not a post."""
    if not isinstance(payload, dict):
        return "other"
    if "data" not in payload:
        if "text" in payload and "id" in payload:
            return "flattened"
        # an errors-only page is a page of tweets without any; an empty page too
        return "tweets" if "errors" in payload or "meta" in payload else "other"
    data = payload["data"]
    if isinstance(data, dict) and "text" in data:
        return "tweets"  # the common line: one streamed tweet
    items = data if isinstance(data, list) else [data]
    objects = [d for d in items if isinstance(d, dict)]
    if not objects or any("text" in d for d in objects):
        return "tweets"
    first = objects[0]
    if "tweet_count" in first or ("start" in first and "end" in first):
        return "counts"
    if "username" in first:
        return "users"
    if "name" in first and ("follower_count" in first or "member_count" in first or "private" in first):
        return "lists"
    return "tweets"  # objects without text that look like nothing else: the normalizer rejects each one


def unflatten_tweet(obj: dict[str, Any]) -> dict[str, Any]:
    """A ``twarc2 flatten`` line as the API page it came from: the tweet in ``data``, its inlined ``author``
    and referenced tweets (with theirs) in ``includes``, so the one normalizer reads both shapes."""
    users: list[Any] = []
    tweets: list[Any] = []

    def take(tweet: dict[str, Any]) -> dict[str, Any]:
        tweet = dict(tweet)
        author = tweet.pop("author", None)
        if isinstance(author, dict):
            users.append(author)
        refs = tweet.get("referenced_tweets")
        if isinstance(refs, list):
            plain = []
            for ref in refs:
                if isinstance(ref, dict):
                    inner = ref.get("tweet")
                    if isinstance(inner, dict) and "id" in inner:
                        tweets.append(take(inner))
                    plain.append({k: v for k, v in ref.items() if k != "tweet"})
            tweet["referenced_tweets"] = plain
        for key in ("__twarc", "in_reply_to_user", "matching_rules"):
            tweet.pop(key, None)
        return tweet

    return {"data": [take(obj)], "includes": {"users": users, "tweets": tweets}}


def parse_reddit_line(text: str, source: str, matcher: Any = None, stats: dict[str, int] | None = None
                      ) -> Page:
    """One dump line: a submission or a comment object, recognised by its fields.

    ``matcher`` and ``stats`` are accepted for symmetry with :func:`parse_x_line` and not used: a comment
    is kept when its submission names an agency, which the line alone cannot tell.
    """
    from trustwatch.collectors.reddit import _author_record, normalize_reddit_thing

    try:
        obj = loads(text)
    except ValueError as exc:
        return Page(rejects=[RejectRecord("reddit", f"{source}: invalid JSON ({exc})", text[:MAX_REJECT_LINE],
                                          source=source)])
    if not isinstance(obj, dict):
        return Page(rejects=[RejectRecord("reddit", f"{source}: expected a JSON object", obj, source=source)])
    if "kind" in obj and isinstance(obj.get("data"), dict):  # an API thing, not a bare dump object
        thing = obj
    elif "body" in obj or str(obj.get("name", "")).startswith("t1_") or "parent_id" in obj:
        thing = {"kind": "t1", "data": obj}
    elif "title" in obj or str(obj.get("name", "")).startswith("t3_"):
        thing = {"kind": "t3", "data": obj}
    else:
        return Page(rejects=[RejectRecord("reddit", f"{source}: neither a submission (title) nor a comment (body)",
                                          obj, source=source)])
    try:
        post = normalize_reddit_thing(thing)
    except RecordError as exc:
        return Page(rejects=[RejectRecord("reddit", f"{source}: {exc}", obj, source=source,
                                          platform_post_id=obj.get("id") if isinstance(obj.get("id"), str) else None)])
    author = _author_record(thing["data"])
    return Page(posts=[post], authors=[author] if author else [])


PARSERS: dict[str, Callable[..., Page]] = {"x": parse_x_line, "reddit": parse_reddit_line}


# --- the import loop ------------------------------------------------------------------------------


def _direct_roots(page: Page) -> dict[str, set[tuple[str, str]]]:
    """Post id -> (agency slug, term) of the page's direct (not inherited) Reddit mentions."""
    out: dict[str, set[tuple[str, str]]] = {}
    for m in page.mentions:
        if m.match_kind != "thread":
            out.setdefault(m.platform_post_id, set()).add((m.agency_slug, m.matched_term))
    return out


def _thread_mentions(engine: Engine, page: Page, recent: dict[str, set[tuple[str, str]]] | None = None) -> None:
    """Reddit comments inherit the agencies of their submission (match kind ``thread``), when it is stored,
    in the same batch, or in ``recent`` (batches handed to the writer and maybe not committed yet); so a
    thread about an agency is kept whole."""
    from trustwatch.models.tables import Agency, Post, PostMention

    comments = [p for p in page.posts if p.kind == "comment" and p.root_platform_id]
    if not comments:
        return
    roots = {p.root_platform_id for p in comments}
    by_root: dict[str, set[tuple[str, str]]] = {}
    for root in roots & set(recent or ()):
        by_root.setdefault(root, set()).update((recent or {})[root])
    for m in page.mentions:
        if m.platform_post_id in roots and m.match_kind != "thread":
            by_root.setdefault(m.platform_post_id, set()).add((m.agency_slug, m.matched_term))
    with engine.connect() as conn:
        rows = conn.execute(
            select(Post.platform_post_id, Agency.slug, PostMention.matched_term)
            .join(PostMention, PostMention.post_id == Post.id)
            .join(Agency, Agency.id == PostMention.agency_id)
            .where(Post.platform == "reddit", Post.platform_post_id.in_(sorted(roots)),
                   PostMention.match_kind != "thread")
        )
        for root, slug, term in rows:
            by_root.setdefault(root, set()).add((slug, term))
    for post in comments:
        for slug, term in sorted(by_root.get(post.root_platform_id or "", ())):
            page.mentions.append(MentionRecord("reddit", post.platform_post_id, slug, term, "thread"))


def _keep_matched(page: Page) -> tuple[list[PostRecord], list[AuthorRecord]]:
    mentioned = {m.platform_post_id for m in page.mentions} | {a.platform_post_id for a in page.ambiguities}
    posts = [p for p in page.posts if p.platform_post_id in mentioned]
    authors_needed = {p.author_platform_id for p in posts}
    return posts, [a for a in page.authors if a.platform_user_id in authors_needed]


def _empty(page: Page) -> bool:
    """Whether a parsed line adds nothing to its batch (most lines of a matched import: every tweet left out)."""
    return not (page.posts or page.rejects or page.authors or page.mentions or page.ambiguities or page.api_errors
                or page.skipped or page.unavailable or page.coverage_gap)


class _Progress:
    """A rich progress line on a terminal (lines, posts kept, rejects, rate); silent otherwise."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._progress: Any = None
        if self.enabled:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                      TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), transient=False)
            self._progress.start()
            self._task = self._progress.add_task(label, stats="")

    def update(self, s: ImportSummary, started: float) -> None:
        if self._progress is not None:
            rate = s.lines / max(time.perf_counter() - started, 1e-9)
            self._progress.update(self._task, stats=f"{s.lines:,} lines  {s.posts_kept:,} kept  "
                                                   f"{s.rejected:,} rejects  {rate:,.0f} lines/s")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


class _BatchWriter:
    """Writes batches through ``write_page`` on a thread of its own while the next batch is parsed.

    Parsing is Python work and the write is mostly the database's, so the two overlap.  The queue holds at
    most ``depth`` batches (memory stays flat); batches are written in order, one transaction each with its
    cursor, so the resume promise holds: whatever committed is before the cursor.  A write error stops the
    writer and is raised in the importing thread at its next hand-over.
    """

    def __init__(self, engine: Engine, run_id: int, summary: ImportSummary, on_written: Callable[[], None],
                 depth: int = 1) -> None:
        import queue
        import threading

        self._engine, self._run_id, self._summary, self._on_written = engine, run_id, summary, on_written
        self._queue: queue.Queue[Page | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="trustwatch-import-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            page = self._queue.get()
            if page is None:
                return
            if self._error is not None:
                continue  # failed: drain what is queued without writing it
            try:
                result = store.write_page(self._engine, page, self._run_id)
            except BaseException as exc:  # handed to the importing thread
                self._error = exc
                continue
            s = self._summary
            s.posts_kept += result.seen
            s.posts_new += result.new
            s.rejected += result.rejected
            s.api_errors += page.api_errors
            s.authors += len(page.authors)
            self._on_written()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, page: Page) -> None:
        """Queue a batch (waits while the queue is full); raises a previous batch's write error."""
        self._raise_if_failed()
        self._queue.put(page)

    def close(self) -> None:
        """Wait until every queued batch is written; raises a write error."""
        self._queue.put(None)
        self._thread.join()
        self._raise_if_failed()

    def abort(self) -> None:
        """Stop after the batch being written (the importing thread failed); queued batches are dropped."""
        self._error = self._error or RuntimeError("import aborted")
        self._queue.put(None)
        self._thread.join()


def import_file(
    engine: Engine,
    platform: str,
    path: Path,
    *,
    matcher: Any,
    keep_all: bool = False,
    progress: bool = False,
    run_context: dict[str, Any] | None = None,
    batch_posts: int = BATCH_POSTS,
) -> ImportSummary:
    """Import one archive file; see the module docstring.

    A file cut short (a truncated ``.gz`` or ``.zst``) keeps everything read before the cut and ends
    ``partial`` with the last line read; a file of which no line is understood (users, lists or counts,
    not JSON) fails its ledger row saying what it seems to be.  Either way the error is this file's alone.
    """
    if platform not in PARSERS:
        raise ArchiveError(f"unknown platform {platform!r}: use x or reddit")
    path = Path(path)
    parse = PARSERS[platform]
    try:
        not_archive = sniff(path)
        digest = fingerprint(path)
    except OSError as exc:  # unreadable (permissions, a folder, a vanished file): this file only
        raise ArchiveError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    handle = store.open_run(
        engine, platform=platform, query_key=f"import:{platform}:{'all' if keep_all else 'matched'}",
        query_version=digest[:64],
        query_text=str(path), window_start=None, window_end=None, source="import", run_context=run_context,
        notes={"file": str(path), "sha256": digest, "all": keep_all},
    )
    summary = ImportSummary(file=str(path), platform=platform, run_id=handle.run_id, status="running")
    if handle.already_done:
        row = store.get_run(engine, handle.run_id)
        summary.status, summary.skipped = row["status"], True
        summary.error = row["error"]
        return summary
    if not_archive is not None:
        message = f"{path.name} is {not_archive}, not an archive of {platform} posts: nothing imported"
        store.update_run(engine, handle.run_id, status="failed", error=message, finished_at=store.utcnow())
        raise ArchiveError(message)
    resume_after = int(handle.cursor) if handle.cursor else 0
    summary.resumed_after_line = resume_after
    started = time.perf_counter()
    bar = _Progress(path.name, progress)
    batch = Page(requests=0)
    lineno = 0
    stats: dict[str, int] = {}
    writer = _BatchWriter(engine, handle.run_id, summary, lambda: bar.update(summary, started))
    # Submissions' agencies of the batches still queued or being written: their comments in the next batch
    # inherit them although the submission is not committed yet (see _thread_mentions).
    in_flight: list[dict[str, set[tuple[str, str]]]] = []
    understood = 0
    kinds: dict[str, int] = {}

    def flush() -> None:
        nonlocal batch
        batch.cursor = str(lineno)
        add_mentions(batch, matcher)
        if platform == "reddit":
            recent: dict[str, set[tuple[str, str]]] = {}
            for roots in in_flight:
                for root, terms in roots.items():
                    recent.setdefault(root, set()).update(terms)
            _thread_mentions(engine, batch, recent)
            in_flight.append(_direct_roots(batch))
            del in_flight[:-2]  # the queue holds one batch and the writer one: older ones are committed
        summary.posts_read += len(batch.posts) + stats.pop("left_out", 0)
        if not keep_all:
            batch.posts, batch.authors = _keep_matched(batch)
        writer.put(batch)
        batch = Page(requests=0)

    truncated: str | None = None
    name = path.name
    try:
        with open_text(path) as fh:
            lines = enumerate(fh, start=1)
            while True:
                try:
                    lineno, line = next(lines)
                except StopIteration:
                    break
                except _damage_errors() as exc:  # cut short or damaged here: keep what came before
                    truncated = f"{type(exc).__name__}: {exc}"[:300]
                    break
                summary.lines = lineno
                if lineno <= resume_after:
                    continue
                text = line.strip()
                if not text:
                    continue
                before = stats.get("left_out", 0)
                parsed = parse(text, f"{name}:{lineno}", None if keep_all else matcher, stats)
                if parsed.skipped and parsed.skipped[0].startswith(LINE_KIND):
                    kind = parsed.skipped[0][len(LINE_KIND):]
                    kinds[kind] = kinds.get(kind, 0) + 1
                    continue
                # a line whose tweets the matcher left out was understood too
                if (parsed.posts or stats.get("left_out", 0) > before
                        or any(r.platform_post_id for r in parsed.rejects)):
                    understood += 1
                if not _empty(parsed):
                    batch.extend(parsed)
                if len(batch.posts) >= batch_posts or len(batch.rejects) >= batch_posts:
                    flush()
            flush()
        writer.close()
    except BaseException as exc:
        writer.abort()
        bar.close()
        store.record_failure(engine, handle.run_id, error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    bar.close()
    summary.seconds = time.perf_counter() - started
    notes = {**handle.notes, "lines": summary.lines, "posts_read": summary.posts_read,
             "posts_kept": summary.posts_kept, "authors": summary.authors}
    if kinds:
        notes["lines_without_posts"] = kinds
    if understood == 0 and resume_after == 0 and (kinds or summary.rejected):
        seems = max(kinds, key=lambda k: kinds[k]) if kinds else None
        what = LINE_KINDS[seems] if seems else f"not an archive of {platform} posts (no line could be read)"
        message = f"{path.name}: no line holds {platform} posts; it seems to be {what}"
        store.update_run(engine, handle.run_id, status="failed", error=message, finished_at=store.utcnow(),
                         notes=notes)
        raise ArchiveError(message)
    summary.status = "success"
    if truncated is not None:
        summary.status = "partial"
        summary.error = (f"the file ends early after line {summary.lines} ({truncated}); lines 1-{summary.lines} "
                         "were imported, the rest of the file is missing")
        notes["truncated_after_line"] = summary.lines
    store.update_run(engine, handle.run_id, status=summary.status, finished_at=store.utcnow(), last_cursor=None,
                     notes=notes, error=summary.error)
    return summary


def iter_files(paths: list[str], skipped: list[str] | None = None) -> Iterator[Path]:
    """Expand folders to the archive files inside them (sorted), so a DAG Param can name a folder.

    In a folder only files that look like archives by their content are taken (a SQLite store or a PDF
    beside the dumps is not read as posts); each file left out is named in ``skipped`` with what it is.
    A file named explicitly is always taken (and fails alone if it is not an archive).
    """
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for q in sorted(q for q in path.iterdir() if q.is_file() and not q.name.startswith(".")):
                try:
                    what = sniff(q)
                except OSError:
                    what = None  # unreadable: taken, so it fails alone with its reason
                if what is None:
                    yield q
                elif skipped is not None:
                    skipped.append(f"{q}: left out, it is {what}")
        else:
            yield path

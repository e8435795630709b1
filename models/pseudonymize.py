"""Pseudonymization of people before anything is stored.

With a key configured (extra ``pseudonymize_key`` of the ``trustwatch_db`` connection, or the environment
variable ``TRUSTWATCH_PSEUDONYMIZE_KEY``), ``trustwatch.models.store.write_page`` passes every page through
:func:`pseudonymize_page` first, so every source (collectors, archive imports) stores the same pseudonyms:

- an account is stored under ``anon_`` + a keyed HMAC-SHA256 of its platform id (Reddit: the lower-cased
  username, which is Reddit's permanent id); usernames, display names and locations are dropped;
- ``@name`` (X) and ``u/name`` (Reddit) mentions of people in texts, titles and raw payloads are replaced
  by the person's pseudonym, so analysts can still follow who answers whom without knowing who it is;
- agencies' own handles (the registry's ``x_handles``) and their accounts stay readable: they are public
  institutions, and "the police posted this" is what trust research is about.

The pseudonym depends only on the key and the id, so the same person gets the same pseudonym across
pages, runs and platforms' re-collections; without the key nobody can recompute it from a username.
Matching happens before this step (the runner matches, then writes), and the agencies' terms survive it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from trustwatch.records import AuthorRecord, MentionRecord, Page, PostRecord, RejectRecord
from trustwatch.settings import ConfigError

ENV_KEY = "TRUSTWATCH_PSEUDONYMIZE_KEY"
EXTRA_KEY = "pseudonymize_key"
PREFIX = "anon_"
#: Hex characters of the HMAC kept in a pseudonym (128 bits: no collisions at any realistic size).
DIGEST_CHARS = 32
#: Shortest key accepted: a short key could be guessed, and with it every pseudonym reversed.
MIN_KEY_CHARS = 16

_PSEUDONYM = re.compile(rf"^{PREFIX}[0-9a-f]{{{DIGEST_CHARS}}}$")
# X usernames: 1-15 word characters; not preceded by a word character (so e-mail addresses stay).
_X_MENTION = re.compile(r"(?<![\w@])@(\w{1,15})\b")
# Reddit usernames: 3-20 of [A-Za-z0-9_-], written u/name, /u/name or as a profile link.
_REDDIT_MENTION = re.compile(
    r"(?<![\w/])((?:(?:https?://)?(?:www\.|old\.|new\.)?reddit\.com)?/user/|(?:(?:https?://)?(?:www\.|old\.|new\.)?"
    r"reddit\.com)?/?u/)([A-Za-z0-9_-]{3,20})\b"
)
# Links to an X profile or post name the account: x.com/name/status/..., twitter.com/name.
_X_LINK = re.compile(r"(?<![\w.])((?:(?:mobile|www)\.)?(?:twitter|x)\.com/)(\w{1,15})\b")
#: First path parts of X links that are not accounts.
_X_RESERVED = {"i", "intent", "search", "hashtag", "home", "share", "explore", "settings", "messages",
               "notifications", "compose", "login", "signup", "tos", "privacy", "en"}
#: Keys of raw payloads that hold a person's id or name, per platform.
_ID_KEYS = {"author_id", "in_reply_to_user_id"}
_DROP_KEYS = {"author_fullname", "location", "description", "profile_image_url", "url_overridden_by_dest"}
_NAME_KEYS = {"username", "display_name", "screen_name"}
_DELETED_AUTHORS = {"[deleted]", "[removed]"}


class PseudonymizeError(ConfigError):
    """The configured key cannot be used; the message never contains the key."""


def pseudonymize_key() -> bytes | None:
    """The configured key (connection extra first, then the environment), or None when not configured."""
    from trustwatch.settings import STORE_CONN_ID, find_connection

    if os.environ.get(f"AIRFLOW_CONN_{STORE_CONN_ID.upper()}"):
        conn = find_connection(STORE_CONN_ID)
        value = (conn.extra or {}).get(EXTRA_KEY) if conn is not None else None
    else:
        value = _key_from_airflow()  # inside a task: asked once per process, not once per page
    source = f"extra '{EXTRA_KEY}' of the connection '{STORE_CONN_ID}'"
    if not value:
        value = os.environ.get(ENV_KEY)
        source = ENV_KEY
    if not value:
        return None
    if not isinstance(value, str) or len(value.strip()) < MIN_KEY_CHARS:
        raise PseudonymizeError(
            f"the pseudonymization key in {source} is shorter than {MIN_KEY_CHARS} characters; use a long "
            "random value, e.g. the output of `python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    return value.strip().encode("utf-8")


@functools.cache
def _key_from_airflow() -> Any:
    from trustwatch.settings import STORE_CONN_ID, find_connection

    conn = find_connection(STORE_CONN_ID)
    return (conn.extra or {}).get(EXTRA_KEY) if conn is not None else None


def is_pseudonym(value: Any) -> bool:
    """True for a value this module produced (so a page is never pseudonymized twice)."""
    return isinstance(value, str) and bool(_PSEUDONYM.match(value))


def pseudonym(key: bytes, platform: str, user_id: str) -> str:
    """The stored id of an account: ``anon_`` + keyed HMAC-SHA256 of the platform and its id."""
    if is_pseudonym(user_id):
        return user_id
    ident = user_id.lower() if platform == "reddit" else user_id  # Reddit names are case-insensitive
    digest = hmac.new(key, f"{platform}\x00{ident}".encode(), hashlib.sha256).hexdigest()
    return PREFIX + digest[:DIGEST_CHARS]


class _Pseudonymizer:
    """Rewrites one page: knows the page's usernames -> ids and the agencies' handles."""

    def __init__(self, key: bytes, agency_handles: Iterable[str]) -> None:
        self.key = key
        self.agencies = {h.lower().lstrip("@") for h in agency_handles if h}
        #: (platform, lower-cased username) -> platform user id, from authors and X mention entities
        self.ids: dict[tuple[str, str], str] = {}
        #: X ids of the agencies' own accounts seen on the page
        self.agency_ids: set[str] = set()
        #: A URL path segment that is a person's username (their profile on another site: instagram.com/<name>/)
        self.name_in_path: re.Pattern[str] | None = None

    # -- ids and names --------------------------------------------------------------------------

    def is_agency(self, name: str | None) -> bool:
        return bool(name) and name.lower().lstrip("@") in self.agencies  # type: ignore[union-attr]

    def user(self, platform: str, user_id: str | None, username: str | None = None) -> str | None:
        """The stored id of an account; agencies' accounts and deleted authors stay as they are."""
        if user_id is None or user_id in _DELETED_AUTHORS:
            return user_id
        if platform == "x" and (user_id in self.agency_ids or self.is_agency(username)):
            return user_id
        return pseudonym(self.key, platform, user_id)

    def by_name(self, platform: str, name: str) -> str:
        """Pseudonym of a person known by username: by id when the page tells it, else by the name."""
        if is_pseudonym(name):
            return name
        if platform == "reddit":
            return pseudonym(self.key, platform, name)
        user_id = self.ids.get((platform, name.lower()))
        if user_id is not None:
            return pseudonym(self.key, platform, user_id)
        return pseudonym(self.key, f"{platform}-name", name.lower())

    def learn(self, page: Page) -> None:
        people: set[str] = set()
        for author in page.authors:
            if author.username:
                self.ids[(author.platform, author.username.lower())] = author.platform_user_id
                if author.platform == "x" and self.is_agency(author.username):
                    self.agency_ids.add(author.platform_user_id)
                elif isinstance(author.username, str) and len(author.username) >= 3:
                    people.add(author.username.lower())
        if people:
            # the same handle on another site (instagram.com/<name>/, tiktok.com/@<name>) re-identifies the
            # person as surely as an x.com profile link; ids cannot be matched there, names can
            names = "|".join(re.escape(n) for n in sorted(people, key=len, reverse=True))
            self.name_in_path = re.compile(rf"(?<=/)(@?)({names})(?=[/?#\s\"'),]|$)", re.IGNORECASE)
        for post in page.posts:
            if post.platform == "x" and isinstance(post.raw, dict):
                entities = post.raw.get("entities")
                for raw in (entities.get("mentions") if isinstance(entities, dict) else None) or []:
                    if isinstance(raw, dict) and isinstance(raw.get("username"), str) and raw.get("id"):
                        self.ids.setdefault(("x", raw["username"].lower()), str(raw["id"]))
                        if self.is_agency(raw["username"]):
                            self.agency_ids.add(str(raw["id"]))

    # -- texts ----------------------------------------------------------------------------------

    def text(self, platform: str | None, value: str) -> str:
        """Replace mentions of people in a text; agencies' handles stay."""
        if not value or ("@" not in value and "/" not in value):
            return value
        if self.name_in_path is not None and "/" in value:
            value = self.name_in_path.sub(lambda m: m.group(1) + self.by_name("x" if platform is None else platform,
                                                                               m.group(2)), value)

        def x_sub(m: re.Match[str]) -> str:
            name = m.group(1)
            return m.group(0) if self.is_agency(name) or is_pseudonym(name) else "@" + self.by_name("x", name)

        def reddit_sub(m: re.Match[str]) -> str:
            name = m.group(2)
            if is_pseudonym(name):
                return m.group(0)
            return m.group(1) + self.by_name("reddit", name)

        def link_sub(m: re.Match[str]) -> str:
            name = m.group(2)
            if name.lower() in _X_RESERVED or self.is_agency(name) or is_pseudonym(name):
                return m.group(0)
            return m.group(1) + self.by_name("x", name)

        if platform in (None, "x"):
            value = _X_MENTION.sub(x_sub, value)
        value = _X_LINK.sub(link_sub, value)  # a Reddit post can link an X account too
        if platform in (None, "reddit"):
            value = _REDDIT_MENTION.sub(reddit_sub, value)
        return value

    def raw(self, platform: str | None, value: Any, key: str | None = None) -> Any:
        """A raw payload with people's ids, names and mentions replaced (recursively)."""
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            looks_like_user = "username" in value or "screen_name" in value
            for k, v in value.items():
                if k in _DROP_KEYS or (k.startswith("author_") and k not in _ID_KEYS):
                    continue
                if k in _ID_KEYS and isinstance(v, str | int) and not isinstance(v, bool):
                    out[k] = self.user(platform or "x", str(v))
                elif k == "author" and isinstance(v, str):
                    out[k] = self.user(platform or "reddit", v, v)
                elif k in _NAME_KEYS and isinstance(v, str):
                    keep = platform != "reddit" and self.is_agency(v)
                    out[k] = v if keep else self.by_name(platform or "x", v)
                elif looks_like_user and k == "name" and isinstance(v, str):
                    continue  # a user object's display name
                elif looks_like_user and k == "id" and isinstance(v, str | int) and not isinstance(v, bool):
                    out[k] = self.user(platform or "x", str(v), value.get("username"))
                else:
                    out[k] = self.raw(platform, v, k)
            return out
        if isinstance(value, list):
            return [self.raw(platform, v, key) for v in value]
        if isinstance(value, str):
            return self.text(platform, value)
        return value

    # -- records --------------------------------------------------------------------------------

    def author(self, a: AuthorRecord) -> AuthorRecord:
        if a.platform == "x" and self.is_agency(a.username):
            return a  # an agency's own account: a public institution, kept readable
        return dataclasses.replace(
            a, platform_user_id=self.user(a.platform, a.platform_user_id) or a.platform_user_id,
            username=None, display_name=None, location=None,
        )

    def post(self, p: PostRecord, usernames: dict[tuple[str, str], str | None]) -> PostRecord:
        if not isinstance(p.platform, str) or not isinstance(p.text, str):
            return p  # validation rejects it; its payload is scrubbed as a reject
        username = usernames.get((p.platform, p.author_platform_id or ""))
        url = p.url
        if p.platform == "x" and isinstance(url, str) and not self.is_agency(username):
            url = re.sub(r"^(https://(?:x|twitter)\.com/)[^/]+(/status/)", r"\1i/web\2", url)
        return dataclasses.replace(
            p,
            author_platform_id=self.user(p.platform, p.author_platform_id, username),
            text=self.text(p.platform, p.text),
            title=self.text(p.platform, p.title) if isinstance(p.title, str) else p.title,
            url=url,
            raw=self.raw(p.platform, p.raw) if p.raw is not None else None,
        )

    def reject(self, r: RejectRecord) -> RejectRecord:
        platform = r.platform if r.platform in ("x", "reddit") else None
        return dataclasses.replace(r, payload=self.raw(platform, r.payload), reason=self.text(platform, r.reason))

    def mention(self, m: MentionRecord) -> MentionRecord:
        return m  # matched terms are agencies' names, handles and hashtags, or thread ids


def pseudonymize_page(page: Page, key: bytes, agency_handles: Iterable[str]) -> Page:
    """A copy of ``page`` with people pseudonymized (see the module docstring); ``page`` is not changed."""
    if not key:
        raise PseudonymizeError("the pseudonymization key is empty")
    worker = _Pseudonymizer(key, agency_handles)
    worker.learn(page)
    usernames = {(a.platform, a.platform_user_id): a.username for a in page.authors}
    changes: dict[str, Any] = {
        "authors": [worker.author(a) for a in page.authors],
        "posts": [worker.post(p, usernames) for p in page.posts],
        "mentions": [worker.mention(m) for m in page.mentions],
        "rejects": [worker.reject(r) for r in page.rejects],
    }
    return dataclasses.replace(page, **changes)


def agency_handles_of(bind: Engine | Connection) -> frozenset[str]:
    """The agencies' X handles, lower-cased, from the store's ``agencies`` table (the registry sync)."""
    from trustwatch.models.tables import Agency

    stmt = select(Agency.x_handles)
    if isinstance(bind, Connection):
        rows = bind.execute(stmt).scalars().all()
    else:
        with bind.connect() as conn:
            rows = conn.execute(stmt).scalars().all()
    return frozenset(str(h).lower().lstrip("@") for row in rows for h in (row or ()))

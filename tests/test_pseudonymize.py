"""Pseudonymization: with a key, no username, display name or @mention of a person reaches the store."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from typing import Any

import pytest
from sqlalchemy import select
from trustwatch.collectors.agencies import compile_reddit_queries, compile_x_queries
from trustwatch.collectors.archive import import_file
from trustwatch.collectors.reddit import RedditCollector, RedditSettings, normalize_reddit_listing, plan_queries
from trustwatch.collectors.runner import run_query
from trustwatch.collectors.x import XCollector, XSettings, normalize_x_page
from trustwatch.models import store as store_module
from trustwatch.models.pseudonymize import (
    ENV_KEY,
    PseudonymizeError,
    is_pseudonym,
    pseudonym,
    pseudonymize_key,
    pseudonymize_page,
)
from trustwatch.models.tables import Author, Post
from trustwatch.sandbox.common import CorpusConfig
from trustwatch.sandbox.server import SandboxServer

from trustwatch.records import AuthorRecord, Page, PostRecord, Window

KEY = "test-pseudonymize-key-0123456789abcdef"
END = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
X_TOKEN = "pseudo-x-token-42"
SOME = ["austin-pd", "nypd", "denver-pd", "seattle-pd"]


@pytest.fixture(scope="module")
def sandbox() -> Any:
    with SandboxServer(CorpusConfig(seed=21, posts=700, end=END, days=7), x_bearer_token=X_TOKEN) as server:
        yield server


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.delenv("AIRFLOW_CONN_TRUSTWATCH_DB", raising=False)
    monkeypatch.setenv(ENV_KEY, KEY)
    return KEY.encode()


def dump(engine: Any) -> str:
    """Every row of every table and view, as text."""
    from sqlalchemy import inspect, text

    insp = inspect(engine)
    out = []
    with engine.connect() as conn:
        for name in [*insp.get_table_names(), *insp.get_view_names()]:
            out.extend(str(tuple(row)) for row in conn.execute(text(f'SELECT * FROM "{name}"')))
    return "\n".join(out)


def agency_handles(registry: Any) -> set[str]:
    return {h.lower() for e in registry.entries for h in e.x_handles}


def x_collect(engine: Any, server: SandboxServer, registry: Any, matcher: Any, window: Window) -> None:
    store_module.sync_agencies(engine, registry.entries)
    col = XCollector(XSettings(bearer_token=X_TOKEN, base_url=server.url, timeout=5, max_query_length=4096),
                     sleep=lambda s: None)
    for query in compile_x_queries(registry, 4096):
        run_query(engine, col, query, window, matcher=matcher, secrets=(X_TOKEN,))


def reddit_collect(engine: Any, server: SandboxServer, registry: Any, matcher: Any, window: Window) -> None:
    store_module.sync_agencies(engine, registry.entries)
    settings = RedditSettings(client_id="sandbox-client", client_secret="sandbox-secret",
                              user_agent="trustwatch-tests/0.1 by u/trustwatch", base_url=server.url,
                              backoff_seconds=0.01)
    col = RedditCollector(settings, matcher, sleep=lambda s: None)
    for query in plan_queries(compile_reddit_queries(registry, agencies=SOME), registry):
        run_query(engine, col, query, window, matcher=matcher, secrets=("sandbox-secret",))


# --- the key ------------------------------------------------------------------------------------


def test_the_key_comes_from_the_connection_extra_first_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_TRUSTWATCH_DB", raising=False)
    monkeypatch.delenv(ENV_KEY, raising=False)
    assert pseudonymize_key() is None
    monkeypatch.setenv(ENV_KEY, KEY)
    assert pseudonymize_key() == KEY.encode()
    conn_key = "connection-key-fedcba9876543210"
    monkeypatch.setenv("AIRFLOW_CONN_TRUSTWATCH_DB", json.dumps(
        {"conn_type": "sqlite", "host": "/tmp/x.db", "extra": {"pseudonymize_key": conn_key}}))
    assert pseudonymize_key() == conn_key.encode()
    monkeypatch.setenv("AIRFLOW_CONN_TRUSTWATCH_DB", json.dumps(
        {"conn_type": "sqlite", "host": "/tmp/x.db", "extra": {"pseudonymize_key": "short-secret"}}))
    with pytest.raises(PseudonymizeError) as info:
        pseudonymize_key()
    assert "short-secret" not in str(info.value) and "16 characters" in str(info.value)


def test_a_pseudonym_is_a_keyed_hmac_stable_per_id_and_different_per_key() -> None:
    a = pseudonym(b"k" * 20, "x", "12345")
    assert is_pseudonym(a) and a == pseudonym(b"k" * 20, "x", "12345")
    assert a != pseudonym(b"j" * 20, "x", "12345") and a != pseudonym(b"k" * 20, "reddit", "12345")
    assert pseudonym(b"k" * 20, "reddit", "SomeUser") == pseudonym(b"k" * 20, "reddit", "someuser")
    assert pseudonym(b"k" * 20, "x", a) == a  # never hashed twice


# --- pages from the recorded responses -----------------------------------------------------------


def test_recorded_x_page_loses_every_username_but_keeps_agency_handles(realcases: Any) -> None:
    line = (realcases / "x" / "twarc-csv" / "mentions_tweet.jsonl").read_text().splitlines()[0]
    page = normalize_x_page(line)
    names = {a.username for a in page.authors if a.username}
    display = {a.display_name for a in page.authors if a.display_name}
    mentioned = set(re.findall(r"@(\w{1,15})", " ".join(p.text for p in page.posts)))
    assert names and mentioned
    handle = sorted(mentioned)[0]
    out = pseudonymize_page(page, KEY.encode(), {handle})
    text = json.dumps([[vars_of(r) for r in out.posts], [vars_of(a) for a in out.authors]], default=str)
    # these accounts are brands (Xbox...), so their names also occur as hashtags and topics: look for the
    # account forms, i.e. @mentions and username fields
    for name in (names | mentioned) - {handle}:
        assert not re.search(rf"@{re.escape(name)}\b", text, re.IGNORECASE), name
    usernames = set(re.findall(r'"username": "([^"]+)"', text))
    assert usernames and all(is_pseudonym(u) or u == handle for u in usernames)
    # display names are dropped (the raw tweet's context annotations may still name a brand of the same name)
    records = json.dumps([vars_of(a) for a in out.authors] + [p.text for p in out.posts], default=str)
    assert display and not [d for d in display if d in records]
    assert f"@{handle}" in text  # an agency's handle stays
    assert all(is_pseudonym(a.platform_user_id) and a.username is None and a.display_name is None
               for a in out.authors if a.username != handle)
    by_id = {a.platform_user_id for a in out.authors}
    assert {p.author_platform_id for p in out.posts} <= by_id  # posts still point at their (pseudonymous) author
    # a mentioned person with a known id gets the same pseudonym as their author record
    for post in page.posts:
        for m in (post.raw or {}).get("entities", {}).get("mentions", []):
            if m.get("id") and m["username"] != handle:
                assert "@" + pseudonym(KEY.encode(), "x", m["id"]) in text
    assert page.authors[0].username in names  # the input page is left as it was


def vars_of(record: Any) -> dict[str, Any]:
    return {f: getattr(record, f) for f in record.__dataclass_fields__}


def test_recorded_reddit_comments_lose_authors_and_u_mentions(realcases: Any) -> None:
    cassette = json.loads((realcases / "reddit" / "praw" / "TestSubmission.test_comments.json").read_text())
    bodies = [i["response"]["body"]["string"] for i in cassette["interactions"]]
    payload = next(json.loads(b) for b in bodies if b.startswith("["))
    page = normalize_reddit_listing(payload)
    page.posts[0].text += " thanks u/SomeRedditor and /u/other_person"
    names = {a.username for a in page.authors}
    assert names
    out = pseudonymize_page(page, KEY.encode(), set())
    text = json.dumps([[vars_of(r) for r in out.posts], [vars_of(a) for a in out.authors]], default=str)
    for name in names | {"SomeRedditor", "other_person"}:
        assert not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text), name
    assert "u/" + pseudonym(KEY.encode(), "reddit", "someredditor") in out.posts[0].text
    deleted = [p for p in out.posts if p.author_platform_id == "[deleted]"]
    assert deleted == [p for p in out.posts if p.author_platform_id == "[deleted]"]  # no person: kept as shown


def test_pseudonymizing_twice_changes_nothing_more() -> None:
    page = Page(
        authors=[AuthorRecord("x", "777", "alice_1", "Alice One")],
        posts=[PostRecord("x", "1", "reply", END, text="@alice_1 @bob_2 hi @NYPDnews", author_platform_id="777",
                          url="https://x.com/alice_1/status/1")],
    )
    once = pseudonymize_page(page, KEY.encode(), {"nypdnews"})
    twice = pseudonymize_page(once, KEY.encode(), {"nypdnews"})
    assert once.posts[0].text == twice.posts[0].text and once.authors == twice.authors
    anon = pseudonym(KEY.encode(), "x", "777")
    assert once.posts[0].text.startswith(f"@{anon} @anon_") and once.posts[0].text.endswith("hi @NYPDnews")
    assert once.posts[0].url == "https://x.com/i/web/status/1"


# --- end to end, through write_page --------------------------------------------------------------


def test_x_collection_with_a_key_stores_no_person(sandbox: SandboxServer, sqlite_engine: Any, registry: Any,
                                                  matcher: Any, keyed: bytes) -> None:
    window = Window(END - dt.timedelta(days=2), END)
    x_collect(sqlite_engine, sandbox, registry, matcher, window)
    with sqlite_engine.connect() as conn:
        authors = conn.execute(select(Author.platform_user_id, Author.username, Author.display_name)).all()
        posts = conn.execute(select(Post.text, Post.author_platform_id)).all()
    handles = agency_handles(registry)
    people = [a for a in authors if a.username is None]
    assert len(people) >= 20 and all(is_pseudonym(a.platform_user_id) for a in people)
    assert all((a.username or "").lower() in handles for a in authors if a.username is not None)
    corpus_users = {u.id: u for u in sandbox.x.corpus.users.values()}
    stored = {a.platform_user_id for a in authors}
    assert any(pseudonym(keyed, "x", uid) in stored for uid in corpus_users)
    everything = dump(sqlite_engine)
    leaked = [u.username for u in corpus_users.values()
              if u.username.lower() not in handles and re.search(rf"\b{re.escape(u.username)}\b", everything)]
    assert leaked == []
    assert any("@anon_" in p.text for p in posts)  # replies and reposts name a person, now by pseudonym
    kept = [h for h in handles if re.search(rf"@{re.escape(h)}\b", everything, re.IGNORECASE)]
    assert kept  # agencies' handles in texts stay readable


def test_reddit_collection_with_a_key_stores_no_person(sandbox: SandboxServer, pg_engine: Any, registry: Any,
                                                       matcher: Any, keyed: bytes) -> None:
    window = Window(END - dt.timedelta(days=2), END)
    reddit_collect(pg_engine, sandbox, registry, matcher, window)
    with pg_engine.connect() as conn:
        authors = conn.execute(select(Author.platform_user_id, Author.username)).all()
        n_posts = len(conn.execute(select(Post.id).where(Post.platform == "reddit")).all())
    assert n_posts > 20 and authors
    assert all(is_pseudonym(a.platform_user_id) and a.username is None for a in authors)
    everything = dump(pg_engine)
    names = {s.author for s in sandbox.reddit.corpus.submissions.values()}
    names |= {c.author for c in sandbox.reddit.corpus.comments.values()}
    names -= {"[deleted]"}
    assert [n for n in names if n in everything] == []


def test_archive_import_goes_through_the_same_pseudonymization(sqlite_engine: Any, registry: Any, matcher: Any,
                                                               realcases: Any, keyed: bytes) -> None:
    store_module.sync_agencies(sqlite_engine, registry.entries)
    path = realcases / "x" / "twarc-csv" / "noflat.jsonl"
    import_file(sqlite_engine, "x", path, matcher=matcher, keep_all=True)
    names = {u["username"] for line in path.read_text().splitlines() if line.strip()
             for u in json.loads(line).get("includes", {}).get("users", [])}
    with sqlite_engine.connect() as conn:
        stored = conn.execute(select(Author.platform_user_id, Author.username)).all()
    assert stored and all(is_pseudonym(a.platform_user_id) for a in stored if a.username is None)
    everything = dump(sqlite_engine)
    handles = agency_handles(registry)
    # these are public figures' and media accounts, so their names also occur as #hashtags: look for the forms
    # that point at an account (a mention, a profile or post link, a username field)
    forms = [r"@{}\b", r"\.com/{}\b", r'"username": "{}"']
    leaked = [n for n in names if n.lower() not in handles
              and any(re.search(f.format(re.escape(n)), everything, re.IGNORECASE) for f in forms)]
    assert leaked == []


def test_without_a_key_authors_keep_their_names(sandbox: SandboxServer, sqlite_engine: Any, registry: Any,
                                                matcher: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_KEY, raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_TRUSTWATCH_DB", raising=False)
    x_collect(sqlite_engine, sandbox, registry, matcher, Window(END - dt.timedelta(hours=12), END))
    with sqlite_engine.connect() as conn:
        authors = conn.execute(select(Author.platform_user_id, Author.username)).all()
    assert authors and all(a.username and not is_pseudonym(a.platform_user_id) for a in authors)


def test_links_to_the_persons_profiles_on_other_sites_are_pseudonymized() -> None:
    """Issue 20 item 13: ``entities.urls[].unwound_url`` (and expanded_url, display_url) pointing at the
    author's own profile elsewhere re-identified them; a link whose path is a username is a profile link."""
    raw = {"id": "1", "text": "my photos https://t.co/abc and tiktok.com/@Jane_Doe99", "author_id": "777",
           "entities": {"urls": [{"url": "https://t.co/abc", "expanded_url": "https://www.instagram.com/jane_doe99/",
                                  "display_url": "instagram.com/jane_doe99",
                                  "unwound_url": "https://www.instagram.com/jane_doe99/?hl=en"}]}}
    page = Page(authors=[AuthorRecord("x", "777", "jane_doe99", "Jane Doe"),
                         AuthorRecord("x", "55", "NYPDnews", "NYPD")],
                posts=[PostRecord("x", "1", "post", END, text=raw["text"], author_platform_id="777", raw=raw),
                       PostRecord("x", "2", "post", END, text="see facebook.com/NYPDnews/", author_platform_id="55",
                                  raw={"id": "2", "text": "see facebook.com/NYPDnews/"})])
    out = pseudonymize_page(page, KEY.encode(), {"nypdnews"})
    dump = json.dumps([dataclasses.asdict(p) for p in out.posts], default=str)
    assert "jane_doe99" not in dump.lower()
    anon = pseudonym(KEY.encode(), "x", "777")
    assert out.posts[0].raw["entities"]["urls"][0]["expanded_url"] == f"https://www.instagram.com/{anon}/"
    assert out.posts[0].text.endswith(f"tiktok.com/@{anon}")
    assert out.posts[1].text == "see facebook.com/NYPDnews/"  # an agency's own profiles stay readable

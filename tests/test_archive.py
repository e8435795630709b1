"""Archive import: every recorded twarc2 file, a generated Reddit dump (.zst), idempotence, the CLI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import zstandard
from sqlalchemy import Engine, func, select, text
from trustwatch.collectors.archive import import_file
from trustwatch.models.store import sync_agencies
from trustwatch.models.tables import Author, CollectionRun, MetricSnapshot, Post, PostMention, RejectedPayload

# file -> (posts, authors, rejects): pinned, and cross-checked below against an independent count
TWARC_EXPECTED = {
    "edited.jsonl": (1, 1, 0),  # two versions of one edited post: stored once, latest text
    "entities_test.jsonl": (650, 577, 0),
    "geo_tweets.jsonl": (3, 3, 0),
    "mentions_tweet.jsonl": (2, 2, 0),
    "noflat.jsonl": (164, 153, 0),
    "quoted_edit.jsonl": (2, 2, 0),
    "streaming_output_with_error.jsonl": (11, 11, 1),
    "two_tweets.jsonl": (2, 2, 0),
    "withheld.jsonl": (284, 140, 0),
}


def independent_count(path: Path) -> tuple[int, int, int]:
    """Distinct tweets in data + includes.tweets, their authors present in includes.users, bad lines."""
    tweets: set[str] = set()
    authors: set[str] = set()
    bad = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            page = json.loads(line)
        except ValueError:
            bad += 1
            continue
        users = {u["id"] for u in page.get("includes", {}).get("users", [])}
        data = page.get("data") or []
        for t in [*(data if isinstance(data, list) else [data]), *page.get("includes", {}).get("tweets", [])]:
            tweets.add((t.get("edit_history_tweet_ids") or [t["id"]])[0])  # versions of an edit are one post
            if t.get("author_id") in users:
                authors.add(t["author_id"])
    return len(tweets), len(authors), bad


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {m.__tablename__: conn.execute(select(func.count()).select_from(m)).scalar_one()
                for m in (Post, Author, PostMention, MetricSnapshot, RejectedPayload)}


@pytest.fixture
def synced(store: Engine, registry) -> Engine:
    sync_agencies(store, registry.entries)
    return store


@pytest.mark.parametrize("name", sorted(TWARC_EXPECTED))
def test_every_twarc_file_imports_with_exact_counts(name: str, sqlite_engine: Engine, registry, matcher,
                                                    realcases: Path) -> None:
    path = realcases / "x" / "twarc-csv" / name
    assert sorted(p.name for p in path.parent.glob("*.jsonl")) == sorted(TWARC_EXPECTED)
    sync_agencies(sqlite_engine, registry.entries)
    summary = import_file(sqlite_engine, "x", path, matcher=matcher, keep_all=True)
    counts = table_counts(sqlite_engine)
    assert (counts["posts"], counts["authors"], counts["rejected_payloads"]) == TWARC_EXPECTED[name]
    assert TWARC_EXPECTED[name] == independent_count(path)
    assert summary.status == "success" and summary.posts_kept == TWARC_EXPECTED[name][0]
    if name == "streaming_output_with_error.jsonl":
        with sqlite_engine.connect() as conn:
            reason, source = conn.execute(select(RejectedPayload.reason, RejectedPayload.source)).one()
        assert source == "streaming_output_with_error.jsonl:8" and "not valid JSON" in reason
    if name == "entities_test.jsonl":
        assert summary.api_errors == len(json.loads(path.read_text())["errors"])


def test_same_file_twice_adds_nothing(synced: Engine, matcher, realcases: Path) -> None:
    path = realcases / "x" / "twarc-csv" / "withheld.jsonl"
    first = import_file(synced, "x", path, matcher=matcher, keep_all=True)
    before = table_counts(synced)
    second = import_file(synced, "x", path, matcher=matcher, keep_all=True)
    assert second.skipped and not first.skipped
    assert table_counts(synced) == before
    with synced.connect() as conn:
        runs = conn.execute(select(CollectionRun.__table__).where(CollectionRun.source == "import")).all()
    assert len(runs) == 1 and runs[0].status == "success" and runs[0].notes["posts_kept"] == 284


def twarc_line(tweets: list[dict], users: list[dict]) -> str:
    return json.dumps({"data": tweets, "includes": {"users": users}, "meta": {"result_count": len(tweets)},
                       "__twarc": {"url": "https://api.twitter.com/2/tweets/search/all", "version": "2.14.0"}})


def tweet(i: int, body: str) -> dict:
    # as X sends it: the edit history of a post never edited is its own id
    return {"id": str(1_700_000_000_000_000_000 + i), "text": body, "author_id": str(i % 3 + 1),
            "created_at": "2026-10-01T12:00:00.000Z", "lang": "en",
            "edit_history_tweet_ids": [str(1_700_000_000_000_000_000 + i)],
            "public_metrics": {"like_count": i, "retweet_count": 0, "reply_count": 0, "quote_count": 0}}


def test_only_matched_posts_are_kept_unless_all(synced: Engine, matcher, registry, tmp_path: Path) -> None:
    nypd = registry.by_slug("nypd")
    users = [{"id": str(u), "username": f"user{u}", "name": f"User {u}"} for u in (1, 2, 3)]
    lines = [
        twarc_line([tweet(1, f"Thanks to the {nypd.name} for the quick response"),
                    tweet(2, "Lovely weather in the park today")], users),
        "{not json",
        twarc_line([tweet(3, "Just had lunch")], users),
    ]
    path = tmp_path / "archive.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    summary = import_file(synced, "x", path, matcher=matcher)
    assert (summary.lines, summary.posts_read, summary.posts_kept, summary.rejected) == (3, 3, 1, 1)
    with synced.connect() as conn:
        assert conn.execute(text("select agency from agency_mentions")).scalars().all() == ["nypd"]
        assert conn.execute(select(RejectedPayload.source)).scalar_one() == "archive.jsonl.gz:2"
        assert conn.execute(select(func.count()).select_from(Author)).scalar_one() == 1
    everything = import_file(synced, "x", path, matcher=matcher, keep_all=True)
    assert everything.posts_kept == 3 and table_counts(synced)["posts"] == 3


def reddit_dump(registry) -> tuple[list[str], dict[str, int]]:
    """A Pushshift-style dump: submissions and comments, a few malformed lines."""
    lapd = registry.by_slug("lapd")
    lines = [
        {"id": "s1", "name": "t3_s1", "title": f"{lapd.name} releases bodycam video", "selftext": "Thoughts?",
         "author": "alice", "subreddit": "LosAngeles", "created_utc": 1759320000, "score": 10, "num_comments": 3,
         "permalink": "/r/LosAngeles/comments/s1/x/"},
        {"id": "c1", "name": "t1_c1", "body": "They handled it well.", "author": "bob", "link_id": "t3_s1",
         "parent_id": "t3_s1", "subreddit": "LosAngeles", "created_utc": "1759320100", "score": 2},
        {"id": "c2", "body": "[deleted]", "author": "[deleted]", "link_id": "t3_s1", "parent_id": "t1_c1",
         "subreddit": "LosAngeles", "created_utc": 1759320200.0, "score": 1},
        {"id": "c3", "body": "[removed]", "author": "carol", "link_id": "t3_s1", "parent_id": "t3_s1",
         "subreddit": "LosAngeles", "created_utc": 1759320300, "removed_by_category": "moderator"},
        {"id": "s2", "title": "Best tacos downtown?", "selftext": "", "author": "dave", "subreddit": "LosAngeles",
         "created_utc": 1759320400},
        {"id": "c4", "body": "Try the place on 5th", "author": "erin", "link_id": "t3_s2", "parent_id": "t3_s2",
         "subreddit": "LosAngeles", "created_utc": 1759320500},
    ]
    text_lines = [json.dumps(x) for x in lines]
    text_lines.insert(3, '{"id": "broken", "body": "cut off')
    text_lines.append('{"id": "c5", "body": "no time", "link_id": "t3_s1", "parent_id": "t3_s1"}')
    text_lines.append("[1, 2, 3]")
    # kept: s1 (direct), c1, c2, c3 (thread); rejected: the cut line, c5 (no created_utc), the array
    return text_lines, {"lines": 9, "read": 6, "kept": 4, "rejected": 3}


def test_reddit_dump_zst_imports_with_exact_counts(synced: Engine, matcher, registry, tmp_path: Path) -> None:
    lines, expected = reddit_dump(registry)
    path = tmp_path / "RC_2025-10.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(("\n".join(lines) + "\n").encode()))
    summary = import_file(synced, "reddit", path, matcher=matcher)
    assert (summary.lines, summary.posts_read, summary.posts_kept, summary.rejected) == (
        expected["lines"], expected["read"], expected["kept"], expected["rejected"])
    with synced.connect() as conn:
        posts = {r.platform_post_id: r for r in conn.execute(select(Post.__table__))}
        assert set(posts) == {"s1", "c1", "c2", "c3"}
        assert posts["c1"].root_platform_id == "s1" and posts["c2"].parent_platform_id == "c1"
        assert posts["c2"].deleted_reason == "[deleted]" and posts["c3"].deleted_reason == "[removed]"
        assert posts["c3"].removed_by_category == "moderator"
        kinds = dict(conn.execute(text(
            "select p.platform_post_id, m.match_kind from post_mentions m join posts p on p.id = m.post_id "
            "where p.platform_post_id in ('s1', 'c1')")).all())
        assert kinds == {"s1": "name", "c1": "thread"}
        sources = sorted(conn.execute(select(RejectedPayload.source)).scalars())
        by_line = sorted(sources, key=lambda s: int(s.rsplit(":", 1)[1]))
        assert by_line == [f"RC_2025-10.zst:{n}" for n in (4, 8, 9)]
    again = import_file(synced, "reddit", path, matcher=matcher)
    assert again.skipped


def test_cli_import(synced: Engine, tmp_path: Path, registry, monkeypatch: pytest.MonkeyPatch, capsys,
                    realcases: Path) -> None:
    from trustwatch import cli, tasks

    monkeypatch.setattr(tasks, "engine", lambda: synced)
    assert cli.main(["import", "x", str(realcases / "x" / "twarc-csv" / "two_tweets.jsonl"), "--all"]) == 0
    assert "two_tweets.jsonl: 1 lines, 2 posts read, 2 kept" in capsys.readouterr().out
    assert cli.main(["import", "reddit", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err

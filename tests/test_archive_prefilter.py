"""The matched-only import matches the raw text before it builds records (issue 19): it must keep exactly
the posts, mentions, authors and rejects-of-kept-posts that building every record first and matching after
keeps, on real recorded twarc2 lines and on lines built to probe edits, long posts, reposts and bad input."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest
from trustwatch.collectors.archive import _keep_matched, parse_x_line
from trustwatch.collectors.runner import add_mentions


def _both_orders(line: str, matcher) -> tuple[tuple, tuple]:
    outcomes = []
    for pre in (None, matcher):
        page = parse_x_line(line, "f.jsonl:1", pre)
        add_mentions(page, matcher)
        posts, authors = _keep_matched(page)
        kept = {p.platform_post_id for p in posts}
        outcomes.append((
            sorted((p.platform_post_id, p.text, p.kind, p.created_at, repr(p.metrics), p.root_platform_id)
                   for p in posts),
            sorted((m.platform_post_id, m.agency_slug, m.matched_term, m.match_kind, m.start, m.end)
                   for m in page.mentions if m.platform_post_id in kept),
            sorted((a.platform_user_id, a.username) for a in authors),
            sorted((r.platform_post_id or "", r.reason) for r in page.rejects if r.platform_post_id in kept),
            page.api_errors,
        ))
    return outcomes[0], outcomes[1]


def _real_lines(realcases: Path) -> list[str]:
    lines = []
    for path in sorted((realcases / "x" / "twarc-csv").glob("*.jsonl")):
        lines += [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return lines


def _salted(line: str, names: list[str], rng: random.Random) -> str:
    """The line with agency names put into some tweets' text or note_tweet (whole post or one version)."""
    try:
        payload = json.loads(line)
    except ValueError:
        return line  # a recorded broken line: compared as it is
    if not isinstance(payload, dict):
        return line
    groups = [payload.get("data"), (payload.get("includes") or {}).get("tweets")]
    for group in groups:
        for raw in group if isinstance(group, list) else [group] if isinstance(group, dict) else []:
            if not isinstance(raw, dict) or rng.random() < 0.5:
                continue
            name = rng.choice(names)
            note = raw.get("note_tweet")
            if isinstance(note, dict) and isinstance(note.get("text"), str) and rng.random() < 0.7:
                note["text"] += f" thanks {name}"
            elif isinstance(raw.get("text"), str):
                raw["text"] = f"{name} " + raw["text"] if rng.random() < 0.5 else raw["text"] + f" #{name}"
    return json.dumps(payload)


def test_real_lines_keep_the_same_posts_in_both_orders(matcher, registry, realcases: Path) -> None:
    rng = random.Random(19)
    names = [e.name for e in registry.entries]
    lines = _real_lines(realcases)
    assert len(lines) >= 9
    kept_somewhere = 0
    for line in lines:
        for salted in (line, _salted(line, names, rng), _salted(line, names, rng)):
            old, new = _both_orders(salted, matcher)
            assert new == old, salted[:300]
            kept_somewhere += bool(old[0])
    assert kept_somewhere >= 5  # the salting made posts to keep: the comparison is not of empty pages


def _tweet(i: int, body, **extra) -> dict:
    return {"id": str(1_700_000_000_000_000_000 + i), "text": body, "author_id": str(i % 3 + 1),
            "created_at": "2026-10-01T12:00:00.000Z", "lang": "en",
            "edit_history_tweet_ids": [str(1_700_000_000_000_000_000 + i)],
            "public_metrics": {"like_count": i, "retweet_count": 0, "reply_count": 0, "quote_count": 0}, **extra}


@pytest.mark.parametrize("case", ["edit_newer_matches", "edit_older_matches", "note_tweet", "repost",
                                  "bad_text", "not_a_tweet", "stream_single", "bad_id_matched"])
def test_probe_lines_keep_the_same_posts_in_both_orders(case: str, matcher, registry) -> None:
    name = registry.entries[0].name
    users = [{"id": str(k), "username": f"user{k}", "name": f"User {k}"} for k in (1, 2, 3)]
    first = _tweet(1, "nothing here")
    if case.startswith("edit"):
        newer = _tweet(2, "edited text", edit_history_tweet_ids=[first["id"], str(1_700_000_000_000_000_002)])
        if case == "edit_newer_matches":
            newer["text"] = f"edited: {name} did well"
        else:
            first["text"] = f"{name} did well"
        data, tweets = [first, newer], []
    elif case == "note_tweet":
        data, tweets = [_tweet(1, "cut short...", note_tweet={"text": f"the long version names {name}"}),
                        _tweet(2, f"{name} in the short text", note_tweet={"text": "but not in the long one"})], []
    elif case == "repost":
        original = _tweet(5, f"{name} closed the road")
        data = [_tweet(1, "RT @user2: closed the...", referenced_tweets=[{"type": "retweeted", "id": original["id"]}])]
        tweets = [original, _tweet(6, "unrelated included tweet")]
    elif case == "bad_text":
        data, tweets = [_tweet(1, 42), _tweet(2, f"{name} ok")], []
    elif case == "not_a_tweet":
        data, tweets = ["just a string", _tweet(2, f"{name} ok")], []
    elif case == "stream_single":
        data, tweets = _tweet(3, f"{name} on the stream"), []
    else:
        bad = _tweet(4, f"{name} but no id")
        del bad["id"]
        data, tweets = [bad, _tweet(2, "nothing")], []
    line = json.dumps({"data": data, "includes": {"users": users, "tweets": tweets}, "errors": [{"title": "x"}]})
    old, new = _both_orders(line, matcher)
    assert new == old
    if case in ("edit_newer_matches", "note_tweet", "repost", "stream_single", "bad_text", "not_a_tweet"):
        assert old[0], "the probe keeps a post"


def test_prefilter_builds_records_only_for_posts_that_may_be_kept(matcher, monkeypatch) -> None:
    import trustwatch.collectors.x as x

    built: list[str] = []
    real = x.tweet_to_record

    def counting(raw, users=None):
        built.append(raw.get("id"))
        return real(raw, users)

    monkeypatch.setattr(x, "tweet_to_record", counting)
    tweets = [_tweet(i, "a quiet street tonight") for i in range(50)] + [_tweet(99, "thanks NYPD")]
    line = json.dumps({"data": copy.deepcopy(tweets), "includes": {"users": []}})
    page = parse_x_line(line, "f:1", matcher)
    assert built == [tweets[-1]["id"]] and [p.platform_post_id for p in page.posts] == [tweets[-1]["id"]]


def test_a_line_whose_one_tweet_is_left_out_builds_nothing(matcher, monkeypatch) -> None:
    """The common line of an archive (one streamed tweet naming no agency) skips the normalizer entirely, and
    what it reports (nothing kept, one post read, the response's errors) is what the full path reports."""
    import trustwatch.collectors.x as x

    plain = json.dumps({"data": _tweet(7, "a quiet street tonight"), "includes": {"users": []},
                        "errors": [{"title": "Not Found Error"}, {"title": "Authorization Error"}]})
    full = parse_x_line(plain, "f:1", None)
    normalized: list[object] = []
    real = x.normalize_x_page
    monkeypatch.setattr(x, "normalize_x_page", lambda *a, **k: normalized.append(a) or real(*a, **k))
    stats: dict[str, int] = {}
    page = parse_x_line(plain, "f:1", matcher, stats)
    assert normalized == []  # before: one normalizer pass for every line, 97 % of them for nothing
    assert (page.posts, page.authors, page.rejects, page.api_errors, stats) == ([], [], [], 2, {"left_out": 1})
    assert page.api_errors == full.api_errors
    kept = parse_x_line(plain.replace("a quiet street", "the NYPD on a quiet street"), "f:2", matcher, stats)
    assert len(normalized) == 1 and [p.platform_post_id for p in kept.posts] == [str(_tweet(7, "")["id"])]

"""The sandbox X API over real HTTP: shapes held against the recordings, query language, paging, faults."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from trustwatch.collectors.agencies import compile_x_queries
from trustwatch.collectors.x import EXPANSIONS, TWEET_FIELDS, USER_FIELDS
from trustwatch.sandbox.common import CorpusConfig, FaultPlan
from trustwatch.sandbox.server import SandboxServer
from trustwatch.sandbox.x_api import XApi, compile_query
from trustwatch.sandbox.x_corpus import XCorpus, snowflake_time

from tests.sandbox_fixtures import X_TOKEN, _x_sandbox_server, x_sandbox  # noqa: F401

AUTH = {"Authorization": f"Bearer {X_TOKEN}"}
FULL = {"expansions": ",".join(EXPANSIONS), "tweet.fields": ",".join(TWEET_FIELDS),
        "user.fields": ",".join(USER_FIELDS)}
#: Fields X documents that the 2021-22 recordings predate; everything else must be recorded somewhere.
NOT_IN_RECORDINGS = (".data[].note_tweet", ".includes.tweets[].note_tweet")


def _search(server: SandboxServer, query: str, endpoint: str = "recent", **params: Any) -> requests.Response:
    return requests.get(f"{server.url}/2/tweets/search/{endpoint}", params={"query": query, **params},
                        headers=AUTH, timeout=10)


def _walk(obj: Any, path: str, out: dict[str, set[str]]) -> dict[str, set[str]]:
    out.setdefault(path, set()).add(type(obj).__name__)
    if isinstance(obj, dict):
        for key, value in obj.items():
            _walk(value, f"{path}.{key}", out)
    elif isinstance(obj, list):
        for value in obj:
            _walk(value, f"{path}[]", out)
    return out


def _recorded_shapes(realcases: Path) -> dict[str, set[str]]:
    shapes: dict[str, set[str]] = {}
    for path in sorted((realcases / "x" / "twarc-csv").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            doc.pop("__twarc", None)
            if isinstance(doc.get("data"), list):  # search and lookup pages, not stream messages
                _walk(doc, "", shapes)
    return shapes


def _tweepy_recording(realcases: Path, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    doc = yaml.safe_load((realcases / "x" / "tweepy" / name).read_text())
    response = doc["interactions"][0]["response"]
    raw = response["body"]["string"]
    raw = raw if isinstance(raw, bytes) else base64.b64decode(raw)
    return json.loads(gzip.decompress(raw)), response["headers"]


@pytest.fixture(scope="module")
def queries(_x_sandbox_server: SandboxServer) -> list[str]:  # noqa: F811
    from trustwatch.collectors.agencies import load_registry

    return [q.text for q in compile_x_queries(load_registry(), 512)]


def test_search_response_has_the_recorded_keys_and_types(x_sandbox: SandboxServer, queries: list[str],  # noqa: F811
                                                          realcases: Path) -> None:
    recorded = _recorded_shapes(realcases)
    served: dict[str, set[str]] = {}
    for n, query in enumerate(queries[:8]):
        response = _search(x_sandbox, query, max_results=10 if n == 0 else 100, **FULL)
        assert response.status_code == 200
        _walk(response.json(), "", served)
    # the sandbox exercised the interesting parts, not just ids
    for part in (".includes.users[].public_metrics.followers_count", ".includes.tweets[].text", ".errors[].detail",
                 ".data[].referenced_tweets[].type", ".data[].withheld.country_codes[]", ".meta.next_token",
                 ".data[].entities.mentions[].username", ".data[].edit_history_tweet_ids[]"):
        assert part in served, part
    for path, types in served.items():
        if path.startswith(NOT_IN_RECORDINGS):
            continue
        assert path in recorded, f"{path} never appears in the real recordings"
        assert types <= recorded[path], f"{path}: sandbox {types}, recorded {recorded[path]}"


def test_no_fields_requested_gives_the_recorded_minimal_shape(x_sandbox: SandboxServer, queries: list[str],  # noqa: F811
                                                              realcases: Path) -> None:
    recorded, headers = _tweepy_recording(realcases, "test_client_search_recent_tweets.yaml")
    response = _search(x_sandbox, queries[0])
    body = response.json()
    assert set(body) == set(recorded)
    assert {k for t in body["data"] for k in t} == {k for t in recorded["data"] for k in t}
    assert set(body["meta"]) == set(recorded["meta"])
    assert len(body["data"]) == 10  # X's default page size
    for name in ("x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset"):
        assert name in headers and response.headers[name].isdigit()
    assert abs(int(response.headers["x-rate-limit-reset"]) - time.time()) < 1000  # epoch seconds, like X


def test_lookup_matches_the_recorded_lookup_and_reports_missing_ids(x_sandbox: SandboxServer,  # noqa: F811
                                                                    realcases: Path) -> None:
    recorded, _ = _tweepy_recording(realcases, "test_client_get_tweets.yaml")
    corpus = x_sandbox.x.corpus
    deleted = next(t.id for t in corpus.tweets.values() if t.deleted)
    alive = [t.id for t in corpus.searchable()[:2]]
    response = requests.get(f"{x_sandbox.url}/2/tweets", params={"ids": ",".join([*alive, deleted])},
                            headers=AUTH, timeout=10)
    body = response.json()
    assert [t["id"] for t in body["data"]] == alive
    assert {k for t in body["data"] for k in t} == {k for t in recorded["data"] for k in t}
    (error,) = body["errors"]
    assert error["resource_id"] == deleted and error["title"] == "Not Found Error"


def test_bearer_auth_is_checked(x_sandbox: SandboxServer) -> None:  # noqa: F811
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = requests.get(f"{x_sandbox.url}/2/tweets/search/recent", params={"query": "police"},
                                headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json()["title"] == "Unauthorized"


def test_unsupported_operator_is_a_400_with_the_real_error_shape(x_sandbox: SandboxServer) -> None:  # noqa: F811
    response = _search(x_sandbox, "LAPD point_radius:[-105.29 40.01 25mi]")
    assert response.status_code == 400
    body = response.json()
    assert body["title"] == "Invalid Request" and body["type"].endswith("/invalid-request")
    (error,) = body["errors"]
    assert error["parameters"] == {"query": ["LAPD point_radius:[-105.29 40.01 25mi]"]}
    assert "invalid operator 'point_radius'" in error["message"]
    for bad in ('"unterminated', "(LAPD OR NYPD", "OR LAPD", "-LAPD"):
        assert _search(x_sandbox, bad).status_code == 400, bad


def test_since_id_cannot_be_combined_with_times(x_sandbox: SandboxServer) -> None:  # noqa: F811
    newest = x_sandbox.x.corpus.order[0]
    response = _search(x_sandbox, "police", since_id=newest, start_time="2020-01-01T00:00:00Z")
    assert response.status_code == 400
    assert "since_id" in response.json()["errors"][0]["message"]


def _toy(text: str, **kw: Any) -> Any:
    from trustwatch.sandbox.x_corpus import XTweet

    return XTweet(id="1", text=text, created_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), author_id="u", lang="en",
                  **kw)


@pytest.mark.parametrize(
    ("query", "text", "kind", "lang", "expected"),
    [
        ('"Los Angeles Police"', "the Los Angeles police said", "post", "en", True),
        ('"Los Angeles Police"', "police in Los Angeles", "post", "en", False),
        ("LAPD OR NYPD", "thanks nypd!", "post", "en", True),
        ("LAPD NYPD", "thanks nypd!", "post", "en", False),
        ("(APD Austin)", "APD in Austin today", "post", "en", True),
        ("(APD Austin)", "APD meeting moved", "post", "en", False),
        ("@LAPDHQ", "hey @lapdhq", "post", "en", True),
        ("@LAPDHQ", "LAPDHQ without at", "post", "en", False),
        ("#LAPD", "so #LAPD", "post", "en", True),
        ("#LAPD", "so LAPD", "post", "en", False),
        ("LAPD -is:retweet", "RT @x: LAPD", "repost", "en", False),
        ("LAPD -is:retweet", "LAPD", "post", "en", True),
        ("LAPD lang:es", "La LAPD", "post", "es", True),
        ("LAPD lang:es", "The LAPD", "post", "en", False),
        ("(LAPD OR NYPD) -(cops)", "NYPD cops", "post", "en", False),
    ],
)
def test_query_language(query: str, text: str, kind: str, lang: str, expected: bool) -> None:
    tweet = _toy(text, kind=kind)
    tweet.lang = lang
    assert compile_query(query)(tweet) is expected


def test_pages_are_newest_first_within_the_window_and_tokens_are_opaque(x_sandbox: SandboxServer,  # noqa: F811
                                                                        queries: list[str]) -> None:
    cfg = x_sandbox.config
    start, end = cfg.stop - dt.timedelta(days=3), cfg.stop - dt.timedelta(days=1)
    query = max(queries, key=lambda q: len(x_sandbox.x.matching_ids(q, start, end)))
    params = {"start_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "end_time": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "max_results": 10}
    ids: list[str] = []
    token = None
    tokens = []
    while True:
        response = _search(x_sandbox, query, **params, **({"next_token": token} if token else {}))
        body = response.json()
        meta = body["meta"]
        page_ids = [t["id"] for t in body.get("data", [])]
        assert meta["result_count"] == len(page_ids)
        if page_ids:
            assert (meta["newest_id"], meta["oldest_id"]) == (page_ids[0], page_ids[-1])
        ids.extend(page_ids)
        token = meta.get("next_token")
        if not token:
            break
        tokens.append(token)
        assert not any(i in token for i in page_ids)
    assert len(tokens) >= 2
    assert ids == x_sandbox.x.matching_ids(query, start, end)
    assert ids == sorted(ids, key=int, reverse=True) and len(set(ids)) == len(ids)
    assert all(start <= snowflake_time(i) < end for i in ids)
    bad = _search(x_sandbox, query, **params, next_token="garbage")
    assert bad.status_code == 400
    assert _search(x_sandbox, queries[0] + " OR x", **params, next_token=tokens[0]).status_code == 400


def test_since_id_and_until_id_are_exclusive(x_sandbox: SandboxServer, queries: list[str]) -> None:  # noqa: F811
    query = queries[0]
    all_ids = x_sandbox.x.matching_ids(query)
    newer, older = all_ids[5], all_ids[15]
    response = _search(x_sandbox, query, since_id=older, until_id=newer, max_results=100)
    assert [t["id"] for t in response.json()["data"]] == all_ids[6:15]


def test_counts_sum_to_the_matches(x_sandbox: SandboxServer, queries: list[str]) -> None:  # noqa: F811
    cfg = x_sandbox.config
    start, end = cfg.stop - dt.timedelta(days=2), cfg.stop
    params = {"query": queries[1], "start_time": start.isoformat(), "end_time": end.isoformat(), "granularity": "day"}
    for endpoint in ("recent", "all"):
        body = requests.get(f"{x_sandbox.url}/2/tweets/counts/{endpoint}", params=params, headers=AUTH,
                            timeout=10).json()
        assert len(body["data"]) == 2
        assert body["meta"]["total_tweet_count"] == sum(b["tweet_count"] for b in body["data"])
        assert body["meta"]["total_tweet_count"] == len(x_sandbox.x.matching_ids(queries[1], start, end))


def test_rate_limit_headers_count_down_and_429_when_spent(x_sandbox: SandboxServer) -> None:  # noqa: F811
    x_sandbox.x.rate_limit = 3
    x_sandbox.x.reset_rate_limits()
    remaining = [int(_search(x_sandbox, "police").headers["x-rate-limit-remaining"]) for _ in range(3)]
    assert remaining == [2, 1, 0]
    spent = _search(x_sandbox, "police")
    assert spent.status_code == 429
    assert spent.json()["title"] == "Too Many Requests"
    assert int(spent.headers["x-rate-limit-reset"]) > time.time()
    assert _search(x_sandbox, "police", endpoint="all").status_code == 200  # windows are per endpoint


def test_faults_status_reset_truncate_slow(x_sandbox: SandboxServer) -> None:  # noqa: F811
    x_sandbox.faults.add("/2/tweets/search", "status", status=503, after=1)
    assert _search(x_sandbox, "police").status_code == 200
    assert _search(x_sandbox, "police").status_code == 503
    assert _search(x_sandbox, "police").status_code == 200

    x_sandbox.faults.add("/2/tweets/search", "reset")
    with pytest.raises(requests.ConnectionError):
        _search(x_sandbox, "police")

    x_sandbox.faults.add("/2/tweets/search", "truncate")
    cut = _search(x_sandbox, "police")
    assert cut.status_code == 200
    with pytest.raises(ValueError):
        cut.json()

    x_sandbox.faults.add("/2/tweets/search", "slow", seconds=0.6)
    began = time.monotonic()
    assert _search(x_sandbox, "police").status_code == 200
    assert time.monotonic() - began >= 0.6
    assert x_sandbox.faults.pending == 0
    assert [r.status for r in x_sandbox.requests_to("/2/")] == [200, 503, 200, 0, 200, 200]


def test_fault_plan_counts_after_and_times() -> None:
    plan = FaultPlan()
    plan.add("/2/", "status", times=2, after=1, status=429)
    hits = [plan.take("/2/tweets") is not None for _ in range(5)]
    assert hits == [False, True, True, False, False]
    assert plan.take("/r/x") is None
    with pytest.raises(ValueError):
        plan.add("/2/", "explode")


def test_request_log_records_served_post_ids(x_sandbox: SandboxServer, queries: list[str]) -> None:  # noqa: F811
    body = _search(x_sandbox, queries[0], max_results=25).json()
    (logged,) = x_sandbox.requests_to("/2/tweets/search/recent")
    assert logged.served_ids == [t["id"] for t in body["data"]]
    assert logged.query["query"] == [queries[0]]


def test_corpus_is_deterministic_and_varied() -> None:
    from trustwatch.collectors.agencies import load_registry

    entries = load_registry().entries
    config = CorpusConfig(seed=3, posts=1200, end=dt.datetime(2025, 6, 1, tzinfo=dt.UTC))
    one, two = XCorpus(config, entries), XCorpus(config, entries)
    assert [(t.id, t.text) for t in one.tweets.values()] == [(t.id, t.text) for t in two.tweets.values()]
    other = XCorpus(CorpusConfig(seed=4, posts=1200, end=config.end), entries)
    assert {t.text for t in other.tweets.values()} != {t.text for t in one.tweets.values()}

    tweets = list(one.tweets.values())
    assert all(config.start <= t.created_at < config.stop for t in tweets)
    assert {t.kind for t in tweets} == {"post", "reply", "quote", "repost"}
    assert len({t.lang for t in tweets}) >= 5
    assert any(t.deleted for t in tweets) and any(t.withheld for t in tweets)
    assert any(len(t.edit_history) > 1 for t in tweets)
    assert any(any(ord(c) > 0x1F000 for c in t.text) for t in tweets)  # emoji
    notes = [t for t in tweets if t.note_text]
    assert notes and all(len(t.note_text) > 280 >= len(t.text) for t in notes)
    assert any(u.hidden for u in one.users.values())
    noise = [t for t in tweets if not t.agencies and t.kind != "repost"]
    assert len(noise) > 0.1 * len(tweets)
    assert any("police" in t.text.lower() or "cop" in t.text.lower() for t in noise)
    slugs = {e.slug for e in entries}
    assert {s for t in tweets for s in t.agencies} <= slugs
    assert len({s for t in tweets for s in t.agencies}) > 30
    for tweet in tweets:
        for kind, ref in tweet.referenced:
            assert int(ref) < int(tweet.id), "a post can only refer to an older post"
            if kind == "retweeted":
                assert not one.tweets[ref].deleted


def test_ground_truth_helpers_agree_with_search(x_sandbox: SandboxServer, queries: list[str]) -> None:  # noqa: F811
    api: XApi = x_sandbox.x
    cfg = x_sandbox.config
    start, end = cfg.stop - dt.timedelta(days=1), cfg.stop
    expected = api.expected_stored_ids(queries[:2], start, end)
    matches = set(api.matching_ids(queries[0], start, end)) | set(api.matching_ids(queries[1], start, end))
    assert matches <= expected
    extra = expected - matches
    assert extra and all(api.corpus.tweets[i].kind != "repost" for i in extra)  # reposted originals

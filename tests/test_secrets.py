"""No secret leaks: distinctive credentials through every failure path, then searched for everywhere.

Each collector runs with tokens nobody could write by accident, against the sandbox answering 401, 403,
429, 5xx, dropped connections, truncated JSON and timeouts.  Afterwards the tokens must appear in none of:
the logs captured at DEBUG (tweepy, prawcore, urllib3 and ours), the exceptions' texts and tracebacks,
the ledger rows, and a dump of every table of the store.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import traceback
from typing import Any

import pytest
from sqlalchemy import inspect, text
from trustwatch.collectors.agencies import compile_reddit_queries, compile_x_queries
from trustwatch.collectors.compliance import check_compliance
from trustwatch.collectors.reddit import RedditCollector, RedditSettings, plan_queries
from trustwatch.collectors.runner import run_query
from trustwatch.collectors.x import XCollector, XSettings
from trustwatch.models import store as store_module
from trustwatch.sandbox.common import CorpusConfig
from trustwatch.sandbox.server import SandboxServer

from tests.sandbox_fixtures import no_prawcore_sleep  # noqa: F401  (autouse fixture)
from trustwatch import tasks
from trustwatch.records import Window

END = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
WINDOW = Window(END - dt.timedelta(hours=12), END)
X_TOKEN = "XTOKEN-zq8Jw3vKp0-secret-bearer"
X_WRONG = "XWRONG-m2Lr7Qa9Tx-secret-bearer"
REDDIT_ID = "rid-Hh4Pq1sZ"
REDDIT_SECRET = "RSECRET-u5Nc3Wy8Ek-client-secret"
REDDIT_WRONG = "RWRONG-b7Vt1Xo4Gi-client-secret"
SECRETS = (X_TOKEN, X_WRONG, REDDIT_SECRET, REDDIT_WRONG)


@pytest.fixture(scope="module")
def sandbox() -> Any:
    server = SandboxServer(CorpusConfig(seed=41, posts=500, end=END, days=7), x_bearer_token=X_TOKEN,
                           reddit_client_id=REDDIT_ID, reddit_client_secret=REDDIT_SECRET)
    with server:
        yield server


@pytest.fixture
def server(sandbox: SandboxServer) -> Any:
    sandbox.faults.clear()
    yield sandbox
    sandbox.faults.clear()


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in ("tweepy", "tweepy.client", "prawcore", "praw", "urllib3", "requests", "collectors", "models"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    return caplog




def x_col(server: SandboxServer, token: str = X_TOKEN, **kw: Any) -> XCollector:
    options = {"bearer_token": token, "base_url": server.url, "timeout": 0.5, "max_query_length": 4096,
               "max_attempts": 2, "max_rate_limit_wait": 5.0, **kw}
    return XCollector(XSettings(**options), sleep=lambda s: None)


def reddit_col(server: SandboxServer, matcher: Any, secret: str = REDDIT_SECRET) -> RedditCollector:
    settings = RedditSettings(client_id=REDDIT_ID, client_secret=secret, user_agent="trustwatch-tests/0.1 by u/tw",
                              base_url=server.url, backoff_seconds=0.0, max_retries=1, timeout=0.5,
                              max_wait_seconds=5.0)
    return RedditCollector(settings, matcher, sleep=lambda s: None)


def exception_texts(exc: BaseException) -> str:
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


def dump(engine: Any) -> str:
    insp = inspect(engine)
    with engine.connect() as conn:
        return "\n".join(
            str(tuple(row))
            for name in [*insp.get_table_names(), *insp.get_view_names()]
            for row in conn.execute(text(f'SELECT * FROM "{name}"'))
        )


def assert_nowhere(*haystacks: str) -> None:
    for haystack in haystacks:
        for secret in SECRETS:
            assert secret not in haystack


def run_failing(engine: Any, collector: Any, query: Any, matcher: Any, secrets: tuple[str, ...]) -> str:
    """Run a query that must fail; return the texts of the exception."""
    with pytest.raises(Exception) as info:
        run_query(engine, collector, query, WINDOW, matcher=matcher, secrets=secrets)
    return exception_texts(info.value)


def test_x_failure_paths_leak_no_token(server: SandboxServer, store: Any, registry: Any, matcher: Any,
                                       debug_logs: pytest.LogCaptureFixture) -> None:
    store_module.sync_agencies(store, registry.entries)
    queries = compile_x_queries(registry, 512)  # many small queries: one ledger row per failure path
    assert len(queries) >= 8
    secrets = (X_TOKEN, X_WRONG)
    big = compile_x_queries(registry, 4096)[0]  # a successful run first: stored posts for the compliance path
    assert run_query(store, x_col(server), big, WINDOW, matcher=matcher, secrets=secrets).posts_new > 0
    texts = [run_failing(store, x_col(server, X_WRONG), queries[0], matcher, secrets)]  # 401
    assert "401" in texts[-1]
    server.faults.add("/2/tweets/search", "status", status=403, body=json.dumps(
        {"title": "Forbidden", "detail": f"Authorization: Bearer {X_TOKEN} not enrolled"}).encode())  # echoed back
    texts.append(run_failing(store, x_col(server), queries[1], matcher, secrets))
    assert "403" in texts[-1]
    server.faults.add("/2/tweets/search", "status", status=429,
                      headers={"x-rate-limit-reset": str(int(time.time()) + 3600)})
    texts.append(run_failing(store, x_col(server), queries[2], matcher, secrets))
    server.faults.add("/2/tweets/search", "status", status=503, times=2)
    texts.append(run_failing(store, x_col(server), queries[3], matcher, secrets))
    server.faults.add("/2/tweets/search", "status", status=500, times=2,
                      body=f'{{"detail": "upstream saw Bearer {X_TOKEN}"}}'.encode())
    texts.append(run_failing(store, x_col(server), queries[4], matcher, secrets))
    server.faults.add("/2/tweets/search", "reset", times=2)
    texts.append(run_failing(store, x_col(server), queries[5], matcher, secrets))
    server.faults.add("/2/tweets/search", "truncate", times=2)
    texts.append(run_failing(store, x_col(server), queries[6], matcher, secrets))
    server.faults.add("/2/tweets/search", "slow", times=2, seconds=1.0)
    texts.append(run_failing(store, x_col(server), queries[7], matcher, secrets))
    server.faults.add("/2/compliance/jobs", "status", status=502, times=2)
    with pytest.raises(Exception) as info:
        check_compliance(store, x_collector=x_col(server), now=END, secrets=secrets)
    texts.append(exception_texts(info.value))

    with store.connect() as conn:
        errors = list(conn.execute(text("SELECT error FROM collection_runs WHERE status = 'failed'")).scalars())
    assert len(errors) == 9 and all(errors)
    assert any("Bearer" in r.getMessage() or "Authorization" in r.getMessage() for r in debug_logs.records)
    assert_nowhere(debug_logs.text, *texts, dump(store))


def test_reddit_failure_paths_leak_no_secret(server: SandboxServer, sqlite_engine: Any, registry: Any,
                                             matcher: Any, debug_logs: pytest.LogCaptureFixture) -> None:
    store_module.sync_agencies(sqlite_engine, registry.entries)
    queries = plan_queries(compile_reddit_queries(registry, agencies=["nypd", "austin-pd"]), registry)
    secrets = (REDDIT_SECRET, REDDIT_WRONG)
    texts = [run_failing(sqlite_engine, reddit_col(server, matcher, REDDIT_WRONG), queries[0], matcher, secrets)]
    assert "401" in texts[-1] or "credentials" in texts[-1]
    server.faults.add("/api/v1/access_token", "status", status=401,
                      body=json.dumps({"error": f"invalid_client {REDDIT_SECRET}"}).encode())
    texts.append(run_failing(sqlite_engine, reddit_col(server, matcher), queries[0], matcher, secrets))
    server.faults.add("/r/", "status", status=429, times=5, headers={"retry-after": "1"})
    texts.append(run_failing(sqlite_engine, reddit_col(server, matcher), queries[0], matcher, secrets))
    server.faults.add("/r/", "status", status=503, times=12)
    texts.append(run_failing(sqlite_engine, reddit_col(server, matcher), queries[0], matcher, secrets))
    server.faults.clear()
    server.faults.add("/r/", "reset", times=12)
    texts.append(run_failing(sqlite_engine, reddit_col(server, matcher), queries[0], matcher, secrets))
    server.faults.clear()
    server.faults.add("/r/", "truncate", times=12)
    texts.append(run_failing(sqlite_engine, reddit_col(server, matcher), queries[0], matcher, secrets))
    server.faults.clear()
    server.faults.add("/r/", "status", status=403, times=12, body=b'{"reason": "private"}')
    run_query(sqlite_engine, reddit_col(server, matcher), queries[-1], WINDOW, matcher=matcher, secrets=secrets)
    server.faults.clear()

    with sqlite_engine.connect() as conn:
        errors = list(conn.execute(text("SELECT error FROM collection_runs WHERE status = 'failed'")).scalars())
    assert errors and all(errors)
    assert any("prawcore" in r.name for r in debug_logs.records)  # prawcore did log its requests
    assert_nowhere(debug_logs.text, *texts, dump(sqlite_engine))


def test_the_task_path_from_the_connection_leaks_no_token(server: SandboxServer, tmp_path: Any, registry: Any,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          debug_logs: pytest.LogCaptureFixture,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The operator's path: credentials in AIRFLOW_CONN_*, the task function, a wrong token, the CLI."""
    from trustwatch.models.db import make_engine

    from trustwatch import cli, migrate

    url = f"sqlite:///{tmp_path / 'task.db'}"
    migrate.upgrade(make_engine(url))
    monkeypatch.setenv("TRUSTWATCH_DATABASE_URL", url)
    monkeypatch.delenv("AIRFLOW_CONN_TRUSTWATCH_DB", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_X_API", json.dumps({"conn_type": "http", "password": X_WRONG, "extra": {
        "base_url": server.url, "max_query_length": 4096, "timeout": 2}}))
    monkeypatch.setenv("AIRFLOW_CONN_REDDIT_API", json.dumps({"conn_type": "http", "login": REDDIT_ID,
                                                              "password": REDDIT_WRONG, "extra": {
                                                                  "base_url": server.url,
                                                                  "user_agent": "trustwatch-tests/0.1"}}))
    tasks.sync_registry()
    texts = []
    for platform in ("x", "reddit"):
        query = tasks.compile_queries(platform, ["nypd"])[0]
        with pytest.raises(Exception) as info:
            tasks.collect_query(platform, query, WINDOW.start.isoformat(), WINDOW.end.isoformat())
        texts.append(exception_texts(info.value))
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).isoformat()
    end = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    code = cli.main(["-v", "collect", "x", "--start", start, "--end", end, "--agency", "nypd"])
    out = capsys.readouterr()
    assert code != 0 and "401" in out.err
    assert_nowhere(debug_logs.text, *texts, out.out, out.err, dump(make_engine(url)))

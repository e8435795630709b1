"""Issue 14.4: full-archive pacing per app across concurrent tasks, and X's ``end_time`` rule.

X documents full-archive search as 1 request per second and 300 per 15 minutes *per app* (tweepy's own
FAQ, tweepy#1688: back-to-back ``search_all_tweets`` calls get 429s); and it refuses an ``end_time`` less
than 10 seconds before the request (400, "'end_time' must be a minimum of 10 seconds prior to the request
time").  The sandbox enforces both; the collectors must never meet either.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from typing import Any

import pytest
import requests
from sqlalchemy import Engine
from trustwatch.collectors.x import XApiError, XCollector, XSettings
from trustwatch.models.ratelimit import SharedPacer, app_key
from trustwatch.sandbox.server import SandboxServer

from tests.sandbox_fixtures import X_TOKEN, _x_sandbox_server, x_sandbox  # noqa: F401
from trustwatch.records import Window


def _get(server: SandboxServer, path: str, **params: str) -> requests.Response:
    return requests.get(f"{server.url}{path}", params={"query": "police", **params},
                        headers={"Authorization": f"Bearer {X_TOKEN}"}, timeout=5)


def _api_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the sandbox enforces what X enforces ------------------------------------------------------------


def test_sandbox_refuses_a_second_full_archive_request_within_a_second(x_sandbox: SandboxServer) -> None:  # noqa: F811
    end = _api_time(x_sandbox.config.stop - dt.timedelta(hours=1))
    assert _get(x_sandbox, "/2/tweets/search/all", end_time=end).status_code == 200
    second = _get(x_sandbox, "/2/tweets/search/all", end_time=end)
    assert second.status_code == 429 and int(second.headers["x-rate-limit-reset"]) >= int(time.time())
    assert _get(x_sandbox, "/2/tweets/search/recent", end_time=end).status_code == 200  # recent: no such rule
    time.sleep(1.0)
    assert _get(x_sandbox, "/2/tweets/search/all", end_time=end).status_code == 200


@pytest.mark.parametrize("path", ["/2/tweets/search/recent", "/2/tweets/counts/recent"])
def test_sandbox_refuses_an_end_time_less_than_10_seconds_ago(x_sandbox: SandboxServer, path: str) -> None:  # noqa: F811
    now = dt.datetime.now(dt.UTC)
    late = _get(x_sandbox, path, start_time=_api_time(now - dt.timedelta(hours=1)),
                end_time=_api_time(now - dt.timedelta(seconds=3)))
    assert late.status_code == 400
    assert "'end_time' must be a minimum of 10 seconds prior to the request time" in late.text
    assert late.json()["errors"][0]["parameters"] == {"end_time": [_api_time(now - dt.timedelta(seconds=3))]}
    fine = _get(x_sandbox, path, start_time=_api_time(now - dt.timedelta(hours=1)),
                end_time=_api_time(now - dt.timedelta(seconds=12)))
    assert fine.status_code == 200


# --- pacing per app through the store ---------------------------------------------------------------


def test_shared_pacer_spaces_slots_and_respects_the_window_limit(sqlite_engine: Engine) -> None:
    now = [1_000.0]
    a = SharedPacer(sqlite_engine, "x:search/all:test", interval=1.0, window_limit=3, window_seconds=10.0,
                    clock=lambda: now[0])
    b = SharedPacer(sqlite_engine, "x:search/all:test", interval=1.0, window_limit=3, window_seconds=10.0,
                    clock=lambda: now[0])
    # two tasks asking at the same instant get slots a second apart, the 4th waits for the next window
    assert [a.reserve(), b.reserve(), a.reserve(), b.reserve()] == [0.0, 1.0, 2.0, 10.0]
    other = SharedPacer(sqlite_engine, "x:search/all:other-app", clock=lambda: now[0])
    assert other.reserve() == 0.0  # another app (another token) has its own limits
    now[0] += 60.0
    assert a.reserve() == 0.0


def test_app_key_never_holds_the_token() -> None:
    key = app_key("search/all", "AAAA-secret-bearer-token")
    assert "secret" not in key and key.startswith("x:search/all:") and len(key) <= 60
    assert key == app_key("search/all", "AAAA-secret-bearer-token") != app_key("search/all", "other")


def _run_two_tasks(server: SandboxServer, pacers: list[Any]) -> list[BaseException]:
    """Two collect tasks of one app at once, each over half of the sandbox week (2-3 pages of 500 each)."""
    start, stop = server.config.start, server.config.stop
    middle = start + (stop - start) / 2
    windows = [Window(start, middle), Window(middle, stop)]
    errors: list[BaseException] = []

    def task(window: Window, pacer: Any) -> None:
        # max_rate_limit_wait 0: a 429 fails the task at once instead of being waited out
        settings = XSettings(bearer_token=X_TOKEN, base_url=server.url, endpoint="all", timeout=5.0,
                             max_query_length=4096, max_rate_limit_wait=0.0)
        col = XCollector(settings, pacer=pacer)
        try:
            for _page in col.pages("the OR police OR a", window):
                pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=task, args=(w, p)) for w, p in zip(windows, pacers, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_two_concurrent_tasks_of_one_app_meet_no_429(x_sandbox: SandboxServer, sqlite_engine: Engine) -> None:  # noqa: F811
    key = app_key("search/all", X_TOKEN)
    errors = _run_two_tasks(x_sandbox, [SharedPacer(sqlite_engine, key), SharedPacer(sqlite_engine, key)])
    assert errors == [] and x_sandbox.x.interval_refusals == 0
    arrivals = sorted(r.received_at for r in x_sandbox.requests_to("/2/tweets/search/all"))
    assert len(arrivals) >= 4  # both tasks paged
    assert all(later - earlier >= 0.95 for earlier, later in itertools.pairwise(arrivals))


def test_two_tasks_pacing_alone_get_429s_from_the_per_app_limit(x_sandbox: SandboxServer) -> None:  # noqa: F811
    """What the shared pacer fixes: each task keeps 1 request/s, the app sends 2."""
    errors = _run_two_tasks(x_sandbox, [None, None])
    assert x_sandbox.x.interval_refusals > 0
    assert errors and all(isinstance(e, XApiError) and "rate limit" in str(e) for e in errors)


# --- the collector and the form never send an end_time X refuses -----------------------------------


def test_collector_waits_for_a_window_that_just_ended(x_sandbox: SandboxServer) -> None:  # noqa: F811
    waits: list[float] = []
    end = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=2)
    settings = XSettings(bearer_token=X_TOKEN, base_url=x_sandbox.url, timeout=5.0, max_query_length=4096)

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    col = XCollector(settings, sleep=sleep)
    pages = list(col.pages("police", Window(end - dt.timedelta(hours=1), end)))
    assert pages and waits and 7.0 <= waits[0] <= 9.0  # 10 s after the end, less the 2 s already gone
    assert all(r.status == 200 for r in x_sandbox.requests_to("/2/"))


def test_collector_refuses_a_window_ending_in_the_future(x_sandbox: SandboxServer) -> None:  # noqa: F811
    settings = XSettings(bearer_token=X_TOKEN, base_url=x_sandbox.url, timeout=5.0, max_query_length=4096)
    end = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    with pytest.raises(XApiError, match="in the future"):
        list(XCollector(settings, sleep=lambda s: None).pages("police", Window(end - dt.timedelta(hours=1), end)))
    assert x_sandbox.requests_to("/2/") == []


def test_form_and_cli_clamp_an_end_within_10_seconds_of_now() -> None:
    from trustwatch import tasks

    now = dt.datetime(2026, 11, 30, 5, 0, 4, 500_000, tzinfo=dt.UTC)
    asked = tasks.validate_request("x", "2026-11-30T04:00:00Z", "2026-11-30T05:00:00Z", [], manual=True, now=now)
    assert asked["end"] == "2026-11-30T04:59:54+00:00"
    default = tasks.validate_request("x", None, None, [], manual=True, now=now)
    assert default["end"] == "2026-11-30T04:59:00+00:00" and default["start"] == "2026-11-30T03:59:00+00:00"
    older = tasks.validate_request("x", "2026-11-30T03:00:00Z", "2026-11-30T04:00:00Z", [], manual=True, now=now)
    assert older["end"] == "2026-11-30T04:00:00+00:00"  # nothing to clamp
    with pytest.raises(tasks.RequestError, match="future"):
        tasks.validate_request("x", "2026-11-30T04:00:00Z", "2026-11-30T05:30:00Z", [], manual=True, now=now)

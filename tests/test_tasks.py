"""Request checks shared by the trigger form and the CLI: each refusal says what to change."""

from __future__ import annotations

import datetime as dt

import pytest

from trustwatch import tasks
from trustwatch.tasks import RequestError, validate_request

NOW = dt.datetime(2026, 11, 20, 12, 30, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _no_x_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_X_API", raising=False)


def test_scheduled_run_covers_its_data_interval() -> None:
    start, end = NOW - dt.timedelta(hours=1), NOW
    got = validate_request("x", None, None, None, start, end, manual=False, now=NOW)
    assert got == {"start": start.isoformat(), "end": end.isoformat(), "agencies": []}


def test_manual_run_without_dates_covers_the_last_hour() -> None:
    got = validate_request("reddit", None, None, ["nypd"], NOW - dt.timedelta(days=1), NOW, manual=True, now=NOW)
    assert got["end"] == "2026-11-20T12:30:00+00:00" and got["start"] == "2026-11-20T11:30:00+00:00"
    assert got["agencies"] == ["nypd"]


def test_naive_times_are_utc_and_z_is_accepted() -> None:
    got = validate_request("x", "2026-11-19T00:00:00Z", "2026-11-19T06:00", None, now=NOW, manual=True)
    assert got["start"] == "2026-11-19T00:00:00+00:00" and got["end"] == "2026-11-19T06:00:00+00:00"


@pytest.mark.parametrize(
    ("start", "end", "agencies", "message"),
    [
        ("2026-11-19T06:00Z", "2026-11-19T00:00Z", None, "is not after start"),
        ("yesterday", "2026-11-19T00:00Z", None, "is not a date-time; use ISO 8601"),
        ("2026-11-01T00:00Z", "2026-11-02T00:00Z", None, "more than 7 days ago"),
        ("2026-11-19T00:00Z", None, None, "give both start and end"),
        ("2026-11-19T00:00Z", "2026-11-21T00:00Z", None, "is in the future"),
        ("2026-11-19T00:00Z", "2026-11-19T01:00Z", ["nypdd"], "unknown agency 'nypdd' (did you mean nypd"),
    ],
)
def test_bad_requests_are_refused_with_what_to_change(start, end, agencies, message) -> None:
    with pytest.raises(RequestError, match=message.replace("(", r"\(")):
        validate_request("x", start, end, agencies, manual=True, now=NOW)


def test_search_all_endpoint_reaches_back_further(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_X_API", '{"conn_type": "http", "password": "t", "extra": {"endpoint": "all"}}')
    got = validate_request("x", "2026-01-01T00:00Z", "2026-01-02T00:00Z", None, manual=True, now=NOW)
    assert got["start"] == "2026-01-01T00:00:00+00:00"
    # Reddit has no 7-day limit either
    validate_request("reddit", "2026-01-01T00:00Z", "2026-01-02T00:00Z", None, manual=True, now=NOW)


def test_compiled_queries_round_trip_through_plain_dicts() -> None:
    x = tasks.compile_queries("x", ["nypd", "lapd"])
    assert x and all(isinstance(q["agency_slugs"], list) for q in x)
    assert {"nypd", "lapd"} <= {s for q in x for s in q["agency_slugs"]}
    query = tasks._query_obj("x", x[0])
    assert query.key == x[0]["key"] and isinstance(query.agency_slugs, tuple)
    reddit = tasks.compile_queries("reddit", ["nypd"])
    assert {q["kind"] for q in reddit} == {"new", "comments"}, "listing-first by default"
    assert tasks._query_obj("reddit", reddit[0]).key == reddit[0]["key"]


def test_missing_connection_names_it_and_shows_how_to_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from trustwatch.settings import MissingConnectionError

    monkeypatch.delenv("AIRFLOW_CONN_REDDIT_API", raising=False)
    with pytest.raises(MissingConnectionError) as info:
        tasks.make_collector("reddit")
    assert "'reddit_api'" in str(info.value) and "AIRFLOW_CONN_REDDIT_API=" in str(info.value)

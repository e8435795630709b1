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


# --- a trigger without dates: the most recent complete hour not read yet (issue 17) ---------------------


@pytest.fixture
def ledger(store, monkeypatch: pytest.MonkeyPatch):
    """The store the task functions use (both backends), for seeding the ledger as earlier runs left it."""
    monkeypatch.delenv("AIRFLOW_CONN_TRUSTWATCH_DB", raising=False)
    monkeypatch.setenv("TRUSTWATCH_DATABASE_URL", store.url.render_as_string(hide_password=False))
    return store


def _hour(h: int) -> dt.datetime:
    return NOW.replace(hour=0, minute=0) + dt.timedelta(hours=h)


def _read(engine, platform: str, queries: list[dict], start: dt.datetime, end: dt.datetime,
          status: str = "success", run_id: str | None = "scheduled__2026-11-20T12:00:00+00:00",
          coverage_gap: bool = False) -> None:
    """Ledger rows as a collection of ``queries`` over [start, end) leaves them."""
    from trustwatch.models import store as st

    for q in queries:
        handle = st.open_run(engine, platform=platform, query_key=q["key"], query_version=q["version"],
                             query_text=q["text"], window_start=start, window_end=end,
                             run_context={"dag_id": f"collect_{platform}", "dag_run_id": run_id})
        st.update_run(engine, handle.run_id, status=status, finished_at=st.utcnow(), coverage_gap=coverage_gap)


def test_trigger_without_dates_reads_the_latest_hour_the_scheduled_run_has_not_read(ledger) -> None:
    every = tasks.compile_queries("x", None)
    # nothing read yet: the most recent complete hour, not the last 60 minutes
    got = validate_request("x", None, None, None, manual=True, now=NOW, unread=True)
    assert (got["start"], got["end"], got["nothing_new"]) == (_hour(11).isoformat(), _hour(12).isoformat(), None)
    # the scheduled run read [11:00, 12:00): the trigger takes the hour before
    _read(ledger, "x", every, _hour(11), _hour(12))
    got = validate_request("x", None, None, None, manual=True, now=NOW, unread=True)
    assert (got["start"], got["end"], got["nothing_new"]) == (_hour(10).isoformat(), _hour(11).isoformat(), None)


def test_only_whole_successful_reads_of_every_query_count_as_read(ledger) -> None:
    every = tasks.compile_queries("x", None)
    assert len(every) > 1
    _read(ledger, "x", every[1:], _hour(11), _hour(12))  # one query of the set did not read the hour
    _read(ledger, "x", every[:1], _hour(11), _hour(12), status="failed")
    _read(ledger, "x", every, _hour(10), _hour(11), coverage_gap=True)  # X could not reach back
    _read(ledger, "x", every, _hour(9), _hour(9) + dt.timedelta(minutes=30))
    got = validate_request("x", None, None, None, manual=True, now=NOW, unread=True)
    assert (got["start"], got["end"]) == (_hour(11).isoformat(), _hour(12).isoformat())
    _read(ledger, "x", every[:1], _hour(11), _hour(12))  # the failed query resumed and finished
    got = validate_request("x", None, None, None, manual=True, now=NOW, unread=True)
    assert (got["start"], got["end"]) == (_hour(10).isoformat(), _hour(11).isoformat())
    _read(ledger, "x", every, _hour(10), _hour(11))
    got = validate_request("x", None, None, None, manual=True, now=NOW, unread=True)
    assert (got["start"], got["end"]) == (_hour(9).isoformat(), _hour(10).isoformat()), "half an hour is not read"


def test_a_pick_of_agencies_counts_what_the_scheduled_run_read_for_them(ledger) -> None:
    _read(ledger, "x", tasks.compile_queries("x", None), _hour(11), _hour(12))
    got = validate_request("x", None, None, ["nypd", "lapd"], manual=True, now=NOW, unread=True)
    assert (got["start"], got["end"], got["agencies"]) == (_hour(10).isoformat(), _hour(11).isoformat(),
                                                           ["nypd", "lapd"])
    # and an earlier trigger for that pick counts too
    _read(ledger, "x", tasks.compile_queries("x", ["nypd", "lapd"]), _hour(10), _hour(11), run_id="manual__1")
    got = validate_request("x", None, None, ["nypd", "lapd"], manual=True, now=NOW, unread=True)
    assert (got["start"], got["end"]) == (_hour(9).isoformat(), _hour(10).isoformat())


def test_when_every_recent_hour_was_read_the_run_summary_says_nothing_new(ledger) -> None:
    every = tasks.compile_queries("reddit", None)
    _read(ledger, "reddit", every, NOW - dt.timedelta(days=70), _hour(11), run_id=None)  # the demo backfill
    _read(ledger, "reddit", every, _hour(11), _hour(12))  # the scheduled run
    got = validate_request("reddit", None, None, None, manual=True, now=NOW, unread=True)
    assert (got["start"], got["end"]) == (_hour(11).isoformat(), _hour(12).isoformat())
    message = got["nothing_new"]
    assert message.startswith("nothing new: every complete hour of the last 24 h was read already")
    assert "[2026-11-20T11:00:00+00:00, 2026-11-20T12:00:00+00:00)" in message
    assert "scheduled__2026-11-20T12:00:00+00:00" in message and "13:00 UTC" in message

    # the DAG's collect tasks ask nothing; the summary (log, XCom and ledger) says so in words
    skipped = [{"query_key": q["key"], "status": "success", "skipped": True, "window_start": got["start"],
                "window_end": got["end"]} for q in every]
    totals = tasks.summarize("reddit", skipped, run_context={"dag_run_id": "manual__2", "nothing_new": message})
    assert totals["outcome"] == message and totals["posts_new"] == 0 and totals["requests"] == 0
    from sqlalchemy import text

    with ledger.connect() as conn:
        row = conn.execute(text("SELECT status, notes FROM collection_runs WHERE query_key = 'summary'")).one()
    notes = row.notes if isinstance(row.notes, dict) else __import__("json").loads(row.notes)
    assert row.status == "success" and notes["outcome"] == message


def test_the_run_summary_says_what_was_stored_or_that_the_window_was_read_already(ledger) -> None:
    window = {"window_start": _hour(9).isoformat(), "window_end": _hour(10).isoformat()}
    stored = [{"query_key": "x-q01", "status": "success", "posts_seen": 40, "posts_new": 30, "posts_updated": 10,
               **window}, {"query_key": "x-q02", "status": "success", "posts_seen": 2, "posts_new": 2, **window}]
    outcome = tasks.summarize("x", stored)["outcome"]
    assert outcome == ("32 new posts stored and 10 seen again, of 42 read in "
                       "[2026-11-20T09:00:00+00:00, 2026-11-20T10:00:00+00:00)")
    again = [{"query_key": "x-q01", "status": "success", "skipped": True, **window}]
    assert tasks.summarize("x", again)["outcome"].startswith(
        "nothing new: [2026-11-20T09:00:00+00:00, 2026-11-20T10:00:00+00:00) was read already")

"""The runner's promises, with an in-process collector: resume, no re-read, watermark on completion."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, func, select
from trustwatch.collectors.runner import run_query
from trustwatch.models import store
from trustwatch.models.tables import CollectionRun, Post, PostMention

from tests.store_helpers import AGENCIES, BASE_TIME, make_page
from trustwatch.records import Page, Window

WINDOW = Window(BASE_TIME, BASE_TIME + dt.timedelta(hours=1))


@dataclass(frozen=True)
class Query:
    key: str = "x-q01-abcd"
    text: str = '"Alpha Police Department"'
    version: str = "abcd1234"
    agency_slugs: tuple[str, ...] = ("alpha-pd",)


@dataclass(frozen=True)
class Match:
    agency_slug: str
    term: str
    kind: str
    start: int
    end: int


class PhraseMatcher:
    """Finds registry names verbatim; the real matcher has its own tests."""

    def match(self, text: str, community: str | None = None, unsettled: list | None = None) -> list[Match]:
        out = []
        for a in AGENCIES:
            i = text.find(a.name)
            if i >= 0:
                out.append(Match(a.slug, a.name, "name", i, i + len(a.name)))
        return out


class ScriptedCollector:
    """Serves pages of a fixed result set; can fail after a number of pages, like a cut connection."""

    platform = "x"

    def __init__(self, total: int = 250, per_page: int = 100, fail_after: int | None = None) -> None:
        self.total, self.per_page, self.fail_after = total, per_page, fail_after
        self.calls: list[tuple[str | None, str | None]] = []
        self.served: list[str] = []

    def pages(self, query: Query, window: Window, cursor: str | None = None, since_id: str | None = None):
        self.calls.append((cursor, since_id))
        start = int(cursor) if cursor else 0
        served_pages = 0
        while start < self.total:
            if self.fail_after is not None and served_pages >= self.fail_after:
                raise ConnectionError("connection reset by peer")
            end = min(start + self.per_page, self.total)
            page = make_page(range(start, end), mentions_per_post=0, cursor=str(end) if end < self.total else None)
            for p in page.posts:
                p.text = f"{p.text} Alpha Police Department"
            self.served.extend(p.platform_post_id for p in page.posts)
            yield page
            served_pages += 1
            start = end

    def count(self, query: Query, window: Window) -> int:
        return self.total


@pytest.fixture
def engine(store: Engine) -> Engine:
    from trustwatch.models.store import sync_agencies

    sync_agencies(store, AGENCIES)
    return store


def n_posts(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Post)).scalar_one()


def test_complete_run_stores_everything_and_advances_the_watermark(engine: Engine) -> None:
    collector = ScriptedCollector()
    summary = run_query(engine, collector, Query(), WINDOW, matcher=PhraseMatcher())
    assert summary.status == "success" and summary.pages == 3 and summary.posts_new == 250
    assert n_posts(engine) == 250
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(PostMention)).scalar_one() == 250
    mark = store.get_watermark(engine, "x", Query().key)
    assert mark["covered_until"] == WINDOW.end
    assert mark["newest_id"] == str(1_800_000_000_000_000_000 + 249)


def test_rerun_of_a_collected_window_reads_nothing(engine: Engine) -> None:
    run_query(engine, ScriptedCollector(), Query(), WINDOW, matcher=PhraseMatcher())
    again = ScriptedCollector()
    summary = run_query(engine, again, Query(), WINDOW, matcher=PhraseMatcher())
    assert summary.skipped and again.calls == [] and again.served == []
    assert n_posts(engine) == 250


def test_crash_mid_run_keeps_pages_and_the_retry_resumes_after_them(engine: Engine) -> None:
    crashing = ScriptedCollector(fail_after=2)
    with pytest.raises(ConnectionError):
        run_query(engine, crashing, Query(), WINDOW, matcher=PhraseMatcher())
    assert n_posts(engine) == 200  # the two committed pages are kept
    with engine.connect() as conn:
        run = conn.execute(select(CollectionRun.__table__)).one()
    assert run.status == "failed" and run.last_cursor == "200" and "connection reset" in run.error
    assert store.get_watermark(engine, "x", Query().key) is None  # incomplete window: no watermark

    retry = ScriptedCollector()
    summary = run_query(engine, retry, Query(), WINDOW, matcher=PhraseMatcher())
    assert summary.resumed and summary.status == "success"
    assert retry.calls == [("200", None)]
    assert len(retry.served) == 50  # nothing fetched (and paid for) twice
    assert n_posts(engine) == 250
    with engine.connect() as conn:
        runs = conn.execute(select(CollectionRun.__table__)).all()
    assert len(runs) == 1 and runs[0].attempts == 2 and runs[0].posts_seen == 250 and runs[0].pages == 3


def test_next_window_uses_since_id_from_the_watermark_when_inside_it(engine: Engine) -> None:
    run_query(engine, ScriptedCollector(), Query(), WINDOW, matcher=PhraseMatcher())
    # an overlapping window (e.g. a manual run) starts before the newest post: since_id is sent
    overlapping = Window(BASE_TIME + dt.timedelta(minutes=1), BASE_TIME + dt.timedelta(hours=2))
    c = ScriptedCollector(total=0)
    run_query(engine, c, Query(), overlapping, matcher=PhraseMatcher())
    assert c.calls == [(None, str(1_800_000_000_000_000_000 + 249))]
    # a later window that starts after the newest post needs no since_id
    later = Window(BASE_TIME + dt.timedelta(hours=3), BASE_TIME + dt.timedelta(hours=4))
    c2 = ScriptedCollector(total=0)
    run_query(engine, c2, Query(), later, matcher=PhraseMatcher())
    assert c2.calls == [(None, None)]


def test_dry_run_counts_without_collecting(engine: Engine) -> None:
    c = ScriptedCollector()
    summary = run_query(engine, c, Query(), WINDOW, matcher=PhraseMatcher(), dry_run=True)
    assert summary.status == "dry_run" and summary.expected_posts == 250
    assert c.calls == [] and n_posts(engine) == 0
    with engine.connect() as conn:
        run = conn.execute(select(CollectionRun.__table__)).one()
    assert run.status == "dry_run" and run.expected_posts == 250


def test_secrets_are_masked_in_the_ledger(engine: Engine) -> None:
    class Leaky(ScriptedCollector):
        def pages(self, query, window, cursor=None, since_id=None):
            raise RuntimeError("401 for token SECRET-TOKEN-123")
            yield Page()

    with pytest.raises(RuntimeError):
        run_query(engine, Leaky(), Query(), WINDOW, matcher=PhraseMatcher(), secrets=("SECRET-TOKEN-123",))
    with engine.connect() as conn:
        error = conn.execute(select(CollectionRun.error)).scalar_one()
    assert "SECRET-TOKEN-123" not in error and "***" in error


# --- issue 14.1: since_id only where the ledger proves unbroken coverage -------------------------------


def _later(hours_from: float, hours_to: float) -> Window:
    return Window(BASE_TIME + dt.timedelta(hours=hours_from), BASE_TIME + dt.timedelta(hours=hours_to))


def test_a_window_before_the_watermark_is_read_whole_not_from_since_id(engine: Engine) -> None:
    """A backfill after a later window: the watermark's since_id would skip every post of the earlier window."""
    run_query(engine, ScriptedCollector(), Query(), WINDOW, matcher=PhraseMatcher())
    backfill = Window(BASE_TIME - dt.timedelta(hours=1), BASE_TIME + dt.timedelta(minutes=30))
    c = ScriptedCollector(total=0)
    run_query(engine, c, Query(), backfill, matcher=PhraseMatcher())
    assert c.calls == [(None, None)]


def test_a_manual_window_around_an_hourly_one_is_read_whole(engine: Engine) -> None:
    """07:00-11:30 after 10:00-11:00: nothing proves 07:00-10:00 is stored, so no since_id."""
    run_query(engine, ScriptedCollector(total=0), Query(), _later(10, 11), matcher=PhraseMatcher())
    store.advance_watermark(engine, "x", Query().key, ("1800000000000000999", BASE_TIME + dt.timedelta(hours=10.9)),
                            None)
    c = ScriptedCollector(total=0)
    run_query(engine, c, Query(), _later(7, 11.5), matcher=PhraseMatcher())
    assert c.calls == [(None, None)]


def test_since_id_is_used_across_contiguous_successful_windows_only(engine: Engine) -> None:
    for hours in ((0, 1), (1, 2), (2, 3)):
        run_query(engine, ScriptedCollector(total=0), Query(), _later(*hours), matcher=PhraseMatcher())
    newest = ("1800000000000000777", BASE_TIME + dt.timedelta(hours=2, minutes=50))
    store.advance_watermark(engine, "x", Query().key, newest, None)
    # a failed hour in between breaks the proof: read the window whole
    with engine.begin() as conn:
        conn.execute(CollectionRun.__table__.update()
                     .where(CollectionRun.window_start == BASE_TIME + dt.timedelta(hours=1))
                     .values(status="failed"))
    c = ScriptedCollector(total=0)
    run_query(engine, c, Query(), _later(0.5, 4), matcher=PhraseMatcher())
    assert c.calls == [(None, None)]
    # that whole read closed the hole: [0, 1) and [0.5, 4) reach past the newest post
    c2 = ScriptedCollector(total=0)
    run_query(engine, c2, Query(), _later(0.25, 5), matcher=PhraseMatcher())
    assert c2.calls == [(None, newest[0])]


def test_a_window_with_a_coverage_gap_proves_nothing(engine: Engine) -> None:
    run_query(engine, ScriptedCollector(total=0), Query(), _later(0, 3), matcher=PhraseMatcher())
    with engine.begin() as conn:
        conn.execute(CollectionRun.__table__.update().values(coverage_gap=True))
    store.advance_watermark(engine, "x", Query().key, ("1800000000000000777", BASE_TIME + dt.timedelta(hours=2)),
                            None)
    c = ScriptedCollector(total=0)
    run_query(engine, c, Query(), _later(1, 4), matcher=PhraseMatcher())
    assert c.calls == [(None, None)]

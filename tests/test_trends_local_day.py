"""Rollup days are the agency's own days (issue 16): a US evening is one day, not two UTC halves."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, text
from trustwatch.analysis import trends
from trustwatch.models.store import sync_agencies, write_page

from tests.store_helpers import FakeAgency
from trustwatch.records import AuthorRecord, MentionRecord, Page, PostRecord

LA = FakeAgency("la-town-pd", "Latown Police Department", timezone="America/Los_Angeles")
GUAM = FakeAgency("guam-pd", "Guam Police Department", state="GU", timezone="Pacific/Guam")
FEDS = FakeAgency("feds", "Federal Agents Bureau", kind="federal", state=None)


def post(i: int, when: dt.datetime, agency: FakeAgency) -> tuple[PostRecord, MentionRecord, AuthorRecord]:
    pid = str(1000 + i)  # an X id: digits
    return (PostRecord(platform="x", platform_post_id=pid, kind="post", created_at=when,
                       text=f"{agency.name} said something", author_platform_id=f"u{i}"),
            MentionRecord("x", pid, agency.slug, agency.name, "name", 0, len(agency.name)),
            AuthorRecord("x", f"u{i}", username=f"user{i}"))


def days(engine: Engine, view: str = "agency_daily_trend", period: str = "day") -> dict[str, dict[str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT agency, {period}, mentions FROM {view}")).all()
    out: dict[str, dict[str, int]] = {}
    for agency, day, mentions in rows:
        out.setdefault(agency, {})[str(day)[:10]] = out.get(agency, {}).get(str(day)[:10], 0) + mentions
    return out


def test_an_evening_in_los_angeles_is_one_local_day(store: Engine) -> None:
    sync_agencies(store, [LA, GUAM, FEDS])
    utc = dt.UTC
    items = [
        # Thursday 19 November, 18:00 and 23:30 in Los Angeles = 02:00 and 07:30 UTC on Friday 20.
        post(1, dt.datetime(2026, 11, 20, 2, 0, tzinfo=utc), LA),
        post(2, dt.datetime(2026, 11, 20, 7, 30, tzinfo=utc), LA),
        post(3, dt.datetime(2026, 11, 19, 20, 0, tzinfo=utc), LA),  # 12:00 on the 19th in LA
        # 15:00 UTC on the 20th is 01:00 on Saturday 21 in Guam.
        post(4, dt.datetime(2026, 11, 20, 15, 0, tzinfo=utc), GUAM),
        # Sunday 22 23:00 UTC is Monday 23 in Guam: a new local week.
        post(5, dt.datetime(2026, 11, 22, 23, 0, tzinfo=utc), GUAM),
        # No timezone: UTC days.
        post(6, dt.datetime(2026, 11, 20, 2, 0, tzinfo=utc), FEDS),
    ]
    page = Page()
    for p, m, a in items:
        page.posts.append(p)
        page.mentions.append(m)
        page.authors.append(a)
    write_page(store, page)
    trends.enrich(store, margin=dt.timedelta(0))
    assert days(store) == {
        "la-town-pd": {"2026-11-19": 3},
        "guam-pd": {"2026-11-21": 1, "2026-11-23": 1},
        "feds": {"2026-11-20": 1},
    }
    assert days(store, "agency_weekly_trend", "week") == {
        "la-town-pd": {"2026-11-16": 3},
        "guam-pd": {"2026-11-16": 1, "2026-11-23": 1},
        "feds": {"2026-11-16": 1},
    }
    # A late post on the LA evening (collected again later) lands on the same local day incrementally.
    late = post(7, dt.datetime(2026, 11, 20, 6, 59, tzinfo=utc), LA)
    page = Page()
    page.posts.append(late[0])
    page.mentions.append(late[1])
    page.authors.append(late[2])
    write_page(store, page)
    trends.enrich(store, margin=dt.timedelta(0))
    assert days(store)["la-town-pd"] == {"2026-11-19": 4}
    with store.connect() as conn:
        before = conn.execute(text("SELECT agency_id, grain, day, mentions FROM agency_daily_trends "
                                   "ORDER BY 1, 2, 3")).all()
    trends.rebuild(store)
    with store.connect() as conn:
        after = conn.execute(text("SELECT agency_id, grain, day, mentions FROM agency_daily_trends "
                                  "ORDER BY 1, 2, 3")).all()
    assert before == after

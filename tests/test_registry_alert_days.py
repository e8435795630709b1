"""agency_alerts picks a day's top posts from the agency's own day, like the rollups count it (issue 16, item 4).

On both backends: PostgreSQL converts in the view, SQLite compares with the bounds each rollup row stores
(migration 0024), since an analyst's SQLite client cannot convert time zones.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import Engine, text
from trustwatch.analysis import trends
from trustwatch.models.store import sync_agencies, write_page

from tests.store_helpers import FakeAgency
from trustwatch.records import AuthorRecord, MentionRecord, Metrics, Page, PostRecord

LA = FakeAgency("la-town-pd", "Latown Police Department", state="CA", timezone="America/Los_Angeles")
SPIKE = dt.date(2026, 11, 25)


def add(page: Page, i: int, when: dt.datetime, body: str, likes: int = 0) -> None:
    pid = str(1_800_000_000_000_000_000 + i)
    text_ = f"{LA.name} {body}"
    page.posts.append(PostRecord("x", pid, "post", when, text=text_, author_platform_id=f"u{i}",
                                 metrics=Metrics(likes=likes)))
    page.authors.append(AuthorRecord("x", f"u{i}", username=f"user{i}"))
    page.mentions.append(MentionRecord("x", pid, LA.slug, LA.name, "name", 0, len(LA.name)))


def test_top_posts_of_an_alert_come_from_the_agencys_own_day(store: Engine) -> None:
    sync_agencies(store, [LA])
    page, i = Page(), 0
    for back in range(2, 22):  # a quiet baseline: one post a day at noon in Los Angeles (20:00 UTC)
        day = SPIKE - dt.timedelta(days=back)
        add(page, i, dt.datetime(day.year, day.month, day.day, 20, tzinfo=dt.UTC), "routine patrol")
        i += 1
    # 20:00 on the evening before the spike in Los Angeles = 04:00 UTC on the spike's date: the most
    # engaged post, but of the day before in Los Angeles.
    add(page, i, dt.datetime(2026, 11, 25, 4, tzinfo=dt.UTC), "evening before, viral", likes=5000)
    i += 1
    # The spike: eight posts between 18:00 and 21:15 on the 25th in Los Angeles = 02:00-05:15 UTC on the 26th.
    for k in range(8):
        add(page, i, dt.datetime(2026, 11, 26, 2 + k // 2, 15 * (k % 2), tzinfo=dt.UTC), f"spike post {k}",
            likes=10 + k)
        i += 1
    write_page(store, page)
    trends.enrich(store, margin=dt.timedelta(0))
    with store.connect() as conn:
        rows = conn.execute(text("SELECT day, mentions, top_posts FROM agency_alerts WHERE agency = :a"),
                            {"a": LA.slug}).all()
    alerts = {str(row.day)[:10]: row for row in rows}  # SQLite gives the day as text
    assert str(SPIKE) in alerts and alerts[str(SPIKE)].mentions == 8
    top = alerts[str(SPIKE)].top_posts
    top = json.loads(top) if isinstance(top, str) else top
    assert [p["text"] for p in top] == [f"{LA.name} spike post {k}" for k in (7, 6, 5)]

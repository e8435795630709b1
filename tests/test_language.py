"""Posts not in English are left unscored and counted apart (issue 19): X's own ``lang`` decides for X
posts, an offline detector (py3langid) for Reddit posts and X posts that X could not label."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text
from trustwatch.analysis import trends
from trustwatch.analysis.language import unscored_language
from trustwatch.models.db import make_engine
from trustwatch.models.store import sync_agencies, write_page

from tests.store_helpers import AGENCIES
from trustwatch import migrate
from trustwatch.records import AuthorRecord, MentionRecord, Metrics, Page, PostRecord

DAY = dt.datetime(2026, 10, 6, 12, tzinfo=dt.UTC)
TREND_VIEWS = ("agency_daily_trend", "agency_weekly_trend")


def _post(i: int, body: str, lang: str | None, platform: str = "x") -> tuple[PostRecord, MentionRecord]:
    name = AGENCIES[0].name
    body = body.format(name=name)
    pid = str(1000 + i) if platform == "x" else f"{platform}{i}"  # the platform's id shape
    post = PostRecord(platform=platform, platform_post_id=pid, kind="post" if platform == "x" else "comment",
                      created_at=DAY + dt.timedelta(minutes=i), text=body, author_platform_id=f"u{i}", lang=lang,
                      metrics=Metrics(likes=0))
    start = body.index(name)
    return post, MentionRecord(platform, pid, AGENCIES[0].slug, name, "name", start, start + len(name))


def test_language_rules() -> None:
    assert unscored_language("en", "Die Polizei war sehr freundlich") is None  # X's label wins
    assert unscored_language("de", "Thanks police") == "de"
    assert unscored_language("pt-BR", "x") == "pt"
    assert unscored_language(None, "Die Polizei hat meinen Vater nach Hause gebracht, vielen herzlichen Dank") == "de"
    assert unscored_language("und", "La policía llegó tarde y no hizo absolutamente nada para ayudarnos") == "es"
    assert unscored_language(None, "Thank you officers for staying with my dad until the ambulance came") is None
    assert unscored_language(None, "lol") is None  # too short to tell: scored as before
    assert unscored_language("qht", "#NYPD") is None


def store_five_posts(store: Engine) -> None:
    """One English and one Spanish-or-German post per platform and a Japanese one, about one agency."""
    sync_agencies(store, AGENCIES)
    items = [
        _post(1, "Thank you {name} for the quick and professional help last night.", "en"),
        _post(2, "Danke an {name} für die schnelle Hilfe gestern Abend, wirklich sehr freundlich.", "de"),
        _post(3, "{name}: la policía llegó tarde y no hizo absolutamente nada para ayudarnos.", None, "reddit"),
        _post(4, "{name} covered up the beating and lied about it to the family.", None, "reddit"),
        _post(5, "{name} 警察が男を逮捕した。ありがとうございました。", "ja"),
    ]
    page = Page(posts=[p for p, _ in items], mentions=[m for _, m in items],
                authors=[AuthorRecord(p.platform, p.author_platform_id) for p, _ in items])
    write_page(store, page)


def test_non_english_posts_are_unscored_and_counted_apart(store: Engine) -> None:
    store_five_posts(store)
    result = trends.enrich(store, workers=1)
    assert result["posts_left_unscored_language"] == 3
    with store.connect() as conn:
        rows = {r.platform_post_id: (r.sentiment, r.trust_score, r.unscored_reason) for r in conn.execute(text(
            "SELECT p.platform_post_id, s.sentiment, s.trust_score, s.unscored_reason FROM post_scores s "
            "JOIN posts p ON p.id = s.post_id"))}
        rollup = conn.execute(text(
            "SELECT platform, sum(mentions) AS mentions, sum(scored) AS scored, sum(unscored_language) AS other "
            "FROM agency_daily_trends WHERE grain = 'day' GROUP BY platform ORDER BY platform")).all()
    assert rows["1002"] == (None, None, "language:de")
    assert rows["reddit3"] == (None, None, "language:es")
    assert rows["1005"] == (None, None, "language:ja")
    assert rows["1001"][2] is None and rows["1001"][1] > 0.3
    assert rows["reddit4"][2] is None and rows["reddit4"][1] < -0.3
    assert [tuple(r) for r in rollup] == [("reddit", 2, 1, 1), ("x", 3, 1, 2)]
    # Means are over the scored posts only: the unscored rows add nothing to the sums.
    with store.connect() as conn:
        trust = conn.execute(text("SELECT sum(trust_sum) FROM agency_daily_trends WHERE grain = 'day'")).scalar()
    assert abs(trust - (rows["1001"][1] + rows["reddit4"][1])) < 1e-9
    # Nothing is read again: the unscored posts have their row.
    assert trends.enrich(store, workers=1)["posts_scored"] == 0


@pytest.mark.parametrize("view", ["agency_daily_trend", "agency_weekly_trend"])
def test_the_trend_views_show_the_posts_left_unscored(store: Engine, view: str) -> None:
    """An analyst reading the views sees why scored < mentions: the posts not in English (migration 0023)."""
    store_five_posts(store)
    trends.enrich(store, workers=1)
    with store.connect() as conn:
        rows = conn.execute(text(
            f"SELECT platform, mentions, scored, unscored_language FROM {view} WHERE agency = :slug "
            "ORDER BY platform"), {"slug": AGENCIES[0].slug}).all()
    assert [tuple(r) for r in rows] == [("reddit", 2, 1, 1), ("x", 3, 1, 2)]


def _view_columns(engine: Engine, view: str) -> list[str]:
    return [c["name"] for c in inspect(engine).get_columns(view)]


def _check_0023(engine: Engine) -> None:
    """0023 appends unscored_language to both views and keeps every column before it; down takes it away."""
    migrate.upgrade(engine, "0016")
    before = {v: _view_columns(engine, v) for v in TREND_VIEWS}
    assert all("unscored_language" not in cols and "timezone" in cols for cols in before.values())
    migrate.upgrade(engine, "0023")
    for view in TREND_VIEWS:
        assert _view_columns(engine, view) == before[view] + ["unscored_language"]
    migrate.downgrade(engine, "0016")
    assert {v: _view_columns(engine, v) for v in TREND_VIEWS} == before
    migrate.upgrade(engine)


def test_migration_0023_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    _check_0023(engine)
    engine.dispose()


@pytest.mark.postgres
def test_migration_0023_keeps_the_analyst_grants_and_comments(pg_server: Any) -> None:
    engine = make_engine(pg_server.create("tw_0023"))
    _check_0023(engine)
    with engine.begin() as conn:
        role = f"{conn.execute(text('SELECT current_database()')).scalar_one()}_analyst"
        comments = [conn.execute(text(f"SELECT obj_description('{v}'::regclass, 'pg_class')")).scalar_one()
                    for v in TREND_VIEWS]
        conn.execute(text(f'SET LOCAL ROLE "{role}"'))
        for view in TREND_VIEWS:  # raises if the analyst group lost its grant on the replaced view
            conn.execute(text(f"SELECT agency, timezone, unscored_language FROM {view} LIMIT 1")).all()
    assert all("unscored_language counts the posts left unscored" in c and "FBI ori" in c for c in comments)
    assert all(c.count("unscored_language counts") == 1 for c in comments)
    engine.dispose()

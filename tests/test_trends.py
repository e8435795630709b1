"""Enrichment and rollups: scores with provenance, the analyst views, incremental = from scratch, alerts."""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections import defaultdict
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, bindparam, text
from trustwatch.analysis import trends
from trustwatch.analysis.scoring import SCORER_NAME, SCORER_VERSION
from trustwatch.models.store import sync_agencies, write_page
from trustwatch.models.types import UTCDateTime

from tests.store_helpers import AGENCIES
from trustwatch.records import AuthorRecord, MentionRecord, Metrics, Page, PostRecord

DAY0 = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)  # a Monday
TEXTS = {
    "good": "Thank you {name} for the quick response, really professional officers.",
    "bad": "{name} covered up the beating and lied about it. Corrupt.",
    "flat": "{name} says the bridge is closed tonight.",
}


def make_post(i: int, *, day: int, agencies: dict[str, str], mood: str = "flat", platform: str = "x",
              author: str | None = None, likes: int = 0, hour: int = 12, deleted: bool = False,
              voice: str = "public") -> tuple[PostRecord, list[MentionRecord], AuthorRecord]:
    """A post on DAY0 + day mentioning each agency slug with the given kind ('name' or 'thread')."""
    first = next(iter(agencies))
    name = next(a.name for a in AGENCIES if a.slug == first)
    body = TEXTS[mood].format(name=name)
    pid = str(1000 + i) if platform == "x" else f"{platform}{i}"  # the platform's id shape
    uid = author or f"u{i % 5}"
    post = PostRecord(
        platform=platform, platform_post_id=pid,
        kind=("repost" if voice == "repost" else "post") if platform == "x" else "comment",
        author_is_agency=voice == "agency",
        created_at=DAY0 + dt.timedelta(days=day, hours=hour, seconds=i % 3600), text=body,
        author_platform_id=uid, lang="en", metrics=Metrics(likes=likes), url=f"https://example.test/{pid}",
        deleted_reason="[deleted]" if deleted else None,
    )
    mentions = []
    for slug, kind in agencies.items():
        if kind == "thread":
            mentions.append(MentionRecord(platform, pid, slug, "t3_thread", "thread"))
        else:
            agency_name = next(a.name for a in AGENCIES if a.slug == slug)
            start = body.find(agency_name)
            mentions.append(MentionRecord(platform, pid, slug, agency_name, "name",
                                          start if start >= 0 else None,
                                          start + len(agency_name) if start >= 0 else None))
    return post, mentions, AuthorRecord(platform, uid, username=f"user_{uid}")


def write(engine: Engine, items: list[tuple[PostRecord, list[MentionRecord], AuthorRecord]]) -> None:
    page = Page()
    for post, mentions, author in items:
        page.posts.append(post)
        page.mentions.extend(mentions)
        page.authors.append(author)
    write_page(engine, page)


@pytest.fixture
def synced(store: Engine) -> Engine:
    sync_agencies(store, AGENCIES)
    return store


def view_rows(engine: Engine, view: str, period: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT * FROM {view} ORDER BY agency, {period}, platform, scope")).mappings()
        return [dict(r) for r in rows]


def test_enrich_scores_each_agency_and_fills_the_views(synced: Engine) -> None:
    write(synced, [
        make_post(1, day=0, agencies={"alpha-pd": "name"}, mood="good", author="a"),
        make_post(2, day=0, agencies={"alpha-pd": "name"}, mood="good", author="b"),
        make_post(3, day=0, agencies={"alpha-pd": "name"}, mood="bad", author="a"),
        make_post(4, day=1, agencies={"beta-so": "name"}, mood="bad", author="c"),
        make_post(5, day=8, agencies={"alpha-pd": "name"}, mood="flat", author="a"),
        make_post(6, day=1, agencies={"alpha-pd": "thread"}, mood="flat", platform="reddit", author="r1"),
    ])
    result = trends.enrich(synced, batch_size=2)
    assert result["posts_scored"] == 6 and result["scores_written"] == 6 and result["batches"] == 3
    with synced.connect() as conn:
        scores = conn.execute(text(
            "SELECT p.platform_post_id, s.scorer, s.scorer_version, s.sentiment, s.trust_score "
            "FROM post_scores s JOIN posts p ON p.id = s.post_id ORDER BY p.platform_post_id")).all()
    assert {(s.scorer, s.scorer_version) for s in scores} == {(SCORER_NAME, SCORER_VERSION)}
    by_post = {s.platform_post_id: s for s in scores}
    assert by_post["1001"].trust_score > 0.3 and by_post["1003"].trust_score < -0.3
    assert abs(by_post["1005"].trust_score) < 0.3

    daily = view_rows(synced, "agency_daily_trend", "day")
    alpha_day0 = next(r for r in daily if r["agency"] == "alpha-pd" and str(r["day"]) == "2026-10-05")
    assert alpha_day0["platform"] == "x" and alpha_day0["scope"] == "direct"
    assert alpha_day0["mentions"] == 3 and alpha_day0["unique_authors"] == 2 and alpha_day0["scored"] == 3
    assert alpha_day0["positive_share"] == pytest.approx(2 / 3) and alpha_day0["negative_share"] == pytest.approx(1 / 3)
    expected_mean = statistics.mean(by_post[p].trust_score for p in ("1001", "1002", "1003"))
    assert alpha_day0["mean_trust"] == pytest.approx(expected_mean, abs=1e-9)
    assert alpha_day0["trust_stddev"] == pytest.approx(
        statistics.stdev(by_post[p].trust_score for p in ("1001", "1002", "1003")), abs=1e-9)
    thread = [r for r in daily if r["scope"] == "thread"]
    assert [(r["agency"], str(r["day"]), r["platform"], r["mentions"]) for r in thread] == [
        ("alpha-pd", "2026-10-06", "reddit", 1)]

    weekly = view_rows(synced, "agency_weekly_trend", "week")
    alpha_weeks = sorted((str(r["week"]), r["scope"], r["mentions"], r["unique_authors"])
                         for r in weekly if r["agency"] == "alpha-pd")
    # Week of Oct 5: 3 direct posts by 2 authors; the thread row apart; week of Oct 12: 1 post.
    assert alpha_weeks == [("2026-10-05", "direct", 3, 2), ("2026-10-05", "thread", 1, 1),
                           ("2026-10-12", "direct", 1, 1)]


def test_two_agencies_in_one_post_get_their_own_sentences(synced: Engine) -> None:
    body = ("Thank you Alpha Police Department for finding my son, so kind and professional. "
            "Meanwhile Beta Sheriff's Office lied to us and covered up the crash.")
    post = PostRecord("x", "1001", "post", DAY0, text=body, author_platform_id="u1")
    mentions = [MentionRecord("x", "1001", a.slug, a.name, "name", body.index(a.name), body.index(a.name) + len(a.name))
                for a in AGENCIES[:2]]
    write_page(synced, Page(posts=[post], mentions=mentions, authors=[AuthorRecord("x", "u1")]))
    trends.enrich(synced)
    with synced.connect() as conn:
        trust = dict(conn.execute(text(
            "SELECT a.slug, s.trust_score FROM post_scores s JOIN agencies a ON a.id = s.agency_id")).all())
    assert trust["alpha-pd"] > 0.3 and trust["beta-so"] < -0.3


def test_new_scorer_version_keeps_the_old_rows(synced: Engine) -> None:
    write(synced, [make_post(i, day=i % 3, agencies={"alpha-pd": "name"}, mood="good") for i in range(6)])
    trends.enrich(synced)
    again = trends.enrich(synced)
    assert again["posts_scored"] == 0 and again["scores_written"] == 0
    trends.enrich(synced, scorer_version="2.0-test")
    with synced.connect() as conn:
        versions = dict(conn.execute(text(
            "SELECT scorer_version, count(*) FROM post_scores GROUP BY scorer_version")).all())
        trend_versions = dict(conn.execute(text(
            "SELECT scorer_version, sum(mentions) FROM agency_daily_trend GROUP BY scorer_version")).all())
    assert versions == {SCORER_VERSION: 6, "2.0-test": 6}
    assert trend_versions == {SCORER_VERSION: 6, "2.0-test": 6}


def test_tombstones_and_late_mentions_reach_the_rollups(synced: Engine) -> None:
    write(synced, [make_post(i, day=0, agencies={"alpha-pd": "name"}) for i in range(4)])
    trends.enrich(synced, margin=dt.timedelta(0))
    # Post 0 is found deleted on a later sighting; post 1 gains a thread mention of beta-so.
    write(synced, [make_post(0, day=0, agencies={"alpha-pd": "name"}, deleted=True),
                   make_post(1, day=0, agencies={"alpha-pd": "name", "beta-so": "thread"})])
    trends.enrich(synced, margin=dt.timedelta(0))
    # A compliance job may tombstone without a new sighting: only deleted_at changes.
    with synced.begin() as conn:
        conn.execute(text("UPDATE posts SET deleted_at = :t WHERE platform_post_id = '1002'")
                     .bindparams(bindparam("t", type_=UTCDateTime())), {"t": dt.datetime.now(dt.UTC)})
    trends.enrich(synced, margin=dt.timedelta(0))
    daily = {(r["agency"], r["scope"]): r["mentions"] for r in view_rows(synced, "agency_daily_trend", "day")}
    assert daily == {("alpha-pd", "direct"): 2, ("beta-so", "thread"): 1}


# ------------------------------------------------------------------------------- incremental = from scratch

ROLLUP_COLUMNS = ("agency_id", "grain", "day", "platform", "scope", "scorer_version", "mentions", "unique_authors",
                  "scored", "sentiment_sum", "sentiment_sq_sum", "trust_sum", "trust_sq_sum", "negative", "positive",
                  "reposts", "agency_posts")


def rollup_snapshot(engine: Engine) -> dict[tuple, tuple]:
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT {', '.join(ROLLUP_COLUMNS)} FROM agency_daily_trends")).all()
    return {tuple(str(v) for v in r[:6]): tuple(round(float(v), 9) for v in r[6:]) for r in rows}


def oracle(engine: Engine) -> dict[tuple, tuple]:
    """The rollups computed in Python from the raw rows: what any correct refresh must produce."""
    with engine.connect() as conn:
        posts = {r.id: r for r in conn.execute(text(
            "SELECT id, platform, author_platform_id, created_at, deleted_at, kind, author_is_agency FROM posts"))}
        mentions = conn.execute(text("SELECT post_id, agency_id, match_kind FROM post_mentions")).all()
        zones = {r.id: ZoneInfo(r.timezone or "UTC") for r in conn.execute(text("SELECT id, timezone FROM agencies"))}
        scores = {(r.post_id, r.agency_id): r for r in conn.execute(text(
            "SELECT post_id, agency_id, sentiment, trust_score FROM post_scores WHERE scorer_version = :v"),
            {"v": SCORER_VERSION})}
    kinds: dict[tuple[int, int], set[str]] = defaultdict(set)
    for m in mentions:
        kinds[(m.post_id, m.agency_id)].add(m.match_kind)
    groups: dict[tuple, list] = defaultdict(list)
    for (post_id, agency_id), ks in kinds.items():
        p = posts[post_id]
        if p.deleted_at is not None:
            continue
        created = p.created_at if isinstance(p.created_at, dt.datetime) else dt.datetime.fromisoformat(p.created_at)
        created = created if created.tzinfo is not None else created.replace(tzinfo=dt.UTC)
        day = created.astimezone(zones[agency_id]).date()  # the agency's own calendar day
        scope = "thread" if ks == {"thread"} else "direct"
        for grain, period in (("day", day), ("week", trends.week_start(day))):
            voice = "agency" if p.author_is_agency else "repost" if p.kind == "repost" else "public"
            groups[(agency_id, grain, period, p.platform, scope)].append((p.author_platform_id,
                                                                        scores.get((post_id, agency_id)), voice))
    out = {}
    for (agency_id, grain, period, platform, scope), everything in groups.items():
        # issue 14: only public voices are mentions; reposts and agency posts are counted apart
        items = [(a, s) for a, s, voice in everything if voice == "public"]
        scored = [s for _, s in items if s is not None]
        key = tuple(str(v) for v in (agency_id, grain, period, platform, scope, SCORER_VERSION))
        out[key] = tuple(round(float(v), 9) for v in (
            len(items), len({a for a, _ in items}), len(scored),
            sum(s.sentiment for s in scored), sum(s.sentiment ** 2 for s in scored),
            sum(s.trust_score for s in scored), sum(s.trust_score ** 2 for s in scored),
            sum(1 for s in scored if s.sentiment <= -0.05), sum(1 for s in scored if s.sentiment >= 0.05),
            sum(1 for *_, v in everything if v == "repost"), sum(1 for *_, v in everything if v == "agency")))
    return out


def assert_same(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for key, values in expected.items():
        assert actual[key] == pytest.approx(values, abs=1e-6), key


post_spec = st.fixed_dictionaries({
    "day": st.integers(0, 16),
    "hour": st.integers(0, 23),
    "platform": st.sampled_from(["x", "reddit"]),
    "agencies": st.dictionaries(st.sampled_from([a.slug for a in AGENCIES]), st.sampled_from(["name", "thread"]),
                                min_size=1, max_size=3),
    "mood": st.sampled_from(sorted(TEXTS)),
    "author": st.sampled_from(["a", "b", "c", "d"]),
    "voice": st.sampled_from(["public", "public", "repost", "agency"]),
})
# Each step: a batch of new posts, re-sightings of earlier posts (with a new mention or a deletion), then enrich.
steps = st.lists(st.tuples(st.lists(post_spec, min_size=0, max_size=6),
                           st.lists(st.tuples(st.integers(0, 40), st.booleans()), max_size=2)),
                 min_size=1, max_size=4)


def run_incremental_equals_scratch(engine: Engine, plan: list, batch_size: int) -> None:
    with engine.begin() as conn:
        for table in ("post_scores", "agency_daily_trends", "post_mentions", "metric_snapshots", "posts", "authors"):
            conn.execute(text(f"DELETE FROM {table}"))
    written: list[dict] = []
    for new_posts, resightings in plan:
        items = []
        for spec in new_posts:
            written.append(dict(spec, i=len(written)))
            items.append(make_post(**written[-1]))
        for index, delete in resightings:
            if written:
                spec = dict(written[index % len(written)])
                if not delete:
                    spec["agencies"] = {**spec["agencies"], "gamma-sp": "thread"}
                    written[index % len(written)] = spec
                items.append(make_post(**spec, deleted=delete))
        if items:
            write(engine, items)
        trends.enrich(engine, batch_size=batch_size, margin=dt.timedelta(0))
    incremental = rollup_snapshot(engine)
    assert_same(incremental, oracle(engine))
    trends.rebuild(engine)
    assert_same(incremental, rollup_snapshot(engine))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=steps, batch_size=st.integers(1, 5))
def test_incremental_rollups_equal_recomputation_sqlite(sqlite_engine: Engine, plan: list, batch_size: int) -> None:
    sync_agencies(sqlite_engine, AGENCIES)
    run_incremental_equals_scratch(sqlite_engine, plan, batch_size)


@pytest.mark.postgres
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=steps, batch_size=st.integers(1, 5))
def test_incremental_rollups_equal_recomputation_postgres(pg_engine: Engine, plan: list, batch_size: int) -> None:
    sync_agencies(pg_engine, AGENCIES)
    run_incremental_equals_scratch(pg_engine, plan, batch_size)


def test_oracle_sees_a_wrong_rollup(synced: Engine) -> None:
    """The comparison is not vacuous: a rollup row changed behind the refresh's back is caught."""
    write(synced, [make_post(i, day=i % 2, agencies={"alpha-pd": "name"}) for i in range(4)])
    trends.enrich(synced)
    with synced.begin() as conn:
        conn.execute(text("UPDATE agency_daily_trends SET mentions = mentions + 1 WHERE grain = 'day' AND "
                          "id = (SELECT min(id) FROM agency_daily_trends)"))
    with pytest.raises(AssertionError):
        assert_same(rollup_snapshot(synced), oracle(synced))


# ------------------------------------------------------------------------------------------------- alerts

BASELINE = [3, 4, 2, 5, 3, 4, 3, 6, 2, 4, 3, 5, 4, 3, 2, 4, 5, 3, 4, 3, 4, 2, 5, 3, 4, 3, 4, 3, 5, 4, 3, 4]


def test_alerts_flag_the_spike_with_its_top_posts(synced: Engine) -> None:
    counts = [*BASELINE, 30, 4]  # day 32 spikes; day 33 is back to normal
    items, i = [], 0
    for day, n in enumerate(counts):
        for k in range(n):
            items.append(make_post(i, day=day, agencies={"alpha-pd": "name"}, hour=k % 24,
                                   likes=500 + k if day == 32 and k < 4 else k))
            i += 1
    items.append(make_post(i, day=32, agencies={"beta-so": "name"}))  # other agencies stay quiet
    write(synced, items)
    trends.enrich(synced)
    with synced.connect() as conn:
        alerts = [dict(r) for r in conn.execute(text(
            "SELECT agency, day, mentions, baseline_median, baseline_mad, baseline_days, robust_z, top_posts "
            "FROM agency_alerts ORDER BY day")).mappings()]
    assert [(a["agency"], str(a["day"])) for a in alerts] == [("alpha-pd", "2026-11-06")]
    alert = alerts[0]
    window = BASELINE[32 - 28:32]
    median = statistics.median(window)
    mad = statistics.median(abs(v - median) for v in window)
    assert alert["mentions"] == 30 and alert["baseline_days"] == 28
    assert float(alert["baseline_median"]) == pytest.approx(median)
    assert float(alert["baseline_mad"]) == pytest.approx(mad)
    assert float(alert["robust_z"]) == pytest.approx((30 - median) / (1.4826 * max(mad, 1.0)))
    top = alert["top_posts"] if isinstance(alert["top_posts"], list) else json.loads(alert["top_posts"])
    assert [p["engagement"] for p in top] == [503, 502, 501]
    assert all(p["url"].startswith("https://example.test/") and p["trust_score"] is not None for p in top)


def test_no_alert_without_enough_history(synced: Engine) -> None:
    items = [make_post(i, day=0, agencies={"alpha-pd": "name"}) for i in range(2)]
    items += [make_post(100 + i, day=5, agencies={"alpha-pd": "name"}) for i in range(40)]
    write(synced, items)
    trends.enrich(synced)
    with synced.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM agency_alerts")).scalar_one() == 0

"""Trend benchmark: rollup views against the raw tables on 1,000,000 posts, and scoring throughput.

    .venv/bin/python bench/trends.py [--posts 1000000] [--runs 5] [--keep] [--out bench/TRENDS_RESULTS.md]

Creates its own PostgreSQL database on the server of TRUSTWATCH_TEST_PG_URL (default: the local one),
migrates it, loads the agency registry and generates a year of posts, mentions and scores with
generate_series (seconds, not hours), builds the rollups from scratch, then asks each question twice in
the same run: through the analyst view and through the raw tables, checks the answers agree, and
reports median timings.  Scoring throughput compares the trust scorer (mention context + lexicon +
VADER) with plain whole-text VADER on sandbox-corpus posts.  Drops the database unless --keep.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trustwatch.analysis import trends
from trustwatch.analysis.scoring import SCORER_NAME, SCORER_VERSION, MentionSpan, Scorer
from trustwatch.models.db import make_engine
from trustwatch.models.store import sync_agencies

from trustwatch import migrate

END = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)  # a Monday: the year is 52 whole weeks
START = END - dt.timedelta(weeks=52)

TEXTS = [
    "Thank you officers for the quick response last night, really professional.",
    "Another lawsuit over excessive force. When does this end?",
    "Road closed near the station, police on scene.",
    "Filed a complaint about the traffic stop, still no callback.",
    "Community meeting with the department on Thursday about body cams.",
    "Great job at the parade today, everyone stayed safe.",
    "They covered up the whole thing and lied to the family.",
    "Why is the department asking for a bigger budget again?",
]

GENERATE = """
INSERT INTO authors (platform, platform_user_id, username, first_seen_at, last_seen_at)
SELECT CASE WHEN g % 10 < 7 THEN 'x' ELSE 'reddit' END, 'u' || g, 'user' || g, :start, :start
FROM generate_series(1, :authors) g;

INSERT INTO posts (platform, platform_post_id, kind, author_id, author_platform_id, text, lang, created_at,
                   like_count, repost_count, reply_count, score, first_collected_at, last_collected_at)
SELECT platform, 'p' || g, CASE WHEN platform = 'x' THEN 'post' ELSE 'comment' END, author,
       'u' || author, (CAST(:texts AS text[]))[1 + (g % 8)], 'en', created,
       (random() * 20)::int, (random() * 5)::int, (random() * 3)::int,
       CASE WHEN platform = 'reddit' THEN (random() * 50)::int END, :start, :start
FROM (
    SELECT g, CASE WHEN (g * 7) % 10 < 7 THEN 'x' ELSE 'reddit' END AS platform,
           1 + (g::bigint * 7919) % :authors AS author,
           :start + (random() * extract(epoch FROM (:end - :start))) * interval '1 second' AS created
    FROM generate_series(1, :posts) g
) s;

-- One agency per post, popular agencies far more often (squared uniform), a second one for 10 %.
INSERT INTO post_mentions (post_id, agency_id, matched_term, match_kind, post_created_at, platform)
SELECT p.id, ag.ids[1 + floor(power(random(), 2) * ag.n)::int],
       'term', CASE WHEN p.platform = 'reddit' AND p.id % 4 = 0 THEN 'thread' ELSE 'name' END,
       p.created_at, p.platform
FROM posts p, (SELECT array_agg(id ORDER BY id) AS ids, count(*) AS n FROM agencies) ag;
INSERT INTO post_mentions (post_id, agency_id, matched_term, match_kind, post_created_at, platform)
SELECT p.id, ag.ids[1 + floor(random() * ag.n)::int], 'term2', 'alias', p.created_at, p.platform
FROM posts p, (SELECT array_agg(id ORDER BY id) AS ids, count(*) AS n FROM agencies) ag
WHERE p.id % 10 = 0
ON CONFLICT DO NOTHING;

INSERT INTO post_scores (post_id, agency_id, scorer, scorer_version, sentiment, trust_score, scored_at)
SELECT DISTINCT ON (m.post_id, m.agency_id) m.post_id, m.agency_id, :scorer, :version,
       round((random() * 2 - 1)::numeric, 4), round((random() * 2 - 1)::numeric, 4), :start
FROM post_mentions m;
"""

NEW_POSTS = """
INSERT INTO posts (platform, platform_post_id, kind, author_id, author_platform_id, text, lang, created_at,
                   like_count, repost_count, reply_count, score, first_collected_at, last_collected_at)
SELECT platform, 'n' || g, CASE WHEN platform = 'x' THEN 'post' ELSE 'comment' END, author,
       'u' || author, (CAST(:texts AS text[]))[1 + (g % 8)], 'en', created, 0, 0, 0,
       CASE WHEN platform = 'reddit' THEN 0 END, :end, :end
FROM (
    SELECT g, CASE WHEN (g * 7) % 10 < 7 THEN 'x' ELSE 'reddit' END AS platform,
           1 + (g::bigint * 7919) % :authors AS author,
           :end - (random() * 14 * 86400) * interval '1 second' AS created
    FROM generate_series(1, :n) g
) s;
INSERT INTO post_mentions (post_id, agency_id, matched_term, match_kind, post_created_at, platform)
SELECT p.id, ag.ids[1 + floor(power(random(), 2) * ag.n)::int], 'term', 'name', p.created_at, p.platform
FROM posts p, (SELECT array_agg(id ORDER BY id) AS ids, count(*) AS n FROM agencies) ag
WHERE p.platform_post_id LIKE 'n%';
INSERT INTO post_mentions (post_id, agency_id, matched_term, match_kind, post_created_at, platform)
SELECT p.id, ag.ids[1 + floor(random() * ag.n)::int], 'term2', 'alias', p.created_at, p.platform
FROM posts p, (SELECT array_agg(id ORDER BY id) AS ids, count(*) AS n FROM agencies) ag
WHERE p.platform_post_id LIKE 'n%' AND p.id % 10 = 0
ON CONFLICT DO NOTHING;
INSERT INTO metric_snapshots (post_id, post_created_at, observed_at, like_count)
SELECT id, created_at, :end, 0 FROM posts WHERE platform_post_id LIKE 'n%';
"""

VIEW_ONE = """
SELECT agency, week, platform, scope, mentions, unique_authors, scored, mean_sentiment, sentiment_stddev,
       negative_share, positive_share, mean_trust, trust_stddev
FROM agency_weekly_trend
WHERE agency = :slug AND scorer_version = :version AND week >= :first AND week < :stop
ORDER BY agency, week, platform, scope
"""
VIEW_ALL = VIEW_ONE.replace("agency = :slug AND ", "")

#: The raw-table answer, written independently of analysis/trends.py: a post's week is its agency's local ISO
#: week (agencies.timezone, UTC without one; issue 16), as in the rollups.  The UTC range is widened by a day
#: either side (time zones lie within 14 hours of UTC) and the local week decides.
RAW_ONE = """
WITH pm AS (
    SELECT m.post_id, m.agency_id, p.platform, p.author_platform_id AS author,
           CAST(date_trunc('week', p.created_at AT TIME ZONE coalesce(a.timezone, 'UTC')) AS date) AS week,
           CASE WHEN min(CASE WHEN m.match_kind = 'thread' THEN 1 ELSE 0 END) = 1
                THEN 'thread' ELSE 'direct' END AS scope
    FROM post_mentions m
    JOIN posts p ON p.id = m.post_id
    JOIN agencies a ON a.id = m.agency_id
    WHERE p.deleted_at IS NULL {agency_filter}
      AND m.post_created_at >= CAST(:start AS timestamptz) - interval '1 day'
      AND m.post_created_at < CAST(:end AS timestamptz) + interval '1 day'
    GROUP BY m.post_id, m.agency_id, p.platform, p.author_platform_id, 5
)
SELECT a.slug AS agency, pm.week, pm.platform, pm.scope, count(*) AS mentions,
       count(DISTINCT pm.author) AS unique_authors, count(s.post_id) AS scored,
       avg(s.sentiment) AS mean_sentiment, stddev_samp(s.sentiment) AS sentiment_stddev,
       CAST(count(CASE WHEN s.sentiment <= -0.05 THEN 1 END) AS double precision) / nullif(count(s.post_id), 0)
           AS negative_share,
       CAST(count(CASE WHEN s.sentiment >= 0.05 THEN 1 END) AS double precision) / nullif(count(s.post_id), 0)
           AS positive_share,
       avg(s.trust_score) AS mean_trust, stddev_samp(s.trust_score) AS trust_stddev
FROM pm
JOIN agencies a ON a.id = pm.agency_id
LEFT JOIN post_scores s ON s.post_id = pm.post_id AND s.agency_id = pm.agency_id
                       AND s.scorer = :scorer AND s.scorer_version = :version
WHERE pm.week >= :first AND pm.week < :stop
GROUP BY a.slug, pm.week, pm.platform, pm.scope
ORDER BY agency, week, platform, scope
"""
RAW_ALL = RAW_ONE.format(agency_filter="")
RAW_ONE = RAW_ONE.format(agency_filter="AND m.agency_id = (SELECT id FROM agencies WHERE slug = :slug)")


def timed(conn, sql: str, params: dict, runs: int) -> tuple[float, list]:
    """Median wall time in ms over ``runs`` after one warm-up, and the rows of the last run."""
    rows = conn.execute(text(sql), params).all()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        rows = conn.execute(text(sql), params).all()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), rows


def same_answer(view_rows: list, raw_rows: list) -> bool:
    """Counts equal, means and shares equal to 1e-6 (sums of floats add up in another order)."""
    if len(view_rows) != len(raw_rows):
        return False
    for v, r in zip(view_rows, raw_rows, strict=True):
        if tuple(v[:7]) != tuple(r[:7]):
            return False
        for a, b in zip(v[7:], r[7:], strict=True):
            if (a is None) != (b is None) or (a is not None and abs(float(a) - float(b)) > 1e-6):
                return False
    return True


def scoring_throughput(n: int) -> dict:
    """Posts per second: the trust scorer against plain whole-text VADER, on sandbox-corpus posts."""
    from trustwatch.collectors.agencies import Matcher, load_registry
    from trustwatch.sandbox.common import CorpusConfig
    from trustwatch.sandbox.x_corpus import XCorpus

    registry = load_registry()
    matcher = Matcher(registry)
    ids = {e.slug: i for i, e in enumerate(registry.entries)}
    corpus = XCorpus(CorpusConfig(seed=5, posts=n, end=END), registry.entries)
    posts = [(t.full_text, [MentionSpan(ids[m.agency_slug], m.start, m.end) for m in matcher.match(t.full_text)])
             for t in corpus.tweets.values()]
    posts = [(body, spans) for body, spans in posts if spans]
    scorer = Scorer()
    vader = scorer.vader
    vader.polarity_scores("warm up")
    t0 = time.perf_counter()
    for body, _ in posts:
        vader.polarity_scores(body)
    plain = len(posts) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for body, spans in posts:
        scorer.score_post(body, None, spans)
    ours = len(posts) / (time.perf_counter() - t0)
    return {"posts": len(posts), "vader_posts_s": plain, "scorer_posts_s": ours,
            "mean_chars": statistics.mean(len(b) for b, _ in posts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--enrich-posts", type=int, default=100_000,
                        help="posts whose scores are dropped and re-made by enrich() on the big store")
    parser.add_argument("--new-posts", type=int, default=100_000,
                        help="new posts (last 14 days, unscored) added to the store and enriched")
    parser.add_argument("--workers", type=int, default=None,
                        help="enrich() worker processes (default: TRUSTWATCH_ENRICH_WORKERS, else the cores)")
    parser.add_argument("--score-posts", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("TRENDS_RESULTS.md"))
    args = parser.parse_args()

    admin_url = os.environ.get("TRUSTWATCH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    if admin_url.startswith("postgresql://"):
        admin_url = "postgresql+psycopg://" + admin_url.split("://", 1)[1]
    name = f"tw_bench_trends_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    lines: list[str] = []

    def report(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    try:
        migrate.upgrade(engine)
        from trustwatch.collectors.agencies import load_registry

        registry = load_registry()
        sync_agencies(engine, registry.entries)
        t0 = time.perf_counter()
        with engine.begin() as conn:
            for statement in GENERATE.split(";\n"):
                if statement.strip():
                    conn.execute(text(statement), {
                        "start": START, "end": END, "posts": args.posts, "authors": max(1000, args.posts // 20),
                        "texts": TEXTS, "scorer": SCORER_NAME, "version": SCORER_VERSION})
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
            counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                      for t in ("posts", "post_mentions", "post_scores", "authors", "agencies")}
        generate_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rollup_rows = trends.rebuild(engine)
        rebuild_s = time.perf_counter() - t0
        with engine.begin() as conn:
            conn.execute(text("ANALYZE agency_daily_trends"))
            top = conn.execute(text(
                "SELECT a.slug, count(*) FROM post_mentions m JOIN agencies a ON a.id = m.agency_id "
                "GROUP BY a.slug ORDER BY count(*) DESC LIMIT 1")).one()
            server = conn.execute(text("SHOW server_version")).scalar_one()

        report(f"## Trend benchmark ({dt.date.today().isoformat()}, PostgreSQL {server}, {os.cpu_count()} cores)")
        report("")
        report(f"Store: {counts['posts']:,} posts over 52 weeks, {counts['post_mentions']:,} mentions of "
               f"{counts['agencies']} agencies (skewed: the busiest, {top.slug}, has {top[1]:,}), "
               f"{counts['post_scores']:,} scores, {counts['authors']:,} authors; generated in {generate_s:.1f} s.")
        report(f"Rollups built from scratch (`analysis.trends.rebuild`, daily and weekly rows): {rollup_rows:,} rows "
               f"in {rebuild_s:.1f} s.")
        report("")
        report(f"Median of {args.runs} runs after a warm-up; both answers are compared row by row.")
        report("")
        report("| question | analyst view | raw tables | speed-up | rows | same answer |")
        report("|---|---|---|---|---|---|")
        params = {"slug": top.slug, "version": SCORER_VERSION, "scorer": SCORER_NAME, "first": START.date(),
                  "stop": END.date(), "start": START, "end": END}
        with engine.connect() as conn:
            for label, view_sql, raw_sql in (
                (f"weekly trend of one agency ({top.slug}) over a year", VIEW_ONE, RAW_ONE),
                ("weekly trend of all agencies over a year", VIEW_ALL, RAW_ALL),
            ):
                view_ms, view_rows = timed(conn, view_sql, params, args.runs)
                raw_ms, raw_rows = timed(conn, raw_sql, params, max(1, min(args.runs, 3)))
                report(f"| {label} | {view_ms:.1f} ms | {raw_ms:.0f} ms | {raw_ms / view_ms:.0f}x | "
                       f"{len(view_rows):,} | {same_answer(view_rows, raw_rows)} |")
            alerts_ms, alerts = timed(conn, "SELECT * FROM agency_alerts WHERE agency = :slug", params, 3)
            all_alerts_ms, all_alerts = timed(conn, "SELECT agency, day, robust_z FROM agency_alerts", params, 3)
        report("")
        report(f"`agency_alerts` (median/MAD over a zero-filled trailing 28 days, computed at query time): "
               f"one agency {alerts_ms:.0f} ms ({len(alerts)} alerts), all agencies {all_alerts_ms:.0f} ms "
               f"({len(all_alerts)} alerts: chance fluctuations of rarely mentioned agencies in random data).")

        # Incremental enrichment on the big store: drop the scores of N posts spread over the year, re-make them.
        with engine.begin() as conn:
            conn.execute(text(
                "DELETE FROM post_scores WHERE post_id IN (SELECT id FROM posts ORDER BY md5(id::text) LIMIT :n)"),
                {"n": args.enrich_posts})
        with engine.begin() as conn:
            conn.execute(text("ANALYZE post_scores"))
        result = trends.enrich(engine, batch_size=1000, workers=args.workers)
        report("")
        report(f"`enrich()` on the {counts['posts']:,}-post store after dropping the scores of "
               f"{args.enrich_posts:,} random posts (spread over the year, so every day's rollups are "
               f"recomputed), {result['workers']} worker processes: "
               f"{result['posts_scored']:,} posts scored ({result['scores_written']:,} scores) and "
               f"{result['days_refreshed']} days refreshed in {result['seconds']:.1f} s "
               f"({result['posts_scored'] / result['seconds']:,.0f} posts/s end to end, database included).")
        # New posts as a collection brings them: created over the last 14 days, mentions, no scores yet.
        with engine.begin() as conn:
            for statement in NEW_POSTS.split(";\n"):
                if statement.strip():
                    conn.execute(text(statement), {"n": args.new_posts, "end": END, "texts": TEXTS,
                                                   "authors": max(1000, args.posts // 20)})
            conn.execute(text("ANALYZE"))
        new = trends.enrich(engine, batch_size=1000, workers=args.workers)
        report("")
        report(f"`enrich()` of {args.new_posts:,} new posts (created over the last 14 days, as a collection "
               f"brings them) on the same store, {new['workers']} worker processes: "
               f"{new['posts_scored']:,} posts scored ({new['scores_written']:,} scores), "
               f"{new['days_refreshed']} days refreshed in {new['seconds']:.1f} s "
               f"(**{new['posts_scored'] / new['seconds']:,.0f} posts/s** end to end, database included).")
        with engine.connect() as conn:
            view_ms, view_rows = timed(conn, VIEW_ALL, params, 1)
            raw_ms, raw_rows = timed(conn, RAW_ALL, params, 1)
        report(f"After both, the views still give the raw tables' answer: {same_answer(view_rows, raw_rows)}.")

        tp = scoring_throughput(args.score_posts)
        report("")
        report(f"Scoring throughput, one core, {tp['posts']:,} sandbox posts with mentions "
               f"(mean {tp['mean_chars']:.0f} characters):")
        report("")
        report("| scorer | posts/s |")
        report("|---|---|")
        report(f"| plain VADER, whole text | {tp['vader_posts_s']:,.0f} |")
        report(f"| {SCORER_NAME} {SCORER_VERSION} (mention context + lexicon + VADER) | {tp['scorer_posts_s']:,.0f} |")
    finally:
        engine.dispose()
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()

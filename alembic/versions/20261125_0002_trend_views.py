"""trend analysis: weekly grain and spread sums in agency_daily_trends; views agency_daily_trend,
agency_weekly_trend and agency_alerts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 21:10:00

The rollup table gains a ``grain`` column ('day' or 'week') because distinct authors of a week cannot be
added up from distinct authors of its days; weekly rows are refreshed with the daily ones.  The sums of
squares give the views a standard deviation (the "spread" of the trend report).  The views differ per
dialect only in date arithmetic and JSON functions.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_UNIQUE = "uq_agency_daily_trends_agency_id_day_platform_scope_scorer_version"
NEW_UNIQUE = "uq_agency_daily_trends_key"
OLD_UNIQUE_COLUMNS = ["agency_id", "day", "platform", "scope", "scorer_version"]
NEW_UNIQUE_COLUMNS = ["agency_id", "scorer_version", "grain", "day", "platform", "scope"]

#: Spike rule of agency_alerts (also in docs/ANALYSIS.md and analysis/trends.py).
BASELINE_DAYS = 28
MIN_BASELINE_DAYS = 14
MIN_MENTIONS = 5
Z_THRESHOLD = 3.5
MAD_FLOOR = 1.0

TABLE_COMMENT = (
    "Daily and weekly mentions, authors, sentiment and trust per agency, platform and scope; "
    "read it through the views agency_daily_trend and agency_weekly_trend."
)
OLD_TABLE_COMMENT = "Daily mentions, authors, sentiment and trust per agency, platform and scope."

#: (column, new comment, old comment, type) for columns whose meaning the weekly grain widens.
COMMENTS = [
    ("day", "UTC day, or the Monday of the week for grain 'week'.", "UTC day.", sa.Date()),
    ("scope", "'direct' (the post names the agency) or 'thread' (only inherited from its thread).",
     "'direct' mentions or 'thread' (inherited).", sa.String(10)),
    ("unique_authors", "Distinct authors in the period.", "Distinct authors.", sa.Integer()),
    ("scored", "Posts with a score of this version.", "Posts with a score.", sa.Integer()),
    ("negative", "Scored posts with sentiment <= -0.05.", "Posts with sentiment <= -0.05.", sa.Integer()),
    ("positive", "Scored posts with sentiment >= 0.05.", "Posts with sentiment >= 0.05.", sa.Integer()),
]


def _period_columns(dialect: str) -> str:
    sqrt_var = (
        "CASE WHEN t.scored > 1 THEN sqrt({greatest}(0.0, (t.{col}_sq_sum - t.{col}_sum * t.{col}_sum / t.scored)"
        " / (t.scored - 1))) END"
    )
    greatest = "greatest" if dialect == "postgresql" else "max"
    real = "double precision" if dialect == "postgresql" else "REAL"
    return f"""
    t.platform,
    t.scope,
    t.scorer_version,
    t.mentions,
    t.unique_authors,
    t.scored,
    CASE WHEN t.scored > 0 THEN t.sentiment_sum / t.scored END AS mean_sentiment,
    {sqrt_var.format(greatest=greatest, col='sentiment')} AS sentiment_stddev,
    CASE WHEN t.scored > 0 THEN CAST(t.negative AS {real}) / t.scored END AS negative_share,
    CASE WHEN t.scored > 0 THEN CAST(t.positive AS {real}) / t.scored END AS positive_share,
    CASE WHEN t.scored > 0 THEN t.trust_sum / t.scored END AS mean_trust,
    {sqrt_var.format(greatest=greatest, col='trust')} AS trust_stddev,
    t.updated_at
FROM agency_daily_trends t
JOIN agencies a ON a.id = t.agency_id"""


def _trend_view(name: str, period: str, grain: str, dialect: str) -> str:
    return f"""
CREATE VIEW {name} AS
SELECT
    a.slug AS agency,
    a.name AS agency_name,
    t.day AS {period},{_period_columns(dialect)}
WHERE t.grain = '{grain}'
"""


def _alerts_view(dialect: str) -> str:
    pg = dialect == "postgresql"
    minus_k = "d.day - o.k" if pg else "date(d.day, '-' || o.k || ' days')"
    greatest = "greatest" if pg else "max"
    real = "double precision" if pg else "REAL"
    if pg:
        day_start = "(z.day::timestamp AT TIME ZONE 'UTC')"
        day_end = "((z.day + 1)::timestamp AT TIME ZONE 'UTC')"
        top = """(SELECT jsonb_agg(jsonb_build_object('post_id', t.id, 'platform', t.platform, 'url', t.url,
                                       'created_at', t.created_at, 'text', t.text, 'engagement', t.engagement,
                                       'sentiment', t.sentiment, 'trust_score', t.trust_score)
                    ORDER BY t.engagement DESC, t.id)"""
        text_expr = "left(p.text, 280)"
    else:
        day_start = "z.day"
        day_end = "date(z.day, '+1 day')"
        top = """(SELECT json_group_array(json_object('post_id', t.id, 'platform', t.platform, 'url', t.url,
                                       'created_at', t.created_at, 'text', t.text, 'engagement', t.engagement,
                                       'sentiment', t.sentiment, 'trust_score', t.trust_score))"""
        text_expr = "substr(p.text, 1, 280)"
    ranked = """
    SELECT agency_id, scorer_version, day, {value} AS v,
           row_number() OVER (PARTITION BY agency_id, scorer_version, day ORDER BY {value}) AS rn,
           count(*) OVER (PARTITION BY agency_id, scorer_version, day) AS cnt
    FROM {source}"""
    if pg:
        # Per day, a lateral lookup of the trailing days through the rollup's unique index: the generic
        # window-function form below makes PostgreSQL's planner misjudge row counts and loop quadratically.
        baseline = f"""
CREATE VIEW agency_alerts AS
WITH daily AS (
    SELECT agency_id, scorer_version, day, sum(mentions) AS mentions, sum(scored) AS scored,
           sum(sentiment_sum) AS sentiment_sum, sum(trust_sum) AS trust_sum
    FROM agency_daily_trends
    WHERE grain = 'day'
    GROUP BY agency_id, scorer_version, day
),
z AS (
    SELECT d.agency_id, d.scorer_version, d.day, d.mentions, d.scored, d.sentiment_sum, d.trust_sum,
           b.median, b.baseline_days, b.mad,
           (d.mentions - b.median) / (1.4826 * greatest(b.mad, {MAD_FLOOR})) AS robust_z
    FROM daily d
    CROSS JOIN LATERAL (
        SELECT w.median, w.baseline_days,
               (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(v - w.median)) FROM unnest(w.vals) v) AS mad
        FROM (
            SELECT array_agg(coalesce(x.n, 0)) AS vals, count(*) AS baseline_days,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY coalesce(x.n, 0)) AS median
            FROM generate_series(
                greatest(d.day - {BASELINE_DAYS}, (SELECT min(c.day) FROM agency_daily_trends c
                                                   WHERE c.scorer_version = d.scorer_version AND c.grain = 'day')),
                d.day - 1, interval '1 day') g
            LEFT JOIN (
                SELECT t.day, sum(t.mentions) AS n FROM agency_daily_trends t
                WHERE t.agency_id = d.agency_id AND t.scorer_version = d.scorer_version AND t.grain = 'day'
                  AND t.day >= d.day - {BASELINE_DAYS} AND t.day < d.day
                GROUP BY t.day
            ) x ON x.day = CAST(g AS date)
        ) w
    ) b
)
"""
    else:
        baseline = f"""
CREATE VIEW agency_alerts AS
WITH RECURSIVE offsets(k) AS (
    SELECT 1 UNION ALL SELECT k + 1 FROM offsets WHERE k < {BASELINE_DAYS}
),
daily AS (
    SELECT agency_id, scorer_version, day, sum(mentions) AS mentions, sum(scored) AS scored,
           sum(sentiment_sum) AS sentiment_sum, sum(trust_sum) AS trust_sum
    FROM agency_daily_trends
    WHERE grain = 'day'
    GROUP BY agency_id, scorer_version, day
),
coverage AS (
    SELECT scorer_version, min(day) AS first_day FROM daily GROUP BY scorer_version
),
window_values AS (
    SELECT d.agency_id, d.scorer_version, d.day, coalesce(x.mentions, 0) AS n
    FROM daily d
    JOIN coverage c ON c.scorer_version = d.scorer_version
    JOIN offsets o ON {minus_k} >= c.first_day
    LEFT JOIN daily x ON x.agency_id = d.agency_id AND x.scorer_version = d.scorer_version
                     AND x.day = {minus_k}
),
ranked_values AS ({ranked.format(value='n', source='window_values')}
),
medians AS (
    SELECT agency_id, scorer_version, day, CAST(avg(v) AS {real}) AS median, max(cnt) AS baseline_days
    FROM ranked_values
    WHERE rn IN ((cnt + 1) / 2, (cnt + 2) / 2)
    GROUP BY agency_id, scorer_version, day
),
deviations AS (
    SELECT w.agency_id, w.scorer_version, w.day, abs(w.n - m.median) AS dev
    FROM window_values w
    JOIN medians m ON m.agency_id = w.agency_id AND m.scorer_version = w.scorer_version AND m.day = w.day
),
ranked_deviations AS ({ranked.format(value='dev', source='deviations')}
),
mads AS (
    SELECT agency_id, scorer_version, day, CAST(avg(v) AS {real}) AS mad
    FROM ranked_deviations
    WHERE rn IN ((cnt + 1) / 2, (cnt + 2) / 2)
    GROUP BY agency_id, scorer_version, day
),
z AS (
    SELECT d.agency_id, d.scorer_version, d.day, d.mentions, d.scored, d.sentiment_sum, d.trust_sum,
           m.median, m.baseline_days, s.mad,
           (d.mentions - m.median) / (1.4826 * {greatest}(s.mad, {MAD_FLOOR})) AS robust_z
    FROM daily d
    JOIN medians m ON m.agency_id = d.agency_id AND m.scorer_version = d.scorer_version AND m.day = d.day
    JOIN mads s ON s.agency_id = d.agency_id AND s.scorer_version = d.scorer_version AND s.day = d.day
)
"""
    return baseline + f"""
SELECT
    a.slug AS agency,
    a.name AS agency_name,
    z.day,
    z.scorer_version,
    z.mentions,
    z.median AS baseline_median,
    z.mad AS baseline_mad,
    z.baseline_days,
    z.robust_z,
    CASE WHEN z.scored > 0 THEN z.sentiment_sum / z.scored END AS mean_sentiment,
    CASE WHEN z.scored > 0 THEN z.trust_sum / z.scored END AS mean_trust,
    {top}
     FROM (SELECT p.id, p.platform, p.url, p.created_at, {text_expr} AS text,
                  coalesce(p.like_count, 0) + coalesce(p.repost_count, 0) + coalesce(p.reply_count, 0)
                  + coalesce(p.quote_count, 0) + coalesce(p.score, 0) AS engagement,
                  sc.sentiment, sc.trust_score
           FROM posts p
           LEFT JOIN post_scores sc ON sc.post_id = p.id AND sc.agency_id = z.agency_id
                                    AND sc.scorer_version = z.scorer_version
           WHERE p.deleted_at IS NULL AND p.created_at >= {day_start} AND p.created_at < {day_end}
             AND EXISTS (SELECT 1 FROM post_mentions m WHERE m.post_id = p.id AND m.agency_id = z.agency_id)
           ORDER BY engagement DESC, p.id
           LIMIT 3) t) AS top_posts
FROM z
JOIN agencies a ON a.id = z.agency_id
WHERE z.baseline_days >= {MIN_BASELINE_DAYS} AND z.mentions >= {MIN_MENTIONS} AND z.robust_z >= {Z_THRESHOLD}
"""


VIEW_COMMENTS = {
    "agency_daily_trend": (
        "Per agency, UTC day, platform, scope (direct or thread) and scorer version: mentions, distinct authors, "
        "mean and spread of sentiment and trust, shares of negative and positive posts; tombstones left out."
    ),
    "agency_weekly_trend": (
        "As agency_daily_trend per ISO week (week = its Monday, UTC); distinct authors counted over the week."
    ),
    "agency_alerts": (
        f"Days whose mentions of an agency exceed its trailing {BASELINE_DAYS}-day median by a robust z-score "
        f"(MAD-based) of at least {Z_THRESHOLD}, with at least {MIN_MENTIONS} mentions and "
        f"{MIN_BASELINE_DAYS} days of baseline; top_posts holds the day's 3 most engaged posts."
    ),
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("agency_daily_trends") as batch:
        batch.add_column(sa.Column(
            "grain", sa.String(length=4), server_default="day", nullable=False,
            comment="'day': one UTC day; 'week': the ISO week (Monday to Sunday, UTC) starting on `day`.",
        ))
        batch.add_column(sa.Column("sentiment_sq_sum", sa.Float(), server_default="0", nullable=False,
                                   comment="Sum of squared sentiment (for the spread)."))
        batch.add_column(sa.Column("trust_sq_sum", sa.Float(), server_default="0", nullable=False,
                                   comment="Sum of squared trust scores (for the spread)."))
        batch.drop_constraint(op.f(OLD_UNIQUE), type_="unique")
        batch.create_unique_constraint(NEW_UNIQUE, NEW_UNIQUE_COLUMNS)
        batch.create_check_constraint("grain", "grain IN ('day', 'week')")
    if dialect == "postgresql":
        op.create_table_comment("agency_daily_trends", TABLE_COMMENT, existing_comment=OLD_TABLE_COMMENT)
        for column, new, old, type_ in COMMENTS:
            op.alter_column("agency_daily_trends", column, comment=new, existing_comment=old,
                            existing_type=type_, existing_nullable=False)
    op.execute(_trend_view("agency_daily_trend", "day", "day", dialect))
    op.execute(_trend_view("agency_weekly_trend", "week", "week", dialect))
    op.execute(_alerts_view(dialect))
    if dialect == "postgresql":
        for view, comment in VIEW_COMMENTS.items():
            quoted = comment.replace("'", "''")
            op.execute(f"COMMENT ON VIEW {view} IS '{quoted}'")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for view in ("agency_alerts", "agency_weekly_trend", "agency_daily_trend"):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    op.execute("DELETE FROM agency_daily_trends WHERE grain <> 'day'")
    if dialect == "postgresql":
        op.create_table_comment("agency_daily_trends", OLD_TABLE_COMMENT, existing_comment=TABLE_COMMENT)
        for column, new, old, type_ in COMMENTS:
            op.alter_column("agency_daily_trends", column, comment=old, existing_comment=new,
                            existing_type=type_, existing_nullable=False)
    with op.batch_alter_table("agency_daily_trends") as batch:
        batch.drop_constraint(op.f("ck_agency_daily_trends_grain"), type_="check")
        batch.drop_constraint(NEW_UNIQUE, type_="unique")
        batch.create_unique_constraint(op.f(OLD_UNIQUE), OLD_UNIQUE_COLUMNS)
        batch.drop_column("trust_sq_sum")
        batch.drop_column("sentiment_sq_sum")
        batch.drop_column("grain")

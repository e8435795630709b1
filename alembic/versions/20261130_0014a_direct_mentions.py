"""public direct mentions apart from reposts and agencies' own posts; agency_mentions one row per post and
agency; a shared per-app request limiter

Revision ID: 0014a
Revises: 0004
Create Date: 2026-11-30 05:00:00

Issue 14, points 1, 2, 4 and 7:

- ``posts.author_is_agency`` marks posts written by an agency's own X account (its registry handle), and
  ``post_mentions.via_repost`` the mentions found only in the reposted text of a repost ("RT @NYPDnews:
  ..."): amplification and agency speech, not public opinion.
- ``agency_daily_trends`` counts public direct mentions in ``mentions`` (originals, replies and quotes by
  authors that are not agencies) and gains ``reposts`` and ``agency_posts``; the trend views and
  ``agency_alerts`` show both, and the alerts' top posts are public posts only.
- ``agency_mentions`` becomes one row per post and agency, with the matched terms and match kinds
  aggregated (``matched_terms``, ``match_kinds``), so ``count(*)`` counts posts; per-term evidence stays in
  ``post_mentions``.
- ``api_rate_limits`` holds one row per app and endpoint so concurrent collect tasks pace their requests
  together (X's full-archive search: 1 request per second and 300 per 15 minutes per app).

The trend views are 0002's, rebuilt from its own SQL with the new columns added, so the two cannot drift.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

import trustwatch.models.types

revision: str = '0014a'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TREND_VIEWS = ("agency_alerts", "agency_weekly_trend", "agency_daily_trend")

MENTIONS_COMMENT = (
    "Public direct mentions: originals, replies and quotes by non-agency authors naming the agency."
)
OLD_MENTIONS_COMMENT = "Posts mentioning the agency."

#: A post that counts as public opinion: not a repost, not written by an agency account.
PUBLIC = "p.kind <> 'repost' AND NOT p.author_is_agency"


def _migration(name: str) -> ModuleType:
    """An earlier migration of this folder as a module (its view SQL is reused, not copied)."""
    path = next(Path(__file__).parent.glob(f"*_{name}_*.py"))
    spec = importlib.util.spec_from_file_location(f"_trustwatch_migration_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _replace(sql: str, old: str, new: str, count: int = 1) -> str:
    found = sql.count(old)
    if found != count:
        raise RuntimeError(f"migration 0014a: expected {count} of {old!r} in the 0002 view SQL, found {found}")
    return sql.replace(old, new)


def _trend_views(dialect: str) -> list[str]:
    m = _migration("0002")
    columns = "    t.mentions,\n    t.reposts,\n    t.agency_posts,\n"
    daily = _replace(m._trend_view("agency_daily_trend", "day", "day", dialect), "    t.mentions,\n", columns)
    weekly = _replace(m._trend_view("agency_weekly_trend", "week", "week", dialect), "    t.mentions,\n", columns)
    alerts = m._alerts_view(dialect)
    alerts = _replace(alerts, "sum(mentions) AS mentions,",
                      "sum(mentions) AS mentions, sum(reposts) AS reposts, sum(agency_posts) AS agency_posts,")
    alerts = _replace(alerts, "d.mentions, d.scored", "d.mentions, d.reposts, d.agency_posts, d.scored")
    alerts = _replace(alerts, "    z.mentions,\n", "    z.mentions,\n    z.reposts,\n    z.agency_posts,\n")
    alerts = _replace(alerts, "WHERE p.deleted_at IS NULL AND p.created_at",
                      f"WHERE p.deleted_at IS NULL AND {PUBLIC} AND p.created_at")
    return [daily, weekly, alerts]


def _agency_mentions(dialect: str) -> str:
    if dialect == "postgresql":
        terms = "string_agg(DISTINCT m.matched_term, ',' ORDER BY m.matched_term)"
        kinds = "string_agg(DISTINCT m.match_kind, ',' ORDER BY m.match_kind)"
        source = "post_mentions m"
    else:  # SQLite: group_concat keeps the order of a sorted source
        terms = "group_concat(DISTINCT m.matched_term)"
        kinds = "group_concat(DISTINCT m.match_kind)"
        source = ("(SELECT post_id, agency_id, matched_term, match_kind, via_repost FROM post_mentions "
                  "ORDER BY post_id, agency_id, matched_term) m")
    return f"""
CREATE VIEW agency_mentions AS
SELECT
    p.id AS post_id,
    a.slug AS agency,
    a.name AS agency_name,
    p.platform,
    p.platform_post_id,
    p.kind,
    p.created_at,
    p.text,
    p.title,
    p.community,
    p.lang,
    p.url,
    au.username AS author,
    p.author_platform_id,
    p.author_is_agency,
    CASE WHEN {PUBLIC} THEN 1 ELSE 0 END AS public_mention,
    pm.matched_terms,
    pm.match_kinds
FROM (
    SELECT m.post_id, m.agency_id, {terms} AS matched_terms, {kinds} AS match_kinds
    FROM {source}
    GROUP BY m.post_id, m.agency_id
) pm
JOIN posts p ON p.id = pm.post_id
JOIN agencies a ON a.id = pm.agency_id
LEFT JOIN authors au ON au.id = p.author_id
WHERE p.deleted_at IS NULL
"""


VIEW_COMMENTS = {
    "agency_mentions": (
        "One row per post and agency it mentions (tombstones left out): matched_terms and match_kinds list the "
        "evidence (comma-separated; per term in post_mentions); public_mention = 1 for an original, reply or "
        "quote by an author that is not an agency account, the posts the trend views count as mentions."
    ),
    "agency_daily_trend": (
        "Per agency, UTC day, platform, scope (direct or thread) and scorer version: public mentions (reposts and "
        "agency accounts' own posts apart, in reposts and agency_posts), distinct authors, mean and spread of "
        "sentiment and trust, shares of negative and positive posts; tombstones left out."
    ),
    "agency_weekly_trend": (
        "As agency_daily_trend per ISO week (week = its Monday, UTC); distinct authors counted over the week."
    ),
}


def _comment_views(comments: dict[str, str]) -> None:
    for view, comment in comments.items():
        quoted = comment.replace("'", "''")
        op.execute(f"COMMENT ON VIEW {view} IS '{quoted}'")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW IF EXISTS agency_mentions")
    for view in TREND_VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
    with op.batch_alter_table("posts") as batch:
        batch.add_column(sa.Column(
            "author_is_agency", sa.Boolean(), server_default=sa.false(), nullable=False,
            comment="True when the author is an agency's own X account (a registry handle): agency speech, "
                    "counted apart from public mentions.",
        ))
    with op.batch_alter_table("post_mentions") as batch:
        batch.add_column(sa.Column(
            "via_repost", sa.Boolean(), server_default=sa.false(), nullable=False,
            comment="True when the match is in the reposted text of a repost (amplification, not a direct "
                    "mention by the reposter).",
        ))
    with op.batch_alter_table("agency_daily_trends") as batch:
        batch.add_column(sa.Column("reposts", sa.Integer(), server_default="0", nullable=False,
                                   comment="Reposts of posts mentioning the agency (amplification)."))
        batch.add_column(sa.Column("agency_posts", sa.Integer(), server_default="0", nullable=False,
                                   comment="Posts by agency accounts mentioning the agency (agency speech)."))
    if dialect == "postgresql":
        op.alter_column("agency_daily_trends", "mentions", comment=MENTIONS_COMMENT,
                        existing_comment=OLD_MENTIONS_COMMENT, existing_type=sa.Integer(), existing_nullable=False)
    op.create_table(
        "api_rate_limits",
        sa.Column("api", sa.String(length=60), nullable=False,
                  comment="Endpoint and app, e.g. 'x:search/all:<app key>' (a hash, never the token)."),
        sa.Column("next_at", trustwatch.models.types.UTCDateTime(), nullable=False,
                  comment="Earliest time the next request of this app may be sent."),
        sa.Column("window_start", trustwatch.models.types.UTCDateTime(), nullable=False,
                  comment="Start of the current request-count window."),
        sa.Column("window_count", sa.Integer(), nullable=False,
                  comment="Requests sent in the current window."),
        sa.PrimaryKeyConstraint("api", name=op.f("pk_api_rate_limits")),
        comment="Request pacing shared by every collect task of one app: X limits full-archive search per app.",
    )
    op.execute(_agency_mentions(dialect))
    for sql in _trend_views(dialect):
        op.execute(sql)
    if dialect == "postgresql":
        alerts = _migration("0002").VIEW_COMMENTS["agency_alerts"]
        _comment_views({**VIEW_COMMENTS, "agency_alerts": alerts.replace(
            "mentions,", "public mentions (reposts and agency posts apart),", 1) + " Top posts are public posts."})


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW IF EXISTS agency_mentions")
    for view in TREND_VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
    op.drop_table("api_rate_limits")
    if dialect == "postgresql":
        op.alter_column("agency_daily_trends", "mentions", comment=OLD_MENTIONS_COMMENT,
                        existing_comment=MENTIONS_COMMENT, existing_type=sa.Integer(), existing_nullable=False)
    with op.batch_alter_table("agency_daily_trends") as batch:
        batch.drop_column("agency_posts")
        batch.drop_column("reposts")
    with op.batch_alter_table("post_mentions") as batch:
        batch.drop_column("via_repost")
    with op.batch_alter_table("posts") as batch:
        batch.drop_column("author_is_agency")
    first, second = _migration("0001"), _migration("0002")
    op.execute(first.AGENCY_MENTIONS)
    op.execute(second._trend_view("agency_daily_trend", "day", "day", dialect))
    op.execute(second._trend_view("agency_weekly_trend", "week", "week", dialect))
    op.execute(second._alerts_view(dialect))
    if dialect == "postgresql":
        op.execute("COMMENT ON VIEW agency_mentions IS 'One row per post and agency mentioned, with the matched "
                   "term as evidence; deleted or withheld posts (tombstones) are left out.'")
        _comment_views(second.VIEW_COMMENTS)

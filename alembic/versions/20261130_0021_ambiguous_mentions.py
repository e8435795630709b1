"""ambiguous_mentions: shared names a post leaves unsettled, countable; ambiguous_mentions_daily; the alerts'
top posts on the agency's own day (PostgreSQL)

Revision ID: 0021
Revises: 0016
Create Date: 2026-11-30 08:00:00

Issue 16, item 2: a name several agencies share ("Clinton PD": 19 agencies) attributes only when the post
settles which one it means; otherwise it is recorded as ambiguous, not attributed but countable. One row per
post and name in ``ambiguous_mentions`` (the candidates' slugs as a JSON array), and the view
``ambiguous_mentions_daily`` counts them per UTC day, platform and name, tombstones left out.

Issue 16, item 4: ``agency_alerts`` counted the agency's own days (the rollups) but picked a day's top posts
between UTC midnights. On PostgreSQL the top posts now lie between the agency's own midnights
(``agencies.timezone``). SQLite keeps UTC bounds there: a view cannot convert time zones without a function
registered on the connection, and an analyst's own SQLite client has none (README, "Trend days").
"""
from __future__ import annotations

import runpy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op

import trustwatch.models.types

revision: str = '0021'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE_COMMENT = (
    "Names several agencies share (\"Clinton PD\": 19 agencies), found in posts that do not say which one they "
    "mean: attributed to none, kept so analysts can count what was left out. One row per post and name; see the "
    "view ambiguous_mentions_daily."
)
DAILY_COMMENT = (
    "Per UTC day, platform and shared name: posts that used the name without saying which agency they meant "
    "(attributed to none; tombstones left out), and how many agencies it may mean."
)
ALERTS_LOCAL = " Top posts lie between the agency's own midnights (agencies.timezone)."

#: The day a post falls on, in UTC, per dialect.
_DAY = {"postgresql": "CAST(am.post_created_at AT TIME ZONE 'UTC' AS date)", "sqlite": "date(am.post_created_at)"}


def _daily_view(dialect: str) -> str:
    day = _DAY["postgresql" if dialect == "postgresql" else "sqlite"]
    return f"""
CREATE VIEW ambiguous_mentions_daily AS
SELECT {day} AS day, am.platform, am.term, max(am.candidate_count) AS candidates, count(*) AS posts
FROM ambiguous_mentions am
JOIN posts p ON p.id = am.post_id
WHERE p.deleted_at IS NULL
GROUP BY {day}, am.platform, am.term
"""


def _migration(name: str) -> dict[str, Any]:
    """An earlier migration of this folder, its globals (its view SQL is reused, not copied)."""
    return runpy.run_path(str(next(Path(__file__).parent.glob(f"*_{name}_*.py"))))


def _alerts(local: bool) -> str:
    """agency_alerts as 0014a left it (PostgreSQL); with ``local`` the top posts' day is the agency's own."""
    sql = _migration("0014a")["_trend_views"]("postgresql")[2]
    if not local:
        return sql
    for old in ("(z.day::timestamp AT TIME ZONE 'UTC')", "((z.day + 1)::timestamp AT TIME ZONE 'UTC')"):
        if sql.count(old) != 1:
            raise RuntimeError(f"migration 0021: expected one {old!r} in the agency_alerts SQL")
        sql = sql.replace(old, old.replace("'UTC'", "coalesce(a.timezone, 'UTC')"))
    return sql.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1)


def _alerts_comment(local: bool) -> str:
    base = _migration("0002")["VIEW_COMMENTS"]["agency_alerts"].replace(
        "mentions,", "public mentions (reposts and agency posts apart),", 1) + " Top posts are public posts."
    return base + (ALERTS_LOCAL if local else "")


def _comment(view: str, comment: str) -> None:
    op.execute(f"COMMENT ON VIEW {view} IS '{comment.replace(chr(39), chr(39) * 2)}'")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "ambiguous_mentions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False,
                  comment="Surrogate key."),
        sa.Column("post_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False,
                  comment="The post (posts.id)."),
        sa.Column("term", sa.String(length=200), nullable=False,
                  comment="The shared name as the registry writes it, e.g. 'Clinton PD'."),
        sa.Column("candidates", trustwatch.models.types.JSONType, nullable=False,
                  comment="Slugs of the agencies the name may mean (agencies.slug; join there for ori, state, "
                          "type), sorted; as the registry stood when the post was first matched."),
        sa.Column("candidate_count", sa.Integer(), nullable=False, comment="How many agencies the name may mean."),
        sa.Column("start_offset", sa.Integer(), nullable=True, comment="Start of the name in the text."),
        sa.Column("end_offset", sa.Integer(), nullable=True, comment="End of the name in the text."),
        sa.Column("post_created_at", trustwatch.models.types.UTCDateTime(), nullable=False,
                  comment="The post's created_at, copied for per-day counts."),
        sa.Column("platform", sa.String(length=10), nullable=False,
                  comment="The post's platform, copied for counts."),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ambiguous_mentions")),
        sa.UniqueConstraint("post_id", "term", name=op.f("uq_ambiguous_mentions_post_id_term")),
        comment=TABLE_COMMENT,
    )
    op.create_index("ix_ambiguous_mentions_created_term", "ambiguous_mentions", ["post_created_at", "term"])
    op.execute(_daily_view(dialect))
    if dialect == "postgresql":
        _comment("ambiguous_mentions_daily", DAILY_COMMENT)
        op.execute(_alerts(local=True))
        _comment("agency_alerts", _alerts_comment(local=True))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(_alerts(local=False).replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))
        _comment("agency_alerts", _alerts_comment(local=False))
    op.execute("DROP VIEW IF EXISTS ambiguous_mentions_daily")
    op.drop_index("ix_ambiguous_mentions_created_term", table_name="ambiguous_mentions")
    op.drop_table("ambiguous_mentions")

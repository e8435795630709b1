"""rollup refresh indexes; non-English posts unscored and counted apart

Revision ID: 0019
Revises: 0004
Create Date: 2026-11-30 00:00:00

``analysis.trends.stale_days`` finds the days whose rollups changed since the previous refresh: posts seen
again or tombstoned since then.  It read ``posts.last_collected_at`` with no index, a scan of the whole
table at every refresh.  Sightings are now found through ``metric_snapshots.observed_at`` (every sighting
appends a snapshot with the same time), indexed by a BRIN index on PostgreSQL (rows arrive in time order;
it costs next to nothing per insert) and a b-tree on SQLite; tombstones through a partial index on
``posts.deleted_at``.  No index on ``posts.last_collected_at``: every re-sighting changes it, and an index on
it would rule out heap-only (HOT) updates of posts.

VADER and the trust lexicon read English only: a post in another language gets a ``post_scores`` row
without numbers (``sentiment``/``trust_score`` NULL, ``unscored_reason`` 'language:<code>'), so enrichment
does not read it again, and ``agency_daily_trends.unscored_language`` counts such posts apart.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0019'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


SENTIMENT = ("VADER compound sentiment in [-1, 1].",
             "VADER compound sentiment in [-1, 1]; NULL when unscored (see unscored_reason).")
TRUST = ("Trust score in [-1, 1].", "Trust score in [-1, 1]; NULL when unscored (see unscored_reason).")


def upgrade() -> None:
    op.create_index("ix_metric_snapshots_observed_at", "metric_snapshots", ["observed_at"], unique=False,
                    postgresql_using="brin")
    op.create_index("ix_posts_deleted_at", "posts", ["deleted_at"], unique=False,
                    postgresql_where=sa.text("deleted_at IS NOT NULL"),
                    sqlite_where=sa.text("deleted_at IS NOT NULL"))
    with op.batch_alter_table("post_scores") as batch:
        batch.alter_column("sentiment", existing_type=sa.Float(), nullable=True, comment=SENTIMENT[1],
                           existing_comment=SENTIMENT[0])
        batch.alter_column("trust_score", existing_type=sa.Float(), nullable=True, comment=TRUST[1],
                           existing_comment=TRUST[0])
        batch.add_column(sa.Column(
            "unscored_reason", sa.String(40),
            comment="Why the post has no numbers, e.g. 'language:de' (the scorer reads English only)."))
    with op.batch_alter_table("agency_daily_trends") as batch:
        batch.add_column(sa.Column(
            "unscored_language", sa.Integer(), nullable=False, server_default="0",
            comment="Posts left unscored because they are not in English (counted in mentions, not in scored)."))


def downgrade() -> None:
    with op.batch_alter_table("agency_daily_trends") as batch:
        batch.drop_column("unscored_language")
    op.execute("DELETE FROM post_scores WHERE sentiment IS NULL OR trust_score IS NULL")
    with op.batch_alter_table("post_scores") as batch:
        batch.drop_column("unscored_reason")
        batch.alter_column("trust_score", existing_type=sa.Float(), nullable=False, comment=TRUST[0],
                           existing_comment=TRUST[1])
        batch.alter_column("sentiment", existing_type=sa.Float(), nullable=False, comment=SENTIMENT[0],
                           existing_comment=SENTIMENT[1])
    op.drop_index("ix_posts_deleted_at", table_name="posts")
    op.drop_index("ix_metric_snapshots_observed_at", table_name="metric_snapshots")

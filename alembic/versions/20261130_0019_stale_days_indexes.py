"""indexes for the rollup refresh: posts seen again (metric_snapshots.observed_at) and tombstones

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
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0019'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_metric_snapshots_observed_at", "metric_snapshots", ["observed_at"], unique=False,
                    postgresql_using="brin")
    op.create_index("ix_posts_deleted_at", "posts", ["deleted_at"], unique=False,
                    postgresql_where=sa.text("deleted_at IS NOT NULL"),
                    sqlite_where=sa.text("deleted_at IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_posts_deleted_at", table_name="posts")
    op.drop_index("ix_metric_snapshots_observed_at", table_name="metric_snapshots")

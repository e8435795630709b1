"""registry_sync: the digest of the agency registry last written to agencies

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-30 12:00:00

Issue 18: every collect run starts with ``sync_registry``, which compared the whole registry (18,700 agencies)
with the store: two to three CPU seconds per run for a registry that rarely changes.  The one row of
``registry_sync`` holds the digest of the registry files and code that the agencies table was last synced
from (written in the sync's transaction); a sync whose digest is the same skips the comparison.  The table
starts empty, so the first sync after this migration compares as before.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import trustwatch.models.types

revision: str = '0025'
down_revision: str | None = '0024'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registry_sync",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False, comment="Always 1."),
        sa.Column("digest", sa.String(length=64), nullable=True,
                  comment="SHA-256 of the registry files, their parsing code and the schema; NULL after a sync "
                          "of entries that came from elsewhere (tests, a script), which forces the next comparison."),
        sa.Column("agencies", sa.Integer(), nullable=False, comment="Entries in that registry."),
        sa.Column("synced_at", trustwatch.models.types.UTCDateTime(), nullable=False,
                  comment="When the sync committed."),
        sa.CheckConstraint("id = 1", name=op.f("ck_registry_sync_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_sync")),
        comment="One row: the digest of the agency registry (files and code) last written to agencies; "
                "a collect run whose registry has the same digest skips the comparison.",
    )


def downgrade() -> None:
    op.drop_table("registry_sync")

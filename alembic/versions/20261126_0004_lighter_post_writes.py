"""lighter post writes: no foreign key from posts.author_id, no (platform, created_at) index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 00:00:00

Every page upserts hundreds of posts. The foreign-key trigger on ``posts.author_id`` costs a row lock on
the author for every post (a tenth of the page write on PostgreSQL), although ``write_page`` takes the id
from the author it upserts in the same statement, so the reference holds by construction; authors are
never deleted. ``ix_posts_platform_created_at`` duplicated ``ix_posts_created_at`` for the two platforms:
a date range read with ``platform = 'x'`` uses the created_at index and filters.

On SQLite a constraint can only be dropped by rebuilding the table (Alembic's batch mode); ``trustwatch db
upgrade`` turns SQLite's foreign keys off around migrations for that, so the rebuild never cascades.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK = "fk_posts_author_id_authors"
OLD_COMMENT = "The author, when the response included it."
NEW_COMMENT = "The author (authors.id), when the response included it."


def upgrade() -> None:
    op.drop_index("ix_posts_platform_created_at", table_name="posts")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(FK, "posts", type_="foreignkey")
        op.alter_column("posts", "author_id", comment=NEW_COMMENT, existing_comment=OLD_COMMENT,
                        existing_type=sa.BigInteger(), existing_nullable=True)
    else:
        with op.batch_alter_table("posts", recreate="always") as batch:
            batch.drop_constraint(FK, type_="foreignkey")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("posts", "author_id", comment=OLD_COMMENT, existing_comment=NEW_COMMENT,
                        existing_type=sa.BigInteger(), existing_nullable=True)
        op.create_foreign_key(FK, "posts", "authors", ["author_id"], ["id"])
    else:
        with op.batch_alter_table("posts", recreate="always") as batch:
            batch.create_foreign_key(FK, "authors", ["author_id"], ["id"])
    op.create_index("ix_posts_platform_created_at", "posts", ["platform", "created_at"], unique=False)

"""SQLite times as ISO 8601 UTC text with T and Z

Revision ID: 0017
Revises: 0004
Create Date: 2026-11-30 00:00:00

SQLite keeps times as text, and SQLAlchemy's default form ``2026-11-29 13:40:50.710000`` sorts before
every ISO literal of the same day (a space is less than ``T``), so an analyst's
``created_at >= '2026-11-29T00:00:00Z'`` silently dropped most of the day. From now on every time column
on SQLite holds ``2026-11-29T13:40:50.710000Z`` (``trustwatch.models.types.SQLITE_TIME_FORMAT``: fixed
width, so text order is time order). This revision rewrites the values already stored; PostgreSQL keeps
``timestamptz`` and is left alone. Data only, no table rebuild.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time_columns() -> list[tuple[str, str]]:
    """Every (table, column) declared DATETIME in the SQLite store, read from the database itself."""
    inspector = sa.inspect(op.get_bind())
    out = []
    for table in inspector.get_table_names():
        for col in inspector.get_columns(table):
            if isinstance(col["type"], sa.DateTime):
                out.append((table, col["name"]))
    return out


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, col in _time_columns():
        # 'YYYY-MM-DD HH:MM:SS[.ffffff]' -> 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (fraction padded to six digits)
        op.execute(
            f'UPDATE "{table}" SET "{col}" = substr("{col}", 1, 10) || \'T\' || substr("{col}", 12, 8) '
            f'|| \'.\' || substr(substr("{col}", 21) || \'000000\', 1, 6) || \'Z\' '
            f'WHERE "{col}" IS NOT NULL AND substr("{col}", 11, 1) = \' \''
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, col in _time_columns():
        op.execute(
            f'UPDATE "{table}" SET "{col}" = substr("{col}", 1, 10) || \' \' || substr("{col}", 12, 15) '
            f'WHERE "{col}" IS NOT NULL AND substr("{col}", 11, 1) = \'T\''
        )

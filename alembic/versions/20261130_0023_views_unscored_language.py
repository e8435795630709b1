"""the daily and weekly trend views show unscored_language

Revision ID: 0023
Revises: 0021
Create Date: 2026-11-30 08:00:00

Migration 0019 gave ``agency_daily_trends`` the column ``unscored_language`` (posts left unscored because
they are not in English: counted in ``mentions``, not in ``scored``), but the analyst views were not rebuilt,
so an analyst reading ``agency_daily_trend`` saw fewer scored posts than mentions with no reason why.  The
views are rebuilt the way 0016 builds them (0014a's SQL with the agency's columns appended) and gain the
column last: on PostgreSQL ``CREATE OR REPLACE VIEW`` accepts only new columns at the end and keeps every
existing column and the analyst role's grants.
"""
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = '0023'
down_revision: str | None = '0021'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_COLUMN = ",\n    t.unscored_language AS unscored_language"
COMMENT_ADDED = (" unscored_language counts the posts left unscored because they are not in English "
                 "(in mentions, not in scored).")


def _migration_0016() -> ModuleType:
    """Migration 0016 as a module: its view SQL (0014a's, with the agency's columns) is reused, not copied;
    its own ``_migration`` loads the others."""
    path = next(Path(__file__).parent.glob("*_0016_*.py"))
    spec = importlib.util.spec_from_file_location("_trustwatch_migration_0016_for_0023", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _views(with_column: bool) -> list[tuple[str, str]]:
    """0016's daily and weekly views, with ``unscored_language`` appended as their last column when asked."""
    dialect = op.get_bind().dialect.name
    views = _migration_0016()._views(dialect, extra=True)
    if not with_column:
        return views
    anchor = "\nFROM agency_daily_trends t"
    out = []
    for name, sql in views:
        if sql.count(anchor) != 1:
            raise RuntimeError(f"migration 0023: expected one {anchor.strip()!r} in the {name} view SQL")
        out.append((name, sql.replace(anchor, NEW_COLUMN + anchor, 1)))
    return out


def _comment_of(name: str) -> str:
    """The view's comment as it stands (PostgreSQL), so this migration only adds or removes its sentence."""
    return op.get_bind().exec_driver_sql(
        f"SELECT coalesce(obj_description('{name}'::regclass, 'pg_class'), '')").scalar_one()


def _replace_views(with_column: bool) -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for name, sql in _views(with_column):
        # PostgreSQL replaces a view in place (its grants stay) only when columns are added at the end.
        in_place = pg and with_column
        comment = _comment_of(name).replace(COMMENT_ADDED, "") if pg else ""
        op.execute(sql.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1) if in_place
                   else f"DROP VIEW IF EXISTS {name}")
        if not in_place:
            op.execute(sql)
        if pg:
            comment += COMMENT_ADDED if with_column else ""
            op.execute(f"COMMENT ON VIEW {name} IS '{comment.replace(chr(39), chr(39) * 2)}'")


def upgrade() -> None:
    _replace_views(with_column=True)


def downgrade() -> None:
    # A view cannot lose a column in place: each is dropped and recreated (on PostgreSQL the analyst role's
    # default privileges, migrations 0003/0020, grant SELECT on the recreated views again).
    _replace_views(with_column=False)

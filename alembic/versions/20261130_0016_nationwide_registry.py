"""nationwide registry: FBI metadata on agencies (ori, type, county, coordinates, NIBRS, timezone), parent,
tracked and matched; the trend views carry ori, state, kind, type, county and timezone; rollup days are
the agency's own days

Revision ID: 0016
Revises: 0004
Create Date: 2026-11-30 05:00:00

The registry now holds every agency of the FBI Crime Data Explorer list (issue 16). Analysts join trends to
FBI crime data on ``ori`` and filter them by state and type ("county sheriffs in Texas"), so the daily and
weekly trend views gain those columns, appended at the end (PostgreSQL's CREATE OR REPLACE VIEW keeps the
analyst role's grants and only allows new columns last). ``ori`` is unique where known (NULLs allowed).
"""
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _columns() -> list[sa.Column]:
    """The new columns, built afresh per call: a Column belongs to one table (Column.copy() is deprecated)."""
    return [
        sa.Column("ori", sa.String(length=9), nullable=True,
                  comment="FBI Originating Agency Identifier (unique where known): join FBI crime data on it."),
        sa.Column("agency_type", sa.String(length=40), nullable=True,
                  comment="The FBI's agency type: City, County, State Police, University or College, Tribal, "
                  "Other State Agency, Other; NULL for agencies absent from the FBI list."),
        sa.Column("county", sa.String(length=100), nullable=True, comment="County of the agency (FBI list)."),
        sa.Column("latitude", sa.Float(), nullable=True, comment="Latitude (FBI list; often the county centroid)."),
        sa.Column("longitude", sa.Float(), nullable=True, comment="Longitude (FBI list; often the county centroid)."),
        sa.Column("nibrs", sa.Boolean(), nullable=True,
                  comment="Reported to NIBRS when the FBI list was retrieved (2018)."),
        sa.Column("timezone", sa.String(length=64), nullable=True,
                  comment="IANA timezone (from the coordinates, else the state): its trend days start at its "
                  "midnight."),
        sa.Column("parent", sa.String(length=80), nullable=True,
                  comment="Slug of the agency people name instead (state-police troop -> the state police)."),
        sa.Column("tracked", sa.Boolean(), server_default=sa.true(), nullable=False,
                  comment="Queries are compiled for it; every active agency is matched whether tracked or only known."),
        sa.Column("matched", sa.Boolean(), server_default=sa.true(), nullable=False,
                  comment="False for known rows that are not police (prosecutors, fire investigators): never attributed."),
    ]


#: The rollup's day is the agency's own day now (analysis/trends.py): (column, old, new, type).
TREND_COMMENTS = [
    ("grain", "'day': one UTC day; 'week': the ISO week (Monday to Sunday, UTC) starting on `day`.",
     "'day': one day; 'week': the ISO week (Monday to Sunday) starting on `day`; in the agency's timezone.",
     sa.String(4)),
    ("day", "UTC day, or the Monday of the week for grain 'week'.",
     "The agency's local day (agencies.timezone, UTC without one), or the Monday of the week for grain 'week'.",
     sa.Date()),
]
OLD_KIND = "municipal, sheriff, state, federal, transit or campus."
NEW_KIND = "municipal, sheriff, state, federal, transit, campus, tribal or special (FBI 'Other')."
EXTRA_VIEW_COLUMNS = (",\n    a.ori AS ori,\n    a.state AS state,\n    a.kind AS agency_kind,\n"
                      "    a.agency_type AS agency_type,\n    a.county AS county,\n    a.timezone AS timezone")


def _migration(name: str):
    """An earlier migration of this folder as a module (its view SQL is reused, not copied)."""
    path = next(Path(__file__).parent.glob(f"*_{name}_*.py"))
    spec = importlib.util.spec_from_file_location(f"_trustwatch_migration_{name}_for_0016", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _views(dialect: str, extra: bool) -> list[tuple[str, str]]:
    """The daily and weekly trend views as revision 0014a left them (public mentions, reposts and agency
    posts apart), with the agency's columns appended when ``extra``."""
    daily, weekly, _alerts = _migration("0014a")._trend_views(dialect)
    out = []
    for name, sql in (("agency_daily_trend", daily), ("agency_weekly_trend", weekly)):
        if extra:
            sql = sql.replace("\nFROM agency_daily_trends t", EXTRA_VIEW_COLUMNS + "\nFROM agency_daily_trends t", 1)
        out.append((name, sql))
    return out


def _replace_views(extra: bool) -> None:
    dialect = op.get_bind().dialect.name
    comments = _migration("0014a").VIEW_COMMENTS
    for name, sql in _views(dialect, extra):
        if dialect == "postgresql" and extra:
            op.execute(sql.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))
        else:
            op.execute(f"DROP VIEW IF EXISTS {name}")
            op.execute(sql)
        if dialect == "postgresql":
            comment = comments[name] + (
                " Days and weeks are the agency's own (its timezone; UTC without one, despite 'UTC' above). "
                "Carries the agency's FBI ori, state, kind, type, county and timezone." if extra else "")
            op.execute(f"COMMENT ON VIEW {name} IS '{comment.replace(chr(39), chr(39) * 2)}'")


def upgrade() -> None:
    with op.batch_alter_table("agencies") as batch:
        for column in _columns():
            batch.add_column(column)
        batch.create_index("ix_agencies_ori", ["ori"], unique=True)
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("agencies", "kind", comment=NEW_KIND, existing_comment=OLD_KIND,
                        existing_type=sa.String(20), existing_nullable=False)
        for column, old, new, type_ in TREND_COMMENTS:
            op.alter_column("agency_daily_trends", column, comment=new, existing_comment=old,
                            existing_type=type_, existing_nullable=False)
    _replace_views(extra=True)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        # A view cannot lose columns in place: drop and recreate (grants come back from the default
        # privileges of the analyst role's migration).
        for name in ("agency_weekly_trend", "agency_daily_trend"):
            op.execute(f"DROP VIEW IF EXISTS {name}")
        op.alter_column("agencies", "kind", comment=OLD_KIND, existing_comment=NEW_KIND,
                        existing_type=sa.String(20), existing_nullable=False)
        for column, old, new, type_ in TREND_COMMENTS:
            op.alter_column("agency_daily_trends", column, comment=old, existing_comment=new,
                            existing_type=type_, existing_nullable=False)
    _replace_views(extra=False)
    with op.batch_alter_table("agencies") as batch:
        batch.drop_index("ix_agencies_ori")
        for column in reversed(_columns()):
            batch.drop_column(column.name)

"""rollup rows carry their period's UTC bounds; SQLite's agency_alerts picks top posts in the agency's own day

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-30 12:00:00

Issue 16: ``ambiguous_mentions.candidates`` now says the registry of the last sync (a sync matches stored
ambiguities again).

Issue 16, item 4: a rollup row's ``day`` is the agency's own calendar day, but on SQLite ``agency_alerts``
picked that day's top posts between UTC midnights (a view cannot convert time zones there: the conversion
the rollups use is a Python function registered on trustwatch's own connection, which an analyst's
``sqlite3`` shell or DBeaver does not have).  Each rollup row now stores the UTC instants its period starts
and ends (``starts_at``, ``ends_at``: the agency's local midnights, computed when the row is written), and
the SQLite view compares ``posts.created_at`` with them: plain SQL, readable in any client.  PostgreSQL's
view already converts (migration 0021) and is left as it is; its rows get the bounds too.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import trustwatch.models.types
from trustwatch.models.types import local_midnight

revision: str = '0024'
down_revision: str | None = '0023'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CANDIDATES = (
    "Slugs of the agencies the name may mean (agencies.slug; join there for ori, state, type), sorted; as the "
    "registry stood when the post was first matched.",
    "Slugs of the agencies the name may mean (agencies.slug; join there for ori, state, type), sorted; as the "
    "registry stood at the last sync (agencies sync matches the post again).",
)
STARTS = "UTC instant the period starts: the agency's local midnight (agencies.timezone; UTC without one)."
ENDS = "UTC instant the period ends (exclusive): the next local midnight after the day or the week."

#: (old, new) pieces of SQLite's agency_alerts SQL: the daily CTE keeps the bounds, z passes them on, and the
#: top posts lie between them (a row written before the bounds existed keeps UTC midnights).
_SQLITE_ALERTS = (
    ("sum(sentiment_sum) AS sentiment_sum, sum(trust_sum) AS trust_sum\n",
     "sum(sentiment_sum) AS sentiment_sum, sum(trust_sum) AS trust_sum,\n"
     "           max(starts_at) AS starts_at, max(ends_at) AS ends_at\n"),
    ("d.sentiment_sum, d.trust_sum,\n", "d.sentiment_sum, d.trust_sum, d.starts_at, d.ends_at,\n"),
    ("p.created_at >= z.day AND p.created_at < date(z.day, '+1 day')",
     "p.created_at >= coalesce(z.starts_at, z.day) AND p.created_at < coalesce(z.ends_at, date(z.day, '+1 day'))"),
)


def _backfill() -> None:
    """Bounds for the rows already there, one UPDATE per (period, grain, time zone)."""
    conn = op.get_bind()
    when = trustwatch.models.types.UTCDateTime()
    groups = conn.execute(sa.text(
        "SELECT DISTINCT t.day, t.grain, a.timezone FROM agency_daily_trends t JOIN agencies a ON a.id = t.agency_id"
    )).all()
    update = sa.text(
        "UPDATE agency_daily_trends SET starts_at = :s, ends_at = :e WHERE day = :d AND grain = :g "
        "AND agency_id IN (SELECT id FROM agencies WHERE coalesce(timezone, '') = :z)"
    ).bindparams(sa.bindparam("s", type_=when), sa.bindparam("e", type_=when), sa.bindparam("d", type_=sa.Date()))
    for day, grain, zone in groups:
        day = day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day)[:10])
        step = dt.timedelta(days=7 if grain == "week" else 1)
        conn.execute(update, {"s": local_midnight(day, zone), "e": local_midnight(day + step, zone), "d": day,
                              "g": grain, "z": zone or ""})


def _sqlite_alerts(forward: bool) -> None:
    sql = op.get_bind().exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'view' AND name = 'agency_alerts'").scalar_one()
    for old, new in _SQLITE_ALERTS:
        old, new = (old, new) if forward else (new, old)
        if sql.count(old) != 1:
            raise RuntimeError(f"migration 0024: expected one {old.strip()!r} in SQLite's agency_alerts SQL")
        sql = sql.replace(old, new)
    op.execute("DROP VIEW agency_alerts")
    op.execute(sql)


def upgrade() -> None:
    with op.batch_alter_table("agency_daily_trends") as batch:
        batch.add_column(sa.Column("starts_at", trustwatch.models.types.UTCDateTime(), nullable=True, comment=STARTS))
        batch.add_column(sa.Column("ends_at", trustwatch.models.types.UTCDateTime(), nullable=True, comment=ENDS))
    _backfill()
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_alerts(forward=True)
    else:  # stored ambiguities now follow the registry (collectors/ambiguities.py); SQLite keeps no comments
        op.alter_column("ambiguous_mentions", "candidates", comment=CANDIDATES[1], existing_comment=CANDIDATES[0],
                        existing_type=trustwatch.models.types.JSONType, existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_alerts(forward=False)
    else:
        op.alter_column("ambiguous_mentions", "candidates", comment=CANDIDATES[0], existing_comment=CANDIDATES[1],
                        existing_type=trustwatch.models.types.JSONType, existing_nullable=False)
    with op.batch_alter_table("agency_daily_trends") as batch:
        batch.drop_column("ends_at")
        batch.drop_column("starts_at")

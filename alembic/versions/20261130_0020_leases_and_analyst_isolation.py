"""run leases on the ledger; the analyst group per database, without TEMP, large objects or content statistics

Revision ID: 0020
Revises: 0004
Create Date: 2026-11-30 05:00:00

Leases (issue 20, items 4 and 7): two runs of the same window both read and billed every page, and a run
whose database went away left its row ``running`` for ever.  ``collection_runs`` gains ``lease_owner``
(host, pid and a token of the process that holds the row) and ``lease_expires_at`` (renewed with every
committed page); ``store.open_run`` claims a row atomically and refuses a live holder's.

Analyst isolation (items 8 to 11), PostgreSQL only:
- the group is named per database (``<database>_analyst``, or ``TRUSTWATCH_ANALYST_ROLE``), because roles
  are server-wide and the shared ``analyst`` of migration 0003 read every trustwatch database of the server;
  the old ``analyst`` loses its grants in this database;
- TEMP on the database is revoked from PUBLIC (temporary tables and functions were the analyst's way to
  write), and granted back to the migrating (store-writing) role, whose bulk path stages pages in one;
- EXECUTE on the large-object writers (``lo_from_bytea``, ``lo_create``...) is revoked from PUBLIC in this
  database: that needs the functions' owner (a superuser); without one it is left as a warning;
- the content columns (``posts.text``, ``title``, ``raw``, ``rejected_payloads.payload``) get
  ``STATISTICS 0``: ANALYZE no longer copies samples of them (a deleted post's text) into ``pg_stats``;
  statistics gathered before are deleted when the migrating role may (a superuser), else a warning says
  the one statement that does it.
A store owner without CREATEROLE cannot create the group: the migration then goes on with a warning and
the command that creates the role later (``trustwatch db upgrade`` prints it).

SQLite has no roles: only the lease columns are added there (batch mode).
"""
import logging
import os
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0020'
down_revision: str | None = '0014a'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

OLD_ROLE = "analyst"
#: The large-object functions that write (lo_import needs a superuser already).
LO_WRITERS = ("lo_from_bytea(oid, bytea)", "lo_create(oid)", "lo_creat(integer)", "lo_put(oid, bigint, bytea)",
              "lowrite(integer, bytea)", "lo_truncate(integer, integer)", "lo_truncate64(integer, bigint)",
              "lo_unlink(oid)", "lo_import(text)", "lo_import(text, oid)")
#: Columns whose values must never be sampled into pg_stats (deleted content would outlive its tombstone).
CONTENT_COLUMNS = (("posts", "text"), ("posts", "title"), ("posts", "raw"), ("rejected_payloads", "payload"))


def analyst_role(database: str) -> str:
    """The analyst group of this database: TRUSTWATCH_ANALYST_ROLE, else ``<database>_analyst`` (63 bytes)."""
    configured = os.environ.get("TRUSTWATCH_ANALYST_ROLE", "").strip()
    return configured or f"{database[:55]}_analyst"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.add_column("collection_runs", sa.Column(
            "lease_owner", sa.String(200),
            comment="Who holds the running row: host, pid and token of the process; NULL when not running."))
        op.add_column("collection_runs", sa.Column(
            "lease_expires_at", sa.DateTime(timezone=True),
            comment="Until when the holder's claim stands (renewed with each page); a later run takes over after."))
        _isolate_analyst(bind)
    else:
        with op.batch_alter_table("collection_runs") as batch:
            batch.add_column(sa.Column(
                "lease_owner", sa.String(200),
                comment="Who holds the running row: host, pid and token of the process; NULL when not running."))
            batch.add_column(sa.Column(
                "lease_expires_at", sa.DateTime(timezone=True),
                comment="Until when the holder's claim stands (renewed with each page); a later run takes over after."))
    # A tombstone's raw is SQL NULL (it was stored as the JSON value null before).
    op.execute("UPDATE posts SET raw = NULL WHERE deleted_at IS NOT NULL AND raw IS NOT NULL")


def _isolate_analyst(bind: sa.engine.Connection) -> None:
    database, schema, me = bind.execute(sa.text("SELECT current_database(), current_schema(), current_user")).one()
    super_, createrole = bind.execute(sa.text(
        "SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user")).one()
    role = analyst_role(database)
    exists = bind.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first() is not None
    if not exists and not (super_ or createrole):
        log.warning(
            "analyst group %s not created: role %s lacks CREATEROLE. Create it later as a role that has it: "
            "CREATE ROLE %s NOLOGIN; then run `trustwatch db upgrade` again (or ask the server's admin)",
            role, me, _q(role))
    else:
        # Race-safe: another database's migration may create roles at the same moment.
        op.execute(f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {_lit(role)}) THEN
        CREATE ROLE {_q(role)} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
""")
        op.execute(f"GRANT CONNECT ON DATABASE {_q(database)} TO {_q(role)}")
        op.execute(f"GRANT USAGE ON SCHEMA {_q(schema)} TO {_q(role)}")
        op.execute(f"REVOKE CREATE ON SCHEMA {_q(schema)} FROM {_q(role)}")
        op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {_q(schema)} TO {_q(role)}")
        op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {_q(schema)} GRANT SELECT ON TABLES TO {_q(role)}")
        if super_ or createrole:  # commenting on a role needs CREATEROLE, even when an admin made it
            op.execute(f"COMMENT ON ROLE {_q(role)} IS " + _lit(
                f"trustwatch analysts of database {database}: SELECT on its tables and views, nothing else"))
    if role != OLD_ROLE and bind.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                                         {"r": OLD_ROLE}).first() is not None:
        # the shared group of 0003 keeps nothing here (other databases revoke theirs when they upgrade)
        op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {_q(schema)} REVOKE SELECT ON TABLES FROM {OLD_ROLE}")
        op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {_q(schema)} FROM {OLD_ROLE}")
        op.execute(f"REVOKE USAGE ON SCHEMA {_q(schema)} FROM {OLD_ROLE}")
        op.execute(f"REVOKE CONNECT ON DATABASE {_q(database)} FROM {OLD_ROLE}")
    op.execute(f"REVOKE TEMPORARY ON DATABASE {_q(database)} FROM PUBLIC")
    op.execute(f"GRANT TEMPORARY ON DATABASE {_q(database)} TO {_q(me)}")
    if super_:
        for fn in LO_WRITERS:
            op.execute(f"REVOKE EXECUTE ON FUNCTION pg_catalog.{fn} FROM PUBLIC")
    else:
        log.warning("large objects: role %s cannot revoke EXECUTE on lo_from_bytea and the other large-object "
                    "writers from PUBLIC (only their owner can); a superuser runs: REVOKE EXECUTE ON FUNCTION "
                    "lo_from_bytea(oid, bytea), lo_create(oid), lo_put(oid, bigint, bytea) FROM PUBLIC;", me)
    for table, column in CONTENT_COLUMNS:
        op.execute(f"ALTER TABLE {_q(table)} ALTER COLUMN {_q(column)} SET STATISTICS 0")
    if super_:
        pairs = " OR ".join(f"(starelid = {_lit(t)}::regclass AND staattnum = "
                            f"(SELECT attnum FROM pg_attribute WHERE attrelid = {_lit(t)}::regclass "
                            f"AND attname = {_lit(c)}))" for t, c in CONTENT_COLUMNS)
        op.execute(f"DELETE FROM pg_catalog.pg_statistic WHERE {pairs}")
    else:
        log.warning("statistics sampled from posts.text/title/raw before this upgrade stay in pg_stats until a "
                    "superuser deletes them from pg_statistic (see RELIABILITY.md, analyst isolation)")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        database, schema, super_ = bind.execute(sa.text(
            "SELECT current_database(), current_schema(), (SELECT rolsuper FROM pg_roles "
            "WHERE rolname = current_user)")).one()
        role = analyst_role(database)
        for table, column in CONTENT_COLUMNS:
            op.execute(f"ALTER TABLE {_q(table)} ALTER COLUMN {_q(column)} SET STATISTICS -1")
        if super_:
            for fn in LO_WRITERS:
                if not fn.startswith("lo_import"):  # lo_import was superuser-only before
                    op.execute(f"GRANT EXECUTE ON FUNCTION pg_catalog.{fn} TO PUBLIC")
        op.execute(f"GRANT TEMPORARY ON DATABASE {_q(database)} TO PUBLIC")
        if bind.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first() is not None:
            op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {_q(schema)} REVOKE SELECT ON TABLES FROM {_q(role)}")
            op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {_q(schema)} FROM {_q(role)}")
            op.execute(f"REVOKE USAGE ON SCHEMA {_q(schema)} FROM {_q(role)}")
            op.execute(f"REVOKE CONNECT ON DATABASE {_q(database)} FROM {_q(role)}")
        if role != OLD_ROLE and bind.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                                             {"r": OLD_ROLE}).first() is not None:
            op.execute(f"GRANT CONNECT ON DATABASE {_q(database)} TO {OLD_ROLE}")
            op.execute(f"GRANT USAGE ON SCHEMA {_q(schema)} TO {OLD_ROLE}")
            op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {_q(schema)} TO {OLD_ROLE}")
            op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {_q(schema)} GRANT SELECT ON TABLES TO {OLD_ROLE}")
        op.drop_column("collection_runs", "lease_expires_at")
        op.drop_column("collection_runs", "lease_owner")
    else:
        with op.batch_alter_table("collection_runs") as batch:
            batch.drop_column("lease_expires_at")
            batch.drop_column("lease_owner")

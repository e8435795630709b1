"""analyst role: read-only access for analysts on PostgreSQL

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 22:30:00

Analysts query the store with SQL clients; they must not be able to change it.  On PostgreSQL this creates
the group role ``analyst`` (NOLOGIN, when missing: roles belong to the whole server) and grants it SELECT on
every table and view of the store's schema, now and, through default privileges, for the tables and views
later migrations create.  It gets no INSERT, UPDATE, DELETE, TRUNCATE or CREATE.  A person gets access with
``CREATE ROLE alice LOGIN PASSWORD '...' IN ROLE analyst``.  Tombstones stay out of the analyst views
(``WHERE deleted_at IS NULL``); the raw tables show them with their reason, scrubbed.

SQLite has no roles: there the store file's permissions are the access control, and this is a no-op.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "analyst"

# Issue 20 (item 11): a store owner without CREATEROLE skips the shared group here (a warning; migration 0020
# names the group per database and says how to create it); creation is race-safe against other databases'
# migrations running at the same moment on the same server.
UPGRADE = f"""
DO $$
DECLARE
    may_create boolean := (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
        IF NOT may_create THEN
            RAISE WARNING 'role % lacks CREATEROLE: the shared analyst group is skipped (see migration 0020)',
                current_user;
            RETURN;
        END IF;
        BEGIN
            CREATE ROLE {ROLE} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO {ROLE}', current_database());
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO {ROLE}', current_schema());
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM {ROLE}', current_schema());
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM {ROLE}', current_schema());
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO {ROLE}', current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO {ROLE}', current_schema());
    IF may_create THEN
        EXECUTE format('COMMENT ON ROLE {ROLE} IS %L',
                       'trustwatch analysts: SELECT on the store''s tables and views, nothing else');
    END IF;
END
$$;
"""

DOWNGRADE = f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE SELECT ON TABLES FROM {ROLE}', current_schema());
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM {ROLE}', current_schema());
        EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM {ROLE}', current_schema());
        EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM {ROLE}', current_database());
    END IF;
END
$$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(UPGRADE)


def downgrade() -> None:
    # The role itself stays: roles are server-wide and other databases may grant it something.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DOWNGRADE)

"""Alembic environment: the trustwatch store, version table ``trustwatch_alembic_version``.

The separate version table lets the store share a PostgreSQL database with Airflow's metadata.
"""

from __future__ import annotations

from sqlalchemy import Connection
from trustwatch.models.db import make_engine
from trustwatch.models.tables import Base

from alembic import context
from trustwatch.migrate import check_references, sqlite_rebuild_mode

VERSION_TABLE = "trustwatch_alembic_version"
config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
        compare_server_default=True,
        render_as_batch=connection.dialect.name == "sqlite",
        include_name=lambda name, type_, _parent: not (type_ == "table" and name == VERSION_TABLE),
    )


def run_migrations_online() -> None:
    """Run against the connection handed in by trustwatch, or the configured store."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(config.attributes.get("url"))
    with engine.connect() as conn, sqlite_rebuild_mode(conn):
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
            check_references(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run `trustwatch db upgrade`")
run_migrations_online()

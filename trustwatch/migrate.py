"""Run the store's Alembic migrations from code (`trustwatch db upgrade`, tests, the DAGs' setup)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from trustwatch.settings import resource_dir

if TYPE_CHECKING:
    from alembic.config import Config

ALEMBIC_DIR = resource_dir("alembic")
#: Where the store records its revision (Alembic's version table, named apart from Airflow's own).
VERSION_TABLE = "trustwatch_alembic_version"


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config for this repo's migrations, bound to ``engine`` when given."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


@contextlib.contextmanager
def sqlite_rebuild_mode(conn: Connection) -> Iterator[None]:
    """On SQLite, let migrations rebuild tables (Alembic's batch mode) without side effects.

    Dropping the old table would cascade into the tables that reference it while foreign keys are on (and
    that pragma only acts outside a transaction, so this wraps it), and renaming the rebuilt table fails while
    a view names the dropped one unless the legacy rename rules apply.  Pair it with :func:`check_references`
    inside the transaction.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.driver_connection
    raw.execute("PRAGMA foreign_keys = OFF")
    raw.execute("PRAGMA legacy_alter_table = ON")
    try:
        yield
    finally:
        raw.execute("PRAGMA legacy_alter_table = OFF")
        raw.execute("PRAGMA foreign_keys = ON")


def check_references(conn: Connection) -> None:
    """Fail the migration (before it commits) if a SQLite table rebuild left a broken reference."""
    if conn.dialect.name == "sqlite":
        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"the migration left {len(broken)} broken references, e.g. {tuple(broken[0])}")


def _run(engine: Engine, action: str, revision: str) -> None:
    from alembic import command

    cfg = alembic_config(engine)
    with engine.connect() as conn, sqlite_rebuild_mode(conn), conn.begin():
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)
        check_references(conn)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the store up to ``revision``."""
    _run(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Migrate the store down to ``revision``."""
    _run(engine, "downgrade", revision)


def current(engine: Engine) -> str | None:
    """The store's current revision, or None for an empty store.

    Read with one query rather than Alembic's migration context: every collect task checks the revision,
    and importing Alembic costs a fifth of a CPU second per task process.
    """
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        revisions = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(revisions) > 1:
        raise RuntimeError(f"the store is at several revisions at once ({', '.join(revisions)}): "
                           "run `trustwatch db upgrade`")
    return revisions[0] if revisions else None


def _head_uncached() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def head() -> str | None:
    """The newest revision the code ships: from the migration files, kept in trustwatch's cache folder
    under their digest (any added or edited migration gives another), so a task does not import Alembic."""
    from trustwatch.cache import cached, files_digest

    versions = sorted((ALEMBIC_DIR / "versions").glob("*.py"))
    return cached("schema-head", files_digest("schema-head", [("versions", versions)]), _head_uncached)

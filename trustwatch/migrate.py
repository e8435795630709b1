"""Run the store's Alembic migrations from code (`trustwatch db upgrade`, tests, the DAGs' setup)."""

from __future__ import annotations

from alembic.config import Config
from sqlalchemy import Engine

from alembic import command
from trustwatch.settings import REPO_ROOT

ALEMBIC_DIR = REPO_ROOT / "alembic"


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config for this repo's migrations, bound to ``engine`` when given."""
    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def _run(engine: Engine, action: str, revision: str) -> None:
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the store up to ``revision``."""
    _run(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Migrate the store down to ``revision``."""
    _run(engine, "downgrade", revision)


def current(engine: Engine) -> str | None:
    """The store's current revision, or None for an empty store."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": "trustwatch_alembic_version"})
        return ctx.get_current_revision()


def head() -> str | None:
    """The newest revision the code ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()

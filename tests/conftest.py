"""Shared fixtures: migrated stores on SQLite and on a real PostgreSQL server.

PostgreSQL tests never skip: when no server answers they fail with the way to get one, because a
silently skipped store test would let a broken write path land.  Each test session creates uniquely
named databases and drops them afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from trustwatch.models.db import make_engine
from trustwatch.models.tables import Base

from trustwatch import migrate

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
#: Real recorded API responses, kept in the repository (sources and licences in tests/data/README.md)
#: so a bare clone runs the suite with nothing beside it.
REALCASES = Path(__file__).resolve().parent / "data" / "realcases"


def pg_admin_url() -> str:
    """The server the tests may create databases on (TRUSTWATCH_TEST_PG_URL or the local default)."""
    url = os.environ.get("TRUSTWATCH_TEST_PG_URL", DEFAULT_PG)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class PgServer:
    """Creates and drops uniquely named databases on the test server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
        self.created: list[str] = []

    def check(self) -> None:
        try:
            with self.admin.connect() as conn:
                conn.execute(text("select 1"))
        except Exception as exc:
            pytest.fail(
                "PostgreSQL tests need a server and none answered at "
                f"{make_url(self.admin_url).render_as_string(hide_password=True)} ({type(exc).__name__}). "
                "Run the tests through ./scripts/test.sh, which starts a throwaway cluster, or set "
                "TRUSTWATCH_TEST_PG_URL.",
                pytrace=False,
            )

    def create(self, prefix: str = "tw_test") -> str:
        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            # migration 0020's analyst group is named per database; roles are server-wide, so drop it too
            # (another database may still hold a grant to it only if it was created by hand: then it stays)
            conn.execute(text(f"""
                DO $$ BEGIN DROP ROLE IF EXISTS "{name[:55]}_analyst";
                EXCEPTION WHEN dependent_objects_still_exist THEN NULL; END $$"""))

    def drop_all(self) -> None:
        for name in self.created:
            self.drop(name)
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer(pg_admin_url())
    server.check()
    yield server
    server.drop_all()


@pytest.fixture(scope="session")
def _pg_store_url(pg_server: PgServer) -> str:
    url = pg_server.create()
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


def _truncate(engine: Engine) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def pg_engine(_pg_store_url: str) -> Iterator[Engine]:
    """A migrated PostgreSQL store, emptied before each test."""
    engine = make_engine(_pg_store_url)
    _truncate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite store in a fresh file."""
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Engine:
    """The same test on both backends."""
    name = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    return request.getfixturevalue(name)


@pytest.fixture(scope="session")
def registry():
    from trustwatch.collectors.agencies import load_registry

    return load_registry()


@pytest.fixture(scope="session")
def matcher(registry):
    from trustwatch.collectors.agencies import Matcher

    return Matcher(registry)


@pytest.fixture(scope="session")
def realcases() -> Path:
    if not REALCASES.exists():
        pytest.fail(f"the recorded API responses are missing at {REALCASES}: the clone is incomplete")
    return REALCASES

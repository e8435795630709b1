"""Engine factory: the configured store, with SQLite set up for parallel Airflow tasks."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError
from trustwatch.models.types import json_serializer

from trustwatch.settings import (
    ConfigError,
    StoreUnreachableError,
    StoreUrl,
    connect_failure_reason,
    redact_url,
    store_url,
)

#: How long a SQLite writer waits for another one before failing (ms).
SQLITE_BUSY_TIMEOUT_MS = 60_000
#: Prepared statements each SQLite connection keeps (Python's default: 128).  A page write's multi-row
#: INSERTs have a different text for every row count, each prepared statement holding ~0.7 MB: with 128 an
#: import grew by ~90 MB before the cache filled (issue 19, section 2).
SQLITE_CACHED_STATEMENTS = 16
#: A pooled connection back in the pool for longer than this is pinged before it is handed out again.  The
#: ping is a round trip of its own: pinging every checkout (``pool_pre_ping``) cost 7-8% of a 100-post page
#: written back to back (an import, a fast collector); a collector waiting on the API between pages still
#: pings before every page.  A server restarted within this second fails that one page: the run stops with
#: the one-line store error and the next run resumes from its cursor, as after any outage mid-run.
PING_AFTER_IDLE_S = 1.0


def _sqlite_setup(engine: Engine) -> None:
    """WAL lets readers run beside a writer; BEGIN IMMEDIATE takes the write lock up front so two
    writers queue on the busy timeout instead of failing with 'database is locked' mid-transaction."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's begin event emit BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _ping_when_idle(engine: Engine) -> None:
    """Pessimistic disconnect handling, as ``pool_pre_ping`` but only for a connection idle in the pool for
    longer than :data:`PING_AFTER_IDLE_S`; a failed ping makes the pool open a fresh connection."""

    @event.listens_for(engine, "connect")
    def _connected(_dbapi_conn: Any, record: Any) -> None:
        record.info["tw_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["tw_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("tw_idle_since", 0.0) <= PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:  # the server closed it: the pool reconnects
            raise DisconnectionError(f"a pooled connection failed its ping ({type(exc).__name__})") from None


def _report_connect_failures(engine: Engine, resolved: StoreUrl) -> None:
    """A refused, unanswered or unopenable store becomes one line naming the setting (password masked),
    instead of a driver traceback: the usual first-hour mistake is a URL, not a bug."""

    @event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> None:
        if context.connection is not None or context.is_pre_ping:
            return  # a statement's error, or a ping the pool recovers from by reconnecting
        dbapi = engine.dialect.loaded_dbapi
        if isinstance(context.original_exception, dbapi.OperationalError):
            raise StoreUnreachableError(resolved, connect_failure_reason(context.original_exception, resolved.url))


def make_engine(url: str | StoreUrl | None = None, **kwargs: Any) -> Engine:
    """Create the store's engine; a bad URL is reported with its source and without its password."""
    if isinstance(url, StoreUrl):
        resolved = url
    elif url:
        configured = store_url()  # the configured URL keeps its source, so an error names the setting
        resolved = configured if configured.url == url else StoreUrl(url, "the given URL")
    else:
        resolved = store_url()
    try:
        parsed = make_url(resolved.url)
    except (ArgumentError, ValueError):
        raise ConfigError(
            f"{resolved.source} is not a valid database URL: {redact_url(resolved.url)!r} "
            "(expected e.g. postgresql+psycopg://user:password@host:5432/db or sqlite:///path.db)"
        ) from None
    if parsed.host and "@" in parsed.host:
        # the password held an unencoded '@': the driver would report its tail as the host it cannot resolve
        raise ConfigError(
            f"{resolved.source}: the URL has more than one '@' ({redact_url(resolved.url)}): URL-encode the "
            "password ('@' is %40, ':' is %3A, '/' is %2F), e.g. python3 -c \"import urllib.parse, getpass; "
            "print(urllib.parse.quote(getpass.getpass(), safe=''))\""
        )
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we ship
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnreachableError(resolved, f"cannot create its folder ({exc.strerror})") from None
        kwargs.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
        kwargs["connect_args"].setdefault("cached_statements", SQLITE_CACHED_STATEMENTS)
    elif parsed.get_backend_name() != "postgresql":
        raise ConfigError(
            f"{resolved.source}: backend {parsed.get_backend_name()!r} is not supported (use postgresql or sqlite)"
        )
    try:
        kwargs.setdefault("json_serializer", json_serializer)
        engine = create_engine(parsed, **kwargs)
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(
            f"{resolved.source}: cannot create an engine for {redact_url(resolved.url)!r}: {exc}"
        ) from None
    _report_connect_failures(engine, resolved)
    _ping_when_idle(engine)
    if engine.dialect.name == "sqlite":
        _sqlite_setup(engine)
    else:
        from trustwatch.models.pg_bulk import track_staging

        track_staging(engine)
    return engine

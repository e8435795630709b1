"""Run docker-compose.yml's Celery topology natively: same settings, no Docker.

docker-compose.yml is the one source of the topology's settings.  This module reads it and turns each
service into a native process: the ``x-airflow-common`` environment with its ``${VAR}`` references
resolved (as ``docker compose config`` resolves them), and every address of a compose service
(``postgres``, ``trustwatch-db``, ``redis``, ``airflow-apiserver``) rewritten to where that service runs
on this machine.  Nothing else is added except what a container gets for free and processes on one
host must be told apart by: AIRFLOW_HOME, the api-server's port, the log-server and health-check ports,
and each Celery worker's hostname.  The init service's script runs verbatim under bash, with
``/entrypoint`` standing in for the official image's entrypoint (migrate, create the admin user).

Used by ``tests/test_celery_topology.py`` and ``bench/topology.py``; also runnable by hand::

    python scripts/native_topology.py --metadata-url postgresql://postgres@127.0.0.1/af \\
        --store-url postgresql://postgres@127.0.0.1/tw --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml
from sqlalchemy.engine import URL, make_url

REPO = Path(__file__).resolve().parents[1]
#: The ``airflow`` command of this interpreter's environment (the image's, in a container).
AIRFLOW = str(Path(sys.executable).parent / "airflow")
COMPOSE = REPO / "docker-compose.yml"
#: ``${NAME}``, ``${NAME:-default}``, ``${NAME-default}``, ``${NAME:?error}``, ``${NAME?error}``.
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
#: Long-running Airflow services and the ``airflow`` sub-command compose gives each.
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker")


class TopologyError(RuntimeError):
    """The compose file cannot be turned into native processes, or a process did not come up."""


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Resolve compose's variable syntax the way ``docker compose config`` does (``$$`` is a literal ``$``)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.group(1), match.group(2), match.group(3) or ""
        value = variables.get(name)
        if operator in (":-", "-"):
            if value is None or (operator == ":-" and value == ""):
                return interpolate(argument, variables)
            return value
        if operator in (":?", "?"):
            if value is None or (operator == ":?" and value == ""):
                raise TopologyError(f"{name} is required by docker-compose.yml: {argument}")
            return value
        if operator in (":+", "+"):
            return interpolate(argument, variables) if value else ""
        return value or ""

    return _VARIABLE.sub(replace, value)


def load_compose(path: Path = COMPOSE) -> dict[str, Any]:
    """The compose file as compose reads it (anchors and merge keys resolved by YAML)."""
    return yaml.safe_load(path.read_text())


@dataclass(frozen=True)
class Endpoint:
    """Where a compose service runs on this machine; databases also name the database and login.

    ``host`` is an address, or, as libpq reads it, a Unix-socket directory when it starts with ``/``:
    the embedded PostgreSQL server that ``scripts/test.sh`` starts where no server answers listens only
    on a socket, so CI's databases have no TCP address at all.
    """

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    database: str | None = None

    @property
    def is_socket(self) -> bool:
        """True when ``host`` is a Unix-socket directory rather than a network address."""
        return self.host.startswith("/")

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        """An endpoint from a database URL (the test server's fresh database), TCP or ``?host=/socket/dir``."""
        parsed = make_url(url)
        host = parsed.host or _query_value(parsed.query.get("host")) or "127.0.0.1"
        port = parsed.port or int(_query_value(parsed.query.get("port")) or 5432)
        return cls(host, port, parsed.username, parsed.password, parsed.database)


def _query_value(value: str | tuple[str, ...] | None) -> str | None:
    """One value of a URL query parameter (SQLAlchemy gives a tuple when the name repeats)."""
    if isinstance(value, tuple):
        return value[0] if value else None
    return value


def _rewrite_url(value: str, endpoints: Mapping[str, Endpoint]) -> str:
    """Point a URL at a compose service to the native endpoint; other values pass unchanged."""
    if "://" not in value:
        return value
    try:
        url = make_url(value)
    except Exception:  # not a URL SQLAlchemy understands (http://...): rewrite host:port by hand
        url = None
    if url is not None and url.host in endpoints:
        target = endpoints[url.host]
        if target.is_socket:  # libpq's form for a socket: no host in the authority, ?host=<dir>&port=<n>
            replaced: URL = URL.create(url.drivername, username=url.username, password=url.password,
                                       database=url.database,
                                       query={**url.query, "host": target.host, "port": str(target.port)})
        else:
            replaced = url.set(host=target.host, port=target.port)
        if target.database is not None:
            replaced = replaced.set(database=target.database)
        if target.username is not None:
            replaced = replaced.set(username=target.username, password=target.password)
        return replaced.render_as_string(hide_password=False)
    match = re.match(r"^([a-z][a-z0-9+.-]*://)([^/@]*@)?([^/:@]+)(:\d+)?(.*)$", value)
    if match and match.group(3) in endpoints:
        target = endpoints[match.group(3)]
        return f"{match.group(1)}{match.group(2) or ''}{target.host}:{target.port}{match.group(5)}"
    return value


def _rewrite_connection(value: str, endpoints: Mapping[str, Endpoint]) -> str:
    """An Airflow connection in JSON form whose host is a compose service, pointed at the native one."""
    try:
        conn = json.loads(value)
    except ValueError:
        return _rewrite_url(value, endpoints)
    if not isinstance(conn, dict) or conn.get("host") not in endpoints:
        return value
    target = endpoints[conn["host"]]
    conn.update(host=target.host, port=target.port)
    if target.database is not None:
        conn["schema"] = target.database
    if target.username is not None:
        conn.update(login=target.username, password=target.password or "")
    return json.dumps(conn)


def airflow_environment(
    compose: Mapping[str, Any],
    service: str,
    variables: Mapping[str, str],
    endpoints: Mapping[str, Endpoint],
    paths: Mapping[str, str],
) -> dict[str, str]:
    """The environment compose gives ``service``, resolved and pointed at the native endpoints.

    ``paths`` maps container paths (``/opt/trustwatch/dags``) to folders on this machine.
    """
    env: dict[str, str] = {}
    for name, raw in (compose["services"][service].get("environment") or {}).items():
        value = interpolate(str(raw), variables)
        value = _rewrite_connection(value, endpoints) if name.startswith("AIRFLOW_CONN_") else _rewrite_url(
            value, endpoints)
        env[name] = paths.get(value, value)
    return env


def init_script(compose: Mapping[str, Any]) -> str:
    """airflow-init's bash script as the container runs it (compose turns ``$$`` into ``$``)."""
    command = compose["services"]["airflow-init"]["command"]
    script = command[-1] if isinstance(command, list) else str(command)
    return interpolate(script, {})


#: Stands in for the official image's /entrypoint: the two _AIRFLOW_* steps airflow-init relies on.
ENTRYPOINT = r"""
function /entrypoint {
  if [[ "${_AIRFLOW_DB_MIGRATE:-}" == "true" ]]; then airflow db migrate >/dev/null; fi
  if [[ "${_AIRFLOW_WWW_USER_CREATE:-}" == "true" ]]; then
    # --password=VALUE: a generated password may begin with "-", which argparse takes for an option otherwise
    airflow users create --username "${_AIRFLOW_WWW_USER_USERNAME}" --password="${_AIRFLOW_WWW_USER_PASSWORD}" \
      --firstname Airflow --lastname Admin --email admin@example.org --role Admin >/dev/null
  fi
  "$@"
}
"""


def container_hostname() -> str:
    """The hostname a worker's container would have (Airflow records it on every task it runs)."""
    return os.environ.get("CONTAINER_HOSTNAME") or socket.getfqdn()


def free_port() -> int:
    """A port nothing listens on right now (never 8080: the kernel hands out ephemeral ports)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    """One started service, its log file and its Popen."""

    name: str
    popen: subprocess.Popen
    log: Path
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass
class Topology:
    """The native topology: configuration, then the processes it started (stopped by ``stop``)."""

    workdir: Path
    metadata_url: str
    store_url: str
    variables: dict[str, str]
    workers: int = 2
    worker_concurrency: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    killed: set[str] = field(default_factory=set)
    redis_port: int = 0
    api_port: int = 0

    def __post_init__(self) -> None:
        self.compose = load_compose()
        self.redis_port = self.redis_port or free_port()
        self.api_port = self.api_port or free_port()
        self.home = self.workdir / "airflow_home"
        self.home.mkdir(parents=True, exist_ok=True)
        metadata = Endpoint.from_url(self.metadata_url)
        self.endpoints = {
            "postgres": metadata,
            "trustwatch-db": Endpoint.from_url(self.store_url),
            "redis": Endpoint("127.0.0.1", self.redis_port),
            "airflow-apiserver": Endpoint("127.0.0.1", self.api_port),
        }
        from trustwatch.settings import resource_dir

        self.paths = {"/opt/trustwatch/dags": str(resource_dir("dags"))}

    # -- environments ------------------------------------------------------------------------------

    def env_for(self, service: str, **native: str) -> dict[str, str]:
        """The service's compose environment plus the per-host settings a container does not need."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TRUSTWATCH_", "_AIRFLOW"))}
        bin_dir = str(Path(sys.executable).parent)
        base["PATH"] = bin_dir + os.pathsep + base.get("PATH", "")
        env = {**base, **airflow_environment(self.compose, service, self.variables, self.endpoints, self.paths)}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                # The container's port 8080 is published; natively the api-server listens on a free port.
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.api_port}/",
                # Containers each have their own network namespace; processes on one host need their own ports.
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
            }
        )
        env.update(self.extra_env)
        env.update(native)
        return env

    # -- processes ---------------------------------------------------------------------------------

    def _start(self, name: str, command: list[str], env: dict[str, str]) -> Process:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,  # noqa: S603
                                     stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.workdir)
        process = Process(name, popen, log, command, env)
        self.processes.append(process)
        return process

    def start_redis(self) -> Process:
        """Celery's broker, as the compose file's redis service (no persistence: a test broker)."""
        redis = shutil.which("redis-server")
        if redis is None:
            raise TopologyError("redis-server is not installed (Debian: apt-get install redis-server)")
        process = self._start("redis", [redis, "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                        "--save", "", "--appendonly", "no", "--daemonize", "no"], dict(os.environ))
        self.wait(lambda: _port_open(self.redis_port), 30, "redis", process)
        return process

    def init(self) -> str:
        """airflow-init's script, verbatim, with its own environment; returns its output."""
        env = self.env_for("airflow-init")
        bash = shutil.which("bash") or "/bin/bash"
        result = subprocess.run([bash, "-c", ENTRYPOINT + init_script(self.compose)], env=env,  # noqa: S603
                                capture_output=True, text=True, timeout=600, cwd=self.workdir, check=False)
        if result.returncode != 0:
            raise TopologyError(f"airflow-init failed ({result.returncode}):\n{result.stdout[-3000:]}"
                                f"\n{result.stderr[-5000:]}")
        return result.stdout

    def start_service(self, service: str, name: str | None = None, **native: str) -> Process:
        """Start one long-running Airflow service with the compose command."""
        command = str(self.compose["services"][service]["command"]).split()
        return self._start(name or service, [AIRFLOW, *command, *self._extra_args(service, name)],
                           self.env_for(service, **native))

    def _extra_args(self, service: str, name: str | None) -> list[str]:
        if service == "airflow-worker":
            return ["--celery-hostname", f"{name or 'worker'}@%h", "--concurrency", str(self.worker_concurrency)]
        return []

    def start_worker(self, index: int) -> Process:
        """One Celery worker with its own hostname, as each container of ``--scale airflow-worker=N`` has."""
        name = f"worker{index}"
        return self.start_service(
            "airflow-worker", name, CONTAINER_HOSTNAME=name, PYTHONPATH=str(Path(__file__).parent),
            AIRFLOW__CORE__HOSTNAME_CALLABLE="native_topology.container_hostname",
        )

    def up(self) -> None:
        """Redis, init, then every long-running service and ``workers`` Celery workers."""
        compile_sources()
        self.start_redis()
        self.init()
        api = self.start_service("airflow-apiserver")
        self.wait(lambda: _http_ok(f"http://127.0.0.1:{self.api_port}/api/v2/version"), 240, "the api-server", api)
        for service in ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
            self.start_service(service)
        for index in range(1, self.workers + 1):
            self.start_worker(index)

    def wait(self, predicate: Any, timeout: float, what: str, process: Process | None = None) -> Any:
        """Poll ``predicate`` until truthy; fail with the process's log when it exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            for proc in [process] if process else self.processes:
                if proc.popen.poll() is not None and proc.name not in self.killed:
                    raise TopologyError(f"{proc.name} exited ({proc.popen.returncode}) while waiting for "
                                        f"{what}:\n{tail(proc.log)}")
            time.sleep(1)
        raise TopologyError(f"timed out after {timeout:.0f}s waiting for {what}")

    def kill(self, process: Process, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the process group of one service (a worker and its task processes)."""
        self.killed.add(process.name)
        try:
            os.killpg(process.popen.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.popen.pid, signal.SIGKILL)
            process.popen.wait(timeout=10)

    def restart(self, process: Process) -> Process:
        """Start a killed service again, same name, command and environment: compose's ``restart: always``.

        The dead process leaves the list, so ``wait`` watches the new one.
        """
        if process.popen.poll() is None:
            raise TopologyError(f"{process.name} is still running; kill it first")
        self.processes.remove(process)
        self.killed.discard(process.name)
        return self._start(process.name, process.command, process.env)

    def stop(self) -> None:
        """Stop every process this topology started: SIGTERM to each group, then SIGKILL after a grace."""
        for process in reversed(self.processes):
            if process.popen.poll() is None:
                try:
                    os.killpg(process.popen.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 20
        for process in reversed(self.processes):
            try:
                process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for process in self.processes:  # the groups too: task processes outlive a killed parent
            try:
                os.killpg(process.popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if process.popen.poll() is None:
                process.popen.wait(timeout=10)

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run an ``airflow`` CLI command with the scheduler's environment (as ``docker compose exec``)."""
        return subprocess.run([AIRFLOW, *args], env=self.env_for("airflow-scheduler"),  # noqa: S603
                              capture_output=True,
                              text=True, timeout=timeout, cwd=self.workdir, check=False)


def compile_sources(root: Path = REPO) -> None:
    """Write the bytecode of the project's sources (those of the checkout at ``root``), as pip does when it
    installs the image's wheel.

    The processes here run the checkout, not an installed wheel: where ``PYTHONDONTWRITEBYTECODE`` is set (as
    on these machines) every task process would otherwise compile each trustwatch module it imports again
    (0.04 CPU s for a collect task's imports), which no container pays.  Python reads existing bytecode
    whatever that setting.
    """
    import compileall
    import tomllib

    # the folders the wheel is built from: pyproject.toml's package-dir
    folders = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values()
    for name in folders:
        if (root / name).is_dir():
            compileall.compile_dir(str(root / name), quiet=1, workers=1)


@contextmanager
def running(topology: Topology) -> Iterator[Topology]:
    """Bring the topology up and stop every process it started, whatever happens inside."""
    try:
        topology.up()
        yield topology
    finally:
        topology.stop()


def tail(log: Path, lines: int = 60) -> str:
    """The end of a log file, for failure messages."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (a local http URL)
            return 200 <= response.status < 300
    except Exception:
        return False


def generated_variables() -> dict[str, str]:
    """Fresh secrets for every ``${VAR:?}`` the compose file requires (what an operator puts in .env)."""
    import base64
    import secrets

    return {
        "AIRFLOW_DB_PASSWORD": secrets.token_urlsafe(16),
        "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW_API_SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(16),
        "TRUSTWATCH_DB_PASSWORD": secrets.token_urlsafe(16),
        "TRUSTWATCH_ANALYST_PASSWORD": secrets.token_urlsafe(16),
    }


def main(argv: list[str] | None = None, stream: IO[str] = sys.stdout) -> int:
    """Start the topology in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--metadata-url", required=True, help="an empty PostgreSQL database for Airflow")
    parser.add_argument("--store-url", required=True, help="a PostgreSQL database for the store")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("native_topology"))
    args = parser.parse_args(argv)
    variables = {**generated_variables(), **{k: v for k, v in os.environ.items() if k.isupper()}}
    topology = Topology(args.workdir.resolve(), args.metadata_url, args.store_url, variables, workers=args.workers)
    with running(topology):
        print(f"api-server on http://127.0.0.1:{topology.api_port}; logs in {topology.workdir}", file=stream)
        try:
            while all(p.popen.poll() is None for p in topology.processes if p.name != "redis"):
                time.sleep(2)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

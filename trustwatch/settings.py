"""Configuration: Airflow connections (inside Airflow or as ``AIRFLOW_CONN_*`` variables) and the store URL.

The same connection ids serve the DAGs and the command line, so an operator configures credentials once,
the Airflow way.  Secrets are read here and handed to clients; they never enter a message of this module.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

PACKAGE_DIR = Path(__file__).resolve().parent
#: The source checkout this package runs from (an editable install), or None in an installed wheel.
CHECKOUT_ROOT: Path | None = (
    PACKAGE_DIR.parent
    if (PACKAGE_DIR.parent / "pyproject.toml").is_file() and (PACKAGE_DIR.parent / "collectors").is_dir()
    else None
)
#: Where local state (``data/``, ``reports/``, ``airflow_home/``) goes: ``TRUSTWATCH_HOME``, else the checkout,
#: else the working directory of an installed wheel.
HOME_DIR = Path(os.environ.get("TRUSTWATCH_HOME") or CHECKOUT_ROOT or Path.cwd()).resolve()
DEFAULT_DATA_DIR = HOME_DIR / "data"
DEFAULT_SQLITE_PATH = DEFAULT_DATA_DIR / "trustwatch.db"



def resource_dir(name: str) -> Path:
    """A folder shipped with trustwatch (``alembic``, ``agencies``, ``dags``), installed or in the checkout.

    The wheel carries these folders inside the ``trustwatch`` package; an editable install keeps them at the
    top of the checkout, where the design card puts them.
    """
    for candidate in (PACKAGE_DIR / name, *([CHECKOUT_ROOT / name] if CHECKOUT_ROOT else [])):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"trustwatch's {name!r} folder is missing from {PACKAGE_DIR}: reinstall the package")


STORE_CONN_ID = "trustwatch_db"
X_CONN_ID = "x_api"
REDDIT_CONN_ID = "reddit_api"

_EXAMPLES = {
    X_CONN_ID: '{"conn_type": "http", "password": "<bearer token>", '
    '"extra": {"endpoint": "recent", "max_query_length": 512}}',
    REDDIT_CONN_ID: '{"conn_type": "http", "login": "<client id>", "password": "<client secret>", '
    '"extra": {"user_agent": "trustwatch/0.1 by u/<you>"}}',
    STORE_CONN_ID: '{"conn_type": "postgres", "host": "db", "login": "trustwatch", '
    '"password": "<password>", "schema": "trustwatch", "port": 5432}',
}


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the setting, never its secret."""


def in_airflow_task() -> bool:
    """True inside an Airflow task, where advice names the Airflow connection rather than a shell variable."""
    return bool(os.environ.get("AIRFLOW_CTX_DAG_ID"))


class MissingConnectionError(ConfigError):
    """An Airflow connection the task needs is not configured.

    One line, with advice that fits where it runs: a task reads Airflow's connections (Admin > Connections),
    the command line reads only ``AIRFLOW_CONN_<ID>`` from its environment.
    """

    def __init__(self, conn_id: str) -> None:
        env = f"AIRFLOW_CONN_{conn_id.upper()}"
        example = _EXAMPLES.get(conn_id, '{"conn_type": "http", "password": "..."}')
        if in_airflow_task():
            advice = (f"add it in the Airflow UI (Admin > Connections), or set {env}='{example}' in the "
                      "environment of the scheduler and workers")
        else:
            advice = f"the command line reads it from the environment: export {env}='{example}'"
        super().__init__(f"Airflow connection '{conn_id}' is not configured; {advice}")
        self.conn_id = conn_id


class StoreUnreachableError(ConfigError):
    """The store's server refused or did not answer, or its file cannot be opened."""

    def __init__(self, url: StoreUrl, reason: str) -> None:
        what = "the path and its folder" if url.url.startswith("sqlite") else "that the server runs"
        if in_airflow_task():
            fix = f"check {what}, and the Airflow connection '{STORE_CONN_ID}' (Admin > Connections)"
        elif url.source.startswith("Airflow connection"):
            fix = f"check {what}, or change AIRFLOW_CONN_{STORE_CONN_ID.upper()} in your environment"
        elif url.source == "TRUSTWATCH_DATABASE_URL":
            fix = f"check {what}, or change TRUSTWATCH_DATABASE_URL (unset it for the local default store)"
        else:
            fix = f"check {what}, or set TRUSTWATCH_DATABASE_URL"
        super().__init__(f"cannot connect to the store at {redact_url(url.url)} (from {url.source}): {reason}; {fix}")


def connect_failure_reason(exc: BaseException, url: str) -> str:
    """The driver's reason for a failed connect, as one short line without the password.

    psycopg explains over several lines ("connection to server at ... failed: Connection refused / Is the
    server running ..."); the part after the last "failed:" of the first line is what the user needs.
    """
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    reason = first.rsplit("failed:", 1)[-1].strip() or type(exc).__name__
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:
        password = None
    if password:
        reason = reason.replace(str(password), "***")
    return redact_url(reason)[:200]


@dataclass(frozen=True)
class ConnectionInfo:
    """The parts of an Airflow connection trustwatch uses."""

    conn_id: str
    conn_type: str | None = None
    host: str | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    port: int | None = None
    schema: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        hidden = "***" if self.password else None
        return (
            f"ConnectionInfo(conn_id={self.conn_id!r}, conn_type={self.conn_type!r}, host={self.host!r}, "
            f"login={self.login!r}, password={hidden!r}, port={self.port!r}, schema={self.schema!r})"
        )


def _parse_extra(raw: Any, conn_id: str) -> dict[str, Any]:
    if raw in (None, ""):
        return {}
    if isinstance(raw, dict):
        return dict(raw)
    try:
        value = json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"connection '{conn_id}': extra is not valid JSON") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"connection '{conn_id}': extra must be a JSON object")
    return value


def parse_connection(conn_id: str, value: str) -> ConnectionInfo:
    """Parse Airflow's environment format for a connection: a JSON object or a URI."""
    text = value.strip()
    env = f"AIRFLOW_CONN_{conn_id.upper()}"
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{env} is not valid JSON (position {exc.pos if hasattr(exc, 'pos') else '?'})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{env} must be a JSON object")
        port = data.get("port")
        try:
            port = int(port) if port not in (None, "") else None
        except (TypeError, ValueError):
            raise ConfigError(f"{env}: port must be a number") from None
        return ConnectionInfo(
            conn_id=conn_id,
            conn_type=data.get("conn_type"),
            host=data.get("host"),
            login=data.get("login"),
            password=data.get("password"),
            port=port,
            schema=data.get("schema"),
            extra=_parse_extra(data.get("extra"), conn_id),
        )
    parts = urlsplit(text)
    if not parts.scheme:
        raise ConfigError(f"{env} is neither JSON nor a URI (expected e.g. 'http://:token@')")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{env}: the port is not a number") from None
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    extra: dict[str, Any]
    if "__extra__" in query:
        extra = _parse_extra(query.pop("__extra__"), conn_id)
    else:
        extra = dict(query)
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return ConnectionInfo(
        conn_id=conn_id,
        conn_type=parts.scheme.replace("-", "_"),
        host=unquote(parts.hostname) if parts.hostname else None,
        login=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        port=port,
        schema=unquote(path) if path else None,
        extra=extra,
    )


def _from_airflow(conn_id: str) -> ConnectionInfo | None:
    """Look the connection up through Airflow, when running inside an Airflow task."""
    if not os.environ.get("AIRFLOW_CTX_DAG_ID") and not os.environ.get("TRUSTWATCH_USE_AIRFLOW_CONNECTIONS"):
        return None
    try:
        from airflow.sdk import Connection
    except ImportError:
        return None
    try:
        conn = Connection.get(conn_id)
    except Exception:
        return None
    if conn is None:
        return None
    return ConnectionInfo(
        conn_id=conn_id,
        conn_type=conn.conn_type,
        host=conn.host,
        login=conn.login,
        password=conn.password,
        port=conn.port,
        schema=conn.schema,
        extra=_parse_extra(conn.extra, conn_id),
    )


def find_connection(conn_id: str) -> ConnectionInfo | None:
    """The connection from ``AIRFLOW_CONN_<ID>`` or, inside a task, from Airflow; None when absent."""
    value = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if value:
        return parse_connection(conn_id, value)
    return _from_airflow(conn_id)


def get_connection(conn_id: str) -> ConnectionInfo:
    """Like :func:`find_connection`, but a missing connection is an error that says how to set it."""
    conn = find_connection(conn_id)
    if conn is None:
        raise MissingConnectionError(conn_id)
    return conn


#: Everything between the scheme and the LAST ``@``: a password with an unencoded ``@`` has its tail after
#: the first one, which a narrower pattern (and the driver's "cannot resolve host" message) would show.
_PASSWORD_IN_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^\s'\":@/]*):[^\s'\"]*@")


def redact_url(url: str) -> str:
    """Hide the password of a URL-like string, even one too broken to parse: everything from the first ``:``
    of the user info to the LAST ``@`` (an unencoded ``@`` in a password leaves no tail).  The user name
    stays, so a URL without a password (the embedded server's) can still be copied into psql."""
    return _PASSWORD_IN_URL.sub(r"\1\2:***@", url)


_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "sqlite": "sqlite",
}


def _url_from_connection(conn: ConnectionInfo) -> str:
    from sqlalchemy.engine import URL

    kind = (conn.conn_type or "").lower()
    if kind not in _DRIVERS:
        raise ConfigError(
            f"connection '{conn.conn_id}': conn_type {conn.conn_type!r} is not supported "
            "(use 'postgres' or 'sqlite')"
        )
    if kind == "sqlite":
        path = conn.host or conn.schema
        if not path:
            raise ConfigError(f"connection '{conn.conn_id}': a sqlite connection needs the file path as host")
        return f"sqlite:///{path}"
    if conn.host and conn.host.startswith("/"):
        # A Unix-socket directory (libpq's reading of a host that starts with "/", as Airflow's Postgres
        # hook passes it): in a URL it goes in the query, the authority cannot hold a path.
        socket = {"host": conn.host, **({"port": str(conn.port)} if conn.port else {})}
        url = URL.create(_DRIVERS[kind], username=conn.login, password=conn.password, database=conn.schema,
                         query=socket)
        return url.render_as_string(hide_password=False)
    url = URL.create(
        _DRIVERS[kind],
        username=conn.login,
        password=conn.password,
        host=conn.host,
        port=conn.port,
        database=conn.schema,
    )
    return url.render_as_string(hide_password=False)


@dataclass(frozen=True)
class StoreUrl:
    """The store's SQLAlchemy URL and where it came from (for error messages)."""

    url: str = field(repr=False)
    source: str

    def __repr__(self) -> str:
        return f"StoreUrl(url={redact_url(self.url)!r}, source={self.source!r})"


def store_url() -> StoreUrl:
    """Resolve the store: connection ``trustwatch_db``, else ``TRUSTWATCH_DATABASE_URL``, else SQLite."""
    conn = find_connection(STORE_CONN_ID)
    if conn is not None:
        return StoreUrl(_url_from_connection(conn), f"Airflow connection '{STORE_CONN_ID}'")
    env = os.environ.get("TRUSTWATCH_DATABASE_URL")
    if env:
        url = env.strip()
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return StoreUrl(url, "TRUSTWATCH_DATABASE_URL")
    path = Path(os.environ.get("TRUSTWATCH_DATA_DIR", DEFAULT_DATA_DIR)) / "trustwatch.db"
    return StoreUrl(f"sqlite:///{path}", "the embedded default")

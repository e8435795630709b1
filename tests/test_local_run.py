"""The README's first command, end to end: start it, log in, trigger collect_x, find the posts, Ctrl-C.

``scripts/run_local.sh`` runs with its own Airflow home, store and ports under a temporary directory
and no API credentials, so it starts in demo mode against the sandbox.  The test talks to Airflow the
way a user's script would (``/auth/token``, ``/api/v2``), then interrupts the command like Ctrl-C does
and checks that every process it started has exited.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[1]
AGENCIES = ["chicago-pd", "nypd", "lapd"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _wait_for(predicate, timeout: float, what: str, log: Path, proc: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"run_local.sh exited ({proc.returncode}) while waiting for {what}:\n{_tail(log)}")
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}:\n{_tail(log)}")


def _tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _processes_with(marker: str) -> list[int]:
    """Processes whose environment carries ``marker`` (every process the command started inherits it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_first_command_serves_the_ui_collects_on_trigger_and_stops_on_ctrl_c(tmp_path, request):
    port = _free_port()
    home = tmp_path / "airflow_home"
    # Not under pytest's basetemp: its root is mode 0700, and every pytest session on the machine resets
    # it, which the embedded server's unprivileged user (when run as root) could not traverse.
    outside = Path(tempfile.mkdtemp(prefix="trustwatch-local-"))
    request.addfinalizer(lambda: shutil.rmtree(outside, ignore_errors=True))
    data = outside / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TRUSTWATCH_"))}
    env.update(
        {
            "TRUSTWATCH_AIRFLOW_HOME": str(home),
            "TRUSTWATCH_DATA_DIR": str(data),
            "TRUSTWATCH_PORT": str(port),
            # Only the run this test triggers: no scheduled runs competing for the two cores.
            "TRUSTWATCH_X_SCHEDULE": "none",
            "TRUSTWATCH_REDDIT_SCHEDULE": "none",
            "TRUSTWATCH_COMPLIANCE_SCHEDULE": "none",
        }
    )
    marker = f"AIRFLOW_HOME={home}"
    log = tmp_path / "run_local.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", str(REPO / "scripts" / "run_local.sh")],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        login = _wait_for(
            lambda: re.search(r"login: (\S+) / password: (\S+)", log.read_text(errors="replace")),
            180, "the ready banner", log, proc,
        )
        print(f"first command: UI ready after {time.monotonic() - started:.1f} s")
        text = log.read_text(errors="replace")
        assert f"open {base}" in text
        assert text.count("DEMO MODE") == 1 and "SANDBOX" in text
        # a quiet console: the steps and the banner, the components' output in files under the data folder
        assert len(text.splitlines()) < 40, text
        assert f"logs: {data / 'logs'}" in text and (data / "logs" / "airflow.log").stat().st_size > 0
        store_url = re.search(r"store: embedded PostgreSQL in \S+ \((\S+)\)", text)
        assert store_url, text
        assert (data / "postgres" / "PG_VERSION").exists()

        status, body = _http("POST", f"{base}/auth/token", {"username": login[1], "password": login[2]})
        assert status in (200, 201), body
        token = body["access_token"]

        dag = _wait_for(
            lambda: (lambda r: r[1] if r[0] == 200 else None)(_http("GET", f"{base}/api/v2/dags/collect_x",
                                                                      token=token)),
            # the banner comes when the UI answers; the DAG processor starts then
            180, "collect_x to be parsed", log, proc,
        )
        assert dag["is_paused"] is False, "demo mode should create the DAGs unpaused"
        # the demo connections are real Airflow connections, marked as sandbox
        for conn_id in ("x_api", "reddit_api"):
            conn = _wait_for(lambda c=conn_id: (lambda r: r[1] if r[0] == 200 else None)(
                _http("GET", f"{base}/api/v2/connections/{c}", token=token)), 60, f"connection {conn_id}", log, proc)
            assert conn["description"].startswith("SANDBOX"), conn

        stop = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
        conf = {
            "start": (stop - dt.timedelta(hours=30)).isoformat(),
            "end": (stop - dt.timedelta(hours=4)).isoformat(),
            "agencies": AGENCIES,
        }
        status, run = _http("POST", f"{base}/api/v2/dags/collect_x/dagRuns",
                            {"logical_date": None, "conf": conf}, token=token)
        assert status == 200, run
        run_url = f"{base}/api/v2/dags/collect_x/dagRuns/{urllib.request.quote(run['dag_run_id'], safe='')}"
        final = _wait_for(
            lambda: (lambda r: r[1] if r[1].get("state") in ("success", "failed") else None)(
                _http("GET", run_url, token=token)
            ),
            # queued until the scheduler starts, behind the UI
            300, "the triggered collect_x run to finish", log, proc,
        )
        assert final["state"] == "success", _tail(log, 120)

        with psycopg.connect(store_url[1].replace("postgresql+psycopg://", "postgresql://")) as store:
            posts = store.execute("SELECT count(*) FROM posts WHERE platform = 'x'").fetchone()[0]
            mentions = store.execute("SELECT count(*) FROM post_mentions").fetchone()[0]
            runs = store.execute(
                "SELECT count(*) FROM collection_runs WHERE dag_run_id = %s", (run["dag_run_id"],)
            ).fetchone()[0]
        assert not (data / "trustwatch.db").exists() and not (home / "airflow.db").exists()

        # the background demo load: 70 days with a spike, so the weekly trends and the alerts show something
        def loaded() -> bool:
            backfill = data / "logs" / "demo_backfill.log"
            return backfill.exists() and '"posts_scored"' in backfill.read_text(errors="replace")

        _wait_for(loaded, 600, "the demo backfill and enrich to finish", log, proc)
        with psycopg.connect(store_url[1].replace("postgresql+psycopg://", "postgresql://")) as store:
            weeks = store.execute("SELECT count(DISTINCT week) FROM agency_weekly_trend WHERE agency = 'nypd'"
                                  ).fetchone()[0]
            alerts = store.execute("SELECT count(*) FROM agency_alerts WHERE agency = 'nypd'").fetchone()[0]
        assert weeks >= 9 and alerts >= 1, (weeks, alerts, _tail(data / "logs" / "demo_backfill.log"))
        assert posts > 0 and mentions > 0
        assert runs > 0, "the ledger should name the DAG run that collected"
    finally:
        # Ctrl-C: the terminal sends SIGINT to the foreground process group.
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        leftovers = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            leftovers = _processes_with(marker)
            if not leftovers:
                break
            time.sleep(0.5)
        for pid in leftovers:  # clean up before failing, so a broken stop does not leak processes
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert proc.returncode == 0, _tail(log)
    assert leftovers == [], f"processes still running after Ctrl-C: {leftovers}"
    assert "stopped every process started by this run" in log.read_text(errors="replace")
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the API port is still open"


def test_a_busy_port_is_refused_with_the_way_out(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TRUSTWATCH_"))}
        env.update({"TRUSTWATCH_AIRFLOW_HOME": str(tmp_path / "home"), "TRUSTWATCH_DATA_DIR": str(tmp_path / "data")})
        result = subprocess.run(
            ["bash", str(REPO / "scripts" / "run_local.sh"), "--port", str(port)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "--port" in result.stderr
    assert not (tmp_path / "home").exists(), "nothing should be set up before the port check"


# --- a second start needs no `airflow` command (issue 17: the UI in under 30 s) -------------------------


def _metadata(tmp_path: Path, *statements: str):
    """A local-run configuration whose Airflow metadata database (SQLite) holds what ``statements`` write."""
    import sqlite3

    from trustwatch.local import LocalConfig

    config = LocalConfig(airflow_home=tmp_path / "home", data_dir=tmp_path / "data")
    config.airflow_home.mkdir()
    config.data_dir.mkdir()
    with sqlite3.connect(config.airflow_home / "airflow.db") as db:
        for statement in statements:
            db.execute(statement)
    return config, {"PATH": os.environ.get("PATH", "")}


def _no_airflow_commands(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from trustwatch import local

    ran: list[str] = []
    monkeypatch.setattr(local, "_run_step", lambda title, command, env: ran.append(title) or "")
    return ran


def test_a_previous_demo_runs_connections_are_renewed_and_real_ones_kept(tmp_path, monkeypatch):
    """`airflow connections list -o json` has no description: the SANDBOX mark was never seen, so a second
    start took the last run's sandbox connections (pointing at a sandbox no longer running) for real ones."""
    from trustwatch.local import configured_connections

    config, env = _metadata(
        tmp_path, "CREATE TABLE connection (conn_id TEXT, description TEXT)",
        "INSERT INTO connection VALUES ('x_api', 'SANDBOX (demo mode): the local API sandbox at http://x')",
        "INSERT INTO connection VALUES ('reddit_api', 'our Reddit app')")
    ran = _no_airflow_commands(monkeypatch)
    assert configured_connections(env, config) == {"reddit_api"}
    assert ran == []


def test_the_metadata_migration_is_skipped_only_when_this_airflow_left_it_current(tmp_path, monkeypatch):
    from trustwatch import local

    config, env = _metadata(tmp_path, "CREATE TABLE alembic_version (version_num TEXT)",
                            "INSERT INTO alembic_version VALUES ('rev-a')")
    ran = _no_airflow_commands(monkeypatch)
    local.migrate_metadata(config, env)  # no stamp: migrated
    assert ran == ["migrating Airflow's metadata database"]
    local.migrate_metadata(config, env)  # the stamp of that migration: skipped
    assert len(ran) == 1
    monkeypatch.setattr(local, "_airflow_version", lambda: "9.9.9")  # another Airflow: migrated again
    local.migrate_metadata(config, env)
    assert len(ran) == 2


def test_pools_and_demo_connections_already_there_are_not_created_again(tmp_path, monkeypatch):
    from trustwatch import local

    specs = local.demo_connection_specs("http://127.0.0.1:5555", ["x_api", "reddit_api"])
    config, env = _metadata(
        tmp_path, "CREATE TABLE slot_pool (pool TEXT, slots INTEGER)",
        "INSERT INTO slot_pool VALUES ('x_api', 2)", "INSERT INTO slot_pool VALUES ('reddit_api', 2)",
        "CREATE TABLE connection (conn_id TEXT, description TEXT)",
        *[f"INSERT INTO connection VALUES ('{c}', '{s['description']}')" for c, s in specs.items()])
    ran = _no_airflow_commands(monkeypatch)
    local.ensure_pools(config, env)
    local.create_demo_connections(config, env, "http://127.0.0.1:5555", ["x_api", "reddit_api"])
    assert ran == ["creating the demo connections in Airflow (marked SANDBOX)"]  # no file of them yet
    local.create_demo_connections(config, env, "http://127.0.0.1:5555", ["x_api", "reddit_api"])
    assert len(ran) == 1, "the same connections were imported again"
    local.create_demo_connections(config, env, "http://127.0.0.1:5556", ["x_api", "reddit_api"])  # moved
    local.ensure_pools(dataclasses.replace(config, pool_slots=3), env)  # other slots: set again
    assert ran[1:] == ["creating the demo connections in Airflow (marked SANDBOX)",
                       "creating the pools x_api, reddit_api"]


def test_the_sandbox_keeps_its_port_while_it_is_free(tmp_path):
    from trustwatch.local import LocalConfig, sandbox_port

    config = LocalConfig(airflow_home=tmp_path / "home", data_dir=tmp_path)
    first = sandbox_port(config)
    assert sandbox_port(config) == first
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", first))
        busy.listen()
        assert sandbox_port(config) != first

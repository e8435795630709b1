"""Expected errors of the command line: one line, the setting named, the password masked, exit 2."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from trustwatch import cli
from trustwatch.settings import MissingConnectionError, parse_connection

SECRET = "s3cretpw-never-shown"


def _dead_port() -> int:
    """A port where nothing answers (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv", [["db", "current"], ["db", "upgrade"], ["agencies", "sync"], ["enrich"],
                                  ["report", "--out", "REPORT"]])
def test_unreachable_store_is_one_line_naming_the_variable(argv: list[str], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_TRUSTWATCH_DB", raising=False)
    monkeypatch.setenv("TRUSTWATCH_DATABASE_URL", f"postgresql://bob:{SECRET}@127.0.0.1:{_dead_port()}/tw")
    argv = [str(tmp_path / "r.html") if a == "REPORT" else a for a in argv]
    code, err = _run(argv, capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "TRUSTWATCH_DATABASE_URL" in err and "bob:***@127.0.0.1" in err and "refused" in err.lower()
    assert SECRET not in err and "Traceback" not in err


def test_unreachable_store_from_the_connection_variable_names_that_variable(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("AIRFLOW_CTX_DAG_ID", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_TRUSTWATCH_DB", json.dumps(
        {"conn_type": "postgres", "host": "127.0.0.1", "port": _dead_port(), "login": "bob", "password": SECRET}))
    code, err = _run(["db", "upgrade"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "AIRFLOW_CONN_TRUSTWATCH_DB" in err and SECRET not in err


def test_unopenable_sqlite_store_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.delenv("AIRFLOW_CONN_TRUSTWATCH_DB", raising=False)
    monkeypatch.setenv("TRUSTWATCH_DATABASE_URL", f"sqlite:///{blocker}/store.db")
    code, err = _run(["db", "current"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "TRUSTWATCH_DATABASE_URL" in err, err


def test_unmigrated_store_says_to_upgrade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_TRUSTWATCH_DB", raising=False)
    monkeypatch.setenv("TRUSTWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    code, err = _run(["enrich"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "trustwatch db upgrade" in err, err


def test_missing_connection_in_the_cli_gives_the_export_line_not_the_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CTX_DAG_ID", raising=False)
    message = str(MissingConnectionError("x_api"))
    assert len(message.splitlines()) == 1
    assert "export AIRFLOW_CONN_X_API='" in message and "Admin > Connections" not in message
    # the example it prints is a valid connection
    example = shlex.split(message.split("export ", 1)[1])[0].split("=", 1)[1]
    assert parse_connection("x_api", example).extra["endpoint"] == "recent"


def test_missing_connection_in_a_task_points_at_the_airflow_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "collect_x")
    message = str(MissingConnectionError("reddit_api"))
    assert len(message.splitlines()) == 1 and "Admin > Connections" in message and "export" not in message


def test_sandbox_serve_prints_the_export_lines_the_cli_needs(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "trustwatch.cli", "sandbox", "serve", "--port", "0",
                             "--posts", "200"], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        lines: list[str] = []
        found = threading.Event()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.strip())
                if len([x for x in lines if x.startswith("export ")]) == 2:
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        assert found.wait(60), f"no two export lines within 60 s; it printed: {lines}"
        exports = dict(shlex.split(x[len("export "):])[0].split("=", 1) for x in lines if x.startswith("export "))
        assert set(exports) == {"AIRFLOW_CONN_X_API", "AIRFLOW_CONN_REDDIT_API"}
        x = parse_connection("x_api", exports["AIRFLOW_CONN_X_API"])
        reddit = parse_connection("reddit_api", exports["AIRFLOW_CONN_REDDIT_API"])
        assert reddit.extra["user_agent"] and reddit.login and reddit.password
        request = urllib.request.Request(f"{x.extra['base_url']}/2/tweets/search/recent?query=police",
                                         headers={"Authorization": f"Bearer {x.password}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200 and "data" in json.loads(response.read())
    finally:
        proc.terminate()
        proc.wait(timeout=10)

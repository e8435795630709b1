"""The README's test command on a machine without PostgreSQL: it starts the embedded server itself."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_test_command_uses_the_embedded_server_when_no_postgresql_answers() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRUSTWATCH_TEST_PG", "PYTEST_"))}
    env["TRUSTWATCH_TEST_PG_PROBE_URL"] = f"postgresql://postgres@127.0.0.1:{_dead_port()}/postgres"
    result = subprocess.run(
        [str(ROOT / "scripts" / "test.sh"), "-q", "-p", "no:cacheprovider",
         "tests/test_times.py::test_iso_literals_with_t_and_z_count_the_right_posts"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "starting the embedded server" in out and "stopping the embedded PostgreSQL server" in out, out[-3000:]
    assert "2 passed" in out, out[-3000:]  # the SQLite and the PostgreSQL case, neither skipped
    used = next(line for line in out.splitlines() if line.startswith("== PostgreSQL for the tests:"))
    assert "host=/tmp/trustwatch-pg." in used

"""Fixtures that start the sandbox server on a loopback port (import them into a test module).

One server per test module keeps the corpus generation cost low; each test gets it with the fault plan
cleared, the request log emptied and the rate limits reset, so tests do not leak into each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from trustwatch.sandbox.common import CorpusConfig
from trustwatch.sandbox.server import SandboxServer

#: Small enough to generate and search fast, large enough for several pages per query and window.
SANDBOX_POSTS = 3000
SANDBOX_SEED = 11
X_TOKEN = "sandbox-x-token-7f3a9c"


@pytest.fixture(scope="module")
def _x_sandbox_server() -> Iterator[SandboxServer]:
    server = SandboxServer(CorpusConfig(seed=SANDBOX_SEED, posts=SANDBOX_POSTS, days=7), x_bearer_token=X_TOKEN)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def x_sandbox(_x_sandbox_server: SandboxServer) -> Iterator[SandboxServer]:
    """The running sandbox, with no armed fault, an empty request log and fresh rate-limit windows."""
    server = _x_sandbox_server
    server.faults.clear()
    server.clear_log()
    server.x.reset_rate_limits()
    server.x.rate_limit = None
    yield server
    server.faults.clear()


@pytest.fixture(autouse=True)
def no_prawcore_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """prawcore sleeps up to a few seconds between its own retries of a 5xx; tests of faults need no real
    waits (autouse in every module that imports it)."""
    import time

    import prawcore.sessions

    class _Time:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            return None

    monkeypatch.setattr(prawcore.sessions, "time", _Time())

"""Request pacing shared by every collect task of one app, through the store (issue 14.4).

X limits full-archive search per app: one request per second and 300 per 15 minutes, whatever the number
of workers.  Each collect task pacing itself alone lets two Celery workers (the ``x_api`` pool has two slots)
send two requests a second and meet steady 429s.  Every task already shares the store, so the next free
request slot of an app lives in one row of ``api_rate_limits``: a task reserves a slot in a short
transaction (row lock on PostgreSQL, the write lock on SQLite) and sleeps until it.  Clocks of the workers
are assumed NTP-synchronised; the slot is kept as UTC time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, select, update
from trustwatch.models.store import _insert
from trustwatch.models.tables import ApiRateLimit


def app_key(endpoint: str, secret: str) -> str:
    """The limiter row of an app: the endpoint and a short hash of its token (never the token itself)."""
    digest = hashlib.sha256(secret.encode("utf-8")).hexdigest()[:16]
    return f"x:{endpoint}:{digest}"


@dataclass
class SharedPacer:
    """Reserve request slots of one app in the store and wait for them: at most one request per
    ``interval`` seconds and ``window_limit`` per ``window_seconds`` across every process that shares the store.
    """

    engine: Engine
    api: str
    interval: float = 1.0
    window_limit: int = 300
    window_seconds: float = 900.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time

    def reserve(self) -> float:
        """Take the next free slot; returns the seconds to wait before sending (0 when it is now)."""
        now = dt.datetime.fromtimestamp(self.clock(), tz=dt.UTC)
        interval = dt.timedelta(seconds=self.interval)
        span = dt.timedelta(seconds=self.window_seconds)
        t = ApiRateLimit.__table__
        with self.engine.begin() as conn:
            conn.execute(_insert(conn, t).values(api=self.api, next_at=now, window_start=now, window_count=0)
                         .on_conflict_do_nothing(index_elements=["api"]))
            stmt = select(t.c.next_at, t.c.window_start, t.c.window_count).where(t.c.api == self.api)
            if conn.dialect.name == "postgresql":
                stmt = stmt.with_for_update()
            row = conn.execute(stmt).one()
            slot = max(now, row.next_at)
            start, count = row.window_start, row.window_count
            if slot >= start + span:
                start, count = slot, 0  # the app's window has rolled over
            if count >= self.window_limit:
                slot = start + span  # this window is spent: the first slot of the next one
                start, count = slot, 0
            conn.execute(update(t).where(t.c.api == self.api).values(
                next_at=slot + interval, window_start=start, window_count=count + 1))
        return max((slot - now).total_seconds(), 0.0)

    def __call__(self) -> float:
        """Wait for a reserved slot; returns the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            self.sleep(wait)
        return wait

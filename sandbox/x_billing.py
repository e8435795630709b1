"""The sandbox's meter of billed X reads: what a pay-per-use app would be charged for.

X bills reads per resource returned (docs.x.com, "Usage and billing"): every post and every user in a
response (``data`` and ``includes``), a resource counted once per UTC day however often it is returned
that day.  Batch compliance jobs and counts are not post reads.  The benchmark and the tests read the
meter to compare what trustwatch's ledger says it spent with what X would bill.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable


class ReadMeter:
    """Billed post and user reads, deduplicated per resource and UTC day."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.posts = 0
        self.users = 0
        #: Reads returned, before the per-day deduplication (what a naive count of responses gives).
        self.returned = 0
        self._seen: set[tuple[str, str, dt.date]] = set()
        self._lock = threading.Lock()

    def bill(self, post_ids: Iterable[str], user_ids: Iterable[str]) -> None:
        """Count the posts and users of one response."""
        day = dt.datetime.fromtimestamp(self.clock(), dt.UTC).date()
        with self._lock:
            for kind, ids in (("post", post_ids), ("user", user_ids)):
                for resource in ids:
                    self.returned += 1
                    key = (kind, resource, day)
                    if key in self._seen:
                        continue
                    self._seen.add(key)
                    if kind == "post":
                        self.posts += 1
                    else:
                        self.users += 1

    @property
    def total(self) -> int:
        """Billed reads so far (posts and users)."""
        return self.posts + self.users

    def reset(self) -> None:
        """Start counting from zero (a new phase of a test or benchmark)."""
        with self._lock:
            self.posts = self.users = self.returned = 0
            self._seen.clear()

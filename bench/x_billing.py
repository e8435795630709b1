"""X billing benchmark: reads billed per stored post over each post's first 30 days, before and after.

    .venv/bin/python bench/x_billing.py [--posts 6000] [--out bench/X_BILLING_RESULTS.md]

A sandbox month: the X sandbox serves a 30-day corpus; a simulated clock (the store's ``utcnow`` and the
sandbox's billing meter and compliance jobs) walks 60 days, one step per day.  Collection runs every
compiled X query over each of the first 30 days (windows are daily here; hourly windows read the same
posts); the checks run all 60 days, so every post collected gets its full first 30 days of compliance
and refresh.  Three scenarios on identical corpora, each on a fresh SQLite store, measured in the same run:

- before: the old compliance, a daily lookup (``GET /2/tweets`` with the collection's expansions) of
  every post younger than 30 days (``x_jobs=False, x_lookup_hours=720``), no refresh;
- after, refresh off: weekly batch compliance jobs (tweets and users);
- after, refresh on: weekly jobs and the metrics refresh at 1 and 7 days (run daily).

Billed reads are what the sandbox's meter counts as X bills them: every post and user a response returns
(``data`` and ``includes``), once per resource per UTC day.  The ratio is billed reads / X posts stored.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select
from trustwatch.collectors.agencies import Matcher, compile_x_queries, load_registry
from trustwatch.collectors.compliance import check_compliance
from trustwatch.collectors.refresh import RefreshSettings, refresh_metrics
from trustwatch.collectors.runner import run_query
from trustwatch.collectors.x import XCollector, XSettings
from trustwatch.models import store
from trustwatch.models.db import make_engine
from trustwatch.models.tables import Post
from trustwatch.sandbox.common import CorpusConfig
from trustwatch.sandbox.server import SandboxServer

from trustwatch import migrate
from trustwatch.records import Window

END = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
DAYS = 30
TOKEN = "bench-x-token"


class SimClock:
    """Simulated UTC time; ticks a millisecond per reading so successive writes stay ordered."""

    def __init__(self, moment: dt.datetime) -> None:
        self.moment = moment
        self.ticks = 0

    def set(self, moment: dt.datetime) -> None:
        self.moment, self.ticks = moment, 0

    def __call__(self) -> dt.datetime:
        self.ticks += 1
        return self.moment + dt.timedelta(milliseconds=self.ticks)

    def timestamp(self) -> float:
        return self.moment.timestamp()


def scenario(name: str, posts: int, registry: Any, matcher: Matcher, queries: list[Any]) -> dict[str, Any]:
    """Run one scenario on a fresh sandbox and store; the meter's figures per phase."""
    clock = SimClock(END - dt.timedelta(days=DAYS))
    store.utcnow = clock  # type: ignore[assignment]  # the store's clock follows the simulation
    with tempfile.TemporaryDirectory() as tmp, SandboxServer(
        CorpusConfig(seed=11, posts=posts, end=END, days=DAYS), x_bearer_token=TOKEN
    ) as server:
        server.x.meter.clock = clock.timestamp
        server.x.compliance.clock = clock.timestamp
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        migrate.upgrade(engine)
        store.sync_agencies(engine, registry.entries)
        collector = XCollector(XSettings(bearer_token=TOKEN, base_url=server.url, timeout=30, max_query_length=4096),
                               sleep=lambda s: None)
        meter = server.x.meter
        phases = {"collection": [0, 0], "compliance": [0, 0], "refresh": [0, 0]}
        requests = {"collection": 0, "compliance": 0, "refresh": 0}

        def account(phase: str, before: tuple[int, int], log_before: int) -> None:
            phases[phase][0] += meter.posts - before[0]
            phases[phase][1] += meter.users - before[1]
            requests[phase] += len(server.request_log) - log_before

        started = time.perf_counter()
        start = END - dt.timedelta(days=DAYS)
        for day in range(2 * DAYS):
            now = start + dt.timedelta(days=day + 1)
            if day < DAYS:
                clock.set(now)
                mark, log_mark = (meter.posts, meter.users), len(server.request_log)
                window = Window(now - dt.timedelta(days=1), now)
                for query in queries:
                    run_query(engine, collector, query, window, matcher=matcher)
                account("collection", mark, log_mark)
            clock.set(now + dt.timedelta(hours=1))
            mark, log_mark = (meter.posts, meter.users), len(server.request_log)
            if name == "before":
                check_compliance(engine, x_collector=collector, x_jobs=False, x_lookup_hours=30 * 24,
                                 now=clock.moment)
            elif day % 7 == 6:
                check_compliance(engine, x_collector=collector, now=clock.moment, poll_interval=0,
                                 sleep=lambda s: None)
            account("compliance", mark, log_mark)
            if name == "after, refresh on":
                clock.set(now + dt.timedelta(hours=2))
                mark, log_mark = (meter.posts, meter.users), len(server.request_log)
                refresh_metrics(engine, collector, RefreshSettings(), now=clock.moment)
                account("refresh", mark, log_mark)
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(Post).where(Post.platform == "x")).scalar_one()
        engine.dispose()
        return {"name": name, "stored": stored, "phases": phases, "requests": requests,
                "seconds": time.perf_counter() - started}


def table(results: list[dict[str, Any]], posts: int) -> str:
    """The markdown section for BENCHMARKS.md."""
    base = results[0]
    total_base = sum(p + u for p, u in base["phases"].values())
    lines = [
        f"Sandbox month: {posts} corpus posts over 30 days, every compiled X query collected daily for 30 days, "
        "checks run for 60 days (each stored post's first 30 days). Billed reads as the sandbox meter counts "
        "them (posts + users returned, once per resource per UTC day). Same run, same corpus, fresh stores.",
        "",
        "| scenario | X posts stored | collection reads | compliance reads | refresh reads "
        "| Post reads per stored post | all billed reads per stored post | vs before | API requests |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ph = r["phases"]
        total = sum(p + u for p, u in ph.values())
        post_reads = sum(p for p, _ in ph.values())
        cells = [f"{ph[k][0]:,} posts + {ph[k][1]:,} users" for k in ("collection", "compliance", "refresh")]
        lines.append(f"| {r['name']} | {r['stored']:,} | {' | '.join(cells)} | **{post_reads / r['stored']:.2f}** | "
                     f"{total / r['stored']:.2f} | {total / total_base:.3f} | {sum(r['requests'].values()):,} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=6000, help="corpus posts over the 30 days")
    parser.add_argument("--out", default=None, help="write the markdown table here too")
    args = parser.parse_args()
    registry = load_registry()
    matcher = Matcher(registry)
    queries = compile_x_queries(registry, 4096)
    original = store.utcnow
    results = []
    try:
        for name in ("before", "after, refresh off", "after, refresh on"):
            results.append(scenario(name, args.posts, registry, matcher, queries))
            print(f"{name}: {results[-1]}", file=sys.stderr, flush=True)
    finally:
        store.utcnow = original  # type: ignore[assignment]
    text = table(results, args.posts)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Reddit plan benchmark: one hourly window, per-agency searches (before) against the listing-first plan (after).

Usage: nice .venv/bin/python bench/reddit_plan.py [--posts 4000] [--days 2] [--sizes 98,5000] [--write FILE]

The sandbox enforces Reddit's 100 requests per minute (``x-ratelimit-*`` headers, 429 past the limit)
and its corpus is the same for every run (generated from the real registry).  The 5,000-agency registry
is the real one plus synthetic agencies (invented town names, generated here) whose subreddits are the
real agencies' city and state subreddits, the case "their subreddits are covered": a nationwide
registry mostly adds agencies in subreddits that are already read.  A third line estimates (without
running it) a registry where every synthetic agency has a subreddit of its own.

Each run: a fresh SQLite store, a fresh collector, every query of the plan over one hourly window
(the sandbox's clock at the window's end, so comments not written yet are not there), through
``run_query`` as the DAG does.  Reported: Reddit requests (tokens included), wall seconds, 429s, gaps,
posts stored.  "Before" is ``plan_queries(compile_reddit_queries(...))``, the per-agency search plan
(reddit_api extra ``plan = "search"``); "after" is ``listing_first_queries``, the default plan.

The registry is the tracked agencies (those the queries are compiled for, 98 today) plus the synthetic
ones: the nationwide registry's known-only agencies get no queries and no subreddits, so they would
change neither plan (and their names would clash with invented towns).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trustwatch.collectors.agencies import (
    AgencyEntry,
    Matcher,
    Registry,
    compile_reddit_queries,
    load_registry,
)
from trustwatch.collectors.reddit import RedditCollector, RedditSettings, plan_queries
from trustwatch.collectors.reddit_plan import estimate, listing_first_queries
from trustwatch.collectors.runner import run_query
from trustwatch.models import store as store_module
from trustwatch.models.db import make_engine
from trustwatch.sandbox.common import CorpusConfig
from trustwatch.sandbox.server import SandboxServer

from trustwatch import migrate
from trustwatch.records import Window

END = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
_TOWN_A = "Ash Bel Cal Dun El Fair Glen Hal Ives Jun Kel Lan Mar Nor Oak Pem Quin Ros Sal Tam".split()
_TOWN_B = "brook field ford haven ley mont ridge ton ville wood".split()
_TOWN_C = "", " Falls", " Springs", " Heights", " Hills", " Junction", " Park", " Valley", " Lake", " Creek"
_TOWN_D = "", "East ", "West ", "North ", "South ", "New ", "Port ", "Fort ", "Mount ", "Lake "


def synthetic_agencies(count: int, real: list[AgencyEntry], own_subreddits: bool) -> list[AgencyEntry]:
    """``count`` invented municipal police departments; on the real agencies' subreddits (covered) or
    each on a subreddit of its own."""
    shared = sorted({s for e in real for s in e.subreddits}, key=str.lower)
    towns = [d + a + b + c for d in _TOWN_D for a in _TOWN_A for b in _TOWN_B for c in _TOWN_C]
    out: list[AgencyEntry] = []
    for n, town in enumerate(towns[:count]):
        sub = town.replace(" ", "") if own_subreddits else shared[n % len(shared)]
        out.append(AgencyEntry(
            slug=f"syn-{n:05d}", name=f"{town} Police Department", kind="municipal", jurisdiction=town,
            state="OH", aliases=(f"{town} PD",), x_handles=(), hashtags=(), subreddits=(sub,),
            source_file="synthetic", community_words=(),
        ))
    if len(out) < count:
        raise SystemExit(f"only {len(out)} synthetic towns, {count} asked")
    return out


def run(registry: Registry, plan: str, config: CorpusConfig, window: Window, rate: int) -> dict:
    """Collect one hourly window with ``plan`` against a fresh rate-limited sandbox and store."""
    if plan == "before":
        queries = plan_queries(compile_reddit_queries(registry), registry)
    else:
        queries = listing_first_queries(registry)
    matcher = Matcher(registry)
    with tempfile.TemporaryDirectory() as tmp, SandboxServer(config, rate_limit=rate) as server:
        server.reddit.rate_window = 60.0
        server.reddit.clock = lambda: window.end
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        migrate.upgrade(engine)
        store_module.sync_agencies(engine, registry.entries)
        settings = RedditSettings(client_id="sandbox-client", client_secret="sandbox-secret",
                                  user_agent="trustwatch-bench/0.1 by u/trustwatch", base_url=server.url)
        collector = RedditCollector(settings, matcher)
        server.clear_log()
        started = time.perf_counter()
        summaries = [run_query(engine, collector, q, window, matcher=matcher) for q in queries]
        seconds = time.perf_counter() - started
        log = [r for r in server.request_log if not r.path.startswith("/2/")]
        with engine.connect() as conn:
            posts = conn.exec_driver_sql("SELECT count(*) FROM posts").scalar_one()
        engine.dispose()
    return {
        "queries": len(queries),
        "requests": len(log),
        "throttled": sum(1 for r in log if r.status == 429),
        "seconds": seconds,
        "gaps": sum(1 for s in summaries if s.coverage_gap),
        "failed": sum(1 for s in summaries if s.status != "success"),
        "posts": posts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=4000, help="corpus posts (X and Reddit; Reddit gets half)")
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sizes", default="98,5000")
    parser.add_argument("--rate", type=int, default=100, help="sandbox requests per minute")
    parser.add_argument("--plans", default="before,after")
    parser.add_argument("--write", help="append the markdown table to this file")
    args = parser.parse_args()

    real = [e for e in load_registry().entries if e.active and getattr(e, "tracked", True)]
    config = CorpusConfig(seed=args.seed, posts=args.posts, end=END, days=args.days)
    window = Window(END - dt.timedelta(hours=13), END - dt.timedelta(hours=12))
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        extra = synthetic_agencies(size - len(real), real, own_subreddits=False) if size > len(real) else []
        registry = Registry(real[:size] + extra)
        for plan in args.plans.split(","):
            result = run(registry, plan, config, window, args.rate)
            rows.append((len(registry.entries), plan, result))
            print(f"{len(registry.entries)} agencies, {plan}: {result}", flush=True)
    own = Registry(real + synthetic_agencies(5000 - len(real), real, own_subreddits=True))
    own_plan = estimate(listing_first_queries(own), agencies=5000)

    lines = [
        f"Reddit plan, one hourly window ({dt.date.today()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} cores shared; sandbox at {args.rate} requests/minute, "
        f"corpus {args.posts // 2} submissions over {args.days} days, seed {args.seed})",
        "",
        "| agencies | plan | queries | requests/hour | seconds/window | 429s | gaps | posts stored |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for agencies, plan, r in rows:
        lines.append(f"| {agencies} | {plan} | {r['queries']} | {r['requests']} | {r['seconds']:.1f} | "
                     f"{r['throttled']} | {r['gaps']} | {r['posts']} |")
    lines.append("")
    lines.append(f"Estimate only, 5,000 agencies each on a subreddit of its own (listing-first): "
                 f"{own_plan.listings} listings, {own_plan.listing_requests:.0f} listing requests/hour of "
                 f"{own_plan.budget:.0f}.")
    table = "\n".join(lines)
    print(table)
    if args.write:
        with open(args.write, "a", encoding="utf-8") as fh:
            fh.write(table + "\n\n")


if __name__ == "__main__":
    main()

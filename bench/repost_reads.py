"""Reads X bills for a sandbox month of collection, with and without the ``-is:retweet`` filter (issue 14.2).

    .venv/bin/python bench/repost_reads.py [--days 30] [--posts 40000] [--seed 7]

Generates the sandbox corpus (the same generator the sandbox serves), compiles the registry into the
queries the default access tier gets (512 characters), once without a suffix (``include_reposts`` true, the
old default) and once with the default suffix (``-is:retweet``), and counts what X bills per post read:
every matched post returned in ``data`` plus every reposted original returned in ``includes.tweets`` (once
per response page of 100).  The stored posts are what the collector keeps.  Both are asked of the sandbox's
own search (``XApi.matching_ids``), in process: this measures reads, not speed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trustwatch.collectors.agencies import compile_x_queries, load_registry
from trustwatch.collectors.x import query_suffix
from trustwatch.sandbox.common import CorpusConfig
from trustwatch.sandbox.x_api import XApi

PAGE = 100


def month_reads(api: XApi, texts: list[str], days: int) -> tuple[int, int, int]:
    """(billed reads, stored posts, reposts read) over hourly windows of ``days`` days."""
    start = api.config.start
    reads, stored, reposts = 0, set(), 0
    for hour in range(days * 24):
        lo, hi = start + dt.timedelta(hours=hour), start + dt.timedelta(hours=hour + 1)
        for text in texts:
            ids = api.matching_ids(text, lo, hi)
            for first in range(0, len(ids), PAGE):
                page = [api.corpus.tweets[i] for i in ids[first:first + PAGE]]
                originals = set()
                for tweet in page:
                    stored.add(tweet.stored_id)
                    for ref_type, ref_id in tweet.referenced:
                        if ref_type == "retweeted":
                            reposts += 1
                            ref = api.corpus.tweets.get(ref_id)
                            if ref is not None and not (ref.deleted or ref.protected):
                                originals.add(ref_id)
                                stored.add(ref.stored_id)
                reads += len(page) + len(originals)
    return reads, len(stored), reposts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--posts", type=int, default=40_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    end = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    api = XApi(CorpusConfig(seed=args.seed, posts=args.posts, days=args.days, end=end))
    registry = load_registry()
    rows = []
    for label, extra in (("include_reposts = true (before)", {"include_reposts": True}),
                         ("default, `-is:retweet` (after)", {})):
        queries = compile_x_queries(registry, 512, suffix=query_suffix(extra))
        reads, stored, reposts = month_reads(api, [q.text for q in queries], args.days)
        rows.append((label, len(queries), reads, stored, reposts, reads / stored if stored else 0.0))
    print(f"sandbox month: {args.days} days, {args.posts} generated posts, seed {args.seed}, queries of 512 chars")
    print("| collection | queries | billed reads | stored posts | reposts read | reads per stored post |")
    print("|---|---|---|---|---|---|")
    for label, n, reads, stored, reposts, ratio in rows:
        print(f"| {label} | {n} | {reads:,} | {stored:,} | {reposts:,} | {ratio:.2f} |")
    before, after = rows[0][2], rows[1][2]
    print(f"\nreads saved by the filter: {before - after:,} ({(before - after) / before:.0%} of the month's reads)")


if __name__ == "__main__":
    main()

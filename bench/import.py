"""Archive import benchmark: `trustwatch import x` against json.loads + a plain INSERT, same file, same run.

Generates an N-line twarc2-style file (one streamed tweet per line, with its author in includes.users;
one in --mention-every (3) names a registry agency), then imports it into fresh PostgreSQL databases:
- ``import --all``: every post, through normalize -> match -> write_page (the store's full write path);
- ``import`` (matched only): the default, keeping the posts that mention an agency; it matches the raw
  text before building records (issue 19);
- ``import_matched_records_first``: the same import as before issue 19 (every tweet built into a record,
  then matched and dropped; write_page in the parsing thread), the "today" of the 2x target, measured in
  the same run; ``import_matched_no_writer_thread``: matching first, but no writer thread;
- baseline: ``orjson.loads`` each line and INSERT (id, author, text, created_at) into a plain table,
  committed every 500 rows (PostgreSQL only).
``--backend sqlite`` runs the import variants into a fresh SQLite file each instead.
Each variant runs in its own process so its peak memory (max RSS) is its own.

Usage: .venv/bin/python bench/import.py [--lines 1000000] [--pg URL] [--backend postgresql|sqlite]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import drop_db, fresh_db  # noqa: E402  (one way to make and drop a bench database)


def generate(path: Path, lines: int, mention_every: int = 3) -> None:
    from trustwatch.collectors.agencies import load_registry

    names = [e.name for e in load_registry().entries]
    rng = random.Random(5)
    words = "the a officer patrol downtown video report thanks response street night car station".split()
    with path.open("w", encoding="utf-8") as fh:
        for i in range(lines):
            body = " ".join(rng.choice(words) for _ in range(rng.randint(8, 40)))
            if i % mention_every == 0:
                body += f" {rng.choice(names)}"
            uid = str(10_000 + i % 50_000)
            line = {
                "data": {"id": str(1_600_000_000_000_000_000 + i), "text": body, "author_id": uid,
                         "created_at": f"2025-0{1 + i % 9}-1{i % 10}T12:{i % 60:02d}:00.000Z", "lang": "en",
                         "edit_history_tweet_ids": [str(1_600_000_000_000_000_000 + i)],
                         "public_metrics": {"like_count": i % 50, "retweet_count": i % 7, "reply_count": 0,
                                            "quote_count": 0}},
                "includes": {"users": [{"id": uid, "username": f"user{uid}", "name": f"User {uid}"}]},
                "__twarc": {"url": "https://api.twitter.com/2/tweets/search/stream", "version": "2.14.0"},
            }
            fh.write(json.dumps(line) + "\n")


REAL_RECORDINGS = ROOT / "tests" / "data" / "realcases" / "x" / "twarc-csv"


def _real_tweets() -> list[tuple[dict, dict]]:
    """Every tweet of the recorded real X responses with the part of its page's includes it refers to
    (author, mentioned users, referenced tweets): real shapes, long texts, entities, many languages."""
    out = []
    for path in sorted(REAL_RECORDINGS.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                page = json.loads(line)
            except ValueError:
                continue
            data = page.get("data") if isinstance(page, dict) else None
            if not data:
                continue
            includes = page.get("includes") or {}
            users = {u["id"]: u for u in includes.get("users", [])}
            tweets = {t["id"]: t for t in includes.get("tweets", [])}
            for tweet in data if isinstance(data, list) else [data]:
                refs = [tweets[r["id"]] for r in tweet.get("referenced_tweets", []) if r.get("id") in tweets]
                wanted = {tweet.get("author_id"), *(t.get("author_id") for t in refs)}
                wanted |= {m.get("id") for m in (tweet.get("entities") or {}).get("mentions", [])}
                out.append((tweet, {"users": [users[u] for u in wanted if u in users], "tweets": refs}))
    return out


def generate_realistic(path: Path, lines: int, mention_every: int = 3) -> None:
    """``lines`` streamed tweets (one per line, twarc2's stream shape) replicated from the real recordings
    with fresh ids; one in ``mention_every`` gets a registry agency's name appended so it is kept."""
    from trustwatch.collectors.agencies import load_registry

    names = [e.name for e in load_registry().entries]
    rng = random.Random(5)
    real = _real_tweets()
    with path.open("w", encoding="utf-8") as fh:
        for i in range(lines):
            tweet, includes = real[i % len(real)]
            new_id = str(1_700_000_000_000_000_000 + i)
            body = tweet.get("text", "")
            if i % mention_every == 0:
                body += f" {rng.choice(names)}"
            copy = {**tweet, "id": new_id, "text": body, "edit_history_tweet_ids": [new_id],
                    "conversation_id": new_id}
            fh.write(json.dumps({"data": copy, "includes": includes,
                                 "__twarc": {"url": "https://api.twitter.com/2/tweets/search/stream",
                                             "version": "2.14.0"}}) + "\n")


def run_variant(variant: str, path: str, url: str) -> dict:
    """Runs inside a child process; prints one JSON line."""
    from sqlalchemy import text
    from trustwatch.models.db import make_engine

    engine = make_engine(url)
    t0 = time.perf_counter()
    if variant == "baseline":
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE plain_posts (id text, author_id text, text text, created_at text)"))
        raw = engine.raw_connection()
        cur = raw.cursor()
        batch: list[tuple] = []
        n = 0
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                d = orjson.loads(line)["data"]
                batch.append((d["id"], d["author_id"], d["text"], d["created_at"]))
                if len(batch) >= 500:
                    cur.executemany("INSERT INTO plain_posts VALUES (%s, %s, %s, %s)", batch)
                    raw.commit()
                    n += len(batch)
                    batch = []
        if batch:
            cur.executemany("INSERT INTO plain_posts VALUES (%s, %s, %s, %s)", batch)
            raw.commit()
            n += len(batch)
        raw.close()
        posts = n
    else:
        from trustwatch.collectors import archive
        from trustwatch.collectors.agencies import Matcher, load_registry
        from trustwatch.collectors.archive import import_file
        from trustwatch.models.store import sync_agencies

        from trustwatch import migrate

        migrate.upgrade(engine)
        registry = load_registry()
        sync_agencies(engine, registry.entries)
        if variant in ("import_matched_records_first", "import_matched_no_writer_thread"):
            class SyncWriter:  # write_page in the parsing thread, as before issue 19
                def __init__(self, engine, run_id, summary, on_written, depth=1):
                    self.args = (engine, run_id, summary)

                def put(self, page):
                    engine, run_id, s = self.args
                    result = archive.store.write_page(engine, page, run_id)
                    s.posts_kept += result.seen
                    s.posts_new += result.new
                    s.rejected += result.rejected

                def close(self):
                    pass

                def abort(self):
                    pass

            archive._BatchWriter = SyncWriter
        if variant == "import_matched_records_first":
            def records_first(text, source, matcher=None, stats=None):
                return archive.parse_x_line(text, source)  # every tweet a record; matched after

            archive.PARSERS["x"] = records_first
        t0 = time.perf_counter()
        summary = import_file(engine, "x", Path(path), matcher=Matcher(registry), keep_all=variant == "import_all")
        posts = summary.posts_read
    elapsed = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": variant, "seconds": elapsed, "posts": posts, "posts_per_s": posts / elapsed,
            "peak_rss_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--pg", default=os.environ.get("TRUSTWATCH_TEST_PG_URL",
                                                       "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--mention-every", type=int, default=3,
                        help="one tweet in N names an agency (3: the original file; 33: about 3 %%, as in "
                             "real archives)")
    parser.add_argument("--realistic", action="store_true",
                        help="replicate the recorded real X responses (tests/data) instead of generated text")
    parser.add_argument("--variants", default=None,
                        help="comma-separated variants to run (default: all); e.g. import_all for memory")
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "FILE", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_variant(*args.child)), flush=True)
        return
    admin = args.pg.replace("postgresql://", "postgresql+psycopg://")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        t0 = time.perf_counter()
        (generate_realistic if args.realistic else generate)(path, args.lines, args.mention_every)
        print(f"generated {args.lines:,} lines ({path.stat().st_size / 1e6:,.0f} MB) in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        results = []
        variants = ["import_all", "import_matched_records_first", "import_matched_no_writer_thread",
                    "import_matched"]
        if args.backend == "postgresql":
            variants.insert(0, "baseline")
        if args.variants:
            variants = [v for v in variants if v in args.variants.split(",")]
        for variant in variants:
            if args.backend == "sqlite":
                db = Path(tmp) / f"{variant}.db"
                name, url = None, f"sqlite:///{db}"
            else:
                name, url = fresh_db(admin)
            try:
                out = subprocess.run([sys.executable, __file__, "--child", variant, str(path), url],
                                     check=True, capture_output=True, text=True)
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(json.dumps(results[-1]), flush=True)
            finally:
                if name:
                    drop_db(admin, name)
    base = results[0]["posts_per_s"]
    print()
    print(f"{args.backend}, {args.lines:,} lines, one in {args.mention_every} naming an agency; "
          "'vs first' is the ratio to the first row's posts/s")
    print("| variant | posts | posts/s | vs first | peak RSS (MB) |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['variant']} | {r['posts']:,} | {r['posts_per_s']:,.0f} | {r['posts_per_s'] / base:.2f} | "
              f"{r['peak_rss_mb']:,.0f} |")


if __name__ == "__main__":
    main()

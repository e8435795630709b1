"""Load benchmark: a large sandbox corpus backfilled as a week of hourly windows; peak memory per collect task.

    .venv/bin/python bench/load.py --posts 1000000          # the issue's size (needs time and RAM for the sandbox)
    .venv/bin/python bench/load.py --posts 100000 --windows 168

The sandbox runs in its own process (``trustwatch sandbox serve``), so the corpus' memory is not counted.
Each collect task is ``trustwatch collect x`` in a fresh process, as Airflow runs it; its peak resident
memory comes from ``wait4``.  The point: pages are streamed page by page into the store, so the peak does
not grow with the window's size.  Results go to bench/LOAD_RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sandbox(posts: int, port: int) -> tuple[subprocess.Popen, float, int]:
    began = time.monotonic()
    # like `trustwatch sandbox serve`, without X's 450 requests per 15 minutes: the benchmark measures
    # trustwatch, not waiting for a rate-limit window
    code = (
        "import sys, time\n"
        "from sandbox.common import CorpusConfig\n"
        "from sandbox.server import SandboxServer\n"
        f"server = SandboxServer(CorpusConfig(seed=7, posts={posts}), port={port}, rate_limit=10**9).start()\n"
        "print('ready', server.url, flush=True)\n"
        "time.sleep(10**6)\n"
    )
    proc = subprocess.Popen([PY, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("ready"):  # printed once the corpus is generated and the port is open
            break
        print(line, end="", file=sys.stderr)
    with open(f"/proc/{proc.pid}/status") as status:
        rss_kb = next(int(x.split()[1]) for x in status if x.startswith("VmRSS"))
    return proc, time.monotonic() - began, rss_kb // 1024


def collect(env: dict[str, str], start: dt.datetime, end: dt.datetime) -> tuple[float, float, dict]:
    """Run one collect task; returns (seconds, peak RSS in MB, summary)."""
    began = time.monotonic()
    # output to files, not pipes: the task prints a line per page, which would fill a pipe nobody reads yet
    with tempfile.TemporaryFile("w+") as out_file, tempfile.TemporaryFile("w+") as err_file:
        proc = subprocess.Popen([PY, "-m", "trustwatch.cli", "collect", "x", "--start", start.isoformat(),
                                 "--end", end.isoformat()], cwd=REPO, env=env, stdout=out_file, stderr=err_file,
                                text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read(), err_file.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"collect failed: {err[-2000:]}")
    summary = json.loads(out[out.index("{"):]) if "{" in out else {}
    return time.monotonic() - began, usage.ru_maxrss / 1024, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--windows", type=int, default=168, help="hourly windows to backfill (168 = a week)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "LOAD_RESULTS.md")
    parser.add_argument("--sizes", default="1,12,48,167", help="single-window sizes in hours, comma-separated")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="the collector's read timeout: the sandbox answers a large window's first page slowly "
                             "(it evaluates the query over the whole window in Python)")
    args = parser.parse_args()

    port = free_port()
    sandbox, gen_seconds, sandbox_mb = start_sandbox(args.posts, port)
    workdir = Path(tempfile.mkdtemp(prefix="tw-load-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update({
        "TRUSTWATCH_DATABASE_URL": f"sqlite:///{workdir / 'load.db'}",
        "AIRFLOW_CONN_X_API": json.dumps({"conn_type": "http", "password": "sandbox-x-token",
                                          "extra": {"base_url": f"http://127.0.0.1:{port}",
                                                    "max_query_length": 4096, "timeout": args.timeout}}),
        "PYTHONPATH": str(REPO),
    })
    try:
        subprocess.run([PY, "-m", "trustwatch.cli", "db", "upgrade"], cwd=REPO, env=env, check=True,
                       capture_output=True)
        # X's search/recent reaches back 7 days from *now*: the week's first hour is out of reach, so the
        # windows end half an hour ago and at most 167 fit
        args.windows = min(args.windows, 167)
        now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
        cursor = now - dt.timedelta(minutes=30) - dt.timedelta(hours=args.windows)
        rows = []
        sizes: list[tuple[str, float, float, int]] = []
        backfill_start = cursor
        total_posts = 0
        began = time.monotonic()
        for i in range(args.windows):
            start = cursor + dt.timedelta(hours=i)
            seconds, peak, summary = collect(env, start, start + dt.timedelta(hours=1))
            total_posts += int(summary.get("posts_seen", 0))
            rows.append((start, seconds, peak, int(summary.get("posts_seen", 0)), int(summary.get("pages", 0))))
        backfill_seconds = time.monotonic() - began
        # big windows over a second, fresh store (so nothing is "collected already")
        env["TRUSTWATCH_DATABASE_URL"] = f"sqlite:///{workdir / 'big.db'}"
        subprocess.run([PY, "-m", "trustwatch.cli", "db", "upgrade"], cwd=REPO, env=env, check=True,
                       capture_output=True)
        for hours in (int(h) for h in args.sizes.split(",")):
            if hours > args.windows:
                continue
            start = backfill_start
            seconds, peak, summary = collect(env, start, start + dt.timedelta(hours=hours))
            sizes.append((f"{hours} h", seconds, peak, int(summary.get("posts_seen", 0))))
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)

    peaks = [r[2] for r in rows]
    lines = [
        "# Load benchmark: a week of hourly windows from the sandbox",
        "",
        f"Run `{Path(sys.argv[0]).name} --posts {args.posts} --windows {args.windows}` on "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d} ({os.cpu_count()} cores, SQLite store, X search/recent "
        "through tweepy, each window a fresh `trustwatch collect x` process as an Airflow task would be).",
        "",
        f"- sandbox corpus: {args.posts:,} posts over 7 days, generated in {gen_seconds:.0f} s, "
        f"{sandbox_mb} MB resident (its own process, not counted below)",
        f"- backfill: {args.windows} hourly windows, {total_posts:,} posts stored in {backfill_seconds:.0f} s "
        f"({total_posts / max(backfill_seconds, 1e-9):.0f} posts/s including process start-up)",
        f"- peak RSS of a collect task over the hourly windows: min {min(peaks):.0f} MB, "
        f"max {max(peaks):.0f} MB",
        "",
        "Peak memory against the window's size (one task each, fresh store):",
        "",
        "| window | posts read | seconds | peak RSS (MB) |",
        "|---|---:|---:|---:|",
        *[f"| {name} | {posts:,} | {sec:.1f} | {peak:.0f} |" for name, sec, peak, posts in sizes],
        "",
        "Hourly windows (first 24):",
        "",
        "| window start (UTC) | posts | pages | seconds | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|",
        *[f"| {s:%Y-%m-%d %H:%M} | {n:,} | {p} | {sec:.1f} | {peak:.0f} |" for s, sec, peak, n, p in rows[:24]],
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Wall time of a backfill on docker-compose.yml's Celery topology with one worker and with two.

Starts the topology natively (scripts/native_topology.py, the same processes tests/test_celery_topology.py
starts) on fresh PostgreSQL databases, backfills ``--hours`` hourly windows of collect_x and
collect_reddit against the sandbox, and times from ``airflow backfill create`` to the last run's end.
Every second it samples the resident memory of each service (the process and its children: a worker's
task processes count to the worker) and reports each one's peak.  The one-worker run is the baseline the
two-worker time is divided by; both run in the same invocation, on the same corpus.

The API pools get ``--pool-slots`` slots (compose's TRUSTWATCH_*_POOL_SLOTS; 8 by default, more than two
workers' task slots) so that they are not the bound: with the default 2 slots, four Reddit collect tasks
per window queue behind the pool whatever the number of workers, and a second worker cannot help.  The
load average before and after each run is printed beside its time: on a shared machine it decides them.

    nice .venv/bin/python bench/topology.py --hours 24 --agencies nypd seattle-pd
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
spec = importlib.util.spec_from_file_location("native_topology", REPO / "scripts" / "native_topology.py")
native = importlib.util.module_from_spec(spec)
sys.modules["native_topology"] = native
spec.loader.exec_module(native)

from trustwatch.sandbox.common import CorpusConfig  # noqa: E402
from trustwatch.sandbox.server import SandboxServer  # noqa: E402

ADMIN = os.environ.get("TRUSTWATCH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin():
    return create_engine(make_url(ADMIN).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")


def _create_db(prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with _admin().connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return make_url(ADMIN).set(drivername="postgresql+psycopg", database=name).render_as_string(False)


def _drop_db(url: str) -> None:
    with _admin().connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))


class MemorySampler(threading.Thread):
    """Peak RSS of each started service, its children included, sampled every second."""

    def __init__(self, topology) -> None:
        super().__init__(daemon=True)
        self.topology = topology
        self.peaks: dict[str, int] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            for process in list(self.topology.processes):
                try:
                    root = psutil.Process(process.popen.pid)
                    rss = root.memory_info().rss + sum(c.memory_info().rss for c in root.children(recursive=True))
                except psutil.Error:
                    continue
                self.peaks[process.name] = max(self.peaks.get(process.name, 0), rss)


def run_once(workers: int, hours: int, agencies: list[str], posts: int, pool_slots: int) -> dict:
    sandbox = SandboxServer(CorpusConfig(seed=18, posts=posts, days=2), x_bearer_token="bench-x",
                            reddit_client_secret="bench-reddit")
    sandbox.reddit.clock = lambda: dt.datetime.now(dt.UTC)  # comments appear as they are written, as on Reddit
    sandbox.start()
    end = sandbox.config.stop
    start = end - dt.timedelta(hours=hours)
    metadata_url, store_url = _create_db("tw_bench_af"), _create_db("tw_bench_store")
    conns = {
        "AIRFLOW_CONN_X_API": json.dumps({"conn_type": "http", "password": "bench-x", "extra": {
            "base_url": sandbox.url, "endpoint": "recent", "max_query_length": 512}}),
        "AIRFLOW_CONN_REDDIT_API": json.dumps({"conn_type": "http", "login": "sandbox-client",
                                               "password": "bench-reddit", "extra": {
                                                   "base_url": sandbox.url, "user_agent": "trustwatch-bench/0.1"}}),
    }
    with tempfile.TemporaryDirectory(prefix="tw_topology_") as tmp:
        extra = {**conns, "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "false"}  # only the backfill runs
        variables = {**native.generated_variables(), "TRUSTWATCH_X_POOL_SLOTS": str(pool_slots),
                     "TRUSTWATCH_REDDIT_POOL_SLOTS": str(pool_slots)}
        topology = native.Topology(Path(tmp), metadata_url, store_url, variables, workers=workers, extra_env=extra)
        sampler = MemorySampler(topology)
        metadata = create_engine(metadata_url)
        try:
            with native.running(topology):
                sampler.start()
                topology.wait(lambda: _count(metadata, "SELECT count(*) FROM dag WHERE dag_id LIKE 'collect_%'") >= 2,
                              300, "the DAGs to be parsed")
                load_before = os.getloadavg()[0]
                t0 = time.perf_counter()
                for dag_id in ("collect_x", "collect_reddit"):
                    result = topology.airflow("backfill", "create", "--dag-id", dag_id, "--from-date",
                                              start.isoformat(), "--to-date", (end - dt.timedelta(hours=1)).isoformat(),
                                              "--max-active-runs", "4", "--dag-run-conf",
                                              json.dumps({"agencies": agencies}))
                    assert result.returncode == 0, result.stderr[-3000:]
                for dag_id in ("collect_x", "collect_reddit"):
                    topology.airflow("dags", "unpause", dag_id)
                topology.wait(lambda: _count(metadata, "SELECT count(*) FROM dag_run WHERE run_type = 'backfill' "
                                                       "AND state IN ('success', 'failed')") >= 2 * hours,
                              3600, "the backfill")
                wall = time.perf_counter() - t0
                load_after = os.getloadavg()[0]
                failed = _count(metadata, "SELECT count(*) FROM dag_run WHERE state = 'failed'")
                tasks = _count(metadata, "SELECT count(*) FROM task_instance WHERE dag_id LIKE 'collect_%'")
                busy = _task_times(metadata)
        finally:
            sampler.stopped.set()
            metadata.dispose()
            sandbox.stop()
            _drop_db(metadata_url)
            _drop_db(store_url)
    return {"workers": workers, "wall_s": wall, "failed_runs": failed, "tasks": tasks, "peak_rss": sampler.peaks,
            "load": (load_before, load_after), "slots": workers * topology.worker_concurrency, **busy}


def _task_times(engine) -> dict[str, float]:
    """Where the wall time went: the task instances' summed run time (what the worker slots had to do) and
    their mean wait from queued to started.  Summed run time over wall time is the slots kept busy on
    average; well below the slots there are, the workers were not the bound (the runs' task order, the
    scheduler's loop or the APIs were)."""
    sql = """SELECT coalesce(sum(extract(epoch FROM end_date - start_date)), 0),
                    coalesce(avg(extract(epoch FROM start_date - queued_dttm)), 0)
             FROM task_instance WHERE dag_id LIKE 'collect_%' AND end_date IS NOT NULL"""
    try:
        with engine.connect() as conn:
            run_s, wait_s = conn.execute(text(sql)).one()
    except Exception:
        return {"task_run_s": float("nan"), "queue_wait_s": float("nan")}
    return {"task_run_s": float(run_s), "queue_wait_s": float(wait_s)}


def _count(engine, sql: str) -> int:
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)
    except Exception:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--agencies", nargs="+", default=["nypd", "seattle-pd"])
    parser.add_argument("--posts", type=int, default=1200)
    parser.add_argument("--pool-slots", type=int, default=8, help="slots of the x_api and reddit_api pools")
    args = parser.parse_args()
    results = [run_once(workers, args.hours, args.agencies, args.posts, args.pool_slots) for workers in (1, 2)]
    one, two = results
    print(f"cpus: {os.cpu_count()}, load average at the end: {os.getloadavg()}, pool slots: {args.pool_slots}")
    print("| workers | wall time (s) | task instances | failed runs | speed-up vs 1 worker | load before / after "
          "| task run time, summed (s) | slots busy on average | mean wait queued to started (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['workers']} | {r['wall_s']:.0f} | {r['tasks']} | {r['failed_runs']} | "
              f"{one['wall_s'] / r['wall_s']:.2f}x | {r['load'][0]:.1f} / {r['load'][1]:.1f} | "
              f"{r['task_run_s']:.0f} | {r['task_run_s'] / r['wall_s']:.2f} of {r['slots']} | "
              f"{r['queue_wait_s']:.1f} |")
    print()
    print("| process | peak RSS, 1 worker (MiB) | peak RSS, 2 workers (MiB) |")
    print("|---|---|---|")
    for name in sorted(set(one["peak_rss"]) | set(two["peak_rss"])):
        a, b = one["peak_rss"].get(name), two["peak_rss"].get(name)
        print(f"| {name} | {a / 2**20:.0f} |" if a else f"| {name} | - |", f" {b / 2**20:.0f} |" if b else " - |")


if __name__ == "__main__":
    main()

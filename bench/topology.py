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
import re
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


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants: the live ones' own time, plus what each has reaped
    (a worker's task processes are reaped by its pool processes, PostgreSQL's backends by the postmaster)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def _postmaster() -> int | None:
    """The local PostgreSQL server's main process (metadata and store run there, outside the topology)."""
    for proc in psutil.process_iter(["name", "ppid"]):
        try:
            if proc.info["name"] == "postgres" and psutil.Process(proc.info["ppid"]).name() != "postgres":
                return proc.pid
        except psutil.Error:
            continue
    return None


def cpu_by_service(topology) -> dict[str, float]:
    """CPU seconds so far of each started service, of PostgreSQL and of this process (the sandbox APIs)."""
    out = {p.name: _tree_cpu(p.popen.pid) for p in topology.processes}
    if (pid := _postmaster()) is not None:
        out["postgresql (metadata and store)"] = _tree_cpu(pid)
    own = psutil.Process().cpu_times()
    out["sandbox APIs and this bench"] = own.user + own.system
    return out


def run_once(workers: int, hours: int, agencies: list[str], posts: int, pool_slots: int,
             overrides: dict[str, str] | None = None) -> dict:
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
        extra = {**conns, "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "false",  # only the backfill runs
                 **(overrides or {})}
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
                cpu_before = cpu_by_service(topology)
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
                cpu_after = cpu_by_service(topology)
                load_after = os.getloadavg()[0]
                failed = _count(metadata, "SELECT count(*) FROM dag_run WHERE state = 'failed'")
                tasks = _count(metadata, "SELECT count(*) FROM task_instance WHERE dag_id LIKE 'collect_%'")
                task_rows = _task_rows(metadata)
                busy = _task_times(task_rows)
                holds = _slot_holds(Path(tmp), task_rows)
        finally:
            sampler.stopped.set()
            metadata.dispose()
            sandbox.stop()
            _drop_db(metadata_url)
            _drop_db(store_url)
    return {"workers": workers, "wall_s": wall, "failed_runs": failed, "tasks": tasks, "peak_rss": sampler.peaks,
            "load": (load_before, load_after), "slots": workers * topology.worker_concurrency, **busy, **holds,
            "cpu": {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after}}


def _task_rows(engine) -> list[tuple[str, float, float | None]]:
    """(id, run seconds, seconds from queued to started, None when never queued) of every finished collect
    task instance."""
    sql = """SELECT CAST(id AS text), extract(epoch FROM end_date - start_date),
                    extract(epoch FROM start_date - queued_dttm)
             FROM task_instance WHERE dag_id LIKE 'collect_%' AND end_date IS NOT NULL"""
    try:
        with engine.connect() as conn:
            return [(i, float(run or 0), None if wait is None else float(wait))
                    for i, run, wait in conn.execute(text(sql))]
    except Exception:
        return []


def _task_times(rows: list[tuple[str, float, float | None]]) -> dict[str, float]:
    """Where the wall time went: the task instances' summed run time (what the worker slots had to do) and
    their mean wait from queued to started.  Summed run time over wall time is the slots kept busy on
    average; well below the slots there are, the workers were not the bound (the runs' task order, the
    scheduler's loop or the APIs were)."""
    waits = [w for _, _, w in rows if w is not None]
    if not rows:
        return {"task_run_s": float("nan"), "queue_wait_s": float("nan")}
    return {"task_run_s": sum(r for _, r, _ in rows), "queue_wait_s": sum(waits) / len(waits) if waits else 0.0}


#: A worker's log line at the end of each task: how long the supervisor held the slot, and for which task.
_FINISHED = re.compile(r"Workload finished .*?duration=([0-9.]+).*?workload_id=([0-9a-f-]+)")


def _slot_holds(workdir: Path, rows: list[tuple[str, float, float | None]]) -> dict[str, float]:
    """How long a worker slot was held per task instance (the supervisor's "Workload finished" duration in
    the workers' logs) against the task's own run time (start_date to end_date), and how many tasks held
    their slot more than 4 s past their run: Airflow's supervisor sleeps up to ``[workers]
    min_heartbeat_interval`` when the task process closes its sockets before it has exited (docs/SCALING.md)."""
    held = {}
    for log in workdir.glob("worker*.log"):
        for match in _FINISHED.finditer(log.read_text(errors="replace")):
            held[match.group(2)] = float(match.group(1))
    pairs = [(held[i], run) for i, run, _ in rows if i in held]
    if not pairs:
        return {"slot_hold_s": float("nan"), "held_past_run_4s": 0}
    return {"slot_hold_s": sum(h for h, _ in pairs) / len(pairs),
            "held_past_run_4s": sum(1 for h, r in pairs if h - r > 4)}


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
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment setting for every process on top of compose's (to compare a setting)")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    if overrides:
        print(f"settings on top of docker-compose.yml's: {overrides}")
    results = [run_once(workers, args.hours, args.agencies, args.posts, args.pool_slots, overrides)
               for workers in (1, 2)]
    one, two = results
    print(f"cpus: {os.cpu_count()}, load average at the end: {os.getloadavg()}, pool slots: {args.pool_slots}")
    print("| workers | wall time (s) | task instances | failed runs | speed-up vs 1 worker | load before / after "
          "| task run time, summed (s) | slots busy on average | mean wait queued to started (s) "
          "| slot held per task (s) | tasks held > 4 s past their run |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['workers']} | {r['wall_s']:.0f} | {r['tasks']} | {r['failed_runs']} | "
              f"{one['wall_s'] / r['wall_s']:.2f}x | {r['load'][0]:.1f} / {r['load'][1]:.1f} | "
              f"{r['task_run_s']:.0f} | {r['task_run_s'] / r['wall_s']:.2f} of {r['slots']} | "
              f"{r['queue_wait_s']:.1f} | {r['slot_hold_s']:.2f} | {r['held_past_run_4s']} of {r['tasks']} |")
    print()
    print("| process | CPU during the backfill, 1 worker (s) | with 2 workers (s) |")
    print("|---|---|---|")
    for name in sorted(set(one["cpu"]) | set(two["cpu"])):
        print(f"| {name} | {one['cpu'].get(name, 0):.0f} | {two['cpu'].get(name, 0):.0f} |")
    cpus = os.cpu_count() or 1
    print(f"| all | {sum(one['cpu'].values()):.0f} of {cpus * one['wall_s']:.0f} core-seconds | "
          f"{sum(two['cpu'].values()):.0f} of {cpus * two['wall_s']:.0f} |")
    print()
    print("| process | peak RSS, 1 worker (MiB) | peak RSS, 2 workers (MiB) |")
    print("|---|---|---|")
    for name in sorted(set(one["peak_rss"]) | set(two["peak_rss"])):
        a, b = one["peak_rss"].get(name), two["peak_rss"].get(name)
        print(f"| {name} | {a / 2**20:.0f} |" if a else f"| {name} | - |", f" {b / 2**20:.0f} |" if b else " - |")


if __name__ == "__main__":
    main()

"""CPU seconds of each collect task, as a fresh task process pays them (issue 18: the topology's bound).

Each Airflow task runs in a new process forked from the Celery worker, which already has Airflow imported.
Each step here runs in a new interpreter that first imports what the worker has (not counted),
then parses the DAG file and runs the task's ``trustwatch.tasks`` call against a PostgreSQL store and the
sandbox, and reports the CPU seconds (user + system) it spent from there: the per-task cost trustwatch adds.
Steps are measured in steady state (the registry synced and, with this branch, its cache written by a
first round), ``--repeat`` times each; the median is printed.

``--tree DIR`` measures another checkout (e.g. the code before a change, from ``git archive``): its
packages are laid out as the wheel does and put first on ``sys.path``.

    nice .venv/bin/python bench/task_cpu.py --repeat 5
    git archive <commit> | tar -x -C /tmp/before && nice .venv/bin/python bench/task_cpu.py --tree /tmp/before
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = ("sync_registry", "check_request", "compile_x", "compile_reddit", "collect_x", "collect_reddit",
         "summary_reddit")
#: The wheel's layout: the ``trustwatch`` package and the top-level folders it carries as subpackages.
SUBPACKAGES = ("collectors", "models", "analysis", "sandbox", "alembic", "agencies", "dags")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(step: str, window: list[str], query: str | None = None) -> None:
    """One task process: what the Celery worker has imported when it forks the task (the executor's
    workload code, the supervisor, the task runner and Airflow's models), then the DAG file and the call."""
    import airflow.providers.celery.executors.celery_executor_utils
    import airflow.sdk.execution_time.supervisor
    import airflow.sdk.execution_time.task_runner  # noqa: F401

    begin = _cpu()
    import importlib.util

    from trustwatch.settings import resource_dir

    spec = importlib.util.spec_from_file_location("collect_posts", resource_dir("dags") / "collect_posts.py")
    assert spec is not None and spec.loader is not None
    dag_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dag_module)  # what the task runner does before running the task
    parsed = _cpu()
    from trustwatch import tasks

    start, end = window
    if step == "sync_registry":
        tasks.sync_registry()
    elif step == "check_request":
        tasks.validate_request("reddit", None, None, ["nypd"], dt.datetime.fromisoformat(start),
                               dt.datetime.fromisoformat(end), unread=True)
    elif step in ("compile_x", "compile_reddit"):
        queries = tasks.compile_queries(step.removeprefix("compile_"), ["nypd"])
        print(json.dumps({"queries": queries}))
    elif step in ("collect_x", "collect_reddit"):
        # the first compiled query, as the DAG hands it over (XCom): no registry needed to receive it
        tasks.collect_query(step.removeprefix("collect_"), json.loads(query or "{}"), start, end)
    elif step == "summary_reddit":
        tasks.summarize("reddit", [], run_context={"dag_id": "bench", "dag_run_id": "bench"})
    else:
        raise SystemExit(f"unknown step {step}")
    print(json.dumps({"step": step, "cpu": _cpu() - begin, "parse": parsed - begin}))


def _env(tree: Path | None, pkg_root: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "TRUSTWATCH_"))}
    env.update(extra)
    if tree is not None:
        env["PYTHONPATH"] = str(pkg_root)
    return env


def _layout(tree: Path, root: Path) -> Path:
    """``tree``'s packages as the wheel lays them out (trustwatch/, trustwatch/collectors/, ...), in ``root``."""
    package = root / "trustwatch"
    package.mkdir(parents=True)
    for item in (tree / "trustwatch").iterdir():
        (package / item.name).symlink_to(item)
    for name in SUBPACKAGES:
        (package / name).symlink_to(tree / name)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tree", type=Path, help="measure this checkout instead of the installed one")
    parser.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--window", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--query", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.window, args.query)
        return

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from trustwatch.sandbox.common import CorpusConfig
    from trustwatch.sandbox.server import SandboxServer

    # Bytecode written first, as pip writes it when it installs the wheel: with PYTHONDONTWRITEBYTECODE set,
    # each step would otherwise compile every module again.
    sys.path.insert(0, str(REPO / "scripts"))
    from native_topology import compile_sources

    compile_sources(args.tree or REPO)
    admin = make_url(os.environ.get("TRUSTWATCH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    admin = admin.set(drivername="postgresql+psycopg")
    name = f"tw_bench_cpu_{uuid.uuid4().hex[:8]}"
    server = create_engine(admin, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    sandbox = SandboxServer(CorpusConfig(seed=18, posts=1200, days=2), x_bearer_token="bench-x",
                            reddit_client_secret="bench-reddit")
    sandbox.reddit.clock = lambda: dt.datetime.now(dt.UTC)
    sandbox.start()
    end = sandbox.config.stop
    window = [(end - dt.timedelta(hours=3)).isoformat(), (end - dt.timedelta(hours=2)).isoformat()]
    with tempfile.TemporaryDirectory(prefix="tw_task_cpu_") as tmp:
        extra = {
            "TRUSTWATCH_DATABASE_URL": admin.set(database=name).render_as_string(hide_password=False),
            "TRUSTWATCH_CACHE_DIR": str(Path(tmp) / "cache"),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",  # the worker's executor module imports as in compose
            "AIRFLOW_CONN_X_API": json.dumps({"conn_type": "http", "password": "bench-x", "extra": {
                "base_url": sandbox.url, "endpoint": "recent", "max_query_length": 512}}),
            "AIRFLOW_CONN_REDDIT_API": json.dumps({"conn_type": "http", "login": "sandbox-client",
                                                   "password": "bench-reddit", "extra": {
                                                       "base_url": sandbox.url, "user_agent": "tw-bench/0.1"}}),
        }
        env = _env(args.tree, _layout(args.tree, Path(tmp) / "pkg") if args.tree else Path(tmp), extra)
        python = sys.executable
        upgrade = "from trustwatch import tasks; tasks.upgrade_store()"
        subprocess.run([python, "-c", upgrade], env=env, check=True, cwd=tmp)

        first_query: dict[str, str] = {}

        def run(step: str) -> dict:
            query = ["--query", first_query[step]] if step in first_query else []
            out = subprocess.run([python, str(Path(__file__).resolve()), "--child", step, "--window", *window,
                                  *query], env=env, check=True, cwd=tmp, capture_output=True, text=True)
            lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
            for line in lines:
                if "queries" in line:
                    first_query[step.replace("compile_", "collect_")] = json.dumps(line["queries"][0])
            return lines[-1]

        try:
            for step in STEPS:  # steady state: the store synced, the caches (if any) written
                run(step)
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            results = {step: [run(step) for _ in range(args.repeat)] for step in STEPS}
            wall = time.perf_counter() - t0
        finally:
            sandbox.stop()
            with server.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print(f"tree: {args.tree or REPO}; load average {load:.1f} before, {os.getloadavg()[0]:.1f} after; "
          f"{wall:.0f} s for {args.repeat} x {len(STEPS)} steps")
    print("| step | CPU s (median) | of which DAG parse |")
    print("|---|---|---|")
    for step, rows in results.items():
        print(f"| {step} | {statistics.median(r['cpu'] for r in rows):.2f} | "
              f"{statistics.median(r['parse'] for r in rows):.2f} |")
    print(f"| **a collect_reddit run's 8 tasks** | {_run_total(results, 4):.2f} | |")


def _run_total(results: dict[str, list[dict]], collects: int) -> float:
    """One collect_reddit run: sync, check, compile, ``collects`` collect tasks, summary."""
    med = {step: statistics.median(r["cpu"] for r in rows) for step, rows in results.items()}
    return (med["sync_registry"] + med["check_request"] + med["compile_reddit"] + collects * med["collect_reddit"]
            + med["summary_reddit"])


if __name__ == "__main__":
    main()

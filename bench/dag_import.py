"""How much importing each DAG file adds to Airflow's own import (the DAG processor pays it per parse).

Each sample is a fresh interpreter: import ``airflow`` and ``airflow.sdk`` (what the DAG processor has
loaded already), then time executing one DAG file the way the DagBag does (a module from a file path).
The median over the samples is compared to the 200 ms budget of issue 6.  The samples also record which
heavy modules the file pulled in: none of tweepy, praw or trustwatch's own packages may load at parse time.

    .venv/bin/python bench/dag_import.py [--samples 7] [--out bench/DAG_IMPORT_RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAGS = sorted((REPO / "dags").glob("*.py"))
BUDGET_MS = 200.0
HEAVY = ("tweepy", "praw", "prawcore", "trustwatch.tasks", "collectors", "models", "analysis", "vaderSentiment")

PROBE = r"""
import importlib.util, json, sys, time
t0 = time.perf_counter()
import airflow, airflow.sdk  # noqa: F401  (Airflow's own import, already paid by the DAG processor)
from airflow.sdk import dag, task, Param, Asset  # noqa: F401
t1 = time.perf_counter()
before = set(sys.modules)
spec = importlib.util.spec_from_file_location("unusual_prefix_dag_probe", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
t2 = time.perf_counter()
new = sorted(set(sys.modules) - before)
print(json.dumps({"airflow_ms": (t1 - t0) * 1000, "dag_ms": (t2 - t1) * 1000, "new_modules": new}))
"""


def sample(path: Path, airflow_home: str) -> dict:
    """One fresh-interpreter measurement of one DAG file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({"AIRFLOW_HOME": airflow_home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PYTHONPATH": str(REPO)})
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], env=env, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "DAG_IMPORT_RESULTS.md")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as home:
        for path in DAGS:
            runs = [sample(path, home) for _ in range(args.samples)]
            dag_ms = [r["dag_ms"] for r in runs]
            heavy = sorted({m for r in runs for m in r["new_modules"] if m.split(".")[0] in HEAVY or m in HEAVY})
            rows.append(
                {
                    "file": f"dags/{path.name}",
                    "median_ms": statistics.median(dag_ms),
                    "max_ms": max(dag_ms),
                    "airflow_ms": statistics.median(r["airflow_ms"] for r in runs),
                    "heavy": heavy,
                }
            )
            print(f"{path.name:24} median {rows[-1]['median_ms']:7.1f} ms  max {rows[-1]['max_ms']:7.1f} ms  "
                  f"(airflow import {rows[-1]['airflow_ms']:.0f} ms)  heavy modules: {heavy or 'none'}")

    ok = all(r["median_ms"] < BUDGET_MS and not r["heavy"] for r in rows)
    lines = [
        "# DAG import time",
        "",
        f"`bench/dag_import.py`, {args.samples} fresh interpreters per file; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.platform()}.",
        "Each sample imports `airflow` and `airflow.sdk` first (the DAG processor has them loaded), then times",
        "executing the DAG file. Budget: under 200 ms per file; no tweepy, praw or trustwatch package at parse time.",
        "",
        "| DAG file | median (ms) | max (ms) | Airflow's own import (ms) | heavy modules loaded |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| `{r['file']}` | {r['median_ms']:.1f} | {r['max_ms']:.1f} | {r['airflow_ms']:.0f} | "
                     f"{', '.join(r['heavy']) or 'none'} |")
    lines += ["", f"Result: {'within budget' if ok else 'OVER BUDGET'}.", ""]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

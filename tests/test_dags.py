"""The DAGs as Airflow sees them: they parse, they are wired as documented, and ``dag.test()`` collects.

Airflow runs in subprocesses with their own AIRFLOW_HOME (a throwaway metadata database), so the test
process never loads Airflow's configuration from the user's home.  The collection runs go against the
sandbox APIs (started here, on a loopback port) into a SQLite store and into a PostgreSQL store.

This file is also the subprocess's entry point: ``python tests/test_dags.py dagbag|run JOB.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DAG_IDS = {"collect_x", "collect_reddit", "revisit_reddit", "enrich_posts", "trend_report", "compliance_check",
           "import_archive", "refresh_metrics"}
X_TOKEN = "sandbox-x-token-dagtest"
REDDIT_ID, REDDIT_SECRET = "dagtest-client", "dagtest-secret-5d1e"
#: Agencies the runs ask for: a few keep each run to a couple of mapped collect tasks.
AGENCIES = ["chicago-pd", "nypd", "lapd"]


# ----------------------------------------------------------------------------------------------------
# Subprocess side
# ----------------------------------------------------------------------------------------------------


def _dagbag_report() -> dict:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import CronDataIntervalTimetable

    bag = DagBag(dag_folder=str(REPO / "dags"), known_pools={"default_pool", "x_api", "reddit_api"})
    report: dict = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
    heavy = ("tweepy", "praw", "trustwatch.tasks", "trustwatch.collectors.x", "trustwatch.collectors.reddit",
             "trustwatch.models.store")
    report["heavy_modules_at_parse"] = [name for name in heavy if name in sys.modules]
    for dag_id, dag in bag.dags.items():
        tasks = {}
        for task in dag.tasks:
            tasks[task.task_id] = {
                "mapped": type(task).__name__ == "DecoratedMappedOperator",
                "pool": task.pool,
                "retries": task.retries,
                "backoff": task.retry_exponential_backoff,
                "timeout": task.execution_timeout.total_seconds() if task.execution_timeout else None,
                "outlets": [getattr(a, "name", str(a)) for a in task.outlets],
                "map_index_template": task.map_index_template,
                "trigger_rule": getattr(task.trigger_rule, "value", task.trigger_rule),
                "upstream": sorted(task.upstream_task_ids),
            }
        timetable = dag.timetable
        report["dags"][dag_id] = {
            "timetable": type(timetable).__name__,
            "data_interval": isinstance(timetable, CronDataIntervalTimetable),
            "cron": getattr(timetable, "expression", None),
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "params": {k: dag.params.get_param(k).schema for k in dag.params},
            "param_defaults": {k: dag.params[k] for k in dag.params},
            "tasks": tasks,
            "asset_schedule": [asset.name for asset in timetable.asset_condition.objects]
            if getattr(timetable, "asset_condition", None) is not None
            else None,
        }
    return report


def _run_job(job: dict) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from sqlalchemy import func, select
    from trustwatch.models.db import make_engine
    from trustwatch.models.tables import Base

    engine = make_engine(os.environ["TRUSTWATCH_DATABASE_URL"])
    for scenario in job["scenarios"]:
        print(f"@@BEGIN {scenario['name']}@@", flush=True)
        # A fresh parse per run, as the scheduler does: dag.test() leaves the run's params on the DAG object.
        dag = DagBag(dag_folder=str(REPO / "dags")).dags[scenario["dag_id"]]
        saved = {k: os.environ.pop(k) for k in scenario.get("unset_env", []) if k in os.environ}
        try:
            dag_run = dag.test(logical_date=None, run_conf=scenario.get("conf"))
        finally:
            os.environ.update(saved)
        states = {}
        for ti in dag_run.get_task_instances():
            label = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.rendered_map_index or ti.map_index}]"
            states[label] = str(ti.state)
        with engine.connect() as conn:
            counts = {t.name: conn.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}
        result = {"name": scenario["name"], "state": str(dag_run.state), "tasks": states, "counts": counts}
        print("@@RESULT@@ " + json.dumps(result), flush=True)
    engine.dispose()


def _main(argv: list[str]) -> int:
    if argv[0] == "dagbag":
        print("@@RESULT@@ " + json.dumps(_dagbag_report()), flush=True)
    elif argv[0] == "run":
        _run_job(json.loads(Path(argv[1]).read_text()))
    return 0


# ----------------------------------------------------------------------------------------------------
# Test side
# ----------------------------------------------------------------------------------------------------


def _base_env(airflow_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TRUSTWATCH_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "PYTHONPATH": str(REPO),
            "TRUSTWATCH_REPORTS_DIR": str(airflow_home / "reports"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _subprocess(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    """Run Python (or a venv script) with stderr folded into stdout, so log lines keep their order."""
    return subprocess.run(
        [sys.executable, *args] if not args[0].endswith("airflow") else args,
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
    )


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh Airflow home with a migrated SQLite metadata database."""
    home = tmp_path_factory.mktemp("airflow_home")
    result = _subprocess([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], _base_env(home))
    assert result.returncode == 0, result.stdout[-3000:]
    return home


@pytest.fixture(scope="module")
def dagbag(airflow_home: Path) -> dict:
    result = _subprocess([__file__, "dagbag"], _base_env(airflow_home))
    assert result.returncode == 0, result.stdout[-3000:]
    return _results(result.stdout)[0]


def _results(output: str) -> list[dict]:
    return [json.loads(line.split(" ", 1)[1]) for line in output.splitlines() if line.startswith("@@RESULT@@ ")]


def _logs(output: str) -> dict[str, str]:
    """The output of each scenario, keyed by its name."""
    logs: dict[str, str] = {}
    current = None
    for line in output.splitlines():
        if line.startswith("@@BEGIN ") and line.endswith("@@"):
            current = line[len("@@BEGIN ") : -2]
            logs[current] = ""
        elif current is not None:
            logs[current] += line + "\n"
    return logs


def test_dags_import_without_errors_and_all_are_there(dagbag):
    assert dagbag["import_errors"] == {}
    assert set(dagbag["dags"]) == DAG_IDS
    # The API clients and the store load inside tasks only: parsing stays cheap (bench/dag_import.py).
    assert dagbag["heavy_modules_at_parse"] == []


@pytest.mark.parametrize("dag_id, pool", [("collect_x", "x_api"), ("collect_reddit", "reddit_api")])
def test_collect_dags_cover_data_intervals_one_run_at_a_time(dagbag, dag_id, pool):
    dag = dagbag["dags"][dag_id]
    assert dag["data_interval"], dag["timetable"]
    assert dag["cron"] == "0 * * * *"
    assert dag["catchup"] is False
    assert dag["max_active_runs"] == 1
    tasks = dag["tasks"]
    assert set(tasks) == {"sync_registry", "check_request", "compile_queries", "collect", "summary"}
    collect = tasks["collect"]
    assert collect["mapped"] and collect["pool"] == pool
    assert collect["outlets"] == ["trustwatch_posts"]
    assert "query" in collect["map_index_template"] and "key" in collect["map_index_template"]
    assert collect["retries"] >= 2 and collect["backoff"] >= 2
    assert collect["timeout"] and collect["timeout"] <= 3600
    assert collect["upstream"] == ["check_request", "compile_queries"]
    assert tasks["check_request"]["upstream"] == ["sync_registry"]
    assert tasks["summary"]["trigger_rule"] == "all_done_min_one_success"
    assert set(tasks["summary"]["upstream"]) == {"collect", "check_request", "compile_queries"}


def test_reddit_threads_are_revisited_every_hour(dagbag):
    dag = dagbag["dags"]["revisit_reddit"]
    assert dag["cron"] == "0 * * * *" and dag["catchup"] is False and dag["max_active_runs"] == 1
    assert set(dag["tasks"]) == {"revisit"}
    assert dag["tasks"]["revisit"]["pool"] == "reddit_api"


def test_trigger_form_params_are_typed(dagbag):
    dag = dagbag["dags"]["collect_x"]
    params = dag["params"]
    assert set(params) == {"start", "end", "agencies", "states", "kinds", "dry_run"}
    assert params["start"]["format"] == params["end"]["format"] == "date-time"
    # no field is required: the form marks a typed field required unless it admits null
    for name in ("start", "end", "agencies", "states", "kinds", "dry_run"):
        assert "null" in params[name]["type"], name
    assert "array" in params["agencies"]["type"] and params["agencies"]["items"]["type"] == "string"
    assert "boolean" in params["dry_run"]["type"]
    assert dag["param_defaults"] == {"start": None, "end": None, "agencies": None, "states": None, "kinds": None,
                                     "dry_run": False}
    # pickers: the curated agencies with their names; states and kinds from enums (issue 16)
    assert "nypd" in params["agencies"]["examples"] and "chicago-pd" in params["agencies"]["examples"]
    assert params["agencies"]["values_display"]["nypd"].startswith("New York City Police Department")
    assert "TX" in params["states"]["items"]["enum"] and len(params["states"]["items"]["enum"]) == 54
    assert "sheriff" in params["kinds"]["items"]["enum"]


def test_enrich_is_batched_the_report_daily_and_compliance_weekly(dagbag):
    # one enrichment per 15 minutes takes every collect task's posts (not one run per finished task),
    # and the report is its own daily DAG (issue 14.7)
    enrich, report = dagbag["dags"]["enrich_posts"], dagbag["dags"]["trend_report"]
    assert enrich["asset_schedule"] is None and enrich["cron"] == "*/15 * * * *"
    assert enrich["max_active_runs"] == 1 and enrich["catchup"] is False
    assert report["cron"] == "30 0 * * *" and report["catchup"] is False
    assert set(report["tasks"]) == {"enrich", "report"}
    compliance = dagbag["dags"]["compliance_check"]
    assert compliance["cron"] == "0 0 * * 0"  # batch compliance jobs: weekly by default
    assert compliance["catchup"] is False
    refresh = dagbag["dags"]["refresh_metrics"]
    assert refresh["cron"] == "0 */6 * * *" and refresh["catchup"] is False


def test_backfill_over_past_days_plans_one_run_per_hour(airflow_home):
    env = _base_env(airflow_home)
    airflow = str(Path(sys.executable).parent / "airflow")
    result = _subprocess([airflow, "dags", "reserialize"], env)
    assert result.returncode == 0, result.stdout[-3000:]
    result = _subprocess(
        [airflow, "backfill", "create", "--dag-id", "collect_x", "--from-date", "2026-11-01T00:00:00+00:00",
         "--to-date", "2026-11-02T23:00:00+00:00", "--dry-run"],
        env,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    planned = [line for line in result.stdout.splitlines() if line.startswith("| 2026-11-")]
    assert len(planned) == 48
    assert planned[0].startswith("| 2026-11-01 00:00:00+00:00") and planned[-1].startswith("| 2026-11-02 23:00:00")


# --- dag.test() against the sandbox ----------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator:
    from trustwatch.sandbox.common import CorpusConfig
    from trustwatch.sandbox.server import SandboxServer

    server = SandboxServer(
        CorpusConfig(seed=5, posts=1500, days=7),
        x_bearer_token=X_TOKEN,
        reddit_client_id=REDDIT_ID,
        reddit_client_secret=REDDIT_SECRET,
    )
    server.start()
    yield server
    server.stop()


def _connections(sandbox_url: str) -> dict[str, str]:
    return {
        "AIRFLOW_CONN_X_API": json.dumps(
            {"conn_type": "http", "password": X_TOKEN, "extra": {"base_url": sandbox_url, "endpoint": "recent"}}
        ),
        "AIRFLOW_CONN_REDDIT_API": json.dumps(
            {
                "conn_type": "http",
                "login": REDDIT_ID,
                "password": REDDIT_SECRET,
                "extra": {"base_url": sandbox_url, "user_agent": "trustwatch-tests/0.1"},
            }
        ),
    }


def _window(sandbox) -> tuple[str, str]:
    """A day of the sandbox's corpus that ended a few hours ago (inside X's 7-day recent search)."""
    end = sandbox.config.stop - dt.timedelta(hours=4)
    return (end - dt.timedelta(hours=30)).isoformat(), end.isoformat()


def _run_scenarios(airflow_home: Path, sandbox, store_url: str, scenarios: list[dict], tmp_path: Path):
    env = _base_env(airflow_home) | _connections(sandbox.url) | {"TRUSTWATCH_DATABASE_URL": store_url}
    # Airflow's own copy of the store URL must not win over the one under test.
    env.pop("AIRFLOW_CONN_TRUSTWATCH_DB", None)
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"scenarios": scenarios}))
    result = _subprocess([__file__, "run", str(job)], env, timeout=400)
    output = result.stdout
    assert result.returncode == 0, output[-5000:]
    results = {r["name"]: r for r in _results(result.stdout)}
    assert set(results) == {s["name"] for s in scenarios}, output[-5000:]
    return results, _logs(result.stdout)


def _migrated(url: str) -> str:
    from trustwatch.models.db import make_engine

    from trustwatch import migrate

    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


def _landed(url: str) -> dict:
    from sqlalchemy import text
    from trustwatch.models.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        posts = conn.execute(text("SELECT platform, count(*) FROM posts GROUP BY platform")).all()
        slugs = conn.execute(
            text("SELECT DISTINCT a.slug FROM post_mentions m JOIN agencies a ON a.id = m.agency_id")
        ).scalars().all()
    engine.dispose()
    return {"posts": dict(posts), "slugs": set(slugs)}


def _ledger_windows(url: str) -> set[tuple[str, str]]:
    """The [start, end) windows the ledger holds, as ISO strings in UTC."""
    from sqlalchemy import text
    from trustwatch.models.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT DISTINCT window_start, window_end FROM collection_runs")).all()
    engine.dispose()

    def iso(value: object) -> str:
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat()

    return {(iso(s), iso(e)) for s, e in rows if s is not None}


def _collect_twice(platform: str, window: tuple[str, str]) -> list[dict]:
    conf = {"start": window[0], "end": window[1], "agencies": AGENCIES}
    return [
        {"name": f"{platform}-first", "dag_id": f"collect_{platform}", "conf": conf},
        {"name": f"{platform}-again", "dag_id": f"collect_{platform}", "conf": conf},
    ]


def _errors(log: str) -> str:
    """The error lines of a scenario's log, for assertion messages."""
    return "\n".join(line for line in log.splitlines() if "error" in line.lower())[-4000:]


def _check_collected_twice(results: dict, platform: str, store_url: str, logs: dict[str, str]) -> None:
    first, again = results[f"{platform}-first"], results[f"{platform}-again"]
    assert first["state"] == "success", (first["tasks"], _errors(logs[f"{platform}-first"]))
    mapped = [name for name in first["tasks"] if name.startswith("collect[")]
    assert mapped and all(name.startswith(f"collect[{platform}-") for name in mapped), mapped
    assert first["counts"]["posts"] > 0 and first["counts"]["post_mentions"] > 0
    assert again["state"] == "success", (again["tasks"], _errors(logs[f"{platform}-again"]))
    assert again["counts"] == first["counts"], "running the same interval again added rows"
    landed = _landed(store_url)
    assert landed["posts"].get(platform, 0) > 0
    # The requested agencies are found; a post may name other agencies too, and those are kept.
    assert landed["slugs"] & set(AGENCIES)


def test_collect_x_against_the_sandbox_into_sqlite_and_refusals(airflow_home, sandbox, tmp_path):
    store_url = _migrated(f"sqlite:///{tmp_path / 'store.db'}")
    start, end = _window(sandbox)
    week_ago = (sandbox.config.stop - dt.timedelta(days=8)).isoformat()
    refusals = [
        {"name": "unknown-agency", "dag_id": "collect_x",
         "conf": {"start": start, "end": end, "agencies": ["chicago-pd", "gotham-pd"]}},
        {"name": "end-before-start", "dag_id": "collect_x", "conf": {"start": end, "end": start}},
        {"name": "beyond-recent", "dag_id": "collect_x", "conf": {"start": week_ago, "end": end}},
        {"name": "no-connection", "dag_id": "collect_x", "conf": {"start": start, "end": end},
         "unset_env": ["AIRFLOW_CONN_X_API"]},
    ]
    last_hour = {"name": "last-hour", "dag_id": "collect_x", "conf": {"agencies": AGENCIES}}
    hour_before = {"name": "hour-before", "dag_id": "collect_x", "conf": {"agencies": AGENCIES}}
    earlier = (dt.datetime.fromisoformat(start) - dt.timedelta(days=2)).isoformat()
    dry_run = {"name": "dry-run", "dag_id": "collect_x",
               "conf": {"start": earlier, "end": start, "agencies": AGENCIES, "dry_run": True}}
    # Refusals first: once a run has looked the connection up, Airflow caches it in the process.
    results, logs = _run_scenarios(
        airflow_home, sandbox, store_url,
        [*refusals, *_collect_twice("x", (start, end)), dry_run, last_hour, hour_before], tmp_path,
    )
    _check_collected_twice(results, "x", store_url, logs)

    # A dry run counts without storing posts.
    assert results["dry-run"]["state"] == "success", results["dry-run"]["tasks"]
    assert results["dry-run"]["counts"]["posts"] == results["x-again"]["counts"]["posts"]
    assert "counted" in logs["dry-run"] or "expected_posts" in logs["dry-run"]

    # A manual run without dates covers the most recent complete hour not read yet: a second one, the hour
    # before the first one's (or the next hour, when the clock passed the hour in between).
    assert results["last-hour"]["state"] == "success", results["last-hour"]["tasks"]
    assert results["hour-before"]["state"] == "success", results["hour-before"]["tasks"]
    windows = _ledger_windows(store_url)
    assert (start, end) in windows
    recent = [w for w in windows if w not in {(start, end), (earlier, start)}]
    assert len(recent) == 2, recent
    for s, e in recent:
        s_t, e_t = dt.datetime.fromisoformat(s), dt.datetime.fromisoformat(e)
        assert e_t - s_t == dt.timedelta(hours=1) and s_t.minute == s_t.second == 0, recent
    assert "new posts stored" in logs["hour-before"] and "run summary" in logs["hour-before"]

    for refusal in refusals:
        result = results[refusal["name"]]
        assert result["state"] == "failed"
        assert result["tasks"]["check_request"] == "failed", result["tasks"]
        assert result["tasks"]["collect"] == "upstream_failed"
    assert "unknown agency 'gotham-pd'" in logs["unknown-agency"]
    assert "is not after start" in logs["end-before-start"]
    assert "more than 7 days ago" in logs["beyond-recent"] and "endpoint='all'" in logs["beyond-recent"]
    assert "Airflow connection 'x_api' is not configured" in logs["no-connection"]
    assert "AIRFLOW_CONN_X_API=" in logs["no-connection"]
    # A refused request writes nothing.
    for refusal in refusals:
        counts = results[refusal["name"]]["counts"]
        assert counts["posts"] == counts["collection_runs"] == 0, refusal["name"]
    assert X_TOKEN not in "".join(logs.values())


def test_a_trigger_without_dates_says_nothing_new_when_the_recent_hours_were_read(airflow_home, sandbox, tmp_path):
    """The first hour's complaint: after the scheduled run, the form's defaults finished green with 0 posts and
    said nothing. Now such a run asks the API nothing and its summary says what was read last."""
    from trustwatch.models import store
    from trustwatch.models.db import make_engine

    from trustwatch import tasks

    store_url = _migrated(f"sqlite:///{tmp_path / 'store.db'}")
    engine = make_engine(store_url)
    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    # What a backfill and the scheduled runs leave in the ledger: success rows of the same queries up to the
    # hour in progress; ending an hour later keeps the test right if the clock passes the hour meanwhile.
    for query in tasks.compile_queries("x", AGENCIES):
        for start, end, run_id in ((hour - dt.timedelta(days=2), hour - dt.timedelta(hours=1), None),
                                   (hour - dt.timedelta(hours=1), hour + dt.timedelta(hours=1), "scheduled__1")):
            handle = store.open_run(engine, platform="x", query_key=query["key"], query_version=query["version"],
                                    query_text=query["text"], window_start=start, window_end=end,
                                    run_context={"dag_run_id": run_id})
            store.update_run(engine, handle.run_id, status="success", finished_at=store.utcnow())
    engine.dispose()
    asked_before = len(sandbox.requests_to("/2/"))
    results, logs = _run_scenarios(
        airflow_home, sandbox, store_url,
        [{"name": "defaults", "dag_id": "collect_x", "conf": {"agencies": AGENCIES}}], tmp_path,
    )
    result, log = results["defaults"], logs["defaults"]
    assert result["state"] == "success", (result["tasks"], _errors(log))
    # one placeholder collect task, named so in the grid, instead of one per query
    assert {k: v for k, v in result["tasks"].items() if k.startswith(("collect", "summary"))} == {
        "collect[nothing-new]": "success", "summary": "success"}, result["tasks"]
    assert result["counts"]["posts"] == 0
    assert len(sandbox.requests_to("/2/")) == asked_before, "a run with nothing new asked the API"
    assert "nothing new: every complete hour of the last 24 h was read already" in log
    assert "(by scheduled__1)" in log and "give start and end in the form" in log
    assert re.search(r"X \(Twitter\) run summary: nothing new", log), log[-3000:]


@pytest.mark.postgres
def test_collect_x_and_reddit_against_the_sandbox_into_postgres(airflow_home, sandbox, pg_server, tmp_path):
    store_url = _migrated(pg_server.create("tw_dagtest"))
    window = _window(sandbox)
    results, logs = _run_scenarios(
        airflow_home, sandbox, store_url, _collect_twice("x", window) + _collect_twice("reddit", window), tmp_path
    )
    _check_collected_twice(results, "x", store_url, logs)
    _check_collected_twice(results, "reddit", store_url, logs)
    assert X_TOKEN not in "".join(logs.values()) and REDDIT_SECRET not in "".join(logs.values())


def test_collect_reddit_against_the_sandbox_into_sqlite(airflow_home, sandbox, tmp_path):
    store_url = _migrated(f"sqlite:///{tmp_path / 'store.db'}")
    results, logs = _run_scenarios(
        airflow_home, sandbox, store_url, _collect_twice("reddit", _window(sandbox)), tmp_path
    )
    _check_collected_twice(results, "reddit", store_url, logs)
    assert REDDIT_SECRET not in "".join(logs.values())


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(_main(sys.argv[1:]))


def test_import_archive_from_the_trigger_form(airflow_home, sandbox, tmp_path, realcases):
    store_url = _migrated(f"sqlite:///{tmp_path / 'store.db'}")
    twarc = str(realcases / "x" / "twarc-csv" / "withheld.jsonl")
    scenarios = [
        {"name": "import", "dag_id": "import_archive", "conf": {"platform": "x", "path": twarc, "keep_all": True}},
        {"name": "again", "dag_id": "import_archive", "conf": {"platform": "x", "path": twarc, "keep_all": True}},
        {"name": "missing", "dag_id": "import_archive",
         "conf": {"platform": "reddit", "path": str(tmp_path / "nowhere.zst")}},
        {"name": "empty", "dag_id": "import_archive", "conf": {"platform": "x"}},
    ]
    results, logs = _run_scenarios(airflow_home, sandbox, store_url, scenarios, tmp_path)
    assert results["import"]["state"] == "success", _errors(logs["import"])
    assert results["import"]["counts"]["posts"] == 284
    assert results["again"]["state"] == "success" and results["again"]["counts"] == results["import"]["counts"]
    assert "imported before: skipped" in logs["again"]
    assert results["missing"]["state"] == "failed" and "no such file" in logs["missing"]
    assert results["empty"]["state"] == "failed" and "give the path of an archive file" in logs["empty"]


def test_enrich_posts_scores_collected_posts_and_writes_the_report(airflow_home, sandbox, tmp_path):
    store_url = _migrated(f"sqlite:///{tmp_path / 'store.db'}")
    start, end = _window(sandbox)
    scenarios = [
        {"name": "collect", "dag_id": "collect_x", "conf": {"start": start, "end": end, "agencies": AGENCIES}},
        {"name": "enrich", "dag_id": "enrich_posts"},
        {"name": "report", "dag_id": "trend_report"},
    ]
    results, logs = _run_scenarios(airflow_home, sandbox, store_url, scenarios, tmp_path)
    assert results["enrich"]["state"] == "success", _errors(logs["enrich"])
    counts = results["enrich"]["counts"]
    assert counts["post_scores"] > 0 and counts["agency_daily_trends"] > 0
    assert results["report"]["state"] == "success", _errors(logs["report"])
    reports = list((airflow_home / "reports").glob("trend-*.html"))
    assert reports and "<html" in reports[0].read_text()[:500].lower()
    # named by the run's time, never after a missing logical date
    assert [re.fullmatch(r"trend-\d{4}-\d\d-\d\dT\d{4}Z\.html", r.name) is not None for r in reports] == [True]

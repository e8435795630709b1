"""docker-compose.yml's Celery topology, run for real on this machine (no Docker).

``scripts/native_topology.py`` reads the compose file and starts its services as native processes with
the environment compose gives them: a private Redis, airflow-init's script, the api-server, scheduler,
dag-processor, triggerer and two Celery workers, on fresh PostgreSQL databases for Airflow and the store.
The test backfills 24 hourly windows of ``collect_x`` and ``collect_reddit`` against the sandbox with
``airflow backfill create`` and kills one worker while it runs tasks (then starts it again, as compose's
``restart: always`` does).  Then it checks what an operator would: every run succeeded, the store holds
exactly the sandbox's ground truth with no duplicate, both workers ran tasks, the API pools never ran more
tasks at once than their slots, and the killed worker's tasks were retried and finished.

The databases may be on a TCP server or, as in CI (scripts/test.sh's embedded server), on a Unix socket.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from trustwatch.collectors.agencies import compile_x_queries
from trustwatch.collectors.x import query_suffix
from trustwatch.sandbox.common import CorpusConfig
from trustwatch.sandbox.server import SandboxServer

REPO = Path(__file__).resolve().parents[1]
X_TOKEN = "topology-x-token-81f2"
REDDIT_SECRET = "topology-reddit-secret-3a9c"
AGENCIES = ["nypd"]
WINDOWS = 24
#: The API pools' slots (compose's TRUSTWATCH_*_POOL_SLOTS, which an operator sets in .env; 2 by default).
#: The test gives each 4 so that a backfill's collect tasks are bound by the pools only where the pools
#: mean something: four Reddit collect tasks per window would otherwise queue behind 2 slots for most of
#: the run.  Four still holds back many ready collect tasks (up to 16 with four Reddit runs active).
POOL_SLOTS = 4
#: Task slots per worker: with two workers, one for each of the 2 x 4 backfill runs that may be active.
WORKER_CONCURRENCY = 4


def _load_native_topology() -> Any:
    spec = importlib.util.spec_from_file_location("native_topology", REPO / "scripts" / "native_topology.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["native_topology"] = module
    spec.loader.exec_module(module)
    return module


native = _load_native_topology()


def x_extra(sandbox: SandboxServer) -> dict[str, Any]:
    """The x_api connection's extra: the endpoint, the query length and (defaults) the query suffix."""
    return {"base_url": sandbox.url, "endpoint": "recent", "max_query_length": 512}


def connections(sandbox: SandboxServer) -> dict[str, str]:
    """The API connections an operator puts in .env, pointed at the sandbox."""
    return {
        "AIRFLOW_CONN_X_API": json.dumps({"conn_type": "http", "password": X_TOKEN, "extra": x_extra(sandbox)}),
        "AIRFLOW_CONN_REDDIT_API": json.dumps({"conn_type": "http", "login": "sandbox-client",
                                               "password": REDDIT_SECRET, "extra": {
                                                   "base_url": sandbox.url,
                                                   "user_agent": "trustwatch-topology/0.1 by u/tw"}}),
    }


def test_every_setting_comes_from_the_compose_file(tmp_path, pg_server):
    """The native processes get compose's environment: only addresses and per-host ports differ."""
    topology = native.Topology(tmp_path, pg_server.create("tw_af"), pg_server.create("tw_store"),
                               native.generated_variables())
    compose = native.load_compose()
    common = compose["x-airflow-common"]["environment"]
    for service in ("airflow-scheduler", "airflow-worker", "airflow-init"):
        env = topology.env_for(service)
        for name in common:
            assert name in env, (service, name)
        assert env["AIRFLOW__CORE__EXECUTOR"] == common["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CORE__AUTH_MANAGER"] == common["AIRFLOW__CORE__AUTH_MANAGER"]
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == topology.variables["AIRFLOW_JWT_SECRET"]
        assert env["AIRFLOW__CELERY__BROKER_URL"] == f"redis://:@127.0.0.1:{topology.redis_port}/0"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == \
            f"http://127.0.0.1:{topology.api_port}/execution/"
        metadata = make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert metadata.drivername == make_url(common["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace(
            "${AIRFLOW_DB_PASSWORD:?set AIRFLOW_DB_PASSWORD in .env}", "p")).drivername
        assert metadata.database == make_url(topology.metadata_url).database
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
        assert make_url(env["AIRFLOW__CELERY__RESULT_BACKEND"][3:]).database == metadata.database
        store = json.loads(env["AIRFLOW_CONN_TRUSTWATCH_DB"])
        assert store["schema"] == make_url(topology.store_url).database
        assert store["host"] == native.Endpoint.from_url(topology.store_url).host  # the test server, TCP or socket
        assert Path(env["AIRFLOW__CORE__DAGS_FOLDER"], "collect_posts.py").is_file()
    assert topology.env_for("airflow-worker")["DUMB_INIT_SETSID"] == "0"  # the worker's own entry survives
    init = topology.env_for("airflow-init")
    assert init["TRUSTWATCH_X_POOL_SLOTS"] == "2" and init["_AIRFLOW_DB_MIGRATE"] == "true"
    # a setting added to the compose file reaches the native processes without touching this module
    compose["x-airflow-common"]["environment"]["AIRFLOW__CORE__PARALLELISM"] = "7"
    compose["services"]["airflow-scheduler"]["environment"]["AIRFLOW__CORE__PARALLELISM"] = "7"
    topology.compose = compose
    assert topology.env_for("airflow-scheduler")["AIRFLOW__CORE__PARALLELISM"] == "7"


def test_every_compose_service_has_a_native_counterpart(tmp_path, pg_server):
    """A service added to the compose file without a native counterpart fails here, not in production."""
    topology = native.Topology(tmp_path, pg_server.create("tw_af"), pg_server.create("tw_store"),
                               native.generated_variables())
    services = set(native.load_compose()["services"])
    assert services == set(native.AIRFLOW_SERVICES) | {"airflow-init"} | set(topology.endpoints)
    for service in native.AIRFLOW_SERVICES:
        command = native.load_compose()["services"][service]["command"]
        assert command in {"api-server", "scheduler", "dag-processor", "triggerer", "celery worker"}, command


def test_a_missing_required_secret_is_refused_like_compose_does():
    with pytest.raises(native.TopologyError, match="AIRFLOW_FERNET_KEY is required"):
        native.interpolate("${AIRFLOW_FERNET_KEY:?set AIRFLOW_FERNET_KEY in .env}", {})
    assert native.interpolate("${A:-x}/$${HOSTNAME}/${B}", {"B": "b"}) == "x/${HOSTNAME}/b"


def test_a_server_on_a_unix_socket_reaches_airflow_celery_and_the_store(tmp_path, monkeypatch):
    """CI's PostgreSQL (the embedded server of scripts/test.sh) listens on a socket only, no TCP port.

    Its URLs name the socket directory in the query (``?host=/dir``); every database address the compose
    file gives must point there, and the store connection must give trustwatch a URL that connects there.
    """
    socket_dir = str(tmp_path / "pg")
    metadata_url = f"postgresql+psycopg://postgres:@/tw_af_1?host={socket_dir}"
    store_url = f"postgresql+psycopg://postgres:@/tw_store_1?host={socket_dir}"
    topology = native.Topology(tmp_path, metadata_url, store_url, native.generated_variables())
    for service in ("airflow-scheduler", "airflow-worker", "airflow-init"):
        env = topology.env_for(service)
        for name, database in (("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "tw_af_1"),
                               ("AIRFLOW__CELERY__RESULT_BACKEND", "tw_af_1")):
            url = make_url(env[name].removeprefix("db+"))
            assert (url.host, url.query.get("host"), url.query.get("port"), url.database) == (
                None, socket_dir, "5432", database), (service, name)
        store = json.loads(env["AIRFLOW_CONN_TRUSTWATCH_DB"])
        assert (store["host"], store["port"], store["schema"]) == (socket_dir, 5432, "tw_store_1")
    # what a collect task does with that connection: trustwatch's store URL names the same socket
    from trustwatch.settings import store_url as resolve_store_url

    monkeypatch.setenv("AIRFLOW_CONN_TRUSTWATCH_DB", topology.env_for("airflow-worker")["AIRFLOW_CONN_TRUSTWATCH_DB"])
    resolved = make_url(resolve_store_url().url)
    assert (resolved.host, resolved.query.get("host"), resolved.database, resolved.username) == (
        None, socket_dir, "tw_store_1", "postgres")


def _metadata(topology: Any) -> Any:
    return create_engine(make_url(topology.metadata_url).set(drivername="postgresql+psycopg"))


def _tries(engine: Any, dag_ids: tuple[str, ...]) -> list[Any]:
    """Every try of every task: the finished earlier tries (history) and the current ones."""
    columns = "dag_id, run_id, task_id, map_index, try_number, state, hostname, pool, start_date, end_date"
    query = text(f"SELECT {columns} FROM task_instance WHERE dag_id = ANY(:d) "
                 f"UNION ALL SELECT {columns} FROM task_instance_history WHERE dag_id = ANY(:d)")
    with engine.connect() as conn:
        return list(conn.execute(query, {"d": list(dag_ids)}))


def _max_concurrent(intervals: list[tuple[dt.datetime, dt.datetime]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda e: (e[0], e[1]))  # an end at the same instant frees the slot first
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


@pytest.mark.slow
@pytest.mark.postgres
def test_backfill_on_two_celery_workers_stores_the_ground_truth_and_survives_a_killed_worker(
        tmp_path, pg_server, registry):
    sandbox = SandboxServer(CorpusConfig(seed=18, posts=1200, days=2), x_bearer_token=X_TOKEN,
                            reddit_client_secret=REDDIT_SECRET)
    # Reddit as it is: a thread's comments keep arriving for days, and a read shows those written by then
    # (the live sandbox's clock).  Without it the sandbox served comments dated days ahead, which the
    # collector rightly rejects.
    sandbox.reddit.clock = lambda: dt.datetime.now(dt.UTC)
    end = sandbox.config.stop  # the hour the sandbox started in: the last window is the latest complete one
    start = end - dt.timedelta(hours=WINDOWS)
    metadata_url, store_url = pg_server.create("tw_af"), pg_server.create("tw_store")
    variables = {**native.generated_variables(), "TRUSTWATCH_X_POOL_SLOTS": str(POOL_SLOTS),
                 "TRUSTWATCH_REDDIT_POOL_SLOTS": str(POOL_SLOTS)}
    topology = native.Topology(
        tmp_path, metadata_url, store_url, variables, workers=2, worker_concurrency=WORKER_CONCURRENCY,
        extra_env={
            **connections(sandbox.start()),
            # Test speed only: a killed worker's tasks are noticed after 20 s instead of 5 minutes.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            # Test speed only: a task the killed worker had received but not yet reported running stays
            # "queued" until this timeout requeues it (600 s by default, checked every 120 s; the CI run
            # of 30 November waited 11 min 42 s for one). Tasks here wait at most about 2 s in the queue.
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "60",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "10",
            # Test speed only: the DAG files do not change during the test; re-parsing them every 30 s
            # takes CPU from the tasks on a two-core machine.
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            # Only the backfill: no scheduled run (every agency) when the hour turns during the test.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "false",
            "TRUSTWATCH_X_SCHEDULE": "@hourly",
            # Each worker's registry cache (~/.cache/trustwatch in its container), kept in the test's folder.
            "TRUSTWATCH_CACHE_DIR": str(tmp_path / "registry_cache"),
            "TRUSTWATCH_REDDIT_SCHEDULE": "@hourly",
        },
    )
    metadata = None
    try:
        with native.running(topology):
            metadata = _metadata(topology)
            topology.wait(lambda: _parsed(metadata) >= 2, 240, "both collect DAGs to be parsed")
            for dag_id in ("collect_x", "collect_reddit"):
                created = topology.airflow(
                    "backfill", "create", "--dag-id", dag_id, "--from-date", start.isoformat(),
                    "--to-date", (end - dt.timedelta(hours=1)).isoformat(), "--max-active-runs", "4",
                    "--dag-run-conf", json.dumps({"agencies": AGENCIES}))
                assert created.returncode == 0, created.stdout[-2000:] + created.stderr[-4000:]
            # DAGs start paused (compose's setting); the scheduler runs a paused DAG's backfill only once
            # it is unpaused.
            for dag_id in ("collect_x", "collect_reddit"):
                unpaused = topology.airflow("dags", "unpause", dag_id)
                assert unpaused.returncode == 0, unpaused.stderr[-3000:]

            # kill worker2 while it runs a collect task; its tries must be retried and succeed
            worker2 = next(p for p in topology.processes if p.name == "worker2")
            topology.wait(lambda: _running_on(metadata, "worker2"), 600, "worker2 to run a collect task")
            kill_sent = dt.datetime.now(dt.UTC)
            topology.kill(worker2, signal.SIGKILL)
            killed_at = dt.datetime.now(dt.UTC)
            # compose's `restart: always` starts the worker's container again; without it the rest of the
            # backfill would run on one worker, twice as long
            topology.restart(worker2)

            try:
                topology.wait(lambda: _done(metadata) >= 2 * WINDOWS, 3600, "the 48 backfilled runs to finish")
            except native.TopologyError as exc:
                raise AssertionError(f"{exc}\nruns: {_progress(metadata)}") from None
            for dag_id in ("collect_x", "collect_reddit"):
                topology.airflow("dags", "pause", dag_id)
            topology.wait(lambda: not _active(metadata), 600, "every run to finish")
            with metadata.connect() as conn:
                runs = conn.execute(text("SELECT dag_id, run_id, run_type, state, data_interval_start, "
                                         "data_interval_end, conf FROM dag_run")).all()
            backfilled = [r for r in runs if r.run_type == "backfill"]
            assert len(backfilled) == len(runs) == 2 * WINDOWS and {r.state for r in runs} == {"success"}, runs
            assert {r.data_interval_start for r in backfilled} == {
                start + dt.timedelta(hours=h) for h in range(WINDOWS)}
            tries = _tries(metadata, ("collect_x", "collect_reddit"))
    finally:
        sandbox.stop()
        if metadata is not None:
            metadata.dispose()

    # both workers ran tasks (each worker reports its own hostname, as each container would)
    hosts = {t.hostname for t in tries if t.hostname}
    assert {"worker1", "worker2"} <= hosts, hosts
    # the killed worker's tries that were running when the signal was sent failed, and a later try of the
    # same task succeeded (on either worker); a try that had finished just before the kill is not lost (tasks
    # take about a second now, so one often ends in the second before the signal)
    lost = [t for t in tries if t.hostname == "worker2" and t.start_date and t.start_date < kill_sent
            and (t.end_date is None or t.end_date > kill_sent)]
    assert lost, "the kill hit no running task"
    for t in lost:
        later = [r for r in tries if (r.dag_id, r.run_id, r.task_id, r.map_index) ==
                 (t.dag_id, t.run_id, t.task_id, t.map_index) and r.try_number > t.try_number]
        assert t.state != "success" and any(r.state == "success" for r in later), (t, later)
    # the API pools never ran more collect tasks at once than their slots
    for pool in ("x_api", "reddit_api"):
        spans = [(t.start_date, t.end_date or killed_at) for t in tries if t.pool == pool and t.start_date]
        assert spans, pool
        assert _max_concurrent(spans) <= POOL_SLOTS, pool

    # the store equals the sandbox's ground truth, without duplicates, and the ledger shows no gap
    store = create_engine(make_url(store_url).set(drivername="postgresql+psycopg"))
    try:
        with store.connect() as conn:
            rows = conn.execute(text("SELECT platform, platform_post_id FROM posts")).all()
            ledger = conn.execute(text("SELECT status, count(*) FROM collection_runs GROUP BY status")).all()
            rejected = conn.execute(text("SELECT reason FROM rejected_payloads LIMIT 5")).scalars().all()
            dup_mentions = conn.execute(text("SELECT count(*) - count(DISTINCT (post_id, agency_id, matched_term)) "
                                             "FROM post_mentions")).scalar()
    finally:
        store.dispose()
    assert len(rows) == len(set(rows)), "a post is stored twice"
    assert dup_mentions == 0
    assert not rejected, rejected
    x_truth: set[str] = set()
    # Reddit: what could be read when each run read it.  A run's collect tasks read between the start of
    # their first try and the end of their last; a comment written in between may or may not have been
    # read, so the store must hold at least what existed at the first moment and at most what existed at
    # the last (the two are equal unless a comment arrived during the run's own collect tasks).
    reddit_earliest: set[str] = set()
    reddit_latest: set[str] = set()
    reads = _read_spans(tries)
    # the X queries as the collect DAG compiles them: with the connection's suffix (-is:retweet by default:
    # reposts are not collected), so the ground truth has no repost either
    suffix = query_suffix(x_extra(sandbox))
    for run in runs:  # what each run was asked for: its window, and its agencies (none named: all)
        agencies = _conf(run.conf).get("agencies") or None
        window = (run.data_interval_start, run.data_interval_end)
        if run.dag_id == "collect_x":
            texts = [q.text for q in compile_x_queries(registry, max_query_length=512, suffix=suffix,
                                                       agencies=agencies)]
            x_truth |= sandbox.x.expected_stored_ids(texts, *window)
        else:
            first, last = reads[run.run_id]
            reddit_earliest |= _reddit_truth(sandbox, window, agencies, first)
            reddit_latest |= _reddit_truth(sandbox, window, agencies, last)
    stored_reddit = {i for p, i in rows if p == "reddit"}
    assert x_truth and reddit_earliest
    assert {i for p, i in rows if p == "x"} == x_truth
    assert reddit_earliest <= stored_reddit <= reddit_latest, (
        sorted(reddit_earliest - stored_reddit), sorted(stored_reddit - reddit_latest))
    assert len(reddit_latest - reddit_earliest) <= 2, "comments written during a run's reads are rare"
    # comments written after their run read the thread wait for revisit_reddit (not run here)
    assert sandbox.reddit.ground_truth(start, end, AGENCIES) - reddit_latest
    assert dict(ledger).keys() == {"success"}, ledger


def _read_spans(tries: list[Any]) -> dict[str, tuple[dt.datetime, dt.datetime]]:
    """Per collect_reddit run: when its collect tasks began reading (the earliest start of a try that
    succeeded) and when they stopped (the latest end of any try, the killed ones included)."""
    spans: dict[str, tuple[dt.datetime, dt.datetime]] = {}
    for t in tries:
        if t.dag_id != "collect_reddit" or t.task_id != "collect" or t.start_date is None:
            continue
        first, last = spans.get(t.run_id, (None, None))
        if t.state == "success":
            first = t.start_date if first is None else min(first, t.start_date)
        end = t.end_date or t.start_date
        last = end if last is None else max(last, end)
        spans[t.run_id] = (first, last)
    missing = [run for run, (first, _) in spans.items() if first is None]
    assert not missing, f"runs with no successful collect try: {missing}"
    return spans  # type: ignore[return-value]


def _reddit_truth(sandbox: SandboxServer, window: tuple[dt.datetime, dt.datetime], agencies: list[str] | None,
                  at: dt.datetime) -> set[str]:
    """What the default (listing-first) plan stores for a window read at ``at``: the threads started in the
    window with their comments written by then, the window's comments naming an agency, with their threads'
    submissions, and the submissions that only leave a shared name unsettled (stored as ambiguities, without
    their comment trees)."""
    return (sandbox.reddit.ground_truth(*window, agencies, at=at)
            | sandbox.reddit.comment_truth(*window, agencies, at=at)
            | sandbox.reddit.ambiguous_truth(*window, agencies))


def _parsed(engine: Any) -> int:
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(
                "SELECT count(*) FROM dag WHERE dag_id IN ('collect_x', 'collect_reddit')")).scalar() or 0)
    except Exception:
        return 0


def _conf(value: Any) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, (bytes, str)):
        try:
            return json.loads(value)
        except ValueError:
            return {}
    return {}


def _active(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM dag_run WHERE state NOT IN ('success', 'failed')")).scalar())


def _running_on(engine: Any, host: str) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT count(*) FROM task_instance WHERE state = 'running' AND hostname = :h AND task_id = 'collect'"),
            {"h": host}).scalar())


def _progress(engine: Any) -> list[tuple[str, str, int]]:
    """How many runs of each DAG are in each state (for the message when the backfill is too slow)."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT dag_id, state, count(*) FROM dag_run GROUP BY dag_id, state ORDER BY dag_id, state"))]


def _done(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM dag_run WHERE run_type = 'backfill' AND state IN ('success', 'failed')")).scalar())

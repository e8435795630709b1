"""DAGs ``collect_x`` and ``collect_reddit``: collect posts that mention agencies, one data interval per run;
``revisit_reddit``: read attributed Reddit threads again as they age (late comments, final scores).

The file holds wiring only.  Each task calls one function of ``trustwatch.tasks`` (the CLI calls the same
functions), imported inside the task so parsing this file stays cheap for the DAG processor.

Each run covers the half-open window [data_interval_start, data_interval_end).  A manual run from the
trigger form may name its own window and agencies; the checks that refuse bad input live in
``trustwatch.tasks.validate_request`` so the CLI refuses the same things with the same messages.

Settings read at parse time (environment, so no database access while parsing):
``TRUSTWATCH_X_SCHEDULE`` / ``TRUSTWATCH_REDDIT_SCHEDULE`` / ``TRUSTWATCH_REVISIT_SCHEDULE`` (cron, default
hourly; ``none`` for manual runs only) and ``TRUSTWATCH_CATCHUP``.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
from collections.abc import Callable
from typing import Any

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

log = logging.getLogger("trustwatch.dags")

#: Updated by every collect task; ``enrich_posts`` is scheduled on it (same name and URI there).
POSTS_ASSET = Asset(name="trustwatch_posts", uri="x-trustwatch://store/posts", group="trustwatch")

START_DATE = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)

PLATFORMS: dict[str, dict[str, str]] = {
    "x": {"pool": "x_api", "conn_id": "x_api", "label": "X (Twitter)"},
    "reddit": {"pool": "reddit_api", "conn_id": "reddit_api", "label": "Reddit"},
}


def _env_flag(name: str, default: bool) -> bool:
    """Read a yes/no environment setting; anything unrecognised keeps the default."""
    value = os.environ.get(name, "").strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    return default


def _schedule(variable: str, default: str) -> str | None:
    """A cron expression from the environment; ``none``/``off``/``manual`` leaves only manual runs."""
    value = os.environ.get(variable, "").strip() or default
    return None if value.lower() in {"none", "off", "manual"} else value


def _call(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a ``trustwatch.tasks`` function; turn configuration and request errors into clear failures.

    A missing connection or a refused request cannot be fixed by retrying, so the task fails at once
    (AirflowFailException) with the message that says what to change, instead of a bare stack trace
    repeated over every retry.
    """
    from trustwatch.settings import ConfigError  # heavy imports stay out of parsing
    from trustwatch.tasks import RequestError

    try:
        return func(*args, **kwargs)
    except (ConfigError, RequestError) as exc:
        log.error("%s", exc)
        raise AirflowFailException(str(exc)) from None


def _run_context() -> dict[str, Any]:
    """What the ledger records about the Airflow run (ids only, never connection details)."""
    context = get_current_context()
    ti = context["ti"]
    dag_run = context["dag_run"]
    return {
        "dag_id": ti.dag_id,
        "dag_run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": ti.map_index,
        "try_number": ti.try_number,
        "run_type": str(getattr(dag_run.run_type, "value", dag_run.run_type)),
    }


@functools.cache
def _agency_choices() -> tuple[list[str], dict[str, str]]:
    """The curated (tracked) agencies' slugs and display names, for the form's agency picker.

    Read from the curated registry file only (plain YAML, no registry code, so parsing stays cheap): the
    nationwide list has 18,000 names, too many for a picker; the others are reached through States and
    Kinds.  A broken file leaves a free-text field; the collect tasks report the registry error.  Read once
    per parse for both DAGs, with libyaml's loader where PyYAML has it: every task process parses this file.
    """
    try:
        import yaml

        from trustwatch.settings import resource_dir

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load((resource_dir("agencies") / "agencies.yaml").read_text(encoding="utf-8"),
                         Loader=loader)  # noqa: S506 (a safe loader: libyaml's SafeLoader)
        entries = [e for e in data["agencies"] if e.get("active", True)]
        return sorted(e["slug"] for e in entries), {e["slug"]: f"{e['name']} ({e['slug']})" for e in entries}
    except Exception:  # the form must still render
        return [], {}


#: The trigger form's pickers (kept literal so parsing the DAG file imports no registry code).
_STATE_CODES = (
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND "
    "OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI"
).split()
_KINDS = ("municipal", "sheriff", "state", "federal", "transit", "campus", "tribal", "special")


def _trigger_params() -> dict[str, Param]:
    """The typed form shown by the UI's trigger button; every field is optional (JSON schema "null")."""
    slugs, display = _agency_choices()
    return {
        "start": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="Start (UTC)",
            description="First moment to collect, inclusive. Leave both dates empty for the most recent "
            "complete hour not read yet (the run summary says when there is nothing new).",
        ),
        "end": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="End (UTC)",
            description="Moment to stop, exclusive; must be after the start.",
        ),
        "agencies": Param(
            None,
            type=["null", "array"],
            items={"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"},
            title="Agencies",
            description="Pick agencies from the registry; empty means every active agency.",
            **({"examples": slugs, "values_display": display} if slugs else {}),
        ),
        "states": Param(
            None,
            type=["null", "array"],  # admits null: optional fields are not marked required in the form
            items={"type": "string", "enum": sorted(_STATE_CODES)},
            title="States",
            description="Also collect every agency of these states (two-letter codes), with Kinds if given.",
        ),
        "kinds": Param(
            None,
            type=["null", "array"],
            items={"type": "string", "enum": list(_KINDS)},
            title="Kinds",
            description="With States: only these kinds of agency (e.g. sheriff); alone: every agency of the kind.",
        ),
        "dry_run": Param(
            False,
            type=["boolean", "null"],  # admits null so the form does not mark the switch required
            title="Dry run",
            description="Count the posts each query would collect (kept in the ledger); store no posts.",
        ),
    }


def build_collect_dag(platform: str) -> Any:
    """Build the collection DAG for one platform; both platforms share the same shape."""
    spec = PLATFORMS[platform]
    dag_id = f"collect_{platform}"
    cron = _schedule(f"TRUSTWATCH_{platform.upper()}_SCHEDULE", "@hourly")

    @dag(
        dag_id=dag_id,
        description=f"Collect {spec['label']} posts mentioning law-enforcement agencies into the store",
        schedule=CronDataIntervalTimetable(cron, timezone="UTC") if cron else None,
        start_date=START_DATE,
        catchup=_env_flag("TRUSTWATCH_CATCHUP", False),
        max_active_runs=1,
        params=_trigger_params(),
        tags=["trustwatch", platform],
        doc_md=__doc__,
        default_args={
            "owner": "trustwatch",
            "retries": 3,
            "retry_delay": dt.timedelta(seconds=30),
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": dt.timedelta(minutes=20),
            "execution_timeout": dt.timedelta(minutes=10),
        },
    )
    def collect_dag() -> None:
        @task(task_id="sync_registry")
        def sync_registry() -> dict:
            """Load the agency registry into the store so the checks and matcher see the current list."""
            from trustwatch import tasks

            result = _call(tasks.sync_registry)
            log.info("registry synced: %s", result)
            return result

        @task(task_id="check_request", multiple_outputs=True, retries=0)
        def check_request(
            params: dict | None = None,
            dag_run: Any = None,
            data_interval_start: dt.datetime | None = None,
            data_interval_end: dt.datetime | None = None,
        ) -> dict:
            """Turn the run (schedule, backfill or trigger form) into one window and a list of agencies."""
            from trustwatch import tasks
            from trustwatch.settings import get_connection

            params = params or {}
            run_type = str(getattr(dag_run.run_type, "value", dag_run.run_type)) if dag_run else ""
            agencies = list(params.get("agencies") or [])
            if params.get("states") or params.get("kinds"):
                # The state picker: every known agency of those states (and kinds) is tracked for this run.
                agencies += _call(tasks.pick_agencies, list(params.get("states") or []),
                                  list(params.get("kinds") or []))
            request = _call(
                tasks.validate_request,
                platform,
                params.get("start") or None,
                params.get("end") or None,
                list(dict.fromkeys(agencies)) or None,
                data_interval_start,
                data_interval_end,
                run_type == "manual",
                unread=True,
            )
            # Without dates: the most recent complete hour not read yet, or a sentence saying there is nothing new.
            request["nothing_new"] = request.get("nothing_new")
            # A dry run asks the API for counts, so it needs the connection too. Fail here, once, rather
            # than in every mapped collect task.
            _call(get_connection, spec["conn_id"])
            request["dry_run"] = bool(params.get("dry_run"))
            if request["nothing_new"]:
                log.warning("%s: %s", spec["label"], request["nothing_new"])
            else:
                log.info(
                    "collecting %s posts in [%s, %s) for %s%s",
                    spec["label"],
                    request["start"],
                    request["end"],
                    ", ".join(request.get("agencies") or []) or "every active agency",
                    " (dry run)" if request["dry_run"] else "",
                )
            return request

        @task(task_id="compile_queries", retries=1)
        def compile_queries(agencies: list[str] | None, nothing_new: str | None = None) -> list[dict]:
            """Compile the registry into the platform's search queries (one mapped collect task each).

            ``nothing_new``: a trigger without dates found every recent hour read already.  One placeholder
            stands for the queries (an empty map would skip the summary too): its collect task, named
            ``nothing-new`` in the grid, asks the API nothing, and the summary says why.
            """
            from trustwatch import tasks

            if nothing_new:
                log.info("no queries to run: %s", nothing_new)
                return [{"key": "nothing-new", "nothing_new": nothing_new}]
            queries = _call(tasks.compile_queries, platform, agencies or None)
            log.info("%d %s queries: %s", len(queries), platform, ", ".join(q["key"] for q in queries))
            return queries

        @task(
            task_id="collect",
            pool=spec["pool"],
            outlets=[POSTS_ASSET],
            map_index_template="{{ task.op_kwargs['query']['key'] }}",
            execution_timeout=dt.timedelta(minutes=45),
        )
        def collect(query: dict, start: str, end: str, dry_run: bool) -> dict:
            """Collect one query over the window; the store's write path makes a rerun add nothing."""
            from trustwatch import tasks

            context = get_current_context()
            if query.get("nothing_new"):  # compile_queries' placeholder: every recent hour was read already
                summary = {"status": "success", "skipped": True, "window_start": start, "window_end": end}
            else:
                summary = _call(
                    tasks.collect_query, platform, query, start, end, dry_run=dry_run, run_context=_run_context()
                )
            summary = {"query_key": query.get("key"), **summary}
            log.info("query %s: %s", query.get("key"), summary)
            context["outlet_events"][POSTS_ASSET].extra = {
                "platform": platform,
                "query": str(query.get("key")),
                "start": start,
                "end": end,
                "posts_new": int(summary.get("posts_new") or 0),
                "dry_run": bool(dry_run),
            }
            return summary

        @task(task_id="summary", trigger_rule="all_done_min_one_success", retries=1)
        def summary(summaries: Any, queries: list[dict], start: str, end: str, nothing_new: str | None = None
                    ) -> dict:
            """Add up the queries' results for the log and the ledger; fail the run if a query failed.

            A failed mapped task leaves no result behind, so the gaps are the compiled queries that have
            no summary: the run is marked failed (the summary task is the leaf the run's state follows).
            """
            from trustwatch import tasks  # heavy imports stay out of parsing

            # One slice request instead of iterating the lazy sequence item by item.
            results = summaries[:] if summaries is not None else []
            done = [item for item in results if isinstance(item, dict)]
            answered = {str(item.get("query_key")) for item in done}
            missing = [str(q.get("key")) for q in queries or [] if str(q.get("key")) not in answered]
            run_context = {**_run_context(), "failed_queries": missing, "start": start, "end": end,
                           "nothing_new": nothing_new}
            totals = _call(tasks.summarize, platform, done, run_context=run_context)
            log.info("%s run summary: %s", spec["label"], totals["outcome"])
            log.info(
                "%s run totals for [%s, %s): %d queries, %d failed%s; %s",
                spec["label"],
                start,
                end,
                len(queries or []),
                len(missing),
                f" ({', '.join(missing)})" if missing else "",
                totals,
            )
            if missing:
                raise AirflowFailException(
                    f"{len(missing)} of {len(queries)} {platform} queries failed ({', '.join(missing)}); "
                    "their windows are gaps in the ledger. Clear the failed collect tasks to retry them."
                )
            return totals

        synced = sync_registry()
        request = check_request()
        synced >> request
        queries = compile_queries(request["agencies"], request["nothing_new"])
        results = collect.partial(
            start=request["start"], end=request["end"], dry_run=request["dry_run"]
        ).expand(query=queries)
        summary(results, queries, request["start"], request["end"], request["nothing_new"])

    return collect_dag()


collect_x = build_collect_dag("x")
collect_reddit = build_collect_dag("reddit")


def build_revisit_dag() -> Any:
    """``revisit_reddit``: every hour, the thread revisits due at the end of the data interval.

    Catch-up is off on purpose: a revisit reads the thread as it stands, so one run after a pause does
    the work of the missed ones (the oldest age reached is read, the younger ones are covered by it).
    """

    @dag(
        dag_id="revisit_reddit",
        description="Read attributed Reddit threads again at 6 h, 24 h, 72 h and 7 days (late comments, scores)",
        schedule=_schedule("TRUSTWATCH_REVISIT_SCHEDULE", "0 * * * *"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=["trustwatch", "reddit"],
        default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=2), "retry_exponential_backoff": 2.0},
    )
    def revisit_dag() -> None:
        @task(task_id="revisit", pool=PLATFORMS["reddit"]["pool"], outlets=[POSTS_ASSET],
              execution_timeout=dt.timedelta(minutes=50))
        def revisit() -> dict:
            """Run the revisits due at the end of the data interval (the CLI's ``revisit reddit --now``)."""
            from trustwatch import tasks

            context = get_current_context()
            end = context.get("data_interval_end") or dt.datetime.now(dt.UTC)
            summary = _call(tasks.revisit_reddit, now=end.isoformat(), run_context=_run_context())
            log.info("revisits at %s: %s", end, summary)
            return summary

        revisit()

    return revisit_dag()


revisit_reddit = build_revisit_dag()

"""DAG ``enrich_posts``: score new posts and refresh the trend rollups, in batches on a clock.

Every collect task used to trigger a run of its own through the ``trustwatch_posts`` Asset (31 runs in 15
minutes of the demo).  Enrichment only has to keep up, so it runs every 15 minutes
(``TRUSTWATCH_ENRICH_SCHEDULE``: a cron expression, or ``none``) and takes whatever landed since: one run
scores many collect tasks' posts.  The report is its own daily DAG, ``trend_report``, named by run time.
The work is ``trustwatch.tasks.enrich`` (also ``trustwatch enrich``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os

from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task

log = logging.getLogger("trustwatch.dags")

_DEFAULT_ARGS = {
    "owner": "trustwatch",
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "execution_timeout": dt.timedelta(minutes=30),
}


def _cron(variable: str, default: str) -> str | None:
    setting = os.environ.get(variable, "").strip() or default
    return None if setting.lower() in {"none", "off", "manual"} else setting


#: ``TRUSTWATCH_ENRICH_SCHEDULE``: how often enrichment catches up (default every 15 minutes).
ENRICH_CRON = _cron("TRUSTWATCH_ENRICH_SCHEDULE", "*/15 * * * *")
#: ``TRUSTWATCH_REPORT_SCHEDULE``: when the trend report is written (default daily at 00:30 UTC).
REPORT_CRON = _cron("TRUSTWATCH_REPORT_SCHEDULE", "30 0 * * *")


@dag(
    dag_id="enrich_posts",
    description="Sentiment and trust scores for new posts, then the daily agency trend rollups",
    schedule=CronTriggerTimetable(ENRICH_CRON, timezone="UTC") if ENRICH_CRON else None,
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["trustwatch", "analysis"],
    doc_md=__doc__,
    default_args=_DEFAULT_ARGS,
)
def enrich_posts() -> None:
    @task(task_id="enrich")
    def enrich() -> dict:
        """Score posts not yet scored by the current scorer version and rebuild the affected rollups."""
        from trustwatch import tasks  # heavy imports stay out of parsing

        result = tasks.enrich()
        log.info("enrichment: %s", result)
        return result

    enrich()


@dag(
    dag_id="trend_report",
    description="Enrich what is left, then write the self-contained HTML trend report, named by run time",
    schedule=CronTriggerTimetable(REPORT_CRON, timezone="UTC") if REPORT_CRON else None,
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["trustwatch", "analysis"],
    doc_md=__doc__,
    default_args=_DEFAULT_ARGS,
)
def trend_report() -> None:
    @task(task_id="enrich")
    def enrich() -> dict:
        """Catch up first, so the report shows every post collected before it."""
        from trustwatch import tasks

        return tasks.enrich()

    @task(task_id="report")
    def report() -> str:
        """Write the trend report to reports/ (TRUSTWATCH_REPORTS_DIR) as trend-<run time>.html."""
        from trustwatch import tasks

        dag_run = get_current_context().get("dag_run")
        run_time = getattr(dag_run, "run_after", None) or getattr(dag_run, "logical_date", None)
        path = tasks.report(str(tasks.report_path(run_time)))
        log.info("trend report written to %s", path)
        return path

    enrich() >> report()


enrich_posts()
trend_report()

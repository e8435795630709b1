"""DAG ``enrich_posts``: score new posts, refresh the trend rollups and write the report whenever posts land.

Scheduled on the ``trustwatch_posts`` Asset that every collect task updates, so enrichment follows
collection without a clock of its own.  The work is ``trustwatch.tasks.enrich`` (also ``trustwatch enrich``).
"""

from __future__ import annotations

import datetime as dt
import logging

from airflow.sdk import Asset, dag, task

log = logging.getLogger("trustwatch.dags")

#: The same Asset the collect DAGs emit (identified by name and URI).
POSTS_ASSET = Asset(name="trustwatch_posts", uri="x-trustwatch://store/posts", group="trustwatch")


@dag(
    dag_id="enrich_posts",
    description="Sentiment and trust scores for new posts, then the daily agency trend rollups",
    schedule=[POSTS_ASSET],
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["trustwatch", "analysis"],
    doc_md=__doc__,
    default_args={
        "owner": "trustwatch",
        "retries": 2,
        "retry_delay": dt.timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,
        "execution_timeout": dt.timedelta(minutes=30),
    },
)
def enrich_posts() -> None:
    @task(task_id="enrich")
    def enrich() -> dict:
        """Score posts not yet scored by the current scorer version and rebuild the affected rollups."""
        from trustwatch import tasks  # heavy imports stay out of parsing

        result = tasks.enrich()
        log.info("enrichment: %s", result)
        return result

    @task(task_id="report")
    def report(ds: str | None = None) -> str:
        """Write the trend report of the run's day to reports/ (TRUSTWATCH_REPORTS_DIR)."""
        from trustwatch import tasks  # heavy imports stay out of parsing

        path = tasks.report(str(tasks.reports_dir() / f"trend-{ds}.html"))
        log.info("trend report written to %s", path)
        return path

    enrich() >> report()


enrich_posts()

"""DAG ``refresh_metrics``: read stored X posts' engagement again once they pass 1 and 7 days.

Likes and reposts collected in a post's first hour never move otherwise.  The work is
``trustwatch.tasks.refresh_metrics`` (also ``trustwatch refresh x``); it bills one read per post per age,
stays under the ``x_api`` extra ``monthly_read_budget`` and is switched off by ``metrics_refresh: false``.
``TRUSTWATCH_REFRESH_SCHEDULE`` sets the cron (default every 6 hours: a post is read within 6 hours of
each age), or ``none`` for manual runs only.
"""

from __future__ import annotations

import datetime as dt
import logging
import os

from airflow.sdk import CronTriggerTimetable, dag, task
from airflow.sdk.exceptions import AirflowFailException

log = logging.getLogger("trustwatch.dags")

_SETTING = os.environ.get("TRUSTWATCH_REFRESH_SCHEDULE", "").strip() or "0 */6 * * *"
CRON = None if _SETTING.lower() in {"none", "off", "manual"} else _SETTING


@dag(
    dag_id="refresh_metrics",
    description="Read X posts' likes and reposts again at 1 and 7 days (billed reads, monthly budget)",
    schedule=CronTriggerTimetable(CRON, timezone="UTC") if CRON else None,
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["trustwatch", "x"],
    doc_md=__doc__,
    default_args={
        "owner": "trustwatch",
        "retries": 2,
        "retry_delay": dt.timedelta(minutes=5),
        "pool": "x_api",
        "execution_timeout": dt.timedelta(hours=2),
    },
)
def refresh_metrics() -> None:
    @task(task_id="refresh")
    def refresh() -> dict:
        """Refresh what is due; a missing connection or a bad setting fails with its fix."""
        from trustwatch import tasks  # heavy imports stay out of parsing
        from trustwatch.settings import ConfigError

        try:
            result = tasks.refresh_metrics()
        except ConfigError as exc:
            log.error("%s", exc)
            raise AirflowFailException(str(exc)) from None
        log.info("metrics refresh: %s", result)
        return result

    refresh()


refresh_metrics()

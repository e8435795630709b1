"""DAG ``compliance_check``: re-check stored post ids daily and tombstone deleted or withheld posts.

Platform terms require honouring deletions; the work is ``trustwatch.tasks.compliance`` (also
``trustwatch compliance``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os

from airflow.sdk import CronTriggerTimetable, dag, task
from airflow.sdk.exceptions import AirflowFailException

log = logging.getLogger("trustwatch.dags")

#: ``TRUSTWATCH_COMPLIANCE_SCHEDULE``: a cron expression (default daily), or ``none`` for manual runs only.
_SETTING = os.environ.get("TRUSTWATCH_COMPLIANCE_SCHEDULE", "").strip() or "@daily"
CRON = None if _SETTING.lower() in {"none", "off", "manual"} else _SETTING


@dag(
    dag_id="compliance_check",
    description="Re-check stored posts and mark the deleted, removed or withheld ones",
    schedule=CronTriggerTimetable(CRON, timezone="UTC") if CRON else None,
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["trustwatch", "compliance"],
    doc_md=__doc__,
    default_args={
        "owner": "trustwatch",
        "retries": 2,
        "retry_delay": dt.timedelta(minutes=2),
        "retry_exponential_backoff": 2.0,
        "execution_timeout": dt.timedelta(hours=2),
    },
)
def compliance_check() -> None:
    @task(task_id="compliance")
    def compliance() -> dict:
        """Look the stored ids up again and record tombstones; a missing connection fails with its fix."""
        from trustwatch import tasks  # heavy imports stay out of parsing
        from trustwatch.settings import ConfigError

        try:
            result = tasks.compliance()
        except ConfigError as exc:
            log.error("%s", exc)
            raise AirflowFailException(str(exc)) from None
        log.info("compliance: %s", result)
        return result

    compliance()


compliance_check()

"""DAG ``compliance_check``: weekly, every stored X post and author id through X's batch compliance jobs
(not billed per post) and the Reddit lookups; tombstone deleted, suspended, protected or withheld posts and
scrub gone accounts.

Platform terms require honouring deletions; the work is ``trustwatch.tasks.compliance`` (also
``trustwatch compliance``).  ``TRUSTWATCH_COMPLIANCE_SCHEDULE`` sets the cron (default ``@weekly``;
``@daily`` for a tighter loop, it costs nothing extra on X); ``TRUSTWATCH_COMPLIANCE_LOOKUP_HOURS`` opts
into billed lookups of the newest hours.
"""

from __future__ import annotations

import datetime as dt
import logging
import os

from airflow.sdk import CronTriggerTimetable, dag, task
from airflow.sdk.exceptions import AirflowFailException

log = logging.getLogger("trustwatch.dags")

#: ``TRUSTWATCH_COMPLIANCE_SCHEDULE``: a cron expression (default weekly), or ``none`` for manual runs only.
_SETTING = os.environ.get("TRUSTWATCH_COMPLIANCE_SCHEDULE", "").strip() or "@weekly"
CRON = None if _SETTING.lower() in {"none", "off", "manual"} else _SETTING


@dag(
    dag_id="compliance_check",
    description="Batch compliance jobs (X) and lookups (Reddit): mark deleted, removed or withheld posts",
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
        "execution_timeout": dt.timedelta(hours=4),  # a job over millions of ids can take hours at X
    },
)
def compliance_check() -> None:
    @task(task_id="compliance")
    def compliance() -> dict:
        """Check the stored ids and record tombstones; a missing connection fails with its fix."""
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

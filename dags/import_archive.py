"""DAG ``import_archive``: bring an archive file into the store from the Airflow UI.

For analysts who prefer the trigger form to ``trustwatch import``: give the platform and a path that the
worker can read (a file, or a folder whose files are all imported).  twarc2 JSONL for X, Pushshift-style
dumps for Reddit; plain, .gz or .zst.  The work is ``trustwatch.tasks.import_archive``; each file becomes a
ledger row, and a file imported before is recognised by its content and read no more.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import Asset, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

log = logging.getLogger("trustwatch.dags")

#: The Asset the collect DAGs update; an import is new posts too, so enrichment follows it.
POSTS_ASSET = Asset(name="trustwatch_posts", uri="x-trustwatch://store/posts", group="trustwatch")


@dag(
    dag_id="import_archive",
    description="Import a twarc2 JSONL file (X) or a Reddit dump into the store",
    schedule=None,
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["trustwatch", "import"],
    doc_md=__doc__,
    params={
        "platform": Param("x", type="string", enum=["x", "reddit"], title="Platform",
                          description="x: twarc2 output (one API response per line); reddit: one submission or "
                                      "comment per line"),
        "path": Param("", type="string", title="Path on the worker (required)",
                      description="A file or a folder of files (.jsonl, .gz, .zst) readable where the task runs"),
        "keep_all": Param(False, type="boolean", title="Keep posts that mention no agency",
                          description="Off: only posts that mention an agency are stored (the usual case)"),
    },
    default_args={"owner": "trustwatch", "retries": 1, "retry_delay": dt.timedelta(minutes=1),
                  "execution_timeout": dt.timedelta(hours=6)},
)
def import_archive() -> None:
    @task(task_id="import_files", outlets=[POSTS_ASSET])
    def import_files() -> list[dict[str, Any]]:
        """Import every file named by the form; a bad path fails at once with what to change."""
        from trustwatch.collectors.archive import ArchiveError

        from trustwatch import tasks  # heavy imports stay out of parsing
        from trustwatch.settings import ConfigError

        context = get_current_context()
        params = context["params"]
        ti = context["ti"]
        run_context = {"dag_id": ti.dag_id, "dag_run_id": ti.run_id, "task_id": ti.task_id}
        try:
            results = tasks.import_archive(params["platform"], [params["path"]], keep_all=bool(params["keep_all"]),
                                           run_context=run_context)
        except (ConfigError, tasks.RequestError, ArchiveError) as exc:  # a retry reads the same bytes
            log.error("%s", exc)
            raise AirflowFailException(str(exc)) from None
        for r in results:
            log.info("%s: %s lines, %s posts kept (%s new), %s rejected%s", r["file"], r["lines"], r["posts_kept"],
                     r["posts_new"], r["rejected"], " (imported before: skipped)" if r["skipped"] else "")
        return results

    import_files()


import_archive()

"""The first hour in a real browser: log in, trigger collect_x from the form, wait, find the posts.

Playwright drives Debian's ``chromium`` (``apt-get install chromium``; Playwright's own browser download
is not needed) against ``scripts/run_local.sh`` in demo mode, with its own ports and folders.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import psycopg
import pytest

from tests.test_local_run import REPO, _free_port, _http, _processes_with, _tail, _wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.mark.slow
def test_a_user_logs_in_triggers_collect_x_from_the_form_and_finds_the_posts(request: pytest.FixtureRequest) -> None:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "the browser test needs Debian's chromium: apt-get install -y chromium"
    outside = Path(tempfile.mkdtemp(prefix="trustwatch-browser-"))
    request.addfinalizer(lambda: shutil.rmtree(outside, ignore_errors=True))
    port = _free_port()
    home, data = outside / "airflow_home", outside / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TRUSTWATCH_"))}
    env.update({
        "TRUSTWATCH_AIRFLOW_HOME": str(home), "TRUSTWATCH_DATA_DIR": str(data), "TRUSTWATCH_PORT": str(port),
        "TRUSTWATCH_X_SCHEDULE": "none", "TRUSTWATCH_REDDIT_SCHEDULE": "none",
        "TRUSTWATCH_COMPLIANCE_SCHEDULE": "none",
        # a small demo load: this test is about the form, the first-command test covers the 70 days
        "TRUSTWATCH_DEMO_DAYS": "7", "TRUSTWATCH_DEMO_POSTS": "2000",
    })
    log = outside / "run_local.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(["bash", str(REPO / "scripts" / "run_local.sh")], cwd=outside, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        login = _wait_for(lambda: re.search(r"login: (\S+) / password: (\S+)", log.read_text(errors="replace")),
                          240, "the ready banner", log, proc)
        store_url = re.search(r"store: embedded PostgreSQL in \S+ \((\S+)\)", log.read_text())[1]
        status, body = _http("POST", f"{base}/auth/token", {"username": login[1], "password": login[2]})
        assert status in (200, 201), body
        # The banner comes as soon as the UI answers; the DAG processor starts after it. A user who opens the
        # DAG before it is parsed sees "not found" and reloads: wait for it as the DAG list would show it.
        def parsed() -> bool:
            try:
                return _http("GET", f"{base}/api/v2/dags/collect_x", token=body["access_token"])[0] == 200
            except OSError:  # a slow answer on a busy machine: ask again
                return False

        _wait_for(parsed, 240, "collect_x to be parsed", log, proc)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_FLAGS)
            page = browser.new_page()
            page.set_default_timeout(90_000)  # two shared cores: the UI can be slow, not wrong
            page.goto(base, wait_until="domcontentloaded")
            page.locator("input[name=username]").fill(login[1])
            page.locator("input[name=password]").fill(login[2])
            page.locator("button[type=submit]").click()
            page.wait_for_url(re.compile(r"^(?!.*/auth/login)"))
            page.goto(f"{base}/dags/collect_x", wait_until="domcontentloaded")
            trigger = page.get_by_role("button", name=re.compile("^Trigger")).first
            trigger.wait_for()
            trigger.click()
            dialog = page.get_by_role("dialog")
            dialog.get_by_text("Dry run").wait_for(timeout=30_000)
            form = dialog.inner_text()
            for label in ("Start (UTC)", "End (UTC)", "Agencies", "States", "Dry run"):
                assert label in form, form
            assert not re.search(r"\n\*\n", form), f"a field is marked required:\n{form}"
            dialog.get_by_role("button", name="Trigger").click()  # the form's defaults: the last hour
            page.wait_for_url(re.compile(r"/dags/collect_x/runs/"), timeout=60_000)
            run_id = urllib.parse.unquote(page.url.rsplit("/runs/", 1)[1].split("?")[0].strip("/"))
            browser.close()

        run_url = f"{base}/api/v2/dags/collect_x/dagRuns/{urllib.parse.quote(run_id, safe='')}"

        def finished() -> dict | None:
            try:
                state = _http("GET", run_url, token=body["access_token"])[1]
            except OSError:  # a slow answer on a busy machine: ask again
                return None
            return state if state.get("state") in ("success", "failed") else None

        final = _wait_for(finished, 300, "the triggered run", log, proc)
        assert final["state"] == "success", _tail(log, 80)
        with psycopg.connect(store_url.replace("postgresql+psycopg://", "postgresql://")) as store:
            posts = store.execute(
                "SELECT coalesce(sum(posts_new + posts_updated), 0), count(*) FROM collection_runs "
                "WHERE dag_run_id = %s AND status = 'success'", (run_id,)).fetchone()
        assert posts[1] > 0 and posts[0] > 0, f"the run stored no posts: {posts}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        leftovers = _processes_with(f"AIRFLOW_HOME={home}")
        while leftovers and time.monotonic() < deadline:
            time.sleep(0.5)
            leftovers = _processes_with(f"AIRFLOW_HOME={home}")
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

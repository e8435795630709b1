"""docker-compose.yml, Dockerfile and .env.example: what an operator relies on when running the stack.

There is no Docker engine here, so the file is validated against the compose specification (the schema
check-jsonschema vendors), its wiring is checked the way ``docker compose config`` would resolve it, and
the analyst role's init script runs against the real PostgreSQL server to prove the role reads but
cannot write.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
}
SERVICES = AIRFLOW_SERVICES | {"postgres", "trustwatch-db", "redis"}
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)(?::?[-?+][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_validates_against_the_compose_specification():
    check = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(check), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_services_of_the_issue_are_there(compose):
    assert set(compose["services"]) == SERVICES


def test_every_long_running_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        if name == "airflow-init":
            continue
        check = service.get("healthcheck", {}).get("test")
        assert check, f"{name} has no healthcheck"


def test_dependencies_name_existing_services_and_wait_for_init(compose):
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["trustwatch-db"]["condition"] == "service_healthy", name


def test_airflow_components_share_one_configuration_and_jwt_secret(compose):
    services = compose["services"]
    envs = {name: services[name]["environment"] for name in AIRFLOW_SERVICES}
    secrets = {env["AIRFLOW__API_AUTH__JWT_SECRET"] for env in envs.values()}
    assert len(secrets) == 1 and "AIRFLOW_JWT_SECRET" in secrets.pop()
    for name, env in envs.items():
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/", name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:@redis:6379"), name
        assert "@postgres/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], name
        assert '"host": "trustwatch-db"' in env["AIRFLOW_CONN_TRUSTWATCH_DB"], name
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/trustwatch/dags", name
        assert services[name]["build"]["dockerfile"] == "Dockerfile", name


def test_task_supervisors_notice_a_finished_task_within_a_second_in_both_topologies(compose, tmp_path):
    """Airflow's supervisor can sleep ``min_heartbeat_interval`` past a task's end (trustwatch/local.py):
    the compose topology and the embedded local run set it to 1 s alike, and keep the defaults' tolerance
    of an unreachable API server (3 failed heartbeats x 5 s) by allowing more failed heartbeats."""
    from trustwatch.local import SUPERVISOR_SETTINGS, LocalConfig, airflow_environment

    interval = int(SUPERVISOR_SETTINGS["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"])
    assert interval == 1
    assert interval * int(SUPERVISOR_SETTINGS["AIRFLOW__WORKERS__MAX_FAILED_HEARTBEATS"]) >= 3 * 5
    for name in AIRFLOW_SERVICES:
        env = compose["services"][name]["environment"]
        assert {key: env.get(key) for key in SUPERVISOR_SETTINGS} == SUPERVISOR_SETTINGS, name
    local = airflow_environment(LocalConfig(airflow_home=tmp_path / "airflow", data_dir=tmp_path / "data"), base={})
    assert {key: local[key] for key in SUPERVISOR_SETTINGS} == SUPERVISOR_SETTINGS


def test_the_worker_can_be_scaled(compose):
    worker = compose["services"]["airflow-worker"]
    assert worker["command"] == "celery worker"
    # A fixed container name or host port would make `--scale airflow-worker=N` fail.
    assert "container_name" not in worker
    assert "ports" not in worker


def test_the_store_port_is_published_for_analysts(compose):
    store = compose["services"]["trustwatch-db"]
    assert any(str(port).endswith(":5432") for port in store["ports"])
    assert store["environment"]["POSTGRES_DB"] == "trustwatch"
    api = compose["services"]["airflow-apiserver"]
    assert any(str(port).endswith(":8080") for port in api["ports"])


def test_init_migrates_both_databases_syncs_the_registry_and_creates_the_pools(compose):
    init = compose["services"]["airflow-init"]
    script = "\n".join(init["command"])
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert init["environment"]["_AIRFLOW_WWW_USER_CREATE"] == "true"
    for step in ("/entrypoint airflow version", "trustwatch db upgrade", "trustwatch agencies sync",
                 "airflow pools set x_api", "airflow pools set reddit_api"):
        assert step in script, step
    assert "set -euo pipefail" in script


def test_env_example_lists_every_variable_the_compose_file_reads(compose):
    used = set(VARIABLE.findall(COMPOSE.read_text()))
    # Variables inside the containers' own shell scripts ($$ escaped) are not compose's business.
    listed = {
        line.split("=", 1)[0]
        for line in (REPO / ".env.example").read_text().splitlines()
        if line and not line.startswith("#") and "=" in line
    }
    assert used - listed == set(), f"missing from .env.example: {sorted(used - listed)}"
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE.read_text()))
    assert {"AIRFLOW_JWT_SECRET", "AIRFLOW_FERNET_KEY", "TRUSTWATCH_DB_PASSWORD"} <= required
    assert {"AIRFLOW_CONN_X_API", "AIRFLOW_CONN_REDDIT_API"} <= listed


def test_dockerfile_builds_on_the_official_airflow_33_image_and_copies_what_exists():
    dockerfile = (REPO / "Dockerfile").read_text()
    version = re.search(r"^ARG AIRFLOW_VERSION=(\S+)$", dockerfile, re.M)
    assert version and version.group(1).startswith("3.3.")
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}", dockerfile, re.M)
    for line in dockerfile.splitlines():
        if line.startswith("COPY") and "--from=" not in line:  # --from copies out of the build stage
            sources = [part for part in line.split()[1:-1] if not part.startswith("--")]
            for source in sources:
                assert (REPO / source).exists(), f"Dockerfile copies {source}, which is not in the repo"
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in dockerfile
    # the image runs the built wheel (migrations and registry inside it), not an editable source tree
    assert "pip wheel" in dockerfile and "/tmp/dist/*.whl" in dockerfile and "--editable" not in dockerfile


def _analyst_script(compose: dict) -> str:
    # Compose turns "$$" into "$" when it reads the file.
    return compose["configs"]["analyst-role"]["content"].replace("$$", "$")


@pytest.mark.postgres
def test_analyst_role_reads_the_store_but_cannot_write(compose, pg_server):
    from trustwatch.models.db import make_engine

    from trustwatch import migrate

    admin_url = make_url(pg_server.admin_url)
    db_url = pg_server.create("tw_compose")
    db_name = make_url(db_url).database
    role = f"tw_analyst_{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        # a server on a Unix socket only (the embedded one): libpq takes the socket directory as PGHOST
        "PGHOST": admin_url.host or str(admin_url.query.get("host") or "127.0.0.1"),
        "PGPORT": str(admin_url.port or 5432),
        "POSTGRES_USER": admin_url.username or "postgres",
        "POSTGRES_DB": db_name,
        "TRUSTWATCH_ANALYST_ROLE": role,
        "TRUSTWATCH_ANALYST_PASSWORD": "analyst-test-password",
    }
    try:
        result = subprocess.run(["sh", "-c", _analyst_script(compose)], env=env, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        # airflow-init migrates the store after the role exists: default privileges must cover new tables.
        owner = make_engine(db_url)
        migrate.upgrade(owner)
        with owner.begin() as conn:
            conn.execute(text("INSERT INTO agencies (slug, name, kind, active, aliases, x_handles, hashtags, "
                              "subreddits, updated_at) VALUES ('t-pd', 'T PD', 'municipal', true, '[]', '[]', "
                              "'[]', '[]', now())"))
        owner.dispose()

        analyst = create_engine(make_url(db_url).set(username=role, password="analyst-test-password"))
        with analyst.connect() as conn:
            assert conn.execute(text("SELECT slug FROM agencies")).scalars().all() == ["t-pd"]
        for statement in (
            "INSERT INTO agencies (slug, name, kind, active) VALUES ('x', 'X', 'municipal', true)",
            "DELETE FROM agencies",
            "CREATE TABLE analyst_scratch (id int)",
        ):
            with analyst.connect() as conn, pytest.raises(DBAPIError) as refused:
                conn.execute(text(statement))
            message = str(refused.value).lower()
            assert "permission denied" in message or "read-only transaction" in message, statement
        analyst.dispose()
    finally:
        pg_server.drop(db_name)
        pg_server.created.remove(db_name)
        with pg_server.admin.connect() as conn:
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))

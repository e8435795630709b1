# The official Apache Airflow 3.3 image with trustwatch installed as a wheel: used by every Airflow service
# of docker-compose.yml (api-server, scheduler, dag-processor, celery worker, triggerer, airflow-init).
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION} AS build
# Build the wheel from the source folders; the migrations, the registry and the DAG files ship inside it.
COPY --chown=airflow:0 pyproject.toml README.md /src/
COPY --chown=airflow:0 trustwatch /src/trustwatch
COPY --chown=airflow:0 collectors /src/collectors
COPY --chown=airflow:0 models /src/models
COPY --chown=airflow:0 analysis /src/analysis
COPY --chown=airflow:0 sandbox /src/sandbox
COPY --chown=airflow:0 alembic /src/alembic
COPY --chown=airflow:0 agencies /src/agencies
COPY --chown=airflow:0 dags /src/dags
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/dist /src

FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}
ARG AIRFLOW_VERSION
ENV TRUSTWATCH_HOME=/opt/trustwatch
COPY --from=build /tmp/dist /tmp/dist
USER airflow
# Pinning apache-airflow to the image's version keeps pip from up- or downgrading Airflow itself.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /tmp/dist/*.whl
# The scheduler and dag-processor read the DAG files from a plain folder, as Airflow expects.
COPY --chown=airflow:0 dags ${TRUSTWATCH_HOME}/dags
ENV AIRFLOW__CORE__DAGS_FOLDER=${TRUSTWATCH_HOME}/dags
WORKDIR ${TRUSTWATCH_HOME}

# The official Apache Airflow 3.3 image with trustwatch installed: used by every Airflow service of
# docker-compose.yml (api-server, scheduler, dag-processor, celery worker, triggerer, airflow-init).
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}

ARG AIRFLOW_VERSION
ENV TRUSTWATCH_HOME=/opt/trustwatch

# The project stays a source tree (editable install): the store migrations (alembic/), the agency
# registry (agencies/) and the DAGs (dags/) are read from it at run time.
COPY --chown=airflow:0 pyproject.toml README.md alembic.ini ${TRUSTWATCH_HOME}/
COPY --chown=airflow:0 trustwatch ${TRUSTWATCH_HOME}/trustwatch
COPY --chown=airflow:0 collectors ${TRUSTWATCH_HOME}/collectors
COPY --chown=airflow:0 models ${TRUSTWATCH_HOME}/models
COPY --chown=airflow:0 analysis ${TRUSTWATCH_HOME}/analysis
COPY --chown=airflow:0 sandbox ${TRUSTWATCH_HOME}/sandbox
COPY --chown=airflow:0 alembic ${TRUSTWATCH_HOME}/alembic
COPY --chown=airflow:0 agencies ${TRUSTWATCH_HOME}/agencies
COPY --chown=airflow:0 dags ${TRUSTWATCH_HOME}/dags

USER airflow
# Pinning apache-airflow to the image's version keeps pip from up- or downgrading Airflow itself.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" --editable "${TRUSTWATCH_HOME}"

ENV AIRFLOW__CORE__DAGS_FOLDER=${TRUSTWATCH_HOME}/dags
WORKDIR ${TRUSTWATCH_HOME}

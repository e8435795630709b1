#!/usr/bin/env bash
# Builds the wheel, installs it into a fresh virtualenv outside the checkout, and runs what a user of the
# installed package runs first: `trustwatch db upgrade`, `agencies sync`, and a `collect x` against the
# sandbox. Proves the wheel carries its migrations and registry and imports under the one namespace.
# Usage: ./scripts/check_wheel.sh   (CI runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d /tmp/trustwatch-wheel.XXXXXX)
SANDBOX_PID=""
cleanup() {
  [ -n "$SANDBOX_PID" ] && kill "$SANDBOX_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building the wheel (from a copy of the files git knows, so the tree stays clean)"
mkdir -p "$WORK/src"
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$WORK/src"
"$PYTHON" -m pip wheel -q --no-deps --wheel-dir "$WORK/dist" "$WORK/src" >"$WORK/build.log" 2>&1 \
  || { tail -n 30 "$WORK/build.log"; exit 1; }
wheel=$(ls "$WORK"/dist/trustwatch-*.whl)
echo "== installing $(basename "$wheel") into a fresh virtualenv"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q "$wheel"

cd "$WORK"   # outside the checkout: nothing can be imported from the source tree
export TRUSTWATCH_HOME="$WORK/home"
export TRUSTWATCH_DATABASE_URL="sqlite:///$WORK/home/store.db"
mkdir -p "$TRUSTWATCH_HOME"
unset AIRFLOW_CONN_TRUSTWATCH_DB PYTHONPATH
tw="$WORK/venv/bin/trustwatch"

"$WORK/venv/bin/python" - <<'PY'
import importlib.util, trustwatch
from trustwatch.settings import CHECKOUT_ROOT, resource_dir
assert CHECKOUT_ROOT is None, CHECKOUT_ROOT
for top in ("collectors", "models", "analysis", "sandbox"):
    assert importlib.util.find_spec(top) is None, f"the wheel installs a top-level {top!r}"
for name in ("alembic", "agencies", "dags"):
    assert str(resource_dir(name)).startswith(str(trustwatch.__path__[0])), name
print("namespace and package data: ok")
PY
"$tw" db upgrade
"$tw" agencies sync
"$tw" sandbox serve --port 0 --posts 400 >"$WORK/sandbox.log" 2>&1 &
SANDBOX_PID=$!
for _ in $(seq 1 100); do grep -q "listening on" "$WORK/sandbox.log" && break; sleep 0.2; done
url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$WORK/sandbox.log")
end=$(sed -n 's/.* to \([0-9T:+-]*\)$/\1/p' "$WORK/sandbox.log" | head -n 1)
[ -n "$url" ] && [ -n "$end" ] || { cat "$WORK/sandbox.log"; exit 1; }
start=$("$WORK/venv/bin/python" -c "import datetime as d,sys; print((d.datetime.fromisoformat(sys.argv[1])-d.timedelta(hours=6)).isoformat())" "$end")
export AIRFLOW_CONN_X_API="{\"conn_type\": \"http\", \"password\": \"sandbox-x-token\", \"extra\": {\"base_url\": \"$url\"}}"
"$tw" collect x --start "$start" --end "$end"
stored=$("$WORK/venv/bin/python" -c "
import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(c.execute('select count(*) from posts').fetchone()[0])" "$WORK/home/store.db")
echo "== the installed wheel stored $stored posts"
[ "$stored" -gt 0 ]

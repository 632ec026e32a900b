#!/usr/bin/env bash
# Dashboard pages' server time over a million request-log rows (see bench/dashboard.py).
# Usage: bench/dashboard.sh [sqlite|postgres]...   (default: sqlite)
#   env: DASH_ROWS=1000000  rows seeded,  DASH_N=20  timed GETs per page,
#        DASH_PG=postgres://postgres@127.0.0.1:5432  (source scripts/services.sh first),
#        DASH_PG_PARAMS=sslmode=disable,  DASH_SKIP_BUILD=1  reuse the release binaries.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ROWS="${DASH_ROWS:-1000000}"
N="${DASH_N:-20}"
PG="${DASH_PG:-postgres://postgres@127.0.0.1:5432}"
PG_PARAMS="${DASH_PG_PARAMS:-sslmode=disable}"
if [ "${DASH_SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release -p tokenrouter -p tokenrouter-store --bin tokenrouter --example dashboard_seed >&2
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/release/tokenrouter"
SEED="$TARGET_DIR/release/examples/dashboard_seed"
[ $# -gt 0 ] || set -- sqlite
for backend in "$@"; do
  case "$backend" in
    sqlite)
      dir="$(mktemp -d)"
      python3 bench/dashboard.py --bin "$BIN" --seed "$SEED" --database "sqlite://$dir/dash.db" \
        --rows "$ROWS" -n "$N" --label SQLite
      rm -rf "$dir"
      ;;
    postgres)
      name="tr_dash_$$"
      psql -X -q -d "$PG/postgres" -c "CREATE DATABASE $name" >/dev/null
      trap 'psql -X -q -d "$PG/postgres" -c "DROP DATABASE IF EXISTS '"$name"' WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
      python3 bench/dashboard.py --bin "$BIN" --seed "$SEED" --database "$PG/$name?$PG_PARAMS" \
        --rows "$ROWS" -n "$N" --label PostgreSQL
      ;;
    *) echo "unknown backend $backend" >&2; exit 2 ;;
  esac
done

#!/usr/bin/env bash
# Token Router benchmark: gateway overhead vs the mock upstream, in one run.
# Usage: bench/run.sh            (env: BENCH_DURATION=10  seconds per timed phase,
#                                      BENCH_TTFB_N=1000  TTFB samples per path,
#                                      BENCH_MEM_N=100000 requests per memory phase (two phases),
#                                      BENCH_SKIP_BUILD=1 reuse $CARGO_TARGET_DIR/release/tokenrouter,
#                                      BENCH_BACKENDS=sqlite,postgres  postgres = PostgreSQL + Redis,
#                                      BENCH_PG=postgres://postgres@127.0.0.1:5432  BENCH_REDIS=redis://127.0.0.1:6379,
#                                      BENCH_PG_PARAMS=sslmode=disable  the database URL's parameters,
#                                      BENCH_RATIO_ROUNDS=N  instead of the full bench: only PostgreSQL + Redis ÷ SQLite
#                                        CPU per request at saturation, both gateways up at once, N alternating rounds
#                                        of BENCH_DURATION (default 5) s each at BENCH_RATIO_CONNECTIONS (default 64)
#                                        connections → bench/results/ratio.md)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

fail() { echo "bench: error: $*" >&2; exit 1; }

OHA="${OHA:-$(command -v oha || echo /root/.cargo/bin/oha)}"
[ -x "$OHA" ] || fail "oha not found (cargo install oha, or set OHA=/path/to/oha)"
command -v taskset >/dev/null || fail "taskset not found (util-linux)"
command -v python3 >/dev/null || fail "python3 not found"
BACKENDS="${BENCH_BACKENDS:-sqlite,postgres}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
REDIS="${BENCH_REDIS:-redis://127.0.0.1:6379}"
if [[ ",$BACKENDS," == *,postgres,* ]]; then
  command -v psql >/dev/null || fail "psql not found (postgresql-client)"
  command -v redis-cli >/dev/null || fail "redis-cli not found (redis-tools)"
  psql -X -tAc 'SELECT 1' -d "$PG/postgres" >/dev/null 2>&1 \
    || fail "PostgreSQL not reachable at $PG (source scripts/services.sh)"
  [ "$(redis-cli -u "$REDIS" ping 2>/dev/null)" = PONG ] \
    || fail "Redis not reachable at $REDIS (source scripts/services.sh)"
fi

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  echo "[bench] cargo build --release -p tokenrouter" >&2
  cargo build --release -p tokenrouter >&2 || fail "build failed"
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BIN="$TARGET_DIR/release/tokenrouter"
[ -x "$BIN" ] || fail "$BIN missing"

WORK="$ROOT/bench/results/tmp"          # logs, DB and config of the last run (gitignored)
rm -rf "$WORK"; mkdir -p "$WORK"
PIDFILE="$WORK/pids"; : > "$PIDFILE"

PY_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [ -n "$PY_PID" ] && kill -0 "$PY_PID" 2>/dev/null; then kill -TERM "$PY_PID" 2>/dev/null || true; wait "$PY_PID" 2>/dev/null || true; fi
  # whatever the driver started and did not stop (it records every pid it starts)
  while read -r pid; do
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  done < "$PIDFILE"
  # the driver drops its database itself; this is for a driver that was killed hard
  if [ -n "$PY_PID" ] && [[ ",$BACKENDS," == *,postgres,* ]]; then
    psql -X -q -d "$PG/postgres" -c "DROP DATABASE IF EXISTS tr_bench_$PY_PID WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -f "$WORK"/bench.db* "$WORK"/ratio.db*   # large; logs and config stay
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

if [ -n "${BENCH_RATIO_ROUNDS:-}" ]; then
  python3 "$ROOT/bench/ratio.py" --bin "$BIN" --oha "$OHA" --workdir "$WORK" --pidfile "$PIDFILE" \
    --out "$ROOT/bench/results/ratio.md" --duration "${BENCH_DURATION:-5}" --rounds "$BENCH_RATIO_ROUNDS" \
    --connections "${BENCH_RATIO_CONNECTIONS:-64}" \
    --pg "$PG" --pg-params "${BENCH_PG_PARAMS-sslmode=disable}" --redis "$REDIS" &
else
  python3 "$ROOT/bench/bench.py" --bin "$BIN" --oha "$OHA" --workdir "$WORK" --pidfile "$PIDFILE" \
    --out "$ROOT/bench/results/latest.md" --duration "${BENCH_DURATION:-10}" --ttfb-n "${BENCH_TTFB_N:-1000}" --mem-n "${BENCH_MEM_N:-100000}" \
    --backends "$BACKENDS" --pg "$PG" --pg-params "${BENCH_PG_PARAMS-sslmode=disable}" --redis "$REDIS" &
fi
PY_PID=$!
wait "$PY_PID"

#!/usr/bin/env bash
# Token Router benchmark: gateway overhead vs the mock upstream, in one run.
# Usage: bench/run.sh            (env: BENCH_DURATION=10  seconds per timed phase,
#                                      BENCH_TTFB_N=1000  TTFB samples per path,
#                                      BENCH_SKIP_BUILD=1 reuse target/release/tokenrouter)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

fail() { echo "bench: error: $*" >&2; exit 1; }

OHA="${OHA:-$(command -v oha || echo /root/.cargo/bin/oha)}"
[ -x "$OHA" ] || fail "oha not found (cargo install oha, or set OHA=/path/to/oha)"
command -v taskset >/dev/null || fail "taskset not found (util-linux)"
command -v python3 >/dev/null || fail "python3 not found"

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  echo "[bench] cargo build --release -p tokenrouter" >&2
  cargo build --release -p tokenrouter >&2 || fail "build failed"
fi
BIN="$ROOT/target/release/tokenrouter"
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
  rm -f "$WORK"/bench.db "$WORK"/bench.db-wal "$WORK"/bench.db-shm   # large; logs and config stay
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

python3 "$ROOT/bench/bench.py" --bin "$BIN" --oha "$OHA" --workdir "$WORK" --pidfile "$PIDFILE" \
  --out "$ROOT/bench/results/latest.md" --duration "${BENCH_DURATION:-10}" --ttfb-n "${BENCH_TTFB_N:-1000}" &
PY_PID=$!
wait "$PY_PID"

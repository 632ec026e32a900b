#!/usr/bin/env bash
# Token Router in front of stock nginx answering a fixed body (`return 200`): the gateway's
# own CPU per request, with an upstream that costs next to nothing. Installs nginx with
# apt-get when it is missing; writes bench/results/nginx.md.
# Usage: bench/nginx.sh   (env: BENCH_DURATION=10 seconds per phase, BENCH_TTFB_N=1000, BENCH_MEM_N=1000000 (0: no memory phase),
#                                BENCH_SKIP_BUILD=1 reuse $CARGO_TARGET_DIR/release/tokenrouter)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
fail() { echo "bench: error: $*" >&2; exit 1; }

NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
if [ ! -x "$NGINX" ]; then
  echo "[bench] installing nginx (apt-get)" >&2
  sudo=""; if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then sudo="sudo -n"; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >&2 \
    || $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >&2 || fail "could not install nginx"
  NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
fi
OHA="${OHA:-$(command -v oha || echo /root/.cargo/bin/oha)}"
[ -x "$OHA" ] || fail "oha not found (cargo install oha, or set OHA=/path/to/oha)"
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release -p tokenrouter >&2 || fail "build failed"
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/release/tokenrouter"
[ -x "$BIN" ] || fail "$BIN missing"
WORK="$ROOT/bench/results/tmp-nginx"
rm -rf "$WORK"; mkdir -p "$WORK"
PIDFILE="$WORK/pids"; : > "$PIDFILE"
cleanup() {
  while read -r pid; do [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true; done < "$PIDFILE"
  pkill -KILL -f "nginx -p $WORK" 2>/dev/null || true
}
trap cleanup EXIT
python3 "$ROOT/bench/nginx.py" --bin "$BIN" --nginx "$NGINX" --oha "$OHA" --workdir "$WORK" --pidfile "$PIDFILE" \
  --out "$ROOT/bench/results/nginx.md" --duration "${BENCH_DURATION:-10}" --ttfb-n "${BENCH_TTFB_N:-1000}" --mem-n "${BENCH_MEM_N:-1000000}"

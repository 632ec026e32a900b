#!/usr/bin/env bash
# Where the gateway's futex and write system calls come from (thread wake-ups, contended
# locks, eventfd writes, the usage journal), at saturation behind nginx: records them with
# DWARF call stacks for 3 s and prints, per thread, the origin of each and how many per request.
# Usage: bench/prof/wakeups.sh path/to/tokenrouter [model] [stream]
set -eu
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN=${1:?usage: $0 path/to/tokenrouter [model] [stream]}
set -- "$BIN" 4 "${2:-bench-json}" "${3:-false}"
source "$HERE/common.sh"
perf record -e syscalls:sys_enter_futex,syscalls:sys_enter_write --call-graph dwarf,16384 -p "$GPID" \
  -o "$WD/wakeups.data" -- sleep 3 > /dev/null 2>&1 &
REC=$!
load 4 > "$WD/wrk.out"
wait $REC || true
N=$(requests "$WD/wrk.out")
perf script -i "$WD/wakeups.data" -F comm,event,ip,sym 2>/dev/null | python3 "$HERE/wakeups.py" "$((N * 3 / 4))"

#!/usr/bin/env bash
# Where a lone streamed request's time goes on CPU 0 (the gateway's and nginx's CPU), as
# ttfb.sh sends it: records the CPU's system calls and thread switches while N requests
# go through the gateway one at a time, and prints the median of each phase, from the
# request read to its first bytes written back. Usage: bench/prof/timeline.sh path/to/tokenrouter [N]
set -eu
N=${2:-200}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$1" 1
perf record -o "$WD/timeline.data" -C 0 \
  -e sched:sched_switch,sched:sched_wakeup,raw_syscalls:sys_enter,raw_syscalls:sys_exit -- sleep 600 > /dev/null 2>&1 &
REC=$!
sleep 0.5
taskset -c 1 python3 - "$HERE/.." "$NPORT" "$GPORT" "$KEY" "$N" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import nginx
nginx.added_ttfb(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
PY
kill -INT $REC; wait $REC || true
perf script -i "$WD/timeline.data" -F comm,tid,time,event,trace 2>/dev/null | python3 "$HERE/timeline.py" "$GPID"

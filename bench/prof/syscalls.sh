#!/usr/bin/env bash
# System calls per request of the gateway at saturation behind nginx (perf tracepoints;
# tracing slows the gateway, so throughput here means nothing).
# Usage: bench/prof/syscalls.sh path/to/tokenrouter [seconds] [model] [stream]
set -eu
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
perf stat -e 'syscalls:sys_enter_*' -p "$GPID" -o "$WD/stat.txt" -- sleep "$SECS" &
STAT=$!
load "$SECS" > "$WD/wrk.out"
wait $STAT
N=$(requests "$WD/wrk.out")
echo "requests $N"
awk -v n="$N" '$1 ~ /^[0-9,]+$/ { gsub(",", "", $1); if ($1 > 0) printf "%8.3f per request  %s\n", $1 / n, $2 }' \
  "$WD/stat.txt" | sort -rn | head -20

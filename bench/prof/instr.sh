#!/usr/bin/env bash
# Instructions per request of the gateway's own user space (all its threads), counted by
# callgrind: repeatable where timings are not (no hardware counters on these VMs, and the
# CPU figures move with the machine). Kernel time (TCP, switches) is not counted, and
# valgrind's slowness changes how requests batch, so compare builds with this, never
# absolute CPU. Usage: bench/prof/instr.sh path/to/tokenrouter [seconds] [model] [stream]
# (PROF_PG=1 for PostgreSQL + Redis). Needs valgrind.
set -eu
WRAPOUT=$(mktemp -d /tmp/tokenrouter-instr.XXXX)
PROF_WRAP="valgrind --tool=callgrind --callgrind-out-file=$WRAPOUT/cg.%p --dump-instr=no"
export PROF_WRAP
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
load() { taskset -c 1 wrk -t1 -c4 -d"$1"s -s "$HERE/post.lua" "http://127.0.0.1:$GPORT/v1/chat/completions"; }
load 3 > /dev/null
callgrind_control -z "$GPID" > /dev/null
load "$SECS" > "$WD/wrk.out"
callgrind_control -d "$GPID" > /dev/null
sleep 1
N=$(requests "$WD/wrk.out")
TOTAL=$(cat "$WRAPOUT"/cg.* | sed -n 's/^summary: *\([0-9]*\).*/\1/p' | sort -n | tail -1)
python3 -c "print(f'requests $N  instructions per request {$TOTAL / $N:,.0f}')"
[ -n "${KEEP:-}" ] && echo "kept: $WRAPOUT" || rm -rf "$WRAPOUT"

#!/usr/bin/env bash
# Memory copies in the gateway at saturation behind nginx: the share of its CPU samples
# in libc's memmove/memcpy (perf), and with CALLERS=1 where they come from (DWARF call
# stacks; slower). A large future moved or boxed whole shows up here.
# Usage: bench/prof/copies.sh path/to/tokenrouter [seconds] [model] [stream]
# (PROF_PG=1 for PostgreSQL + Redis). Needs perf.
set -eu
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
graph=(-F 4000); [ -n "${CALLERS:-}" ] && graph=(-F 1000 --call-graph dwarf,16384)
load $((SECS + 2)) > "$WD/wrk.out" &
LOAD=$!
sleep 1
perf record "${graph[@]}" -p "$GPID" -o "$WD/perf.data" -- sleep "$SECS" > /dev/null 2>&1
wait "$LOAD"
perf report -i "$WD/perf.data" --sort sym --no-children 2>/dev/null | grep -E '\] __mem(move|cpy)' || echo "no samples in memmove/memcpy"
if [ -n "${CALLERS:-}" ]; then
  perf report -i "$WD/perf.data" --no-children --symbols=__memmove_avx512_unaligned_erms,__memmove_avx_unaligned_erms,__memcpy_avx_unaligned_erms \
    -G --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60
fi

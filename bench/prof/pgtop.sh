#!/usr/bin/env bash
# Behind nginx on PostgreSQL + Redis (setup.py's PROF_PG mode), loads the gateway with
# CONNECTIONS (default 16) connections for N seconds and prints wrk's throughput and
# latency, then the processes (and the gateway's threads) that used the most CPU, each
# as a share of one CPU over the load. Shows whether the gateway is saturated (its CPU near
# 100 %) or waiting (below it, with nothing else at 100 % either).
# Usage: CONNECTIONS=64 bench/prof/pgtop.sh path/to/tokenrouter [seconds]
set -eu
export PROF_PG=1
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
procs() {
  for p in /proc/[0-9]*; do
    c=$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null | cut -c1-70) || continue
    if [ -n "$c" ]; then echo "${p#/proc/} $(awk '{print $14 + $15}' "$p/stat" 2>/dev/null || echo 0) $c"; fi
  done
}
threads() { for t in /proc/"$GPID"/task/*; do echo "${t##*/} $(awk '{print $14 + $15}' "$t/stat") $(cat "$t/comm")"; done; }
procs > "$WD/procs.a"; threads > "$WD/threads.a"
load "$SECS" > "$WD/wrk.out"
procs > "$WD/procs.b"; threads > "$WD/threads.b"
grep -E "Latency|Requests/sec" "$WD/wrk.out"
python3 - "$WD" "$SECS" "$(getconf CLK_TCK)" <<'PY'
import sys
wd, secs, hz = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
def read(name):
    rows = {}
    for line in open(f"{wd}/{name}"):
        parts = line.rstrip("\n").split(" ", 2)
        if len(parts) == 3 and parts[1].isdigit():
            rows[parts[0]] = (int(parts[1]), parts[2])
    return rows
for kind in ("procs", "threads"):
    a, b = read(f"{kind}.a"), read(f"{kind}.b")
    used = sorted((((ticks - a.get(pid, (0,))[0]) / hz / secs, name) for pid, (ticks, name) in b.items()), reverse=True)
    print(f"-- {kind}, share of one CPU over the load")
    for share, name in used[:10]:
        if share >= 0.005:
            print(f"{share:6.1%}  {name}")
PY

#!/usr/bin/env bash
# CPU (user, system) and context switches (voluntary, involuntary) per request of each of
# the gateway's threads, at saturation behind nginx. PERF=1 also records a profile.
# Usage: bench/prof/threads.sh path/to/tokenrouter [seconds] [model] [stream]
set -eu
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
python3 "$HERE/threads.py" snap "$GPID" > "$WD/a.json"
if [ -n "${PERF:-}" ]; then
  (perf record -F 2000 -g -p "$GPID" -o "$WD/perf.data" -- sleep $((SECS - 1)) > /dev/null 2>&1 &)
fi
load "$SECS" > "$WD/wrk.out"
sleep 0.3
python3 "$HERE/threads.py" snap "$GPID" > "$WD/b.json"
N=$(requests "$WD/wrk.out")
echo "requests $N, $(grep Requests/sec "$WD/wrk.out") $(grep -i non-2xx "$WD/wrk.out" || true)"
python3 "$HERE/threads.py" diff "$WD/a.json" "$WD/b.json" "$N"
[ -z "${PERF:-}" ] || { sleep 2; echo "profile: $WD/perf.data"; }

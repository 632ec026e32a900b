#!/usr/bin/env bash
# A/B of builds by their CPU per request behind nginx: runs threads.sh for each binary in
# turn, ROUNDS times (alternating, so that a machine whose speed drifts treats them alike),
# and prints each run and the median of the gateway's CPU µs per request (all its threads).
# Usage: bench/prof/ab.sh ROUNDS MODEL STREAM path/to/tokenrouter-a path/to/tokenrouter-b [...]
# (MODEL: bench-json | bench-sse | bench-anthropic; STREAM: false | true; 6 s a run)
set -eu
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROUNDS=${1:?usage: $0 ROUNDS MODEL STREAM BIN BIN...}; MODEL=$2; STREAM=$3; shift 3
RAW=$(mktemp /tmp/tokenrouter-ab.XXXX)
for _ in $(seq "$ROUNDS"); do
  for bin in "$@"; do
    out=$(bash "$HERE/threads.sh" "$bin" 6 "$MODEL" "$STREAM" 2>&1)
    echo "$bin $(echo "$out" | awk '/^TOTAL/ {print $3 + $6}') $(echo "$out" | grep -o 'Requests/sec: *[0-9.]*' | awk '{print $2}')" | tee -a "$RAW"
  done
done
python3 - "$RAW" "$@" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 3:
        runs.setdefault(parts[0], []).append((float(parts[1]), float(parts[2])))
for binary in sys.argv[2:]:
    got = runs.get(binary, [])
    if not got:
        print(f"{binary}: no run succeeded"); continue
    cpu = statistics.median(c for c, _ in got); rps = statistics.median(r for _, r in got)
    print(f"{binary}: median {cpu:.1f} µs/request, {rps:,.0f} req/s  (runs: {' '.join(f'{c:.1f}' for c, _ in got)})")
PY
rm -f "$RAW"

#!/usr/bin/env bash
# A/B of builds on PostgreSQL + Redis: runs pgcpu.sh for each binary in turn, ROUNDS times
# (alternating), and prints each run and the medians of the gateway's, PostgreSQL's and
# redis-server's CPU µs per request. Usage: bench/prof/pgab.sh ROUNDS BIN BIN... (6 s a run)
set -eu
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROUNDS=${1:?usage: $0 ROUNDS BIN BIN...}; shift
RAW=$(mktemp /tmp/tokenrouter-pgab.XXXX)
for _ in $(seq "$ROUNDS"); do
  for bin in "$@"; do
    echo "$bin $(bash "$HERE/pgcpu.sh" "$bin" 6 2>&1 | grep '^requests')" | tee -a "$RAW"
  done
done
python3 - "$RAW" "$@" <<'PY'
import re, statistics, sys
runs = {}
pattern = r"(\S+) requests \d+ \((\d+)/s\)\s+gateway ([\d.]+)\s+pg ([\d.]+)\s+redis ([\d.]+)\s+total ([\d.]+)"
for line in open(sys.argv[1]):
    m = re.match(pattern, line)
    if m:
        runs.setdefault(m[1], []).append([float(x) for x in m.groups()[1:]])
for binary in sys.argv[2:]:
    got = runs.get(binary, [])
    if not got:
        print(f"{binary}: no run succeeded"); continue
    med = [statistics.median(r[i] for r in got) for i in range(5)]
    print(f"{binary}: medians of {len(got)}: {med[0]:,.0f} req/s, gateway {med[1]:.1f}, PostgreSQL {med[2]:.1f}, "
          f"redis-server {med[3]:.1f}, total {med[4]:.1f} µs/request")
PY
rm -f "$RAW"

#!/usr/bin/env bash
# Added time to first byte at low load, as bench/nginx.sh measures it (alternating single
# streamed requests to nginx and through the gateway, 2 ms apart): p50 and p90 of each and
# the gateway's added p50 and p99. Usage: bench/prof/ttfb.sh path/to/tokenrouter [requests]
set -eu
N=${2:-500}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$1" 1
taskset -c 1 python3 - "$HERE/.." "$NPORT" "$GPORT" "$KEY" "$N" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import nginx
nport, gport, key, n = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
t = nginx.added_ttfb(nport, gport, key, n)
q = lambda xs, p: sorted(xs)[int(p * (len(xs) - 1))]
d, g = t["direct"], t["gateway"]
print(f"ttfb ms: nginx p50 {q(d, .5):.3f} p90 {q(d, .9):.3f} p99 {q(d, .99):.3f}; "
      f"gateway p50 {q(g, .5):.3f} p90 {q(g, .9):.3f} p99 {q(g, .99):.3f}; "
      f"added p50 {q(g, .5) - q(d, .5):+.3f} p99 {q(g, .99) - q(d, .99):+.3f}")
PY

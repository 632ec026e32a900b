#!/usr/bin/env bash
# CPU per request at saturation behind nginx on PostgreSQL + Redis (setup.py's PROF_PG
# mode): the gateway, the PostgreSQL processes serving its database (and the WAL writer,
# background writer and checkpointer) and redis-server, each from /proc over the load.
# Usage: bench/prof/pgcpu.sh path/to/tokenrouter [seconds] [model] [stream]
set -eu
export PROF_PG=1
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
psql_() { psql -X -q -tA -d "${BENCH_PG:-postgres://postgres@127.0.0.1:5432}/postgres" -c "$1"; }
PIDS=$(psql_ "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE datname = '$PGDB'
              OR backend_type IN ('walwriter', 'checkpointer', 'background writer')")
RPID=$(redis-cli -u "${BENCH_REDIS:-redis://127.0.0.1:6379}" INFO server | sed -n 's/^process_id:\([0-9]*\).*/\1/p')
ticks() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0; done | awk '{s += $1} END {print s}'; }
A=$(ticks $PIDS); AR=$(ticks $RPID); AG=$(ticks "$GPID")
load "$SECS" > "$WD/wrk.out"
sleep 0.5
B=$(ticks $PIDS); BR=$(ticks $RPID); BG=$(ticks "$GPID")
N=$(requests "$WD/wrk.out")
HZ=$(getconf CLK_TCK)
python3 -c "
n, t = $N, 1e6 / $HZ / $N
g, p, r = ($BG - $AG) * t, ($B - $A) * t, ($BR - $AR) * t
print(f'requests {n} ({n / $SECS:.0f}/s)  gateway {g:.1f}  pg {p:.1f}  redis {r:.1f}  total {g + p + r:.1f} us/req')"

#!/usr/bin/env bash
# Behind nginx on PostgreSQL + Redis (setup.py's PROF_PG mode), samples what the backends
# of the gateway's database are doing while it is loaded with CONNECTIONS (default 16)
# connections: state, wait event and the start of the statement, counted over SAMPLES
# (default 60) samples of pg_stat_activity. A hold backend often in IO:WALSync waits for its
# commit's flush; in Lock:transactionid, for a row another transaction holds.
# Usage: CONNECTIONS=16 bench/prof/pgwait.sh path/to/tokenrouter [seconds]
set -eu
export PROF_PG=1
SAMPLES=${SAMPLES:-60}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
load "$SECS" > "$WD/wrk.out" &
LOAD=$!
sleep 1
for _ in $(seq "$SAMPLES"); do
  psql -X -q -tA -d "${BENCH_PG:-postgres://postgres@127.0.0.1:5432}/postgres" -c \
    "SELECT state || ' | ' || coalesce(wait_event_type, '-') || ':' || coalesce(wait_event, '-') || ' | ' || left(query, 40)
       FROM pg_stat_activity WHERE datname = '$PGDB'"
  sleep 0.02
done | sort | uniq -c | sort -rn | head -25
wait "$LOAD"
grep "Requests/sec" "$WD/wrk.out"

#!/usr/bin/env python3
"""PostgreSQL + Redis ÷ SQLite CPU per request at saturation, measured in alternation.

Normally started by bench/run.sh with BENCH_RATIO_ROUNDS=N. The full bench runs the two
backends one after the other, minutes apart, so a machine whose speed drifts (a shared
VM) moves the ratio between runs by more than the changes being measured. Here both
gateways run at once (with one mock, all three pinned to CPU 0, idle when not loaded) and
their saturation phases alternate, N rounds in all; each round's ratio compares two
phases seconds apart, and the report gives every round and the median.

Saturation: the load keeps --connections (default 64) requests in flight. At 16, the
PostgreSQL + Redis gateway is not saturated: its requests wait, all at once, for the hold's
commit (a WAL flush) and for the settlement's lock on the account row, so CPU 0 stays a
third idle, its throughput still rises with more connections, and its CPU per request is
that of a partly idle process (more wake-ups per request, smaller batches). From 64 on
neither backend's throughput rises any more. The report gives each phase's CPU 0 and
CPU 1 busy share, so that a reader can see how close to saturation it was.

CPU per request as in the full bench: utime+stime until the gateway is idle again (its
deferred usage writes included), plus for PostgreSQL + Redis the backends of the run's
database, the shared WAL writer, background writer and checkpointer, and redis-server.
"""

import argparse
import datetime
import os
import statistics
import sys
import time

import bench
from bench import BODY, KEY_RPM, KEY_TPM, Oha, cpu_of, cpu_seconds, die, log, pg_pids, psql, redis_pid, run_cli

TARGET_RATIO = 1.5


def gateway(args, name, db, cfg, extra):
    """Creates an account and a key on `db`, starts a gateway on it; (pid, url, key)."""
    run_cli([args.bin, "--database", db, "accounts", "create", "bench", "--balance", "1000000"])
    out = run_cli([args.bin, "--database", db, "keys", "create", "--account", "bench", "--json",
                   "--rpm", str(KEY_RPM), "--tpm", str(KEY_TPM)]).strip().splitlines()[-1]
    key = bench.json.loads(out)["key"]
    p, port = bench.start_server(
        f"gateway ({name})", ["taskset", "-c", "0", args.bin, "--database", db, "--config", cfg] + extra
        + ["serve", "--listen", "127.0.0.1:0"],
        r"tokenrouter listening on http://127\.0\.0\.1:(\d+)", f"{args.workdir}/gateway-{name}.log", args.pidfile)
    return p.pid, f"http://127.0.0.1:{port}/v1/chat/completions", key


def idle(pid, timeout=90.0):
    """Waits until `pid` used no CPU for 0.5 s (its deferred usage writes done)."""
    if not bench.wait_idle(pid, timeout)[1]:
        die(f"gateway {pid} still busy {timeout:.0f}s after a phase")


def main():
    ap = argparse.ArgumentParser()
    bench.common_args(ap)
    ap.add_argument("--duration", type=int, default=5, help="seconds per saturation phase")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64, help="concurrent connections of the load")
    args = ap.parse_args()
    bench.PG["url"], bench.PG["redis"] = args.pg.rstrip("/"), args.redis
    if (os.cpu_count() or 1) < 2:
        die("needs at least 2 CPUs (servers on CPU 0, load on CPU 1)")
    os.sched_setaffinity(0, {1})
    for signum in (bench.signal.SIGTERM, bench.signal.SIGINT, bench.signal.SIGHUP):
        bench.signal.signal(signum, bench.on_signal)

    pg_db = f"tr_bench_{os.getpid()}"
    redis_prefix = f"trbench:{os.getpid()}:{int(time.time())}:"
    psql(f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")
    psql(f"CREATE DATABASE {pg_db}")
    try:
        text = measure(args, pg_db, redis_prefix)
    finally:
        bench.kill_children()
        psql(f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")
        log(f"dropped database {pg_db}")
        keys = bench.redis_cli("--scan", "--pattern", redis_prefix + "*").split()
        for i in range(0, len(keys), 500):
            bench.redis_cli("DEL", *keys[i:i + 500])
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    log(f"report written to {args.out}")


def measure(args, pg_db, redis_prefix):
    wd = args.workdir
    _, mock_port = bench.start_server(
        "mock upstream", ["taskset", "-c", "0", args.bin, "mock-upstream", "--listen", "127.0.0.1:0"],
        r"mock upstream listening on http://127\.0\.0\.1:(\d+)", f"{wd}/mock.log", args.pidfile)
    bench.write_config(f"{wd}/sqlite.toml", mock_port)
    bench.write_config(f"{wd}/postgres.toml", mock_port, redis_prefix)
    pg_url = f"{args.pg.rstrip('/')}/{pg_db}" + (f"?{args.pg_params}" if args.pg_params else "")
    run_cli([args.bin, "--database", pg_url, "migrate"])
    sqlite = gateway(args, "sqlite", f"sqlite://{wd}/ratio.db", f"{wd}/sqlite.toml", [])
    postgres = gateway(args, "postgres", pg_url, f"{wd}/postgres.toml", ["--redis", args.redis])
    rpid = redis_pid()
    oha = Oha(args.oha, 1)
    xact_rows = []

    def xacts():
        return int(psql(f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{pg_db}'"))

    load = ["-c", str(args.connections), "-z", f"{args.duration}s"]

    def phase(gw, with_db):
        gpid, url, key = gw
        ours, aux = pg_pids(pg_db) if with_db else ([], [])
        others = (ours + aux + ([rpid] if rpid else [])) if with_db else []
        c0, e0, x0 = cpu_seconds(gpid), cpu_of(others), xacts() if with_db else 0
        r, busy = bench.busy_while(lambda: oha.run(url, BODY, key, load))
        idle(gpid)
        if with_db:
            time.sleep(1.2)  # backends flush their statistics at most once a second
            xact_rows.append((xacts() - x0 - 1) / r["done"])  # less the count query itself
        if r["non200"] or r["errors"]:
            die(f"requests failed: non-200 {r['non200']} errors {r['errors']}")
        # a backend that appeared during the phase counts whole
        after = cpu_of(others)
        per = 1e6 / r["done"]
        pg = sum(v - e0.get(pid, 0.0) for pid, v in after.items() if pid != rpid) * per
        rs = (after.get(rpid, 0.0) - e0.get(rpid, 0.0)) * per if rpid in after else 0.0
        gw_cpu = (cpu_seconds(gpid) - c0) * per
        return gw_cpu + pg + rs, r["rps"], (gw_cpu, pg, rs), busy

    log("warming both gateways up")
    for gw in (sqlite, postgres):
        oha.run(gw[1], BODY, gw[2], ["-c", "16", "-n", "20000"])
        idle(gw[0])
    rows = []
    xact_rows.clear()
    load0 = os.getloadavg()
    for i in range(args.rounds):
        # alternate which backend goes first, so that neither always follows the other's backlog
        order = [("sqlite", sqlite, False), ("postgres", postgres, True)]
        if i % 2:
            order.reverse()
        got = {}
        for name, gw, with_db in order:
            got[name] = phase(gw, with_db)
        ratio = got["postgres"][0] / got["sqlite"][0]
        rows.append((got["sqlite"], got["postgres"], ratio))
        log(f"round {i + 1}: SQLite {got['sqlite'][0]:.1f} µs, PostgreSQL + Redis {got['postgres'][0]:.1f} µs, ×{ratio:.2f}")
    load1 = os.getloadavg()

    ratios = [r[2] for r in rows]
    median = statistics.median(ratios)
    L = []
    w = L.append
    w("# PostgreSQL + Redis ÷ SQLite, CPU per request at saturation, in alternation")
    w("")
    w(f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')}")
    w(f"- commit: {bench.subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip() or '?'}")
    w(f"- {args.rounds} rounds of {args.duration} s at -c {args.connections} per backend; both gateways and the mock on CPU 0, oha on CPU 1; "
      f"load average before / after: {load0[0]:.2f} / {load1[0]:.2f}")
    w("- CPU per request: the gateway until idle again; with PostgreSQL + Redis also the run's database backends, "
      "the WAL writer, background writer, checkpointer and redis-server")
    w("")
    w("| round | SQLite µs/req (req/s; CPU 0, 1 busy) | PostgreSQL + Redis µs/req (req/s; CPU 0, 1 busy) | of which gateway / PostgreSQL / redis-server | PostgreSQL transactions per request | ratio |")
    w("|---|---|---|---|---|---|")
    for i, ((s, p, ratio), x) in enumerate(zip(rows, xact_rows), 1):
        g, pg, rs = p[2]
        w(f"| {i} | {s[0]:.1f} ({s[1]:,.0f}; {s[3][0]:.0%}, {s[3][1]:.0%}) | {p[0]:.1f} ({p[1]:,.0f}; {p[3][0]:.0%}, {p[3][1]:.0%}) "
          f"| {g:.1f} / {pg:.1f} / {rs:.1f} "
          f"| {x:.3f} | ×{ratio:.2f} |")
    w("")
    w(f"**Median ×{median:.2f}** (min ×{min(ratios):.2f}, max ×{max(ratios):.2f}; "
      f"target ≤ ×{TARGET_RATIO}: {'PASS' if median <= TARGET_RATIO else 'FAIL'}); "
      f"median CPU per request: SQLite {statistics.median(r[0][0] for r in rows):.1f} µs, "
      f"PostgreSQL + Redis {statistics.median(r[1][0] for r in rows):.1f} µs (gateway / PostgreSQL / redis-server: "
      + " / ".join(f"{statistics.median(r[1][2][k] for r in rows):.1f}" for k in range(3)) + " µs)")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Dashboard pages over a million request-log rows: seeds an account (dashboard_seed
example: log rows, ledger charges and hourly rollups written by the settlement path),
starts `tokenrouter serve`, signs in with `accounts login-link`, GETs every page N times
and reports the server time of each from `X-TokenRouter-Latency-Ms` (median, max).
Run through bench/dashboard.sh."""

import argparse
import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def log(msg):
    print(f"[dashboard] {msg}", file=sys.stderr, flush=True)


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "RUST_LOG": "warn"})
    if out.returncode != 0:
        sys.exit(f"{cmd[:4]} failed: {out.stderr}")
    return out.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--seed", required=True)
    p.add_argument("--database", required=True)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("-n", type=int, default=20)
    p.add_argument("--label", default="")
    a = p.parse_args()
    work = tempfile.mkdtemp(prefix="tr-dash-")
    db, b = a.database, a.bin
    cfg = f"{work}/bench.toml"
    port = free_port()
    models = ["gpt-4o-mini", "gpt-4o", "claude-haiku-4-5", "gemini-2.0-flash", "deepseek-chat"]
    with open(cfg, "w") as f:
        f.write(f'[server]\nlisten = "127.0.0.1:{port}"\n\n')
        f.write('[[providers]]\nname = "bench"\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\napi_key = "x"\n')
        for m in models:
            f.write(f'\n[[models]]\nid = "{m}"\ncontext_window = 128000\nmax_output_tokens = 4096\n'
                    f'input_price = 0.15\noutput_price = 0.60\n'
                    f'deployments = [ {{ provider = "bench", upstream_model = "{m}" }} ]\n')
    run([b, "--database", db, "migrate"])
    run([b, "--database", db, "accounts", "create", "bench", "--balance", "1000000", "--admin"])
    log(f"seeding {a.rows} request rows into {db.split('?')[0]}")
    t0 = time.time()
    seeded = dict(line.split("=", 1) for line in run([a.seed, db, "bench", str(a.rows)]).split())
    log(f"seeded in {time.time() - t0:.1f} s: {seeded}")
    if db.startswith("postgres"):
        # A table that just grew by a million rows has no statistics until autovacuum's
        # next analyze (a minute or so later in production); without them PostgreSQL
        # plans the filtered log as a sort of the whole account. Measure the steady state.
        run(["psql", "-X", "-q", "-d", db.split("?")[0], "-c", "ANALYZE"])
        log("analyzed (as autovacuum would)")
    gw_log = open(f"{work}/gateway.log", "w")
    gw = subprocess.Popen([b, "--database", db, "--config", cfg, "serve"], stdout=gw_log, stderr=gw_log,
                          env={**os.environ, "RUST_LOG": "warn"})
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        link = run([b, "--database", db, "--config", cfg, "accounts", "login-link", "bench"]).strip()
        path = "/auth/link/" + link.split("/auth/link/", 1)[1]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        cookie = r.getheader("set-cookie").split(";", 1)[0]
        pages = [
            ("overview", "/dashboard"),
            ("keys", "/dashboard/keys"),
            ("usage by day (30 days)", "/dashboard/usage?group_by=day"),
            ("usage by hour (30 days)", "/dashboard/usage?group_by=hour"),
            ("usage by model", "/dashboard/usage?group_by=model"),
            ("usage by key", "/dashboard/usage?group_by=key"),
            ("usage CSV by hour", "/dashboard/usage.csv?group_by=hour"),
            ("requests, first page", "/dashboard/requests"),
            ("requests, model filter", "/dashboard/requests?model=gpt-4o"),
            ("requests, key filter", f"/dashboard/requests?key_id={seeded['key']}"),
            ("requests, status 502 (1 in 500)", "/dashboard/requests?status=502"),
            ("requests, status 429 (none: the whole log)", "/dashboard/requests?status=429"),
            ("requests, Older page half-way down", f"/dashboard/requests?before={seeded['cursor']}"),
            ("request detail", f"/dashboard/requests/{seeded['request']}"),
            ("models", "/dashboard/models"),
            ("balance (1M ledger rows)", "/dashboard/balance"),
            ("connect", "/dashboard/connect"),
            ("playground", "/dashboard/playground"),
            ("admin", "/dashboard/admin"),
        ]
        rows = []
        for name, url in pages:
            times = []
            for i in range(a.n + 1):
                conn.request("GET", url, headers={"Cookie": cookie})
                r = conn.getresponse()
                body = r.read()
                if r.status != 200:
                    sys.exit(f"{url}: {r.status} {body[:300]!r}")
                if i > 0:  # the first is a warm-up
                    times.append(float(r.getheader("x-tokenrouter-latency-ms")))
            rows.append((name, url, statistics.median(times), max(times), len(body)))
            log(f"{name}: median {rows[-1][2]:.1f} ms, max {rows[-1][3]:.1f} ms")
        print(f"| page ({a.label}, {a.rows:,} rows) | URL | median ms | max ms | HTML bytes |")
        print("|---|---|---:|---:|---:|")
        for name, url, med, mx, size in rows:
            flag = " ⚠" if med >= 50 else ""
            print(f"| {name}{flag} | `{url}` | {med:.1f} | {mx:.1f} | {size:,} |")
    finally:
        gw.terminate()
        gw.wait(timeout=10)


if __name__ == "__main__":
    main()

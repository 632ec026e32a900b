#!/usr/bin/env python3
"""For the probes in this folder: starts nginx and the gateway on CPU 0 as bench/nginx.sh
does (SQLite; auth, limits and prepaid billing on), writes WORKDIR/env (NPORT, GPORT, KEY,
GPID, NPID), prints `ready` and stays until terminated. With PROF_PG=1 the gateway runs on
PostgreSQL and Redis instead (as bench/run.sh's `postgres` mode: BENCH_PG, BENCH_REDIS; a
database of its own, named in WORKDIR/env as PGDB and dropped at the end, and a Redis key
prefix of its own).

Usage: setup.py path/to/tokenrouter WORKDIR"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import bench  # noqa: E402
import nginx  # noqa: E402

binary, wd = sys.argv[1], sys.argv[2]
os.makedirs(f"{wd}/nginx-body", exist_ok=True)
pidfile = f"{wd}/pids"
open(pidfile, "w").close()
port = nginx.free_port()
with open(f"{wd}/nginx.conf", "w") as f:
    f.write(nginx.nginx_conf(wd, port))
server = subprocess.Popen(["taskset", "-c", "0", shutil.which("nginx") or "/usr/sbin/nginx", "-p", wd,
                           "-c", f"{wd}/nginx.conf"], stdout=subprocess.DEVNULL, stderr=open(f"{wd}/nginx.log", "w"))
time.sleep(0.5)
pg = bool(os.environ.get("PROF_PG"))
db, cfg, extra = f"sqlite://{wd}/prof.db", f"{wd}/prof.toml", ""
if pg:
    bench.PG["url"] = os.environ.get("BENCH_PG", bench.PG["url"]).rstrip("/")
    bench.PG["redis"] = os.environ.get("BENCH_REDIS", bench.PG["redis"])
    name = f"tr_prof_{os.getpid()}"
    bench.psql(f"CREATE DATABASE {name}")
    db = f"{bench.PG['url']}/{name}?sslmode=disable"
    extra = f'\n[redis]\nkey_prefix = "trprof:{os.getpid()}:{int(time.time())}:"\n'
with open(cfg, "w") as f:
    f.write(nginx.gateway_conf(port) + extra)
if pg:
    bench.run_cli([binary, "--database", db, "migrate"])
bench.run_cli([binary, "--database", db, "accounts", "create", "bench", "--balance", "1000000"])
created = bench.run_cli([binary, "--database", db, "keys", "create", "--account", "bench", "--json",
                         "--rpm", str(bench.KEY_RPM), "--tpm", str(bench.KEY_TPM)])
key = json.loads(created.strip().splitlines()[-1])["key"]
wrap = os.environ.get("PROF_WRAP", "").split()  # e.g. valgrind --tool=callgrind (instr.sh)
gateway, gateway_port = bench.start_server(
    "gateway", ["taskset", "-c", "0", *wrap, binary, "--database", db, "--config", cfg]
    + (["--redis", bench.PG["redis"]] if pg else []) + ["serve", "--listen", "127.0.0.1:0"],
    r"tokenrouter listening on http://127\.0\.0\.1:(\d+)", f"{wd}/gateway.log", pidfile,
    timeout=120.0 if wrap else 20.0)
with open(f"{wd}/env", "w") as f:
    f.write(f"NPORT={port}\nGPORT={gateway_port}\nKEY={key}\nGPID={gateway.pid}\nNPID={server.pid}\n")
    if pg:
        f.write(f"PGDB={name}\n")
print("ready", flush=True)


def stop(*_):
    gateway.kill()
    server.terminate()  # nginx's master stops its worker on SIGTERM (SIGKILL would orphan it)
    server.wait()
    if pg:
        gateway.wait()
        bench.psql(f"DROP DATABASE IF EXISTS {name}")
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
while True:
    time.sleep(1)

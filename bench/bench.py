#!/usr/bin/env python3
"""Token Router benchmark driver (stdlib only). Normally started by bench/run.sh.

Starts the mock upstream and the gateway pinned to one CPU, drives load from
another CPU with oha and with a small raw-socket client, and prints a markdown
report (also written to bench/results/latest.md).
"""

import argparse
import datetime
import json
import os
import platform
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time

# ---------------------------------------------------------------- targets
TARGET_CPU_US = 50.0          # gateway CPU per proxied non-streaming request
TARGET_ADDED_P50_CL_MS = 0.1  # closed loop, one client
TARGET_ADDED_P50_1K_MS = 0.2  # at 1,000 req/s
TARGET_P99_1K_MS = 1.0        # gateway p99 at 1,000 req/s
TARGET_TTFB_MS = 0.2          # streaming TTFB, gateway minus direct (median)
TARGET_RSS_MIB = 64.0         # after 100k requests
RSS_FLAT_MIB = 2.0            # "flat": growth over a further 100k within max(2 MiB, 5 %)
RSS_FLAT_FRAC = 0.05

KEY_RPM = 1_000_000_000       # per key; never reached, but checked on every request
KEY_TPM = 4_000_000_000

BODY = {"model": "bench-model", "messages": [{"role": "user", "content": "hello"}]}
STREAM_BODY = dict(BODY, stream=True)

CHILDREN = []  # Popen objects we started; killed on exit


def die(msg):
    print(f"bench: error: {msg}", file=sys.stderr)
    sys.exit(1)


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes
def kill_children():
    for p in CHILDREN:
        if p.poll() is None:
            try:
                p.terminate()
            except OSError:
                pass
    deadline = time.time() + 5
    for p in CHILDREN:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def on_signal(signum, _frame):
    kill_children()
    sys.exit(128 + signum)


def start_server(name, cmd, pattern, logpath, pidfile, timeout=20.0):
    """Start cmd, wait for `pattern` (a regex with one group = port) in its stderr."""
    logf = open(logpath, "wb")
    env = dict(os.environ, NO_COLOR="1")
    p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    CHILDREN.append(p)
    with open(pidfile, "a") as f:
        f.write(f"{p.pid}\n")
    rx = re.compile(pattern)
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = open(logpath, "rb").read().decode("utf-8", "replace")
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)
        m = rx.search(text)
        if m:
            return p, int(m.group(1))
        if p.poll() is not None:
            die(f"{name} exited with code {p.returncode} before it was ready.\n"
                f"command: {' '.join(cmd)}\n--- {logpath} ---\n{text[-3000:]}")
        time.sleep(0.05)
    die(f"{name} did not print a 'listening' line within {timeout:.0f}s.\n"
        f"command: {' '.join(cmd)}\n--- {logpath} ---\n{text[-3000:]}")


def run_cli(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        die(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r.stdout


# ---------------------------------------------------------------- /proc
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpus_idle():
    """Seconds CPU 0 (the servers') and CPU 1 (the load's, and the database's when the
    scheduler puts it there) have been idle since boot."""
    idle = {}
    with open("/proc/stat") as f:
        for line in f:
            fields = line.split()
            if fields[0] in ("cpu0", "cpu1"):
                idle[fields[0]] = (int(fields[4]) + int(fields[5])) / CLK_TCK  # idle + iowait
    return idle.get("cpu0", 0.0), idle.get("cpu1", 0.0)


def busy_while(fn):
    """Runs `fn`; (its result, the share of CPU 0 and of CPU 1 that was busy meanwhile)."""
    i0, t0 = cpus_idle(), time.monotonic()
    result = fn()
    i1, t = cpus_idle(), max(time.monotonic() - t0, 1e-9)
    return result, tuple(1 - (b - a) / t for a, b in zip(i0, i1))


def wait_idle(pid, timeout):
    """Waits until `pid` used no CPU for 0.5 s (a gateway's deferred usage writes done):
    (seconds waited, whether it went idle)."""
    t0 = time.time()
    hist = [(t0, cpu_seconds(pid))]
    while time.time() - t0 < timeout:
        time.sleep(0.1)
        now = time.time()
        hist.append((now, cpu_seconds(pid)))
        old = [h for h in hist if now - h[0] >= 0.5]
        if old and hist[-1][1] - old[-1][1] <= 1.0 / CLK_TCK + 1e-9:
            return now - t0, True
    return time.time() - t0, False


def thread_cpu(pid):
    """CPU seconds per thread name (threads that already exited are not listed)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def mem_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
    return out


# ---------------------------------------------------------------- PostgreSQL / Redis
PG = {"url": "postgres://postgres@127.0.0.1:5432", "redis": "redis://127.0.0.1:6379"}  # set from the arguments


def psql(sql, db="postgres"):
    r = subprocess.run(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-d", f"{PG['url']}/{db}", "-c", sql],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"psql failed: {sql}: {r.stderr.strip()}")
    return r.stdout.strip()


def redis_cli(*a):
    r = subprocess.run(["redis-cli", "-u", PG["redis"]] + list(a), capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"redis-cli {' '.join(a)} failed: {r.stderr.strip()}")
    return r.stdout


def redis_calls():
    """Commands Redis has executed, by command, minus the INFO calls (ours)."""
    out = {}
    for line in redis_cli("INFO", "commandstats").splitlines():
        m = re.match(r"cmdstat_([^:]+):calls=(\d+)", line)
        if m and m.group(1) != "info":
            out[m.group(1)] = int(m.group(2))
    return out


def redis_pid():
    m = re.search(r"process_id:(\d+)", redis_cli("INFO", "server"))
    try:
        if m and open(f"/proc/{m.group(1)}/comm").read().strip() == "redis-server":
            return int(m.group(1))
    except OSError:
        pass
    log("WARNING: redis-server's process is not visible in /proc here; its CPU is not counted")
    return None


def pg_pids(dbname):
    """PostgreSQL server processes attributable to our database: its backends (title
    'postgres: USER DB HOST(PORT) ...', autovacuum workers on it) plus the shared WAL writer,
    background writer and checkpointer. Found from /proc (querying would add transactions)."""
    ours, aux = [], []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            continue
        if not title.startswith("postgres:"):
            continue
        words = title.split()
        if dbname in words:
            ours.append(int(d))
        elif any(w in title for w in ("walwriter", "background writer", "checkpointer")):
            aux.append(int(d))
    return ours, aux


def cpu_of(pids):
    out = {}
    for pid in pids:
        try:
            out[pid] = cpu_seconds(pid)
        except (OSError, ValueError):
            pass
    return out


# ---------------------------------------------------------------- oha
class Oha:
    def __init__(self, oha, cpu):
        self.oha = oha
        self.prefix = ["taskset", "-c", str(cpu)] if cpu is not None else []

    def run(self, url, body, key=None, extra=()):
        cmd = self.prefix + [self.oha, "--no-tui", "--output-format", "json",
                             "-m", "POST", "-T", "application/json", "-d", json.dumps(body)]
        if key:
            cmd += ["-H", f"Authorization: Bearer {key}"]
        cmd += list(extra) + [url]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        CHILDREN.append(p)  # so that a signal stops the load generator too
        out, err = p.communicate()
        CHILDREN.remove(p)
        if p.returncode != 0:
            die(f"oha failed ({p.returncode}): {' '.join(cmd)}\n{err[-2000:]}")
        try:
            j = json.loads(out)
        except ValueError:
            die(f"oha printed no JSON: {out[:500]} {err[:500]}")
        codes = {str(k): v for k, v in (j.get("statusCodeDistribution") or {}).items()}
        ok = codes.get("200", 0)
        errors = j.get("errorDistribution") or {}
        # aborted-at-deadline requests are expected with -z; anything else is a failure
        bad_errors = {k: v for k, v in errors.items() if "deadline" not in k}
        non200 = {k: v for k, v in codes.items() if k != "200"}
        pct = j.get("latencyPercentiles") or {}
        total_s = j["summary"]["total"]
        return {
            "ok": ok,
            "done": sum(codes.values()),
            "non200": non200,
            "errors": bad_errors,
            "rps": ok / total_s if total_s else 0.0,
            "p50": (pct.get("p50") or 0) * 1e3,
            "p99": (pct.get("p99") or 0) * 1e3,
            "wall": total_s,
        }


# ---------------------------------------------------------------- raw HTTP client
class Conn:
    """One keep-alive HTTP/1.1 connection; request() streams the response."""

    def __init__(self, port):
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed by server")
        return data

    def request(self, path, body, key=None, on_body=None):
        """Send a POST; return (t_send_ns, t_first_body_byte_ns, status, body_bytes).

        on_body(chunk_bytes, t_ns) is called for every piece of payload as it arrives.
        """
        payload = json.dumps(body).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n")
        if key:
            head += f"Authorization: Bearer {key}\r\n"
        req = head.encode() + b"\r\n" + payload
        t_send = time.perf_counter_ns()
        self.sock.sendall(req)
        # headers
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        t_now = time.perf_counter_ns()
        hdr, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = hdr.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers[k.strip().lower()] = v.strip()
        t_first = None
        body_out = bytearray()

        def got(piece, t):
            nonlocal t_first
            if piece:
                if t_first is None:
                    t_first = t
                body_out.extend(piece)
                if on_body:
                    on_body(piece, t)

        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                while b"\r\n" not in self.buf:
                    self.buf += self._recv()
                    t_now = time.perf_counter_ns()
                size_line, _, self.buf = self.buf.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while b"\r\n" not in self.buf:  # trailers (none) end with CRLF
                        self.buf += self._recv()
                    _, _, self.buf = self.buf.partition(b"\r\n")
                    break
                remaining = size
                while remaining:
                    if not self.buf:
                        self.buf = self._recv()
                        t_now = time.perf_counter_ns()
                    piece, self.buf = self.buf[:remaining], self.buf[remaining:]
                    remaining -= len(piece)
                    got(piece, t_now)
                while len(self.buf) < 2:
                    self.buf += self._recv()
                self.buf = self.buf[2:]
        else:
            remaining = int(headers.get("content-length", "0"))
            while remaining:
                if not self.buf:
                    self.buf = self._recv()
                    t_now = time.perf_counter_ns()
                piece, self.buf = self.buf[:remaining], self.buf[remaining:]
                remaining -= len(piece)
                got(piece, t_now)
        if headers.get("connection", "").lower() == "close":
            raise ConnectionError("server closed keep-alive")
        return t_send, t_first, status, bytes(body_out)


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def ttfb(mock_port, gw_port, key, n):
    """Alternate direct / gateway streaming requests; TTFB = send -> first SSE body byte."""
    path = "/v1/chat/completions"
    cd, cg = Conn(mock_port), Conn(gw_port)
    res = {"direct": [], "gateway": []}
    for i in range(n + 50):
        for name, c, k in (("direct", cd, None), ("gateway", cg, key)):
            t0, t1, status, body = c.request(path, STREAM_BODY, k)
            if status != 200 or t1 is None:
                die(f"TTFB request to {name} failed: HTTP {status} {body[:300]!r}")
            if not body.rstrip().endswith(b"data: [DONE]"):
                die(f"TTFB {name}: stream did not end with [DONE]: {body[-200:]!r}")
            if i >= 50:  # first 50 are warm-up
                res[name].append((t1 - t0) / 1e6)
    cd.close()
    cg.close()
    return res


def pacing(port, key, tps, tokens):
    """Timestamp each SSE event as it arrives; return list of (t_ms, event_text)."""
    body = dict(STREAM_BODY, mock={"tokens_per_second": tps, "reply_tokens": tokens})
    c = Conn(port)
    events = []
    pending = bytearray()

    def on_body(piece, t):
        pending.extend(piece)
        while True:
            i = pending.find(b"\n\n")
            if i < 0:
                break
            ev = bytes(pending[:i]).decode("utf-8", "replace")
            del pending[:i + 2]
            events.append((t, ev))

    t0, _t1, status, raw = c.request("/v1/chat/completions", body, key, on_body)
    c.close()
    if status != 200:
        die(f"pacing request failed: HTTP {status} {raw[:300]!r}")
    return [((t - t0) / 1e6, ev) for t, ev in events]


def content_events(events):
    """Events that carry a content token (non-empty delta.content)."""
    out = []
    for t, ev in events:
        data = ev.strip()
        if not data.startswith("data:"):
            continue
        data = data[5:].strip()
        if data == "[DONE]":
            continue
        try:
            j = json.loads(data)
        except ValueError:
            continue
        for ch in j.get("choices") or []:
            if (ch.get("delta") or {}).get("content"):
                out.append(t)
                break
    return out


# ---------------------------------------------------------------- formatting
def f_ms(x):
    return f"{x:.3f} ms"


def f_rps(x):
    return f"{x:,.0f} req/s"


def verdict(ok):
    return "**PASS**" if ok else "**FAIL**"


def common_args(ap):
    """The arguments every driver started by bench/run.sh takes: the binary, oha, where to
    write, and the PostgreSQL server and Redis."""
    ap.add_argument("--bin", required=True)
    ap.add_argument("--oha", default="oha")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432",
                    help="PostgreSQL server (user postgres, trust auth); a fresh database per run")
    ap.add_argument("--pg-params", default="sslmode=disable",
                    help="query parameters of the gateway's database URL (default: no TLS on loopback; "
                         "'sslmode=prefer' measures TLS, whose stalls on large batches sqlx's sockets without "
                         "TCP_NODELAY make costly)")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379")


def main():
    ap = argparse.ArgumentParser()
    common_args(ap)
    ap.add_argument("--duration", type=int, default=10, help="seconds per timed oha phase")
    ap.add_argument("--ttfb-n", type=int, default=1000)
    ap.add_argument("--mem-n", type=int, default=100000, help="requests per memory phase (two phases)")
    ap.add_argument("--backends", default="sqlite,postgres",
                    help="comma-separated: sqlite, postgres (= PostgreSQL + Redis)")
    args = ap.parse_args()
    if args.mem_n < 1000:
        ap.error("--mem-n (BENCH_MEM_N) must be at least 1000: the memory phases are also the warm-up")
    PG["url"], PG["redis"] = args.pg.rstrip("/"), args.redis
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in backends:
        if b not in ("sqlite", "postgres"):
            die(f"unknown backend {b!r} (expected sqlite, postgres)")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    ncpu = os.cpu_count() or 1
    if ncpu >= 2:
        srv_pin, load_pin = ["taskset", "-c", "0"], 1
        os.sched_setaffinity(0, {1})  # the raw-socket client runs here too
    else:
        log("WARNING: fewer than 2 CPUs; running without pinning, numbers are not comparable")
        srv_pin, load_pin = [], None

    sections, summaries, rc = [], [], 0
    load0 = os.getloadavg()
    t0 = time.time()
    for backend in backends:
        pg_db = None
        try:
            if backend == "postgres":
                pg_db = f"tr_bench_{os.getpid()}"
                log(f"creating database {pg_db}")
                psql(f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")
                psql(f"CREATE DATABASE {pg_db}")
            r, text, summ = run(args, srv_pin, load_pin, backend, pg_db)
            rc = max(rc, r)
            sections.append(text)
            summaries.append(summ)
        finally:
            kill_children()
            CHILDREN.clear()
            if pg_db:
                try:
                    psql(f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")
                    log(f"dropped database {pg_db}")
                except RuntimeError as e:
                    log(f"WARNING: {e}")
    load1 = os.getloadavg()
    text = side_by_side(summaries, load0, load1, time.time() - t0, args) + "\n\n" + "\n\n".join(sections) + "\n"
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    log(f"report written to {args.out}")
    return rc


def model_toml(model, provider, upstream):
    """A `[[models]]` entry of the benches' configs: one deployment, the same prices."""
    return f"""
[[models]]
id = "{model}"
context_window = 128000
max_output_tokens = 4096
input_price = 0.15
output_price = 0.60
deployments = [ {{ provider = "{provider}", upstream_model = "{upstream}" }} ]
"""


def write_config(path, mock_port, redis_prefix=None):
    """The gateway's config: the mock as its one provider of `bench-model`; with a Redis key
    prefix, its `[redis]` section."""
    with open(path, "w") as f:
        f.write(f"""[[providers]]
name = "mock"
kind = "openai"
base_url = "http://127.0.0.1:{mock_port}/v1"
""" + model_toml("bench-model", "mock", "mock-gpt"))
        if redis_prefix:
            f.write(f'\n[redis]\nkey_prefix = "{redis_prefix}"\n')


def run(args, srv_pin, load_pin, backend, pg_db):
    wd = args.workdir
    pgmode = backend == "postgres"
    params = f"?{args.pg_params}" if args.pg_params else ""
    db = f"{args.pg}/{pg_db}{params}" if pgmode else f"sqlite://{wd}/bench.db"
    redis_prefix = f"trbench:{os.getpid()}:{int(time.time())}:"
    B = args.bin
    D = f"{args.duration}s"
    oha = Oha(args.oha, load_pin)
    load0 = os.getloadavg()
    t_start = time.time()

    # ---- processes
    log("starting mock upstream")
    mock, mock_port = start_server(
        "mock upstream", srv_pin + [B, "mock-upstream", "--listen", "127.0.0.1:0"],
        r"mock upstream listening on http://127\.0\.0\.1:(\d+)", f"{wd}/mock.log", args.pidfile)
    cfg = f"{wd}/bench.toml"
    write_config(cfg, mock_port, redis_prefix if pgmode else None)
    if pgmode:
        run_cli([B, "--database", db, "migrate"])
    run_cli([B, "--database", db, "accounts", "create", "bench", "--balance", "1000000"])
    # limits high enough never to refuse, so the limiter (Redis in postgres mode) is on the path
    kj = run_cli([B, "--database", db, "keys", "create", "--account", "bench", "--json",
                  "--rpm", str(KEY_RPM), "--tpm", str(KEY_TPM)]).strip().splitlines()[-1]
    try:
        key = json.loads(kj)["key"]
    except (ValueError, KeyError):
        die(f"could not read the key from `keys create --json` (got {kj!r})")
    if not key.startswith("sk-tr-"):
        die(f"could not read the key from `keys create` (got {key!r})")
    log("starting gateway")
    gw, gw_port = start_server(
        "gateway", srv_pin + [B, "--database", db, "--config", cfg]
        + (["--redis", args.redis] if pgmode else []) + ["serve", "--listen", "127.0.0.1:0"],
        r"tokenrouter listening on http://127\.0\.0\.1:(\d+)", f"{wd}/gateway.log", args.pidfile)
    gpid, mpid = gw.pid, mock.pid
    for pid in (gpid, mpid):
        comm = open(f"/proc/{pid}/comm").read().strip()
        if comm != "tokenrouter":
            die(f"pid {pid} is {comm!r}, expected tokenrouter")

    direct = f"http://127.0.0.1:{mock_port}/v1/chat/completions"
    via = f"http://127.0.0.1:{gw_port}/v1/chat/completions"

    # ---- smoke test: both answer 200 and the gateway forwards the mock's body
    for name, port, k in (("direct", mock_port, None), ("gateway", gw_port, key)):
        c = Conn(port)
        _, _, st, body = c.request("/v1/chat/completions", BODY, k)
        c.close()
        if st != 200:
            die(f"smoke test {name}: HTTP {st}: {body[:500]!r}")

    problems = []
    dbfile = f"{wd}/bench.db"

    psql_calls = [0]

    def usage_rows():
        if pgmode:
            psql_calls[0] += 1
            try:
                return int(psql("SELECT count(*) FROM usage", pg_db))
            except (RuntimeError, ValueError) as e:
                log(f"could not count usage rows: {e}")
                return -1
        try:
            con = sqlite3.connect(f"file:{dbfile}?mode=ro", uri=True, timeout=5)
            try:
                return con.execute("SELECT count(*) FROM usage").fetchone()[0]
            finally:
                con.close()
        except sqlite3.Error as e:
            log(f"could not count usage rows: {e}")
            return -1

    def settle(timeout=90.0):
        """Wait until the gateway is idle (deferred usage writes done); return seconds waited."""
        waited, idle = wait_idle(gpid, timeout)
        if not idle:
            problems.append(f"gateway still busy {timeout:.0f}s after a phase")
        return waited

    def check(name, r):
        if r["non200"] or r["errors"]:
            problems.append(f"{name}: non-200 {r['non200']} errors {r['errors']}")
            log(f"WARNING {name}: non-200 {r['non200']} errors {r['errors']}")

    def pg_xacts():
        return int(psql(f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{pg_db}'"))

    def ext_snapshot():
        """CPU of the PostgreSQL processes (ours, shared aux) and redis-server; round-trip counters."""
        if not pgmode:
            return None
        ours, aux = pg_pids(pg_db)
        return {"ours": cpu_of(ours), "aux": cpu_of(aux), "redis": cpu_of([rpid]) if rpid else {},
                "xacts": pg_xacts(), "psql": psql_calls[0], "rcalls": redis_calls()}

    def ext_delta(a, b):
        def d(k):
            # a backend that appeared during the phase counts whole; one that exited is lost (rare: pooled)
            return sum(v - a[k].get(pid, 0.0) for pid, v in b[k].items())
        return {"pg_s": d("ours"), "pg_aux_s": d("aux"), "redis_s": d("redis"),
                "xacts": b["xacts"] - a["xacts"] - (b["psql"] - a["psql"]) * psql_xact_cost,
                "rcalls": sum(b["rcalls"].values()) - sum(a["rcalls"].values()),
                "rby": {k: v - a["rcalls"].get(k, 0) for k, v in b["rcalls"].items() if v - a["rcalls"].get(k, 0) > 0},
                "pg_exited": len(set(a["ours"]) - set(b["ours"]))}

    rpid = redis_pid() if pgmode else None
    psql_xact_cost = 0
    if pgmode:
        # our own `SELECT count(*) FROM usage` connections count in pg_stat_database: calibrate
        time.sleep(1.2)
        x0 = pg_xacts()
        for _ in range(4):
            usage_rows()
        time.sleep(1.2)
        psql_xact_cost = round((pg_xacts() - x0) / 4)
        log(f"postgres: {psql_xact_cost} transaction(s) per usage-count query (subtracted); redis pid {rpid}")

    def gw_phase(name, fn, drain=True):
        """Run a load phase; gateway CPU includes the work it deferred (usage writes) until idle."""
        e0 = ext_snapshot()
        c0, m0, rows0 = cpu_seconds(gpid), cpu_seconds(mpid), usage_rows()
        th0 = thread_cpu(gpid)
        r, r_busy = busy_while(fn)
        r["busy"] = r_busy
        r["name"] = name
        r["cpu_at_end"] = cpu_seconds(gpid) - c0
        r["mem_at_end"] = mem_kib(gpid)
        r["rows_at_end"] = usage_rows() - rows0
        r["drain_s"] = settle() if drain else float("nan")
        r["mem_after_drain"] = mem_kib(gpid)
        c1, m1 = cpu_seconds(gpid), cpu_seconds(mpid)
        th1 = thread_cpu(gpid)
        r["threads_us"] = {k: (v - th0.get(k, 0.0)) / r["done"] * 1e6 if r["done"] else 0.0
                           for k, v in th1.items() if v - th0.get(k, 0.0) > 0}
        r["rows_after_drain"] = usage_rows() - rows0
        r["gw_cpu_s"], r["mock_cpu_s"] = c1 - c0, m1 - m0
        r["gw_cpu_us"] = (c1 - c0) / r["done"] * 1e6 if r["done"] else float("nan")
        r["mock_cpu_us"] = (m1 - m0) / r["done"] * 1e6 if r["done"] else float("nan")
        r["ext"] = None
        if pgmode and drain:
            time.sleep(1.2)  # PostgreSQL backends flush their statistics at most once a second
            r["ext"] = ext_delta(e0, ext_snapshot())
        check(name, r)
        return r

    R = {}
    settle()
    mem = {"start": mem_kib(gpid)}

    # ---- 8. memory (also the warm-up): 100k then, without a pause, a further 100k at saturation
    log(f"memory: {args.mem_n:,} requests through the gateway")
    c_mem0 = cpu_seconds(gpid)
    R["mem1"] = gw_phase(f"mem 1st {args.mem_n // 1000}k", lambda: oha.run(via, BODY, key, ["-c", "16", "-n", str(args.mem_n)]), drain=False)
    log(f"memory: a further {args.mem_n:,} requests")
    R["mem2"] = gw_phase(f"mem 2nd {args.mem_n // 1000}k", lambda: oha.run(via, BODY, key, ["-c", "16", "-n", str(args.mem_n)]))
    mem["100k"], mem["200k"] = R["mem1"]["mem_at_end"], R["mem2"]["mem_at_end"]
    mem["drained"] = mem_kib(gpid)
    mem_cpu_us = (cpu_seconds(gpid) - c_mem0) / (R["mem1"]["done"] + R["mem2"]["done"]) * 1e6
    mem_rows = usage_rows()
    oha.run(direct, BODY, None, ["-c", "16", "-n", "20000"])  # warm the direct path too

    # ---- 1. non-streaming saturation
    log(f"non-streaming saturation, -c 16 -z {D}")
    R["sat_d"] = gw_phase("sat direct", lambda: oha.run(direct, BODY, None, ["-c", "16", "-z", D]))
    R["sat_g"] = gw_phase("sat gateway", lambda: oha.run(via, BODY, key, ["-c", "16", "-z", D]))

    # ---- 2. closed loop, one client
    log(f"non-streaming closed loop, -c 1 -z {D}")
    R["cl_d"] = gw_phase("c1 direct", lambda: oha.run(direct, BODY, None, ["-c", "1", "-z", D]))
    R["cl_g"] = gw_phase("c1 gateway", lambda: oha.run(via, BODY, key, ["-c", "1", "-z", D]))

    # ---- 3. fixed 1,000 req/s
    log(f"non-streaming at 1,000 req/s, -q 1000 -z {D}")
    q = ["-c", "16", "-q", "1000", "--latency-correction", "-z", D]
    R["q_d"] = gw_phase("1k direct", lambda: oha.run(direct, BODY, None, q))
    R["q_g"] = gw_phase("1k gateway", lambda: oha.run(via, BODY, key, q))

    # ---- 4. streaming
    log(f"streaming saturation and closed loop, -z {D}")
    R["ssat_d"] = gw_phase("stream sat direct", lambda: oha.run(direct, STREAM_BODY, None, ["-c", "16", "-z", D]))
    R["ssat_g"] = gw_phase("stream sat gateway", lambda: oha.run(via, STREAM_BODY, key, ["-c", "16", "-z", D]))
    R["scl_d"] = gw_phase("stream c1 direct", lambda: oha.run(direct, STREAM_BODY, None, ["-c", "1", "-z", D]))
    R["scl_g"] = gw_phase("stream c1 gateway", lambda: oha.run(via, STREAM_BODY, key, ["-c", "1", "-z", D]))

    # ---- 5. streaming TTFB
    log(f"streaming TTFB, {args.ttfb_n} requests each, alternating direct/gateway")
    tt = ttfb(mock_port, gw_port, key, args.ttfb_n)

    # ---- 6. no buffering
    log("no-buffering check: 10 tokens at 20 tokens/s")
    tps, ntok = 20, 10
    pace_g = [pacing(gw_port, key, tps, ntok) for _ in range(3)]
    pace_d = pacing(mock_port, None, tps, ntok)

    mem["end"] = mem_kib(gpid)
    if gw.poll() is not None or mock.poll() is not None:
        problems.append("a server process exited during the run")
    load1 = os.getloadavg()
    elapsed = time.time() - t_start

    # ================================================================ report
    L = []
    w = L.append
    cpu_model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        commit = (commit or "?") + (" (uncommitted changes)" if dirty else "")
    except OSError:
        commit = "?"
    oha_ver = subprocess.run([args.oha, "--version"], capture_output=True, text=True).stdout.strip()

    bname = "PostgreSQL + Redis" if pgmode else "SQLite"
    w(f"# Backend: {bname}")
    w("")
    w(f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')}")
    w(f"- machine: nproc {os.cpu_count()}, {cpu_model}, Linux {platform.release()}")
    w(f"- commit: {commit}; {oha_ver}; Python {platform.python_version()}")
    w(f"- layout: mock + gateway pinned to CPU 0, load generator (oha / raw-socket client) on CPU 1; "
      + (f"gateway on SQLite {db} (auth + usage recording on)" if not pgmode else
       f"gateway on PostgreSQL {db} + Redis {args.redis} (key prefix {redis_prefix}), auth + usage recording + "
       "prepaid holds + shared rate limits on; postgres and redis-server are NOT pinned (they run where the "
       "kernel puts them, i.e. they compete with the gateway or the load generator)"))
    w(f"- key limits: rpm {KEY_RPM:,}, tpm {KEY_TPM:,} (never refuse; checked on every request); billing prepaid (default)")
    w(f"- load average before / after: {load0[0]:.2f} / {load1[0]:.2f} "
      f"(anything well above ~1 means other work competed for the CPUs); run took {elapsed:.0f} s")
    w(f"- timed phases: {D} each; latency = request sent to end of response body (oha)")
    w("")

    def row(name, d, g, diff, target="", res=""):
        w(f"| {name} | {d} | {g} | {diff} | {target} | {res} |")

    w("### Latency and throughput: direct to the mock vs through the gateway")
    w("")
    w("| measurement | direct | gateway | gateway vs direct | target | result |")
    w("|---|---|---|---|---|---|")

    def lat_rows(title, d, g, added_target=None, p99_target=None):
        ratio = g["rps"] / d["rps"] if d["rps"] else float("nan")
        row(f"{title}: throughput", f_rps(d["rps"]), f_rps(g["rps"]), f"×{ratio:.2f}")
        added = g["p50"] - d["p50"]
        if added_target is not None:
            row(f"{title}: p50", f_ms(d["p50"]), f_ms(g["p50"]), f"{added:+.3f} ms",
                f"added ≤ {added_target} ms", verdict(added <= added_target))
        else:
            row(f"{title}: p50", f_ms(d["p50"]), f_ms(g["p50"]), f"{added:+.3f} ms")
        added99 = g["p99"] - d["p99"]
        if p99_target is not None:
            row(f"{title}: p99", f_ms(d["p99"]), f_ms(g["p99"]), f"{added99:+.3f} ms",
                f"gateway p99 ≤ {p99_target} ms", verdict(g["p99"] <= p99_target))
        else:
            row(f"{title}: p99", f_ms(d["p99"]), f_ms(g["p99"]), f"{added99:+.3f} ms")
        return added

    results = {}
    lat_rows("non-stream, saturation (-c 16)", R["sat_d"], R["sat_g"])
    results["cl"] = lat_rows("non-stream, 1 client closed loop", R["cl_d"], R["cl_g"], TARGET_ADDED_P50_CL_MS)
    results["q"] = lat_rows("non-stream, 1,000 req/s (-q 1000)", R["q_d"], R["q_g"],
                            TARGET_ADDED_P50_1K_MS, TARGET_P99_1K_MS)
    lat_rows("stream, saturation (-c 16)", R["ssat_d"], R["ssat_g"])
    lat_rows("stream, 1 client closed loop", R["scl_d"], R["scl_g"])
    td50, tg50 = statistics.median(tt["direct"]), statistics.median(tt["gateway"])
    td99, tg99 = pct(tt["direct"], 99), pct(tt["gateway"], 99)
    row(f"stream TTFB, median (n={len(tt['direct'])} each)", f_ms(td50), f_ms(tg50), f"{tg50 - td50:+.3f} ms",
        f"≤ {TARGET_TTFB_MS} ms", verdict(tg50 - td50 <= TARGET_TTFB_MS))
    row("stream TTFB, p99", f_ms(td99), f_ms(tg99), f"{tg99 - td99:+.3f} ms")
    w("")
    w("Throughput ratios are for the gateway and the mock sharing one CPU, so ×0.5 would mean the "
      "gateway costs as much CPU per request as the mock. TTFB is measured by a Python client "
      "(send → first byte of the SSE body, keep-alive, alternating direct/gateway); its own overhead "
      "is in both columns and cancels in the difference.")
    w("")

    # ---- resources
    def mib(kib):
        return kib / 1024.0

    w("### Gateway resources")
    w("")
    w("CPU = utime+stime of the gateway process from /proc, from the start of a phase until the gateway "
      "is idle again (so usage rows it writes after the load stops are included), divided by the "
      "requests oha completed in the phase.")
    w("")
    w("| measurement | value | target | result |")
    w("|---|---|---|---|")
    sat = R["sat_g"]

    def split(r):
        parts = sorted(r["threads_us"].items(), key=lambda kv: -kv[1])
        return ", ".join(f"{k} {v:.1f}" for k, v in parts if v >= 0.05) or "-"

    cpu_fail = []
    for k, label in (("sat_g", "saturation (-c 16)"), ("q_g", "1,000 req/s"), ("cl_g", "1 client closed loop")):
        r = R[k]
        ok = r["gw_cpu_us"] <= TARGET_CPU_US
        if not ok:
            cpu_fail.append(label)
        w(f"| CPU per non-stream request, {label}: {r['done']:,} requests, {r['gw_cpu_s']:.2f} s CPU "
          f"(µs by thread: {split(r)}) | {r['gw_cpu_us']:.1f} µs | ≤ {TARGET_CPU_US:.0f} µs | {verdict(ok)} |")
    w(f"| ... saturation: part spent after the load stopped (usage backlog {sat['rows_after_drain'] - sat['rows_at_end']:,} "
      f"rows, written in {sat['drain_s']:.1f} s) | {(sat['gw_cpu_s'] - sat['cpu_at_end']) / sat['done'] * 1e6:.1f} µs | | info |")
    w(f"| CPU per non-stream request, memory phase (200,000 requests at -c 16) | {mem_cpu_us:.1f} µs | | info |")
    w(f"| mock CPU per request, same saturation phase (for scale) | {sat['mock_cpu_us']:.1f} µs | | info |")
    for k, label in (("sat_d", "saturation (-c 16)"), ("q_d", "1,000 req/s"), ("cl_d", "1 client closed loop")):
        w(f"| the mock alone, hit directly, CPU per request, {label} (the per-request floor of socket and "
          f"wake-up cost at this load; the gateway has two sockets per request) | {R[k]['mock_cpu_us']:.1f} µs | | info |")
    for k, label in (("ssat_g", "saturation"), ("scl_g", "1 client")):
        r = R[k]
        w(f"| CPU per streamed request (16-token reply), {label}: {r['done']:,} requests "
          f"(µs by thread: {split(r)}) | {r['gw_cpu_us']:.1f} µs | | info |")
    w(f"| gateway CPU during the direct-only saturation phase (should be ~0) | {R['sat_d']['gw_cpu_s']:.2f} s | | info |")
    if pgmode:
        for k, label in (("sat_g", "saturation (-c 16)"), ("q_g", "1,000 req/s"), ("cl_g", "1 client closed loop"),
                         ("ssat_g", "stream saturation")):
            r = R[k]
            e = r["ext"]
            n = r["done"] or 1
            w(f"| {label}: PostgreSQL CPU per request (backends on {pg_db} {e['pg_s'] / n * 1e6:.1f} µs + shared "
              f"walwriter/bgwriter/checkpointer {e['pg_aux_s'] / n * 1e6:.1f} µs), redis-server "
              f"{e['redis_s'] / n * 1e6:.1f} µs; gateway+db+redis total "
              f"| {(r['gw_cpu_s'] + e['pg_s'] + e['pg_aux_s'] + e['redis_s']) / n * 1e6:.1f} µs | | info |")
            w(f"| {label}: PostgreSQL transactions per request (pg_stat_database xact_commit+rollback delta, "
              f"own count queries subtracted; a transaction may be several round trips) / Redis commands "
              f"per request (INFO commandstats; by command: "
              + ", ".join(f"{c} {v / n:.2f}" for c, v in sorted(e["rby"].items(), key=lambda kv: -kv[1]))
              + f") | {e['xacts'] / n:.2f} / {e['rcalls'] / n:.2f} | | info |")
            if e["pg_exited"]:
                problems.append(f"{label}: {e['pg_exited']} PostgreSQL backend(s) exited during the phase; their CPU is missing")

    m100, m200 = mib(mem["100k"]["VmRSS"]), mib(mem["200k"]["VmRSS"])
    growth = m200 - m100
    allowed = max(RSS_FLAT_MIB, RSS_FLAT_FRAC * m100)
    grew = "grew" if growth > allowed else "flat"
    m1, m2 = R["mem1"], R["mem2"]
    w(f"| RSS at start | {mib(mem['start']['VmRSS']):.1f} MiB | | info |")
    w(f"| RSS / peak (VmHWM) after {args.mem_n:,} requests (usage rows written so far: {m1['rows_at_end']:,}) "
      f"| {m100:.1f} / {mib(mem['100k']['VmHWM']):.1f} MiB | RSS ≤ {TARGET_RSS_MIB:.0f} MiB | {verdict(m100 <= TARGET_RSS_MIB)} |")
    w(f"| RSS / peak after a further {args.mem_n:,}, no pause (usage rows written so far: {m1['rows_at_end'] + m2['rows_at_end']:,}) "
      f"| {m200:.1f} / {mib(mem['200k']['VmHWM']):.1f} MiB ({growth:+.1f} MiB: {grew}) "
      f"| growth ≤ {allowed:.1f} MiB | {verdict(growth <= allowed)} |")
    w(f"| RSS / peak once the usage backlog was written ({mem_rows:,} rows, {m2['drain_s']:.1f} s later) "
      f"| {mib(mem['drained']['VmRSS']):.1f} / {mib(mem['drained']['VmHWM']):.1f} MiB | | info |")
    end_rss = mib(mem["end"]["VmRSS"])
    end_ok = end_rss <= TARGET_RSS_MIB
    w(f"| RSS / peak at the end of the run, after every phase below (extra check) "
      f"| {end_rss:.1f} / {mib(mem['end']['VmHWM']):.1f} MiB ({mem['end'].get('Threads', '?')} threads) "
      f"| ≤ {TARGET_RSS_MIB:.0f} MiB | {verdict(end_ok)} |")
    w("")
    w("Gateway memory and usage-writer backlog phase by phase (usage rows are written by a background "
      "task; 'pending' = rows not yet in the database when the load stopped):")
    w("")
    w("| phase | requests | rows pending at end of load | time until idle | RSS at end of load | RSS once idle |")
    w("|---|---|---|---|---|---|")
    for k in ("mem1", "mem2", "sat_g", "cl_g", "q_g", "ssat_g", "scl_g"):
        r = R[k]
        pending = r["done"] - r["rows_at_end"] if k != "mem2" else \
            R["mem1"]["done"] + r["done"] - R["mem1"]["rows_at_end"] - r["rows_at_end"]
        drain = f"{r['drain_s']:.1f} s" if r["drain_s"] == r["drain_s"] else "(no pause)"
        idle = f"{mib(r['mem_after_drain']['VmRSS']):.1f} MiB" if r["drain_s"] == r["drain_s"] else "-"
        w(f"| {r['name']} | {r['done']:,} | {max(pending, 0):,} | {drain} | {mib(r['mem_at_end']['VmRSS']):.1f} MiB | {idle} |")
    w("")

    # ---- no buffering
    w(f"### No buffering: {ntok} tokens paced by the mock at {tps} tokens/s (expected gap {1000 / tps:.0f} ms)")
    w("")
    w("| path | SSE events | token events | first token at | last token at | gap between tokens min / median / max | result |")
    w("|---|---|---|---|---|---|---|")
    expect = 1000.0 / tps
    pace_ok = True
    for name, evs in [("direct", pace_d)] + [(f"gateway #{i + 1}", e) for i, e in enumerate(pace_g)]:
        toks = content_events(evs)
        gaps = [b - a for a, b in zip(toks, toks[1:])]
        if len(toks) < 2:
            ok = False
            gtxt = "n/a"
        else:
            ok = min(gaps) >= 0.5 * expect and max(gaps) <= 2.0 * expect
            gtxt = f"{min(gaps):.1f} / {statistics.median(gaps):.1f} / {max(gaps):.1f} ms"
        if name != "direct":
            pace_ok = pace_ok and ok
        w(f"| {name} | {len(evs)} | {len(toks)} | {toks[0] if toks else float('nan'):.1f} ms "
          f"| {toks[-1] if toks else float('nan'):.1f} ms | {gtxt} | {verdict(ok)} |")
    w("")
    w(f"Pass = every gap between consecutive token events is within {0.5 * expect:.0f}–{2 * expect:.0f} ms "
      "(events arrive as they are produced, not all at the end). Times are from sending the request.")
    w("")
    w("Arrival times through the gateway (run #1), ms after send: "
      + ", ".join(f"{t:.1f}" for t, _ in pace_g[0]))
    w("")

    # ---- summary
    fails = []
    if cpu_fail:
        fails.append("gateway CPU per request (" + ", ".join(cpu_fail) + ")")
    if results["cl"] > TARGET_ADDED_P50_CL_MS:
        fails.append("added p50, closed loop")
    if results["q"] > TARGET_ADDED_P50_1K_MS:
        fails.append("added p50 at 1,000 req/s")
    if R["q_g"]["p99"] > TARGET_P99_1K_MS:
        fails.append("p99 at 1,000 req/s")
    if tg50 - td50 > TARGET_TTFB_MS:
        fails.append("streaming TTFB")
    if m100 > TARGET_RSS_MIB:
        fails.append("RSS after 100k")
    if growth > allowed:
        fails.append("RSS growth")
    if not end_ok:
        fails.append("RSS at the end of the run (extra check)")
    if not pace_ok:
        fails.append("no buffering")
    w("### Summary")
    w("")
    w(f"- targets failed: {', '.join(fails) if fails else 'none'}")
    if problems:
        for p in problems:
            w(f"- INVALID DATA: {p}")
    else:
        w("- every request in every phase answered 200")
    w("")

    text = "\n".join(L)
    summ = {"backend": bname, "R": R, "fails": fails, "problems": list(problems), "added_cl": results["cl"],
            "ttfb_added": tg50 - td50, "mem100": m100}
    # if a redis key with our prefix is left (they expire anyway), remove it
    if pgmode:
        try:
            keys = redis_cli("--scan", "--pattern", redis_prefix + "*").split()
            for i in range(0, len(keys), 500):
                redis_cli("DEL", *keys[i:i + 500])
        except RuntimeError as e:
            log(f"WARNING: {e}")
    return (2 if problems else 0), text, summ


def side_by_side(S, load0, load1, elapsed, args):
    L = []
    w = L.append
    cpu_model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    w("# Token Router benchmark: SQLite vs PostgreSQL + Redis")
    w("")
    w(f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')}")
    w(f"- machine: nproc {os.cpu_count()}, {cpu_model}, Linux {platform.release()}")
    w(f"- commit: {commit or '?'}{' (uncommitted changes)' if dirty else ''}")
    w(f"- load average before / after the whole run: {load0[0]:.2f} / {load1[0]:.2f} "
      f"(well above ~1 = other work competed for the CPUs); run took {elapsed:.0f} s; {args.duration}s per timed phase")
    w("")
    w("## Side by side (non-streamed requests)")
    w("")
    w("CPU per request = utime+stime from /proc over the phase until the gateway is idle again, ÷ requests. "
      "'+db+redis' adds the PostgreSQL processes serving the run's database (plus the shared WAL writer, "
      "background writer and checkpointer) and redis-server; with SQLite the database work is inside the gateway.")
    w("")
    names = [s["backend"] for s in S]
    w("| measurement | " + " | ".join(names) + " |")
    w("|---|" + "---|" * len(S))

    def tot(s, k):
        r = s["R"][k]
        e = r.get("ext")
        extra = (e["pg_s"] + e["pg_aux_s"] + e["redis_s"]) if e else 0.0
        return (r["gw_cpu_s"] + extra) / r["done"] * 1e6 if r["done"] else float("nan")

    def line(label, f):
        w(f"| {label} | " + " | ".join(f(s) for s in S) + " |")

    line("saturation (-c 16): gateway throughput (× direct)",
         lambda s: f"{s['R']['sat_g']['rps']:,.0f} req/s (×{s['R']['sat_g']['rps'] / s['R']['sat_d']['rps']:.2f})")
    line("saturation: CPU 0 (gateway + mock) / CPU 1 (load; database) busy — below ≈ 90 % on CPU 0 the gateway "
         "was waiting, not saturated (see bench/ratio.py)",
         lambda s: f"{s['R']['sat_g']['busy'][0]:.0%} / {s['R']['sat_g']['busy'][1]:.0%}")
    line("saturation: gateway CPU per request, gateway only", lambda s: f"{s['R']['sat_g']['gw_cpu_us']:.1f} µs")
    line("saturation: CPU per request, gateway + db + redis", lambda s: f"{tot(s, 'sat_g'):.1f} µs")
    line("1,000 req/s: CPU per request, gateway only / + db + redis",
         lambda s: f"{s['R']['q_g']['gw_cpu_us']:.1f} / {tot(s, 'q_g'):.1f} µs")
    line("1 client closed loop: CPU per request, gateway only / + db + redis",
         lambda s: f"{s['R']['cl_g']['gw_cpu_us']:.1f} / {tot(s, 'cl_g'):.1f} µs")
    line("1 client closed loop: added p50 (target ≤ 0.1 ms)", lambda s: f"{s['added_cl']:+.3f} ms")
    line("1,000 req/s: added p50 / gateway p99",
         lambda s: f"{s['R']['q_g']['p50'] - s['R']['q_d']['p50']:+.3f} / {s['R']['q_g']['p99']:.3f} ms")
    line("stream TTFB added (median)", lambda s: f"{s['ttfb_added']:+.3f} ms")

    def rt(k):
        def f(s):
            e = s["R"][k].get("ext")
            n = s["R"][k]["done"] or 1
            return f"{e['xacts'] / n:.2f} pg xact / {e['rcalls'] / n:.2f} redis cmd" if e else "- (in-process)"
        return f
    line("round trips per request, saturation", rt("sat_g"))
    line("round trips per request, 1 client closed loop", rt("cl_g"))
    line("targets failed", lambda s: ", ".join(s["fails"]) or "none")
    line("invalid data", lambda s: "; ".join(s["problems"]) or "none")
    w("")
    base = next((s for s in S if s["backend"] == "SQLite"), None)
    for s in S:
        if base is None or s is base:
            continue
        for k, label in (("sat_g", "saturation"), ("q_g", "1,000 req/s"), ("cl_g", "1 client closed loop")):
            g = s["R"][k]["gw_cpu_us"] / base["R"][k]["gw_cpu_us"]
            t = tot(s, k) / tot(base, k)
            ok = t <= 1.5
            w(f"- **{s['backend']} ÷ SQLite CPU per request, {label}: ×{t:.2f} gateway+db+redis "
              f"(target ≤ ×1.5: {'PASS' if ok else 'FAIL'}), ×{g:.2f} gateway only**")
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())

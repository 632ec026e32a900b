#!/usr/bin/env python3
"""Token Router against stock nginx as its upstream (issue 18): nginx answers a fixed body
with `return 200`, so the upstream costs next to nothing and the gateway's own CPU per
request stands out. In one run: nginx alone and the gateway in front of it, for a JSON
answer, an OpenAI-compatible stream (14 SSE events) and an Anthropic stream the gateway
translates; then the added time to first byte at low load. nginx and the gateway share
CPU 0, the load generator runs on CPU 1 (as in bench.py).

Started by bench/nginx.sh, which installs nginx and builds the binary.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the shared pieces: process control, oha, the raw client)
from bench import Conn, Oha, cpu_seconds, die, log, mem_kib, pct, run_cli, start_server  # noqa: E402

MODEL_JSON, MODEL_SSE, MODEL_ANTHROPIC = "bench-json", "bench-sse", "bench-anthropic"


def chat_answer():
    return {
        "id": "chatcmpl-nginx", "object": "chat.completion", "created": 1700000000, "model": "nginx-gpt",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the fixed upstream."},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
    }


def chat_stream():
    """14 events (role, 11 pieces of text, the finish, the usage) and [DONE]."""
    def chunk(delta, finish=None, usage=None):
        c = {"id": "chatcmpl-nginx", "object": "chat.completion.chunk", "created": 1700000000, "model": "nginx-gpt",
             "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if usage:
            c["usage"] = usage
        return "data: " + json.dumps(c, separators=(",", ":")) + "\n\n"
    words = "Hello from the fixed upstream , one word at a time for the gateway".split()[:11]
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": w + " "}) for w in words]
    events.append(chunk({}, "stop"))
    events.append(chunk(None, usage={"prompt_tokens": 9, "completion_tokens": 11, "total_tokens": 20}))
    return "".join(events) + "data: [DONE]\n\n"


def anthropic_stream():
    def event(name, data):
        return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
    message = {"id": "msg_nginx", "type": "message", "role": "assistant", "model": "claude-nginx", "content": [],
               "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 9, "output_tokens": 1}}
    out = [event("message_start", {"type": "message_start", "message": message}),
           event("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {"type": "text", "text": ""}})]
    words = "Hello from the fixed upstream , one word at a time for".split()[:10]
    out += [event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": w + " "}}) for w in words]
    out.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    out.append(event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                                           "stop_sequence": None},
                                       "usage": {"output_tokens": 10}}))
    out.append(event("message_stop", {"type": "message_stop"}))
    return "".join(out)


def nginx_string(text):
    """A body as an nginx quoted string (`\\n` escapes; no `$`, which would be a variable)."""
    if "$" in text:
        die("a fixed body may not contain '$'")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_conf(wd, port):
    return f"""daemon off;
worker_processes 1;
pid {wd}/nginx.pid;
error_log {wd}/nginx.error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_body_temp_path {wd}/nginx-body;
    server {{
        listen 127.0.0.1:{port} reuseport;
        location = /v1/chat/completions {{
            default_type application/json;
            return 200 {nginx_string(json.dumps(chat_answer(), separators=(",", ":")))};
        }}
        location = /sse/v1/chat/completions {{
            default_type text/event-stream;
            return 200 {nginx_string(chat_stream())};
        }}
        location = /anthropic/v1/messages {{
            default_type text/event-stream;
            return 200 {nginx_string(anthropic_stream())};
        }}
        location / {{ return 404; }}
    }}
}}
"""


def gateway_conf(port):
    models = "".join(bench.model_toml(model, provider, upstream)
                     for model, provider, upstream in ((MODEL_JSON, "nginx", "nginx-gpt"),
                                                       (MODEL_SSE, "nginx-sse", "nginx-gpt"),
                                                       (MODEL_ANTHROPIC, "nginx-anthropic", "claude-nginx")))
    return f"""[[providers]]
name = "nginx"
kind = "openai"
base_url = "http://127.0.0.1:{port}/v1"

[[providers]]
name = "nginx-sse"
kind = "openai"
base_url = "http://127.0.0.1:{port}/sse/v1"

[[providers]]
name = "nginx-anthropic"
kind = "anthropic"
base_url = "http://127.0.0.1:{port}/anthropic/v1"
api_key = "not-checked"
{models}"""


def quiet(pid, timeout=30.0):
    """Waits until the process has stopped using CPU (the usage writer has caught up)."""
    last, deadline = cpu_seconds(pid), time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.3)
        now = cpu_seconds(pid)
        if now - last < 0.003:
            return
        last = now


def phase(oha, url, body, key, pids, duration, name):
    quiet(pids[0])
    before = [cpu_seconds(p) for p in pids]
    r = oha.run(url, body, key, ["-c", "16", "-z", f"{duration}s"])
    quiet(pids[0])
    after = [cpu_seconds(p) for p in pids]
    if r["non200"] or r["errors"]:
        die(f"{name}: non-200 answers {r['non200']} or errors {r['errors']}")
    done = max(r["done"], 1)
    r["cpu_us"] = [(a - b) / done * 1e6 for a, b in zip(after, before)]
    r["name"] = name
    log(f"{name}: {r['rps']:,.0f} req/s, CPU/req " + ", ".join(f"{c:.1f} µs" for c in r["cpu_us"]))
    return r


def added_ttfb(nginx_port, gw_port, key, n):
    """Alternating single requests at low load: send -> first body byte, gateway minus nginx."""
    direct, via = Conn(nginx_port), Conn(gw_port)
    times = {"direct": [], "gateway": []}
    body = {"model": MODEL_SSE, "messages": [{"role": "user", "content": "hello"}], "stream": True}
    for i in range(n + 50):
        for name, conn, path, k in (("direct", direct, "/sse/v1/chat/completions", None),
                                    ("gateway", via, "/v1/chat/completions", key)):
            t0, t1, status, answer = conn.request(path, body, k)
            if status != 200 or t1 is None or not answer.rstrip().endswith(b"data: [DONE]"):
                die(f"TTFB {name}: HTTP {status} {answer[-200:]!r}")
            if i >= 50:
                times[name].append((t1 - t0) / 1e6)
        time.sleep(0.002)
    direct.close()
    via.close()
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--nginx", default="nginx")
    ap.add_argument("--oha", default="oha")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--ttfb-n", type=int, default=1000)
    ap.add_argument("--mem-n", type=int, default=1_000_000,
                    help="requests of the memory phase (RSS after a tenth of them and after all; 0: skip)")
    args = ap.parse_args()
    wd, B = args.workdir, args.bin
    srv_pin, load_pin = (["taskset", "-c", "0"], 1) if (os.cpu_count() or 1) >= 2 else ([], None)
    if load_pin is not None:
        os.sched_setaffinity(0, {load_pin})
    oha = Oha(args.oha, load_pin)
    load0 = os.getloadavg()
    try:
        port = free_port()
        with open(f"{wd}/nginx.conf", "w") as f:
            f.write(nginx_conf(wd, port))
        os.makedirs(f"{wd}/nginx-body", exist_ok=True)
        log(f"starting nginx on port {port}")
        nginx = subprocess.Popen(srv_pin + [args.nginx, "-p", wd, "-c", f"{wd}/nginx.conf"],
                                 stdout=subprocess.DEVNULL, stderr=open(f"{wd}/nginx.log", "w"))
        bench.CHILDREN.append(nginx)
        with open(args.pidfile, "a") as f:
            f.write(f"{nginx.pid}\n")
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if nginx.poll() is not None or time.time() > deadline:
                    die(f"nginx did not start: {open(f'{wd}/nginx.log').read()[-1000:]}")
                time.sleep(0.05)
        # nginx runs a master and one worker: the worker is the one that answers.
        workers = subprocess.run(["pgrep", "-P", str(nginx.pid)], capture_output=True, text=True).stdout.split()
        npid = int(workers[0]) if workers else nginx.pid
        db = f"sqlite://{wd}/nginx-bench.db"
        cfg = f"{wd}/nginx-bench.toml"
        with open(cfg, "w") as f:
            f.write(gateway_conf(port))
        run_cli([B, "--database", db, "accounts", "create", "bench", "--balance", "1000000"])
        kj = run_cli([B, "--database", db, "keys", "create", "--account", "bench", "--json",
                      "--rpm", str(bench.KEY_RPM), "--tpm", str(bench.KEY_TPM)]).strip().splitlines()[-1]
        key = json.loads(kj)["key"]
        gw, gw_port = start_server(
            "gateway", srv_pin + [B, "--database", db, "--config", cfg, "serve", "--listen", "127.0.0.1:0"],
            r"tokenrouter listening on http://127\.0\.0\.1:(\d+)", f"{wd}/gateway.log", args.pidfile)
        gpid = gw.pid
        direct = f"http://127.0.0.1:{port}"
        via = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        ask = lambda model, stream=False: dict({"model": model, "messages": [{"role": "user", "content": "hello"}]},
                                                **({"stream": True} if stream else {}))
        log("warm-up")
        oha.run(via, ask(MODEL_JSON), key, ["-c", "16", "-n", "20000"])
        oha.run(f"{direct}/v1/chat/completions", ask(MODEL_JSON), None, ["-c", "16", "-n", "20000"])
        D = args.duration
        R = {
            "json_d": phase(oha, f"{direct}/v1/chat/completions", ask(MODEL_JSON), None, [npid, gpid], D, "JSON nginx"),
            "json_g": phase(oha, via, ask(MODEL_JSON), key, [gpid, npid], D, "JSON gateway"),
            "sse_d": phase(oha, f"{direct}/sse/v1/chat/completions", ask(MODEL_SSE, True), None, [npid, gpid], D,
                           "SSE nginx"),
            "sse_g": phase(oha, via, ask(MODEL_SSE, True), key, [gpid, npid], D, "SSE gateway"),
            "ant_d": phase(oha, f"{direct}/anthropic/v1/messages", ask(MODEL_ANTHROPIC, True), None, [npid, gpid], D,
                           "Anthropic SSE nginx"),
            "ant_g": phase(oha, via, ask(MODEL_ANTHROPIC, True), key, [gpid, npid], D, "Anthropic SSE gateway (translated)"),
        }
        log(f"TTFB at low load, {args.ttfb_n} requests each")
        tt = added_ttfb(port, gw_port, key, args.ttfb_n)
        rss = mem_kib(gpid)["VmRSS"] / 1024
        mem = memory(oha, via, ask(MODEL_JSON), key, gpid, args.mem_n) if args.mem_n else None
    finally:
        bench.kill_children()
    load1 = os.getloadavg()
    text = report(R, tt, rss, mem, args, load0, load1)
    print(text)
    with open(args.out, "w") as f:
        f.write(text)
    log(f"report written to {args.out}")


def memory(oha, url, body, key, pid, n):
    """RSS after a tenth of `n` JSON requests and after all `n` (the rest in 9 runs), each
    once the usage writer has caught up."""
    tenth = n // 10
    log(f"memory: {tenth:,} requests")
    oha.run(url, body, key, ["-c", "16", "-n", str(tenth)])
    quiet(pid)
    first = mem_kib(pid)
    for i in range(9):
        log(f"memory: {tenth:,} more ({i + 2}/10)")
        r = oha.run(url, body, key, ["-c", "16", "-n", str(tenth)])
        if r["non200"] or r["errors"]:
            die(f"memory phase: non-200 answers {r['non200']} or errors {r['errors']}")
    quiet(pid)
    last = mem_kib(pid)
    return {"n": n, "tenth": tenth, "first": first["VmRSS"] / 1024, "last": last["VmRSS"] / 1024,
            "peak": last["VmHWM"] / 1024}


def report(R, tt, rss, mem, args, load0, load1):
    def row(label, d, g):
        own = g["cpu_us"][0]
        return (f"| {label} | {d['rps']:,.0f} | {g['rps']:,.0f} | {g['rps'] / d['rps']:.2f} | "
                f"{d['cpu_us'][0]:.1f} | **{own:.1f}** | {g['cpu_us'][1]:.1f} | {own / d['cpu_us'][0]:.2f} |")
    d50, g50 = pct(tt["direct"], 50), pct(tt["gateway"], 50)
    lines = [
        "# Token Router in front of nginx (`bench/nginx.sh`)",
        "",
        f"- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {args.duration} s per phase, 16 connections "
        f"(oha on CPU 1); nginx (one worker, `return 200` of a fixed body) and the gateway share CPU 0; "
        "SQLite, auth + RPM/TPM limits + prepaid billing on",
        f"- load average before/after: {load0[0]:.2f} / {load1[0]:.2f} (figures are only comparable on a quiet machine)",
        "",
        "| answer | nginx alone req/s | via gateway req/s | ratio | nginx alone CPU µs/req | gateway CPU µs/req "
        "| nginx CPU µs/req behind it | gateway ÷ nginx CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        row("JSON (chat completion)", R["json_d"], R["json_g"]),
        row("SSE, 14 events (passed through)", R["sse_d"], R["sse_g"]),
        row("Anthropic SSE, 15 events (translated)", R["ant_d"], R["ant_g"]),
        "",
        f"- translated stream ÷ pass-through stream, gateway CPU: "
        f"{R['ant_g']['cpu_us'][0] / R['sse_g']['cpu_us'][0]:.2f}×",
        f"- time to first byte, streamed, one request at a time ({len(tt['direct'])} each): nginx p50 {d50:.3f} ms, "
        f"gateway p50 {g50:.3f} ms, **added {g50 - d50:+.3f} ms** (p99 added "
        f"{pct(tt['gateway'], 99) - pct(tt['direct'], 99):+.3f} ms)",
        f"- gateway RSS at the end of the timed phases: {rss:.1f} MiB",
    ]
    if mem:
        growth = (mem["last"] - mem["first"]) / mem["first"] * 100
        lines.append(f"- memory, JSON at -c 16: RSS after {mem['tenth']:,} requests {mem['first']:.1f} MiB, after "
                     f"{mem['n']:,} **{mem['last']:.1f} MiB ({growth:+.1f} %)**, peak {mem['peak']:.1f} MiB "
                     f"(target: within 10 % and ≤ 40 MiB)")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reads `perf script -F comm,tid,time,event,trace` of CPU 0 (system calls, switches,
wake-ups) during lone requests through the gateway (argument: its pid); prints the median
time of each phase of a request, in µs, from the request read off the client's socket:
until the hold is asked of the database's thread, the hold's trip there and back, until the
request is written to the upstream, the upstream's answer, and until the answer's first
bytes are written to the client."""
import collections
import os
import re
import statistics
import sys

gateway = sys.argv[1]
LINE = re.compile(r"^\s*(.+?)\s+(\d+)\s+([\d.]+):\s+(\S+):\s+(.*)$")
# x86-64 system call numbers: read, readv, recvfrom / write, writev, sendto, sendmsg.
READS, WRITES = {0, 19, 45}, {1, 20, 44, 46}
threads = {}  # the gateway's threads: tid -> name
try:
    for tid in os.listdir(f"/proc/{gateway}/task"):
        threads[int(tid)] = open(f"/proc/{gateway}/task/{tid}/comm").read().strip()
except OSError:
    pass

events = []
for line in sys.stdin:
    m = LINE.match(line)
    if m:
        comm, tid, t, event, rest = m.groups()
        events.append((int(tid), float(t) * 1e6, event, rest))

# Per gateway thread: the syscall in progress (number, fd), and what it woke.
pending = {}
calls = []  # (tid, start, end, nr, fd, result, woke)
for tid, t, event, rest in events:
    if event == "raw_syscalls:sys_enter":
        m = re.match(r"NR (\d+) \(([0-9a-f]+)", rest)
        if m:
            pending[tid] = [t, int(m.group(1)), int(m.group(2), 16), []]
    elif event == "raw_syscalls:sys_exit" and tid in pending:
        start, nr, fd, woke = pending.pop(tid)
        result = int(rest.rsplit("= ", 1)[1]) if "= " in rest else 0
        calls.append((tid, start, t, nr, fd, result, woke))
    elif event == "sched:sched_wakeup":
        m = re.search(r"comm=(.+?) pid=(\d+)", rest)
        # recorded on the waker's side, during one of its system calls
        if tid in pending and m:
            pending[tid][3].append(m.group(1))

gw = lambda tid: tid in threads
# The upstream's sockets: those whose writes woke nginx.
upstream = {fd for tid, start, end, nr, fd, result, woke in calls if gw(tid) and nr in WRITES and "nginx" in woke}

# A request: a read of > 100 bytes on a socket that is not the upstream's, by a worker.
# The threads holds are taken on: sqlx's SQLite worker (before 2026-12-07), then our own.
DATABASE_THREADS = ("sqlx", "sqlite-writer")
phases = collections.defaultdict(list)
i, n = 0, 0
while i < len(calls):
    tid, start, end, nr, fd, result, woke = calls[i]
    if not (gw(tid) and threads[tid].startswith("tokio") and nr in READS and fd not in upstream and result > 100):
        i += 1
        continue
    t0, client = end, fd
    marks = {}
    j = i + 1
    while j < len(calls):
        tid2, s2, e2, nr2, fd2, r2, woke2 = calls[j]
        if gw(tid2) and threads[tid2].startswith("tokio"):
            if "ask" not in marks and any(w.startswith(DATABASE_THREADS) for w in woke2):
                marks["ask"] = s2
            if nr2 in WRITES and fd2 in upstream and "up" not in marks:
                marks["up"] = s2
            if nr2 in READS and fd2 in upstream and r2 > 0 and "back" not in marks:
                marks["back"] = e2
            if nr2 in WRITES and fd2 == client:
                marks["out"] = s2
                break
        if gw(tid2) and threads[tid2].startswith(DATABASE_THREADS) and "ask" in marks and "up" not in marks:
            marks["held"] = e2  # the database thread's last system call before the upstream call
        j += 1
    i = j + 1
    if {"ask", "held", "up", "back", "out"} <= marks.keys():
        n += 1
        phases["1. request read -> hold asked"].append(marks["ask"] - t0)
        phases["2. hold: database thread"].append(marks["held"] - marks["ask"])
        phases["3. hold answered -> request to upstream"].append(marks["up"] - marks["held"])
        phases["4. upstream (nginx) answers"].append(marks["back"] - marks["up"])
        phases["5. answer read -> first bytes to client"].append(marks["out"] - marks["back"])
        phases["total, request read -> first bytes out"].append(marks["out"] - t0)
print(f"requests traced: {n} (gateway threads: {', '.join(sorted(set(threads.values())))})")
for name in sorted(phases):
    xs = phases[name]
    print(f"  {name:45s} median {statistics.median(xs):7.1f} µs   p90 {sorted(xs)[int(.9 * (len(xs) - 1))]:7.1f}")

#!/usr/bin/env python3
"""Per-thread CPU ticks and context switches of a process.

`threads.py snap PID` prints a snapshot as JSON; `threads.py diff A.json B.json N` prints,
per thread name, user and system CPU µs and voluntary / involuntary switches per request
between the two snapshots (N requests)."""
import json
import os
import sys


def snapshot(pid):
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
            fields = stat[stat.rindex(")") + 2:].split()
            switches = {line.split(":")[0]: int(line.split(":")[1])
                        for line in open(f"/proc/{pid}/task/{tid}/status") if "ctxt_switches" in line}
            threads[tid] = [stat[stat.index("(") + 1:stat.rindex(")")], int(fields[11]), int(fields[12]),
                            switches["voluntary_ctxt_switches"], switches["nonvoluntary_ctxt_switches"]]
        except (OSError, ValueError, KeyError):
            pass  # a thread that ended meanwhile
    return threads


def diff(a, b, n):
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    by_name, total = {}, [0] * 4
    for tid, now in b.items():
        then = a.get(tid, [now[0], 0, 0, 0, 0])
        sums = by_name.setdefault(now[0], [0] * 4)
        for i in range(4):
            sums[i] += now[i + 1] - then[i + 1]
            total[i] += now[i + 1] - then[i + 1]
    rows = sorted(by_name.items(), key=lambda item: -(item[1][0] + item[1][1])) + [("TOTAL", total)]
    for name, (user, system, voluntary, involuntary) in rows:
        if user or system or voluntary or involuntary:
            print(f"{name:24s} user {user * tick_us / n:6.1f} µs  sys {system * tick_us / n:6.1f} µs  "
                  f"switches {voluntary / n:5.2f} + {involuntary / n:5.2f} involuntary")


if sys.argv[1] == "snap":
    print(json.dumps(snapshot(sys.argv[2])))
else:
    diff(json.load(open(sys.argv[2])), json.load(open(sys.argv[3])), float(sys.argv[4]))

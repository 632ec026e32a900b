#!/usr/bin/env python3
"""Reads `perf script -F comm,event,sym` of futex/write system calls on stdin; prints per
thread and system call the frames they came from (the first that names the project's code,
a lock or a channel), with counts per request (argument: requests in the recorded window)."""
import collections
import re
import sys

ORIGIN = re.compile(r"tokenrouter[a-z_]*::|Mutex>::|flume::|Unparker::unpark|Thread>::park|return_to_pool|Condvar")
# Generic frames (a lock, a park) are followed by the first frame that says whose.
GENERIC = re.compile(r"Mutex>::|Thread>::park|Condvar")
WHOSE = re.compile(r"tokenrouter[a-z_]*::|flume::|sqlx|tokio::")
requests = max(int(sys.argv[1]), 1)
counts = collections.Counter()
thread, call, frames = None, None, []


def done():
    if thread is None:
        return
    at = next((i for i, f in enumerate(frames) if ORIGIN.search(f)), 0)
    origin = frames[at][:70] if frames else "?"
    if frames and GENERIC.search(frames[at]):
        whose = next((f for f in frames[at + 1:] if WHOSE.search(f) and not GENERIC.search(f)), "")
        origin += " < " + whose[:70]
    counts[(thread, call, origin)] += 1


for line in sys.stdin:
    if not line.strip():
        done()
        thread, frames = None, []
    elif not line[0].isspace():
        parts = line.split()
        thread = parts[0]
        call = next((p.split(":")[1].replace("sys_enter_", "") for p in parts if p.startswith("syscalls:")), "?")
    else:
        frame = line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else line
        frames.append(re.sub(r"\+0x[0-9a-f]+.*| \(inlined\)", "", frame.strip()))
done()
print(f"system calls per request ({requests} requests while recording), by thread and origin:")
for (thread, call, origin), n in counts.most_common(25):
    print(f"{n / requests:7.3f}  {thread:16} {call:6} {origin}")

#!/usr/bin/env python3
"""CPU of the three processes of a `bench-local.sh` run, for CPU time per request.

Run beside `bench-local.sh` (same machine): waits for the harness (fluxbase-loadtest) and
the server (fluxbase) to appear, waits SKIP seconds (seeding, warm-up), then measures
WINDOW seconds of utime+stime of: the server (all threads), the harness, every process
under the server (the embedded PostgreSQL), the harness's own bare servers (`floor`: the
`rest --baseline http-floor` server or `ws-ceiling`'s, the harness binary started again
as its child; 0 otherwise), and the machine's busy time (/proc/stat). Prints cores used
by each; divide by the run's req/s for CPU seconds per request.

    loadtest/scripts/proc-cpu.py [SKIP=6] [WINDOW=8]
"""
import os
import sys
import time

SKIP = float(sys.argv[1]) if len(sys.argv) > 1 else 6
WINDOW = float(sys.argv[2]) if len(sys.argv) > 2 else 8
HZ = os.sysconf("SC_CLK_TCK")


def procs():
    """pid -> (comm, ppid, utime+stime ticks)."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            st = open(f"/proc/{p}/stat").read()
        except OSError:
            continue
        comm = st[st.index("(") + 1 : st.rindex(")")]
        rest = st[st.rindex(")") + 2 :].split()
        out[int(p)] = (comm, int(rest[1]), int(rest[11]) + int(rest[12]))
    return out


deadline = time.time() + 300
while True:
    ps = procs()
    loadtest = {p for p, (c, _, _) in ps.items() if c.startswith("fluxbase-loadt")}
    # The harness is the one not started by another harness process (its bare servers are).
    harness = sorted(p for p in loadtest if ps[p][1] not in loadtest)
    server = [p for p, (c, _, _) in ps.items() if c == "fluxbase"]
    if harness and server:
        break
    if time.time() > deadline:
        sys.exit("no harness and server running")
    time.sleep(0.1)
harness, server = harness[0], server[-1]
time.sleep(SKIP)


def sample():
    ps = procs()
    under = {server}
    grew = True
    while grew:
        grew = False
        for p, (_, ppid, _) in ps.items():
            if ppid in under and p not in under:
                under.add(p)
                grew = True
    pg = sum(ps[p][2] for p in under if p != server and p in ps)
    # Bare servers the harness started (they may start after this script: looked up each time).
    floor = sum(t for p, (c, ppid, t) in ps.items() if ppid == harness and c.startswith("fluxbase-loadt"))
    cpu = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    busy = sum(cpu) - cpu[3] - cpu[4]
    return (
        ps.get(server, ("", 0, 0))[2],
        ps.get(harness, ("", 0, 0))[2],
        pg,
        floor,
        busy,
        sum(cpu),
        time.time(),
    )


a = sample()
time.sleep(WINDOW)
b = sample()
dt = b[6] - a[6]
names = ["server", "harness", "postgres", "floor", "machine_busy"]
result = {n: (b[i] - a[i]) / HZ / dt for i, n in enumerate(names)}
result["machine_total_cores"] = (b[5] - a[5]) / HZ / dt
print(" ".join(f"{k}={v:.3f}" for k, v in result.items()))

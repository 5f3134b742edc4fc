"""Samples the memory of a process and all its descendants until stopped
(SIGTERM/SIGINT) or until the root exits, then prints one JSON line:

    {"peak_rss_kib": ..., "peak_pss_kib": ..., "samples": N, "peak_procs": ...,
     "peak_breakdown": [{"pid": .., "comm": .., "rss_kib": ..}, ...],
     "wall_s": ..., "server_cpu_s": ..., "machine_busy_cpu_s": ...}

peak_rss_kib is the largest sum of VmRSS over the tree seen in one sample
(pages shared between processes count once per process); peak_pss_kib the
same with Pss from smaps_rollup (shared pages split between their users).
server_cpu_s is the CPU time (user + system) the tree used between the first
and the last sample; machine_busy_cpu_s the CPU time all cores spent busy
(/proc/stat) meanwhile: the difference is what the load generator, this
sampler and anything else on the machine used.

    python rss_sampler.py ROOT_PID [INTERVAL_S]
    python rss_sampler.py ROOT_PID --once      (one sample)

Called by bench/serve/run.sh; reads /proc only (descendants are found from
each process's ppid, as /proc/PID/task/*/children is not always there).
"""

import json
import os
import signal
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
stop = False


def on_signal(*_):
    global stop
    stop = True


def processes():
    """{pid: (ppid, utime + stime in ticks)}"""
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        rest = stat[stat.rindex(b")") + 2:].split()
        procs[int(name)] = (int(rest[1]), int(rest[11]) + int(rest[12]))
    return procs


def tree(root, procs):
    pids, todo = [], [root]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(c for c, (pp, _) in procs.items() if pp == p)
    return pids


def machine_busy():
    with open("/proc/stat") as f:
        cpu = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is in user)
    return sum(cpu[:8]) - cpu[3] - cpu[4]


def field(path, key):
    with open(path, "rb") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def main():
    root = int(sys.argv[1])
    once = sys.argv[2:] == ["--once"]
    interval = float(sys.argv[2]) if len(sys.argv) > 2 and not once else 0.25
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    peak = {"peak_rss_kib": 0, "peak_pss_kib": 0, "samples": 0, "peak_procs": 0, "peak_breakdown": []}
    first = last = None  # (monotonic, tree cpu ticks, machine busy ticks)
    while not stop and os.path.exists(f"/proc/{root}"):
        procs = processes()
        busy = machine_busy()
        rss_sum = pss_sum = cpu_sum = 0
        parts = []
        for pid in tree(root, procs):
            try:
                rss = field(f"/proc/{pid}/status", b"VmRSS:")
                pss = field(f"/proc/{pid}/smaps_rollup", b"Pss:")
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
            except (OSError, ValueError):
                continue
            rss_sum += rss
            pss_sum += pss
            cpu_sum += procs[pid][1]
            parts.append({"pid": pid, "comm": comm, "rss_kib": rss})
        last = (time.monotonic(), cpu_sum, busy)
        first = first or last
        peak["samples"] += 1
        if rss_sum > peak["peak_rss_kib"]:
            peak["peak_rss_kib"] = rss_sum
            peak["peak_breakdown"] = parts
        peak["peak_pss_kib"] = max(peak["peak_pss_kib"], pss_sum)
        peak["peak_procs"] = max(peak["peak_procs"], len(parts))
        if once:
            break
        # sleep in short steps so that a stop signal ends us promptly
        end = time.monotonic() + interval
        while not stop and time.monotonic() < end:
            time.sleep(min(0.05, interval))
    if first and not once and os.path.exists(f"/proc/{root}"):
        # one last CPU reading, at the moment we were stopped
        procs = processes()
        last = (time.monotonic(), sum(procs[p][1] for p in tree(root, procs) if p in procs), machine_busy())
    if first:
        peak["wall_s"] = round(last[0] - first[0], 3)
        peak["server_cpu_s"] = round((last[1] - first[1]) / TICK, 2)
        peak["machine_busy_cpu_s"] = round((last[2] - first[2]) / TICK, 2)
    print(json.dumps(peak), flush=True)


if __name__ == "__main__":
    main()

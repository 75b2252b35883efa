"""Read-only memory bandwidth with N threads, for the decode bound of the engine benches (a decode step streams
every weight once: reads, no writes). A persistent helper: the benches start it once and ask for a measurement
between their rounds, so the figure and its spread come from the same minutes as the engine timings.

    python scripts/bench/bandwidth.py --threads 2 [--mib 1024]     then one line per measurement on stdin: passes

Each measurement: `passes` timed sums over a buffer far larger than the last-level cache (1 GiB by default against
tens of MiB), answered as one JSON line: the best pass in GB/s, every pass, and the share of the CPU that other
processes took meanwhile (/proc/stat busy time less this process's own)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def busy_seconds() -> float | None:
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mib", type=int, default=1024)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    buf = torch.ones(a.mib * 2**20 // 4, dtype=torch.float32)  # touched now: no page faults in the timed passes
    buf.sum()
    print(json.dumps({"ready": True, "bytes": buf.numel() * 4, "threads": a.threads}), flush=True)
    for line in sys.stdin:
        passes = max(1, int(line.strip() or 3))
        b0, c0, t0 = busy_seconds(), time.process_time(), time.perf_counter()
        rates = []
        for _ in range(passes):
            t = time.perf_counter()
            buf.sum()
            rates.append(buf.numel() * 4 / (time.perf_counter() - t) / 1e9)
        wall, b1 = time.perf_counter() - t0, busy_seconds()
        other = None if b0 is None or b1 is None else max(0.0, (b1 - b0) - (time.process_time() - c0)) / (wall * os.cpu_count())
        print(json.dumps({"GBs": max(rates), "passes": rates, "otherShare": other or 0.0}), flush=True)


if __name__ == "__main__":
    main()

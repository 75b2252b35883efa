"""A/B of the process environment around one export's decode step (not a test): settings that act when the process
starts, such as GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (transparent huge pages for onnxruntime's weight buffers), can
only be compared in separate processes. Rounds alternate A and B processes (order flipped every round); each loads the
export, prefills a 128-token prompt and times decode steps as engine_step_ab.py does (1 thread, spinning off, CPU
and wall time). Reports each process's median, the medians over the rounds and B/A, and the process's huge-page
memory (AnonHugePages of /proc/self/smaps_rollup) so a setting that did nothing shows.

    .venv/bin/python scripts/bench/engine_env_ab.py --export DIR --b-env GLIBC_TUNABLES=glibc.malloc.hugetlb=1
        [--a-env K=V] [--rounds 3] [--steps 24] [--slots 192] [--threads 1]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def child(a) -> None:
    import numpy as np

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from engine_step_ab import Leg

    leg = Leg(a.export, a.threads)
    leg.reset(a.slots)
    prompt = [int(x) for x in np.random.default_rng(0).integers(5, 30000, 128)]
    nxt = leg.step(prompt)
    nxt = leg.step([nxt])
    wall, cpu = [], []
    for _ in range(a.steps):
        w, c = time.perf_counter(), time.process_time()
        nxt = leg.step([nxt])
        wall.append((time.perf_counter() - w) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    huge = 0
    with open("/proc/self/smaps_rollup", encoding="utf-8") as f:
        for line in f:
            if line.startswith("AnonHugePages:"):
                huge = int(line.split()[1]) // 1024
    print(json.dumps({"cpu_ms": statistics.median(cpu), "wall_ms": statistics.median(wall), "anon_huge_mib": huge}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--export", required=True)
    p.add_argument("--a-env", action="append", default=[])
    p.add_argument("--b-env", action="append", default=[])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--slots", type=int, default=192)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--child", action="store_true")
    a = p.parse_args()
    if a.child:
        return child(a)
    envs = {k: dict(kv.split("=", 1) for kv in getattr(a, f"{k.lower()}_env")) for k in ("A", "B")}
    args = [sys.executable, os.path.abspath(__file__), "--child", "--export", a.export, "--steps", str(a.steps),
            "--slots", str(a.slots), "--threads", str(a.threads)]
    runs = {"A": [], "B": []}
    report = {"export": a.export, "env": envs, "threads": a.threads, "steps": a.steps, "load_before": os.getloadavg()}
    for r in range(a.rounds):
        for k in ("A", "B") if r % 2 == 0 else ("B", "A"):
            out = subprocess.run(args, env={**os.environ, **envs[k]}, capture_output=True, text=True, check=True)
            runs[k].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps({"round": r, "leg": k, **runs[k][-1]}), file=sys.stderr)
    med = {k: {m: statistics.median(x[m] for x in v) for m in ("cpu_ms", "wall_ms", "anon_huge_mib")}
           for k, v in runs.items()}
    report.update(runs=runs, median=med, b_over_a_cpu=med["B"]["cpu_ms"] / med["A"]["cpu_ms"],
                  b_over_a_wall=med["B"]["wall_ms"] / med["A"]["wall_ms"], load_after=os.getloadavg())
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

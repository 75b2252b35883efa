"""Step-level A/B of two exports' decode step (not a test): onnxruntime (Python, the same 1.30 core as
onnxruntime-node) runs one decode step of A, then one of B, alternating, after the same prefill, with the engine's
slotted cache (free capacity after the filled positions). Each step is timed by wall clock and by the CPU time of
the process: with one intra-op thread and spinning off, CPU time is the step's own work, which other processes on a
loaded machine inflate far less than wall time. Reports medians and B/A ratios; steps where wall exceeds CPU by more
than 20% (the process waited for a core) are counted as disturbed and reported apart.

    .venv/bin/python scripts/bench/engine_step_ab.py --a EXPORT_A --b EXPORT_B [--threads 1] [--steps 64]
        [--prompt-tokens 128] [--slots 192,1024] [--a-config KEY=VALUE ...] [--b-config KEY=VALUE ...]

--a-config / --b-config set onnxruntime session config entries for one leg (they override the defaults above, e.g.
session.intra_op.allow_spinning=1, session.disable_prepacking=1), so one export under two settings is an A/B too;
with spinning on, CPU time counts the spin: compare wall time then.

Export formats 2 (attention_mask over masked slots), 3-4 (head-major slots with past_length) and 5 (position-major
slots, the filled rows passed as a view) are all driven, so an export made before a format change can be compared
with one made after.
"""
import argparse
import json
import os
import statistics
import time

import numpy as np
import onnxruntime as ort


class Leg:
    def __init__(self, export_dir: str, threads: int, config: dict[str, str] | None = None):
        with open(os.path.join(export_dir, "manifest.json"), encoding="utf-8") as f:
            m = json.load(f)
        self.m, self.version = m, m["format_version"]
        o = ort.SessionOptions()
        o.intra_op_num_threads = threads
        o.inter_op_num_threads = 1
        o.add_session_config_entry("session.intra_op.allow_spinning", "0")
        for key, value in (config or {}).items():
            o.add_session_config_entry(key, value)
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(os.path.join(export_dir, m["files"]["model"]), o,
                                            providers=["CPUExecutionProvider"])
        layers = m["num_layers"]
        self.past = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
        self.new = [f"new_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]

    def reset(self, slots: int):
        m = self.m
        shape = (slots, m["num_heads"], m["head_dim"]) if self.version >= 5 else (1, m["num_heads"], slots, m["head_dim"])
        self.slots = [np.zeros(shape, np.float32) for _ in self.past]
        self.length = 0

    def step(self, ids: list[int]) -> int:
        n, cap = len(ids), self.slots[0].shape[2]
        given = [s[:max(self.length, 1)] for s in self.slots] if self.version >= 5 else self.slots  # views, no copy
        feeds = {"input_ids": np.array([ids], np.int64), "logits_to_keep": np.array(1, np.int64),
                 **dict(zip(self.past, given))}
        if self.version >= 3:
            feeds["past_length"] = np.array(self.length, np.int64)
        else:
            mask = np.zeros((1, cap + n), np.int64)
            mask[0, :self.length] = 1
            mask[0, cap:] = 1
            feeds["attention_mask"] = mask
        out = self.session.run(["logits", *self.new], feeds)
        for slot, fresh in zip(self.slots, out[1:]):
            if self.version >= 5:
                slot[self.length:self.length + n] = fresh
            else:
                slot[:, :, self.length:self.length + n] = fresh
        self.length += n
        return int(out[0][0, -1].argmax())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--a", required=True)
    p.add_argument("--b", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--slots", default="192")
    p.add_argument("--a-config", action="append", default=[])
    p.add_argument("--b-config", action="append", default=[])
    a = p.parse_args()
    configs = {k: dict(kv.split("=", 1) for kv in getattr(a, f"{k.lower()}_config")) for k in ("A", "B")}
    legs = {"A": Leg(a.a, a.threads, configs["A"]), "B": Leg(a.b, a.threads, configs["B"])}
    prompt = [int(x) for x in np.random.default_rng(0).integers(5, 30000, a.prompt_tokens)]
    report = {"threads": a.threads, "prompt_tokens": a.prompt_tokens, "steps": a.steps, "config": configs,
              "load_before": os.getloadavg()}
    for slots in [int(s) for s in a.slots.split(",")]:
        times = {k: {"wall": [], "cpu": [], "disturbed": 0} for k in legs}
        nxt = {}
        for k, leg in legs.items():
            leg.reset(slots)
            nxt[k] = leg.step(prompt)
            leg.step([nxt[k]])  # a first decode step (onnxruntime's first run of a shape is slow)
        for _ in range(a.steps):
            for k, leg in legs.items():
                w, c = time.perf_counter(), time.process_time()
                nxt[k] = leg.step([nxt[k]])
                wall, cpu = (time.perf_counter() - w) * 1e3, (time.process_time() - c) * 1e3
                t = times[k]
                t["wall"].append(wall)
                t["cpu"].append(cpu)
                if wall > 1.2 * cpu * (1 if a.threads == 1 else 1 / a.threads):
                    t["disturbed"] += 1
        med = {k: {"wall_ms": statistics.median(t["wall"]), "cpu_ms": statistics.median(t["cpu"]),
                   "disturbed_steps": t["disturbed"]} for k, t in times.items()}
        report[f"slots_{slots}"] = {**med, "b_over_a_wall": med["B"]["wall_ms"] / med["A"]["wall_ms"],
                                    "b_over_a_cpu": med["B"]["cpu_ms"] / med["A"]["cpu_ms"]}
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

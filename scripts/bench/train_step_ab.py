"""The stop's cost on the training hot path (not a test): real training steps with and without it, interleaved.

A stop abandons a step mid-forward/backward (bloom_peft/stop.py, docs/trainer.md "Stop"); what that adds to every
step is `add_stop_checks`' hook on each transformer block (a forward hook, and a tensor hook that runs in backward)
and the RNG snapshot `compute_step` takes before the step. Both legs run the real loop body (`compute_step`,
`check_loss`, `apply_step`, `report` of a `train.set_up` run) on the same fixed batch, in one process, alternating
A,B then B,A each round:

- A (production): as `python -m bloom_peft train` runs.
- B (without): the bench takes the stop's hooks off the blocks and makes the RNG snapshot a no-op for its legs
  (the production path has no switch for either).

Each step is timed by wall clock and by the process's CPU time; steps in which other processes took more than
--max-other of the CPU (from /proc/stat) are flagged, and the ratios are taken over the unflagged rounds (all rounds
when none is clean, said so). The stop's pieces are also timed on their own (the RNG snapshot, one check() call,
one block with and without its hook) to explain the ratio.

    .venv/bin/python scripts/bench/train_step_ab.py [--cases embedded:full:8x256:40,560m:lora:2x64:16,...]
        [--rounds 20] [--warmup 2] [--leg-s 0.3] [--threads 2] [--scratch /tmp/bench-r] [--max-other 0.1]

A case is MODEL:METHOD:BATCHxMAX_LENGTH[:ROUNDS]; MODEL is `embedded` (models/bloom-tiny) or `560m` (bloom-560m
shapes, random weights from bench_model.build_model, saved once under --scratch: 2.2 GB; full fine-tuning of it
needs ~10 GB of memory). Prints the docs/benchmarks.md section on stderr and one JSON object (the last line of
stdout, its "markdown" field the same section).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "trainer/src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--cases", default="embedded:full:8x256:40,embedded:lora:8x256:40,embedded:lora:1x256:40,"
                                      "560m:lora:2x64:16,560m:full:1x64:8")
    p.add_argument("--rounds", type=int, default=20, help="A/B pairs of a case that names none")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps of each leg first")
    p.add_argument("--leg-s", type=float, default=0.3, help="a leg runs as many steps as fill this many seconds")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--scratch", default="/tmp/bench-r")
    p.add_argument("--max-other", type=float, default=0.10, help="others' CPU share above which a round is disturbed")
    return p.parse_args()


# ---------------------------------------------------------------- the machine
def cpu_busy() -> int:
    """Busy jiffies of all CPUs together (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # less idle and iowait


def timed(fn) -> dict:
    """Wall and CPU ms of fn(), and the share of all CPUs that other processes used meanwhile."""
    busy0 = cpu_busy()
    w, c = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    busy1 = cpu_busy()
    hz = os.sysconf("SC_CLK_TCK")
    ncpu = os.cpu_count() or 1
    others = max(0.0, (busy1 - busy0) / hz - cpu) / max(wall * ncpu, 1e-9)
    return {"wall_ms": wall * 1e3, "cpu_ms": cpu * 1e3, "other_share": min(others, 1.0)}


# ---------------------------------------------------------------- models and runs
def model_path(name: str, scratch: Path) -> str:
    if name == "embedded":
        return "embedded"
    from bench_model import SHAPES, build_model, pad_tokenizer
    from bloom_peft.paths import EMBEDDED_MODEL_DIR

    folder = scratch / name
    if not (folder / "model.safetensors").is_file():
        t = time.time()
        folder.mkdir(parents=True, exist_ok=True)
        build_model(name, scratch).save_pretrained(folder)
        print(f"[train_step_ab] saved random {name} weights to {folder} in {time.time() - t:.0f}s", file=sys.stderr)
        gc.collect()
    if not (folder / "tokenizer.json").is_file():
        # the embedded model's tokenizer, padded to the random model's vocabulary (the trainer refuses a cut-down one)
        for f in EMBEDDED_MODEL_DIR.iterdir():
            if f.name.startswith(("tokenizer", "special_tokens")):
                shutil.copy(f, folder / f.name)
        pad_tokenizer(folder / "tokenizer.json", SHAPES[name]["vocab_size"])
    return str(folder)


def set_up_run(model: str, method: str, batch: int, length: int, work: Path):
    """A real TrainingRun (train.set_up), silent, and one fixed batch of `batch` rows of `length` tokens."""
    from bloom_peft import train
    from bloom_peft.faults import NO_FAULTS
    from bloom_peft.protocol import EventEmitter
    from bloom_peft.stop import StopRequest

    run_dir = work / "run"
    config = {
        "version": 1, "run_name": "train-step-ab", "model": {"name_or_path": model}, "method": {"name": method},
        "data": {"format": "instruction", "train_file": str(ROOT / "examples/code-tasks/train.jsonl"), "eval_split": 0.0},
        "training": {"max_steps": 100000, "batch_size": batch, "grad_accum": 1, "max_length": length,
                     "learning_rate": 1e-5, "warmup_ratio": 0.0, "eval_every": 0, "save_every": 0,
                     "log_every": 100000, "precision": "fp32", "device": "cpu", "group_by_length": False},
        "export": {"onnx": False},
    }
    source = work / "config.json"
    source.write_text(json.dumps(config))
    args = argparse.Namespace(command="train", run_dir=str(run_dir), config=str(source))
    cfg, src = train.read_config(args)
    run = train.set_up(args, cfg, src, EventEmitter(None), StopRequest(), NO_FAULTS)
    run.base_weights = None  # the end-of-run evaluation's copy (full fine-tuning): not needed here
    # the longest rows, so that every step is batch x length tokens (truncated to max_length)
    rows = sorted(run.data.train, key=lambda r: -len(r["input_ids"]))[:batch]
    fixed = [run.collate(rows)]
    run.next_batches = lambda: fixed
    gc.collect()
    return run, tuple(fixed[0]["input_ids"].shape)


def stop_hooks(model) -> list:
    """(module, hook id, hook) of every forward hook add_stop_checks put on the model's blocks."""
    return [(m, hid, fn) for m in model.modules() for hid, fn in list(m._forward_hooks.items())
            if getattr(fn, "__qualname__", "").startswith("add_stop_checks.")]


class Variants:
    """Switches the run between production (A) and without the stop's hooks and RNG snapshot (B), from outside."""

    def __init__(self, run):
        from bloom_peft import checkpoint

        self.ckpt, self.snapshot = checkpoint, checkpoint.rng_snapshot
        self.hooks = stop_hooks(run.unwrapped)
        if not self.hooks:
            raise SystemExit("train_step_ab: no stop hooks found on the model (add_stop_checks changed?)")

    def production(self) -> None:
        self.ckpt.rng_snapshot = self.snapshot
        for module, hid, fn in self.hooks:
            module._forward_hooks[hid] = fn

    def without(self) -> None:
        self.ckpt.rng_snapshot = lambda: None  # compute_step restores it only on an abandoned step: none here
        for module, hid, _fn in self.hooks:
            module._forward_hooks.pop(hid, None)


def one_step(run) -> None:
    """The loop body of TrainingRun.loop() without eval/save (both off in the config)."""
    result = run.compute_step()
    run.check_loss(result)
    run.apply_step(result)
    run.report(result)


def best_us(fn, n: int, repeats: int = 5) -> float:
    """The least of `repeats` timings of n calls, CPU microseconds per call (the process's own CPU time: on a loaded
    machine the time it waits for a core is not in it; these calls run on one thread)."""
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t) / n * 1e6)
    return best


def pieces(run, v: Variants, micro_batches: int, reps: int = 2000) -> dict:
    """The stop's parts on their own, microseconds: the RNG snapshot, one check() inside interruptible(), and what a
    block's hook adds to its forward+backward (on an identity block, so the block's own work is not in it)."""
    import torch
    from bloom_peft import checkpoint
    from bloom_peft.stop import add_stop_checks

    snapshot_us = best_us(checkpoint.rng_snapshot, reps)

    class Identity(torch.nn.Module):
        def forward(self, x):
            return x * 1.0

    bare_blocks, hooked_blocks = torch.nn.ModuleList([Identity()]), torch.nn.ModuleList([Identity()])
    add_stop_checks(hooked_blocks, run.stop)
    x = torch.ones(4, requires_grad=True)
    with run.stop.interruptible():
        check_us = best_us(run.stop.check, reps)
        bare = hooked = float("inf")
        for _ in range(10):  # alternating, the fastest of each: the difference is a few microseconds
            bare = min(bare, best_us(lambda: bare_blocks[0](x).sum().backward(), reps, repeats=1))
            hooked = min(hooked, best_us(lambda: hooked_blocks[0](x).sum().backward(), reps, repeats=1))
    per_step_us = snapshot_us + (hooked - bare) * len(v.hooks) * micro_batches
    return {"rng_snapshot_us": snapshot_us, "check_us": check_us, "hook_fwd_bwd_us": hooked - bare,
            "blocks_hooked": len(v.hooks), "micro_batches_per_step": micro_batches,
            "estimated_per_step_us": per_step_us}


def bench_case(case: str, a: argparse.Namespace, scratch: Path) -> dict:
    """One MODEL:METHOD:BATCHxLENGTH[:ROUNDS] case: A and B legs alternating, each leg a few steps (>= --leg-s)."""
    name, method, shape, *rest = case.split(":")
    batch, length = (int(x) for x in shape.split("x"))
    n_rounds = int(rest[0]) if rest else a.rounds
    work = Path(tempfile.mkdtemp(prefix="train-step-ab-", dir=scratch))
    try:
        t = time.time()
        run, batch_shape = set_up_run(model_path(name, scratch), method, batch, length, work)
        print(f"[train_step_ab] {case}: set up in {time.time() - t:.0f}s, batch {batch_shape}", file=sys.stderr)
        v = Variants(run)
        legs = {"A": v.production, "B": v.without}
        warm = []
        for _ in range(a.warmup):
            for switch in legs.values():
                switch()
                warm.append(timed(lambda: one_step(run))["wall_ms"])
        # tiny steps: several per leg, so that a leg spans many scheduler ticks (others' share is read in ticks)
        steps = max(1, round(a.leg_s * 1e3 / min(warm))) if warm else 1

        def leg():
            for _ in range(steps):
                one_step(run)

        rounds = []
        for i in range(n_rounds):
            order = ("A", "B") if i % 2 == 0 else ("B", "A")
            r = {}
            for k in order:
                legs[k]()
                r[k] = {key: (x / steps if key.endswith("_ms") else x) for key, x in timed(leg).items()}
            rounds.append(r)
            print(f"[train_step_ab] {case} round {i + 1}/{n_rounds}: A {r['A']['wall_ms']:.1f} / B "
                  f"{r['B']['wall_ms']:.1f} ms/step wall, others {r['A']['other_share']:.0%}/"
                  f"{r['B']['other_share']:.0%}", file=sys.stderr)
        v.production()
        parts = pieces(run, v, micro_batches=run.grad_accum)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    clean = [r for r in rounds if max(r["A"]["other_share"], r["B"]["other_share"]) <= a.max_other]
    used = clean or rounds
    out = {"case": case, "model": name, "method": method, "batch_shape": list(batch_shape), "steps_per_leg": steps,
           "rounds": len(rounds), "clean_rounds": len(clean), "all_disturbed": not clean,
           "other_share": [[round(r["A"]["other_share"], 3), round(r["B"]["other_share"], 3)] for r in rounds]}
    for unit in ("wall_ms", "cpu_ms"):
        out[unit] = {k: statistics.median([r[k][unit] for r in used]) for k in ("A", "B")}
        ratios = sorted(r["A"][unit] / r["B"][unit] for r in used)  # per round: with / without the stop
        n, half = len(ratios), 0.98 * len(ratios) ** 0.5  # the median's 95% interval from order statistics
        out[f"a_over_b_{unit[:-3]}"] = {"median": statistics.median(ratios), "min": ratios[0], "max": ratios[-1],
                                        "q1": ratios[n // 4], "q3": ratios[(3 * n) // 4],
                                        "ci95": [ratios[max(0, int(n / 2 - half))], ratios[min(n - 1, int(n / 2 + half))]]}
    out["pieces"] = parts
    # Python-side work on one thread: it lengthens the step's wall time
    out["pieces"]["estimated_share_of_step"] = parts["estimated_per_step_us"] / (out["wall_ms"]["B"] * 1e3)
    return out


def markdown(r: dict) -> str:
    """The report's section for docs/benchmarks.md (also what `npm run bench -- --only train-stop` appends)."""
    def ratio(x):
        return f"**{x['median']:.3f}** ({x['ci95'][0]:.3f}-{x['ci95'][1]:.3f})"

    rows = []
    for c in r["cases"]:
        p = c["pieces"]
        shape = "x".join(str(n) for n in c["batch_shape"])
        clean = f"{c['clean_rounds']} of {c['rounds']}" + (" (none clean: all used)" if c["all_disturbed"] else "")
        rows.append(f"| {c['model']} | {c['method']} | {shape} | {c['steps_per_leg']} | {clean} | "
                    f"{c['wall_ms']['A']:.1f} / {c['wall_ms']['B']:.1f} | {ratio(c['a_over_b_wall'])} | "
                    f"{c['cpu_ms']['A']:.1f} / {c['cpu_ms']['B']:.1f} | {ratio(c['a_over_b_cpu'])} | "
                    f"{p['estimated_per_step_us']:.0f} us = {p['estimated_share_of_step'] * 100:.2f}% |")
    c0 = r["cases"][0]["pieces"]
    return "\n".join([
        "### Training: the stop's cost on the hot path (interleaved A/B)",
        "",
        (f"scripts/bench/train_step_ab.py: real training steps (`train.set_up` run, the loop body: compute_step, "
        f"check_loss, apply_step, report) on one fixed batch of the longest examples/code-tasks rows, fp32, "
        f"{r['threads']} threads, nice {r['nice']}. A = production (the stop's hook on each transformer block, "
        f"forward and backward, and the RNG snapshot before each step); B = the same run with the bench taking the "
        f"hooks off and the snapshot out. Legs alternate A,B / B,A in one process; ratio = A/B per round, median "
        f"(its 95% confidence interval) over the rounds in which other processes took <= {r['max_other'] * 100:.0f}% of the CPU in both "
        f"legs. Load average before / after: {' '.join(f'{x:.1f}' for x in r['load_before'])} / "
        f"{' '.join(f'{x:.1f}' for x in r['load_after'])}. Pieces on their own (first case): RNG "
        f"snapshot {c0['rng_snapshot_us']:.0f} us, check() {c0['check_us']:.2f} us, one block's hook (forward + backward) {c0['hook_fwd_bwd_us']:.0f} us."),
        "",
        ("| model | method | batch (rows x tokens) | steps per leg | clean rounds | wall ms/step A / B | A/B wall | "
         "CPU ms/step A / B | A/B CPU | pieces' estimate per step |"),
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ])


def main() -> None:
    a = parse()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ["TORCH_NUM_THREADS"] = str(a.threads)  # set_up applies it
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch

    torch.set_num_threads(a.threads)
    scratch = Path(a.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    report = {"threads": a.threads, "rounds": a.rounds, "max_other": a.max_other, "cpus": os.cpu_count(),
              "nice": os.nice(0), "load_before": os.getloadavg(), "torch": torch.__version__, "cases": []}
    for case in a.cases.split(","):
        report["cases"].append(bench_case(case.strip(), a, scratch))
        gc.collect()  # the case's run (a 560m model and its optimizer) before the next one is set up
    report["load_after"] = os.getloadavg()
    report["markdown"] = markdown(report)
    print(report["markdown"], file=sys.stderr)
    print(json.dumps(report))


if __name__ == "__main__":
    main()

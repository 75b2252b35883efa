"""Export benchmark (not a test): train end -> export usable, on bloom-560m shapes with random weights (never downloaded).

A run folder is made as the trainer leaves it (config.json with model.config_only, adapter/ of a perturbed LoRA
adapter), then `export.export_run` is timed as the training loop calls it, for each quantization:

  full    the whole graph traced and written (the only path before the base cache; today the cache-miss path)
  cached  the same export with the base cache warm: only what the adapter changes is written

Usage: PYTHONPATH=trainer/src .venv/bin/python scripts/bench/export_bench.py [--work DIR] [--quantize none,int8]
       [--legs full,cached] [--shape bloom-560m|tiny]
Prints one JSON object per leg (wall and CPU seconds, load average before/after, peak RSS) and a summary line at the
end; the export's log lines go to stderr with wall/CPU seconds since the leg began. CPU seconds do not grow with the
machine's load (wall seconds do, many times over on a shared machine).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHAPES = {"bloom-560m": dict(vocab_size=250880, hidden_size=1024, n_layer=24, n_head=16),
          # the embedded model's vocabulary, so its tokenizer fits
          "tiny": dict(vocab_size=json.loads((ROOT / "models/bloom-tiny/config.json").read_text())["vocab_size"],
                       hidden_size=64, n_layer=2, n_head=4)}


def make_run(work: Path, shape: str, method: str) -> Path:
    import torch
    from transformers import BloomConfig

    from bloom_peft.config import parse_config
    from bloom_peft.export import _cpu_base
    from bloom_peft.methods import apply_method, save_trained
    from bloom_peft.testing.vocab import grow_tokenizer_file

    model_dir = work / "model"
    if not (model_dir / "config.json").exists():
        model_dir.mkdir(parents=True, exist_ok=True)
        BloomConfig(**SHAPES[shape], bos_token_id=1, eos_token_id=2, pad_token_id=3, unk_token_id=0).save_pretrained(model_dir)
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(ROOT / "models/bloom-tiny" / f, model_dir / f)
        if shape != "tiny":
            grow_tokenizer_file(model_dir / "tokenizer.json", SHAPES[shape]["vocab_size"])
    run = work / f"run-{method}"
    if (run / "adapter").is_dir():
        return run
    run.mkdir(parents=True, exist_ok=True)
    config = {"version": 1, "run_name": f"export-bench-{method}",
              "model": {"name_or_path": str(model_dir), "config_only": True}, "method": {"name": method},
              "data": {"format": "instruction", "train_file": str(run / "unused.jsonl")},
              "training": {"seed": 0}, "export": {"quantize": "none"}}
    (run / "config.json").write_text(json.dumps(config, indent=1))
    parsed = parse_config(config)
    base, tokenizer = _cpu_base(parsed.model, parsed.training.seed)
    model = apply_method(base, parsed.method, tokenizer)
    with torch.no_grad():  # a trained-looking adapter: LoRA B starts at zero, which would merge to the base
        gen = torch.Generator().manual_seed(1)
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    save_trained(model, parsed.method, run / "adapter", tokenizer)
    return run


class PhaseLog:
    """The export's own log lines, with wall and CPU seconds since the leg began (on stderr)."""

    def __init__(self):
        self.t0, self.c0 = time.perf_counter(), cpu_seconds()

    def log(self, message: str) -> None:
        print(f"  [{time.perf_counter() - self.t0:7.1f}s wall {cpu_seconds() - self.c0:7.1f}s cpu] {message}",
              file=sys.stderr, flush=True)

    def warning(self, message: str, **_) -> None:
        self.log("warning: " + message)


def cpu_seconds() -> float:
    """user + system CPU time of this process (and its finished children): what the export costs whatever the load."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--work", default=str(ROOT / ".cache/export-bench"))
    p.add_argument("--shape", default="bloom-560m", choices=list(SHAPES))
    p.add_argument("--method", default="lora")
    p.add_argument("--quantize", default="none,int8")
    p.add_argument("--legs", default="full,cached")
    a = p.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("TORCH_NUM_THREADS", "2")))
    from bloom_peft import export as ex

    work = Path(a.work).resolve()
    run = make_run(work, a.shape, a.method)
    cache = work / "base-cache"
    results = []
    for quantize in a.quantize.split(","):
        for leg in a.legs.split(","):
            kwargs = {}
            if leg == "cached":
                if not hasattr(ex, "export_run") or "base_cache" not in ex.export_run.__code__.co_varnames:
                    print(json.dumps({"leg": leg, "skipped": "this export.py has no base cache"}), flush=True)
                    continue
                kwargs["base_cache"] = cache
            elif "base_cache" in ex.export_run.__code__.co_varnames:
                kwargs["base_cache"] = None
            out = work / f"export-{leg}-{quantize}"
            load0 = os.getloadavg()[0]
            c0, t0 = cpu_seconds(), time.perf_counter()
            ex.export_run(run, PhaseLog(), out=out, quantize=quantize, **kwargs)
            seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            r = {"leg": leg, "quantize": quantize, "shape": a.shape, "method": a.method, "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
                 "load1_before": round(load0, 2), "load1_after": round(os.getloadavg()[0], 2),
                 "peak_rss_mib": round(peak_rss_mib()), "verification": json.loads((out / "manifest.json").read_text()).get("verification")}
            results.append(r)
            print(json.dumps(r), flush=True)
    print(json.dumps({"summary": {f"{r['leg']}-{r['quantize']}": r["seconds"] for r in results}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

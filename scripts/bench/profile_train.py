"""Where the project's CPU training time goes (not a test): `python -m bloom_peft train` under cProfile.

    .venv/bin/python scripts/bench/profile_train.py [--steps 30] [--batch 8] [--threads 1] [--top 25]

Same run as the train benchmark's project side (models/bloom-tiny, full fine-tuning, examples/code-tasks,
no eval), profiled in-process; prints the functions with the most own time and the most cumulative time.
"""
import argparse
import cProfile
import io
import json
import os
import pstats
import runpy
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=30)
p.add_argument("--batch", type=int, default=8)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--method", default="full")
p.add_argument("--top", type=int, default=25)
a = p.parse_args()

work = Path(tempfile.mkdtemp(prefix="profile-train-"))
cfg = work / "config.json"
cfg.write_text(json.dumps({
    "version": 1, "run_name": "profile", "model": {"name_or_path": str(ROOT / "models/bloom-tiny")},
    "method": {"name": a.method},
    "data": {"format": "instruction", "train_file": str(ROOT / "examples/code-tasks/train.jsonl"), "eval_split": 0.0},
    "training": {"max_steps": a.steps, "batch_size": a.batch, "grad_accum": max(1, 8 // a.batch), "learning_rate": 1e-3,
                 "warmup_ratio": 0.0, "eval_every": 0, "save_every": 0, "log_every": 10, "precision": "fp32", "device": "cpu"},
    "export": {"onnx": False},
}))
os.environ.update(TORCH_NUM_THREADS=str(a.threads), BLOOM_PEFT_IGNORE_STDIN="1", TOKENIZERS_PARALLELISM="false")
sys.path.insert(0, str(ROOT / "trainer/src"))
sys.argv = ["bloom_peft", "train", "--run-dir", str(work / "run"), "--config", str(cfg)]
prof = cProfile.Profile()
try:  # bloom_peft claims stdout for its protocol events; the report goes to stderr and a file
    prof.runcall(runpy.run_module, "bloom_peft", run_name="__main__")
except SystemExit:
    pass
report = []
for key in ("tottime", "cumulative"):
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats(key).print_stats(a.top)
    report.append(f"==== by {key}\n" + s.getvalue())
(work / "profile.txt").write_text("\n".join(report))
print("\n".join(report), f"(also in {work / 'profile.txt'})", file=sys.stderr)

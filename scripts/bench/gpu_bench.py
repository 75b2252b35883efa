"""GPU training benchmark (not a test): every method on bloom-560m shapes, the tutorial's recipe vs the project.

Meant for ONE call of at most 8 minutes on a lent H100/H200 (torch, transformers, peft, accelerate; no internet,
no node), from the repository root, with nothing but the checkout:

    PYTHONPATH=trainer/src python scripts/bench/gpu_bench.py                  # all methods, cuda
    PYTHONPATH=trainer/src python scripts/bench/gpu_bench.py --dry-run        # tiny shapes on CPU (minutes)

Per method, side by side:
- baseline: the tutorial's recipe, HF Trainer, per_device_train_batch_size 1, gradient_accumulation_steps 8,
  fp32, DataCollatorForSeq2Seq, peft configs built the tutorial's way (get_peft_model), random weights from
  BloomConfig(vocab 250880, hidden 1024, 24 layers, 16 heads);
- project: `python -m bloom_peft train` (its own code, PYTHONPATH=trainer/src) with model.config_only, micro-batch
  8, bf16, the same rows. Extra knobs reach it through the environment (BLOOM_PEFT_* variables are passed on).
Rows are 256 tokens (the tutorial's max length; prompt masked). tokens/s counts every input token of the timed
steps (warm-up steps excluded); MFU = 6 * N(total params) * tokens/s / bf16 dense peak (H100/H200: 989 TFLOPS;
6N is the full fine-tuning count, PEFT methods do less work per token so their MFU is a lower figure by
construction); peak memory = torch.cuda.max_memory_allocated of that process. A time budget (--budget-s) stops
starting new runs so that the table (printed last) always comes out.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
METHODS = ["full", "bitfit", "prompt_tuning", "p_tuning", "prefix_tuning", "lora", "ia3"]
SHAPE_560M = dict(vocab_size=250880, hidden_size=1024, n_layer=24, n_head=16)
SHAPE_TINY = dict(vocab_size=3989, hidden_size=64, n_layer=2, n_head=4)
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}
# learning rates do not matter for throughput; these are the project's defaults
LR = {"full": 5e-5, "bitfit": 1e-3, "prompt_tuning": 3e-2, "p_tuning": 3e-3, "prefix_tuning": 1e-2, "lora": 1e-3, "ia3": 3e-3}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--device", choices=["cuda", "cpu"], default=None)
    p.add_argument("--dry-run", action="store_true", help="tiny shapes, seq 32, 2 timed steps, CPU unless --device")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--sides", default="baseline,project")
    p.add_argument("--seq", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="timed optimizer steps per run")
    p.add_argument("--warmup", type=int, default=None, help="untimed optimizer steps first")
    p.add_argument("--project-batch", type=int, default=8)
    p.add_argument("--precision", default=None, help="project precision (bf16 on cuda, fp32 on cpu)")
    p.add_argument("--budget-s", type=float, default=None, help="default 450 s (cuda), unlimited in a dry run")
    p.add_argument("--side", default=None, help=argparse.SUPPRESS)  # internal: run one baseline in a child
    p.add_argument("--method", default=None, help=argparse.SUPPRESS)
    p.add_argument("--work", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    a.device = a.device or ("cpu" if a.dry_run else "cuda")
    a.seq = a.seq or (32 if a.dry_run else 256)
    a.steps = a.steps or (2 if a.dry_run else 8)
    a.warmup = a.warmup if a.warmup is not None else (1 if a.dry_run else 2)
    a.precision = a.precision or ("bf16" if a.device == "cuda" else "fp32")
    a.budget_s = a.budget_s or (1e9 if a.dry_run else 450)
    a.warmup = max(1, a.warmup)  # timing starts at the end of a step (the first one pays for allocation, compile)
    return a


def make_workdir(a: argparse.Namespace) -> Path:
    """A model folder (config.json + the embedded tokenizer, no weights) and a JSONL of rows >= seq tokens."""
    from transformers import AutoTokenizer, BloomConfig

    work = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    model_dir = work / "model"
    model_dir.mkdir()
    shape = SHAPE_TINY if a.dry_run else SHAPE_560M
    BloomConfig(**shape, bos_token_id=1, eos_token_id=2, pad_token_id=3, unk_token_id=0).save_pretrained(model_dir)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(ROOT / "models/bloom-tiny" / f, model_dir / f)
    tok = AutoTokenizer.from_pretrained(model_dir)
    words = sorted({w for f in (ROOT / "examples/code-corpus").iterdir() for w in f.read_text().split() if w.isidentifier()})
    rng = random.Random(0)
    rows = []

    def words_for(n_tokens: int) -> str:  # counted in tokens: identifiers split into several
        out: list[str] = []
        while len(tok(" ".join(out))["input_ids"]) < n_tokens:
            out.append(rng.choice(words))
        return " ".join(out)

    for i in range(64):
        # a prompt of ~1/8 of the window (the response must not be truncated away: the trainer drops such rows)
        inp, out = words_for(max(1, a.seq // 8 - 12)), words_for(a.seq + 8)
        rows.append({"instruction": f"Continue the code {i}", "input": inp, "output": out})
    for r in rows[:2]:  # every row must fill the window, or tokens/s would count padding
        assert len(tok(r["instruction"] + r["input"] + r["output"])["input_ids"]) > a.seq
    (work / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return work


# ---------------------------------------------------------------- baseline (child process)
def tutorial_model(method: str, model_dir: Path, device: str):
    import torch
    from transformers import AutoConfig, BloomForCausalLM

    torch.manual_seed(0)
    model = BloomForCausalLM(AutoConfig.from_pretrained(model_dir)).to(torch.float32)
    if method == "full":
        return model
    if method == "bitfit":  # the tutorial: train only the biases
        for n, p in model.named_parameters():
            p.requires_grad = "bias" in n
        return model
    from peft import (IA3Config, LoraConfig, PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig, TaskType,
                      get_peft_model)

    cfg = {
        "prompt_tuning": lambda: PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=20),
        "p_tuning": lambda: PromptEncoderConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=20, encoder_hidden_size=128),
        "prefix_tuning": lambda: PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=20),
        "lora": lambda: LoraConfig(task_type=TaskType.CAUSAL_LM, r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["query_key_value"]),
        "ia3": lambda: IA3Config(task_type=TaskType.CAUSAL_LM, target_modules=["query_key_value", "mlp.dense_4h_to_h"],
                                 feedforward_modules=["mlp.dense_4h_to_h"]),
    }[method]()
    return get_peft_model(model, cfg)


def run_baseline(a: argparse.Namespace) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    if a.device == "cpu":
        torch.set_num_threads(1)  # dry runs share small boxes: one thread avoids OpenMP spinning
    work = Path(a.work)
    tok = AutoTokenizer.from_pretrained(work / "model")
    model = tutorial_model(a.method, work / "model", a.device)
    n_params = sum(p.numel() for p in model.parameters())

    def process_func(example):  # the tutorial's
        instruction = tok("\n".join(["Human: " + example["instruction"], example["input"]]).strip() + "\n\nAssistant: ")
        response = tok(example["output"] + tok.eos_token)
        ids = instruction["input_ids"] + response["input_ids"]
        mask = instruction["attention_mask"] + response["attention_mask"]
        labels = [-100] * len(instruction["input_ids"]) + response["input_ids"]
        return {"input_ids": ids[:a.seq], "attention_mask": mask[:a.seq], "labels": labels[:a.seq]}

    rows = [json.loads(x) for x in (work / "train.jsonl").read_text().splitlines()]
    ds = Dataset.from_list(rows).map(process_func, remove_columns=["instruction", "input", "output"])
    marks = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if a.device == "cuda":
                torch.cuda.synchronize()
            marks[state.global_step] = time.perf_counter()

    if a.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    args = TrainingArguments(output_dir=str(work / f"hf-{a.method}"), per_device_train_batch_size=1, gradient_accumulation_steps=8,
                             learning_rate=LR[a.method], max_steps=a.warmup + a.steps, logging_steps=10, save_strategy="no",
                             report_to=[], use_cpu=a.device == "cpu", disable_tqdm=True, dataloader_num_workers=0)
    Trainer(model=model, args=args, train_dataset=ds, data_collator=DataCollatorForSeq2Seq(tokenizer=tok, padding=True),
            callbacks=[Clock()]).train()
    dt = marks[a.warmup + a.steps] - marks[a.warmup]
    tokens = a.steps * 8 * a.seq
    return {"tokens_per_s": tokens / dt, "s_per_step": dt / a.steps, "n_params": n_params,
            "peak_mem_bytes": torch.cuda.max_memory_allocated() if a.device == "cuda" else None}


# ---------------------------------------------------------------- project (python -m bloom_peft train)
def run_project(a: argparse.Namespace, method: str, work: Path) -> dict:
    micro = a.project_batch
    method_cfg = {"name": method}
    if method == "p_tuning":
        method_cfg["encoder_hidden_size"] = 128
    config = {
        "version": 1, "run_name": f"gpu-bench-{method}",
        "model": {"name_or_path": str(work / "model"), "config_only": True},
        "method": method_cfg,
        "data": {"format": "instruction", "train_file": str(work / "train.jsonl"), "eval_split": 0.0},
        "training": {"max_steps": a.warmup + a.steps, "batch_size": micro, "grad_accum": max(1, 8 // micro),
                     "learning_rate": LR[method], "max_length": a.seq, "eval_every": 0, "save_every": 0, "log_every": 1,
                     "precision": a.precision, "device": a.device, "seed": 0},
        "export": {"onnx": False},
    }
    cfg = work / f"project-{method}.json"
    cfg.write_text(json.dumps(config))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer/src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "BLOOM_PEFT_IGNORE_STDIN": "1", "TOKENIZERS_PARALLELISM": "false"}
    if a.device == "cpu":
        env["TORCH_NUM_THREADS"] = env["OMP_NUM_THREADS"] = "1"
    p = subprocess.run([sys.executable, "-m", "bloom_peft", "train", "--run-dir", str(work / f"run-{method}"), "--config", str(cfg)],
                       env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    events = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    err = next((e for e in events if e["type"] == "error"), None)
    if p.returncode != 0 or err:
        raise RuntimeError(f"project {method}: {err['message'] if err else p.stderr[-1500:]}")
    started = next(e for e in events if e["type"] == "started")
    prog = {e["step"]: e for e in events if e["type"] == "progress"}
    t0 = prog[a.warmup]["time"]
    dt = prog[a.warmup + a.steps]["time"] - t0
    tokens = a.steps * 8 * a.seq
    return {"tokens_per_s": tokens / dt, "s_per_step": dt / a.steps, "n_params": started["total_params"],
            "peak_mem_bytes": max((e.get("gpu_mem_bytes") or 0) for e in prog.values()) or None}


def peak_flops(device: str) -> tuple[str, float | None]:
    if device != "cuda":
        return "cpu", None
    import torch

    name = torch.cuda.get_device_name(0)
    return name, next((v for k, v in PEAK_BF16.items() if k in name), None)


def table(results: list[dict], device_name: str, peak: float | None, a: argparse.Namespace) -> str:
    gib = lambda b: f"{b / 2**30:.1f}" if b else "n/a"  # noqa: E731
    lines = [f"gpu_bench: {device_name}, seq {a.seq}, {a.steps} timed steps after {a.warmup} warm-up, 8 rows per step, "
             f"project precision {a.precision}, MFU vs {peak / 1e12:.0f} TFLOPS" if peak else
             f"gpu_bench: {device_name}, seq {a.seq}, {a.steps} timed steps after {a.warmup} warm-up (no MFU off GPU)",
             "| method | baseline tok/s | project tok/s | speedup | baseline MFU | project MFU | baseline peak GiB | project peak GiB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        b, p = r.get("baseline") or {}, r.get("project") or {}
        mfu = lambda x: f"{100 * 6 * x['n_params'] * x['tokens_per_s'] / peak:.1f}%" if peak and x else "n/a"  # noqa: E731
        tps = lambda x: f"{x['tokens_per_s']:.0f}" if x else r.get("error", "skipped")[:40]  # noqa: E731
        sp = f"{p['tokens_per_s'] / b['tokens_per_s']:.2f}x" if b and p else "n/a"
        lines.append(f"| {r['method']} | {tps(b)} | {tps(p)} | {sp} | {mfu(b)} | {mfu(p)} | {gib(b.get('peak_mem_bytes'))} | {gib(p.get('peak_mem_bytes'))} |")
    return "\n".join(lines)


def main() -> None:
    a = parse()
    if a.side == "baseline":
        print(json.dumps(run_baseline(a)))
        return
    t_start = time.time()
    work = make_workdir(a)
    device_name, peak = peak_flops(a.device)
    results = []
    for method in a.methods.split(","):
        r = {"method": method}
        results.append(r)
        for side in a.sides.split(","):
            if time.time() - t_start > a.budget_s:
                r["error"] = "over the time budget"
                continue
            t = time.time()
            try:
                if side == "baseline":
                    cmd = [sys.executable, __file__, "--side", "baseline", "--method", method, "--work", str(work),
                           "--device", a.device, "--seq", str(a.seq), "--steps", str(a.steps), "--warmup", str(a.warmup)]
                    p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
                    if p.returncode != 0:
                        raise RuntimeError(p.stderr[-1500:])
                    r[side] = json.loads(p.stdout.strip().splitlines()[-1])
                else:
                    r[side] = run_project(a, method, work)
                print(f"{method} {side}: {r[side]['tokens_per_s']:.0f} tok/s ({time.time() - t:.0f}s)", file=sys.stderr, flush=True)
            except Exception as e:  # noqa: BLE001 - one failing run must not lose the table
                r["error"] = f"{side} failed"
                print(f"{method} {side} FAILED: {e}", file=sys.stderr, flush=True)
    print(json.dumps({"device": device_name, "peak_flops": peak, "seq": a.seq, "results": results}))
    print(table(results, device_name, peak, a))
    print(f"total {time.time() - t_start:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()

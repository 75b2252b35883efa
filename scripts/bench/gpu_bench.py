"""GPU training benchmark (not a test): every method on bloom-560m shapes, the tutorial's recipe vs the project.

Meant for ONE call of at most 8 minutes on a lent H100/H200 (torch, transformers, peft, accelerate; no internet,
no node), from the repository root, with nothing but the checkout:

    PYTHONPATH=trainer/src python scripts/bench/gpu_bench.py                  # checks, then all methods, cuda
    PYTHONPATH=trainer/src python scripts/bench/gpu_bench.py --dry-run        # tiny shapes on CPU (minutes)

First it proves the CUDA paths the trainer has never run, each printed as pass / fail / skipped with what it saw:
- bf16 autocast: `python -m bloom_peft train` on bloom-560m shapes with precision bf16 (started says bf16 on cuda,
  every loss finite, the run completes);
- fused AdamW: the trainer's own make_optimizer on CUDA gives torch.optim.AdamW(fused=True), whose step under bf16
  autocast changes the weights and keeps them finite;
- OOM back-off: a deliberately large micro-batch (512 rows of 512 tokens, full fine-tuning: the logits alone need
  about 130 GB) must hit CUDA out of memory, be retried with halved micro-batches (`oom_retry` warnings) and complete;
- 2-process DDP: training.num_gpus 2 (torchrun underneath) completes with world_size 2; skipped with one GPU.
Without a CUDA device each says "no CUDA device: skipped" and the script exits 0 (the tokens/s table too, unless
--dry-run). `--checks none` leaves the checks out, `--checks only` the table. Exit 1 when a check failed.

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
# the embedded model's vocabulary, so its tokenizer fits (the trainer refuses ids past the embedding)
SHAPE_TINY = dict(vocab_size=json.loads((ROOT / "models/bloom-tiny/config.json").read_text())["vocab_size"],
                  hidden_size=64, n_layer=2, n_head=4)
CHECKS = ("bf16 autocast", "fused AdamW", "OOM back-off", "2-process DDP")
NO_CUDA = "no CUDA device: skipped"
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
    p.add_argument("--checks", choices=["run", "none", "only"], default="run",
                   help="the CUDA path checks: run them before the table (default), leave them out, or run only them")
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

    from bloom_peft.testing.vocab import grow_tokenizer_file

    work = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    model_dir = work / "model"
    model_dir.mkdir()
    shape = SHAPE_TINY if a.dry_run else SHAPE_560M
    BloomConfig(**shape, bos_token_id=1, eos_token_id=2, pad_token_id=3, unk_token_id=0).save_pretrained(model_dir)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(ROOT / "models/bloom-tiny" / f, model_dir / f)
    # bloom-560m's 250,880 rows: the embedded tokenizer grown with placeholder tokens (a cut-down one is refused)
    grow_tokenizer_file(model_dir / "tokenizer.json", shape["vocab_size"])
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


# ---------------------------------------------------------------- CUDA path checks
def cuda_device_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - a broken CUDA build is "no CUDA device" here; `check` says why
        return 0


def train_events(work: Path, name: str, method: str, training: dict) -> tuple[int, list[dict], str]:
    """`python -m bloom_peft train` on the bench's model folder and rows: (exit code, events, stderr tail)."""
    config = {"version": 1, "run_name": f"gpu-check-{name}",
              "model": {"name_or_path": str(work / "model"), "config_only": True}, "method": {"name": method},
              "data": {"format": "instruction", "train_file": str(work / "check-rows.jsonl"), "eval_split": 0.0},
              "training": {"learning_rate": LR[method], "eval_every": 0, "save_every": 0, "log_every": 1, "seed": 0,
                           "device": "cuda", **training},
              "export": {"onnx": False}}
    cfg = work / f"check-{name}.json"
    cfg.write_text(json.dumps(config))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer/src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "BLOOM_PEFT_IGNORE_STDIN": "1", "TOKENIZERS_PARALLELISM": "false"}
    p = subprocess.run([sys.executable, "-m", "bloom_peft", "train", "--run-dir", str(work / f"check-run-{name}"),
                        "--config", str(cfg)], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return p.returncode, [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")], p.stderr[-1500:]


def _run_outcome(code: int, events: list[dict], stderr: str) -> tuple[dict, str | None]:
    """(the started event, why the run did not complete or None)."""
    started = next((e for e in events if e["type"] == "started"), {})
    error = next((e for e in events if e["type"] == "error"), None)
    done = next((e for e in events if e["type"] == "done"), None)
    if error:
        return started, f"{error.get('code')}: {error.get('message')}"
    if code != 0 or not done or done.get("status") != "completed":
        return started, f"exit {code}, done {done and done.get('status')}: {stderr.strip()[-300:]}"
    return started, None


def judge_bf16(code: int, events: list[dict], stderr: str) -> tuple[str, str]:
    started, failed = _run_outcome(code, events, stderr)
    if failed:
        return "fail", failed
    losses = [e.get("loss") for e in events if e["type"] == "progress"]
    if started.get("precision") != "bf16" or not str(started.get("device", "")).startswith("cuda"):
        return "fail", f"ran with precision {started.get('precision')} on {started.get('device')}, not bf16 on cuda"
    if not losses or not all(isinstance(x, (int, float)) and x == x and abs(x) != float("inf") for x in losses):
        return "fail", f"losses {losses}"
    return "pass", f"{len(losses)} steps in bf16 on {started.get('device_name') or started['device']}, loss {losses[0]:.3f} -> {losses[-1]:.3f}"


def judge_oom(code: int, events: list[dict], stderr: str, micro_batch: int) -> tuple[str, str]:
    retries = [e["message"] for e in events if e["type"] == "warning" and e.get("code") == "oom_retry"]
    _, failed = _run_outcome(code, events, stderr)
    if failed:
        return "fail", failed + (f" after {len(retries)} back-off(s)" if retries else "")
    if not retries:
        return "fail", f"micro-batch {micro_batch} fit in memory: no out-of-memory happened, so the back-off did not run"
    return "pass", f"{len(retries)} CUDA out-of-memory retries from micro-batch {micro_batch}, then the step completed ({retries[-1]})"


def judge_ddp(code: int, events: list[dict], stderr: str) -> tuple[str, str]:
    started, failed = _run_outcome(code, events, stderr)
    if failed:
        return "fail", failed
    if started.get("world_size") != 2:
        return "fail", f"world_size {started.get('world_size')}, expected 2"
    steps = sum(1 for e in events if e["type"] == "progress")
    return "pass", f"2 processes (torchrun), {steps} steps completed"


def fused_adamw_child() -> dict:
    """In a child process: the trainer's make_optimizer on CUDA, one bf16-autocast step."""
    import torch
    from accelerate import Accelerator
    from transformers import BloomConfig, BloomForCausalLM

    from bloom_peft.config import parse_config
    from bloom_peft.train import make_optimizer

    torch.manual_seed(0)
    model = BloomForCausalLM(BloomConfig(vocab_size=SHAPE_TINY["vocab_size"], hidden_size=256, n_layer=2, n_head=4))
    config = parse_config({"version": 1, "model": {"name_or_path": "embedded"}, "method": {"name": "full"},
                           "training": {"learning_rate": 1e-3, "device": "cuda", "precision": "bf16"}}, need_data=False)
    accelerator = Accelerator(mixed_precision="bf16")
    model, optimizer, _ = make_optimizer(model, config.training, 10, accelerator)
    inner = getattr(optimizer, "optimizer", optimizer)
    weight = model.transformer.h[0].self_attention.query_key_value.weight
    before = weight.detach().clone()
    ids = torch.randint(0, SHAPE_TINY["vocab_size"], (2, 32), device=accelerator.device)
    with accelerator.autocast():
        loss = model(input_ids=ids, labels=ids).loss
    accelerator.backward(loss)
    optimizer.step()
    torch.cuda.synchronize()
    return {"optimizer": type(inner).__name__, "fused": bool(inner.defaults.get("fused")),
            "changed": not torch.equal(before, weight.detach()), "finite": bool(torch.isfinite(weight).all()),
            "groups": len(inner.param_groups), "loss": float(loss)}


def judge_fused(code: int, answer: dict | None, stderr: str) -> tuple[str, str]:
    if code != 0 or answer is None:
        return "fail", f"exit {code}: {stderr.strip()[-300:]}"
    if not answer["fused"]:
        return "fail", f"{answer['optimizer']} without fused=True on CUDA"
    if not (answer["changed"] and answer["finite"]):
        return "fail", f"the step left the weights {'unchanged' if not answer['changed'] else 'non-finite'}"
    return "pass", f"{answer['optimizer']}(fused=True), {answer['groups']} parameter groups, one bf16 step (loss {answer['loss']:.3f})"


def write_check_rows(work: Path, rows: int, seq: int) -> None:
    """Rows of at least `seq` tokens without tokenising (every word is a token or more): the OOM check needs many."""
    words = sorted({w for f in (ROOT / "examples/code-corpus").iterdir() for w in f.read_text().split() if w.isidentifier()})
    rng = random.Random(1)
    with open(work / "check-rows.jsonl", "w") as f:
        for i in range(rows):
            f.write(json.dumps({"instruction": f"Continue {i}", "input": "", "output": " ".join(rng.choice(words) for _ in range(seq + 16))}) + "\n")


def run_checks(n_gpus: int, work: Path | None, train=train_events, fused=None) -> list[tuple[str, str, str]]:
    """(check, pass | fail | skipped, what was seen) for each of CHECKS. `train` and `fused` run the trainer and the
    fused-optimizer child (replaced in tests)."""
    if n_gpus == 0 or work is None:
        return [(name, "skipped", NO_CUDA) for name in CHECKS]
    fused = fused or run_fused_child
    out = []
    t = time.time()
    out.append(("bf16 autocast", *judge_bf16(*train(work, "bf16", "lora", {"precision": "bf16", "max_steps": 3,
                                                                              "batch_size": 4, "max_length": 256}))))
    out.append(("fused AdamW", *judge_fused(*fused(work))))
    big = 512
    out.append(("OOM back-off", *judge_oom(*train(work, "oom", "full", {"precision": "bf16", "max_steps": 1, "batch_size": big,
                                                                        "grad_accum": 1, "max_length": 512}), big)))
    if n_gpus < 2:
        out.append(("2-process DDP", "skipped", f"{n_gpus} CUDA device (needs 2)"))
    else:
        out.append(("2-process DDP", *judge_ddp(*train(work, "ddp", "lora", {"precision": "bf16", "max_steps": 3,
                                                                               "batch_size": 4, "max_length": 256, "num_gpus": 2}))))
    print(f"checks took {time.time() - t:.0f}s", file=sys.stderr, flush=True)
    return out


def run_fused_child(work: Path) -> tuple[int, dict | None, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer/src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, __file__, "--side", "fused"], env=env, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    lines = [x for x in p.stdout.splitlines() if x.startswith("{")]
    return p.returncode, json.loads(lines[-1]) if p.returncode == 0 and lines else None, p.stderr[-1500:]


def checks_report(checks: list[tuple[str, str, str]], device_name: str, n_gpus: int) -> str:
    lines = [f"CUDA path checks ({device_name}, {n_gpus} CUDA device(s)):" if n_gpus else "CUDA path checks:"]
    lines += [f"  {name:<15} {status:<8} {seen}" for name, status, seen in checks]
    return "\n".join(lines)


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


def main() -> int:
    a = parse()
    if a.side == "baseline":
        print(json.dumps(run_baseline(a)))
        return 0
    if a.side == "fused":
        print(json.dumps(fused_adamw_child()))
        return 0
    t_start = time.time()
    n_gpus = cuda_device_count()
    checks: list[tuple[str, str, str]] = []
    if a.device == "cuda" and n_gpus == 0:
        checks = run_checks(0, None) if a.checks != "none" else []
        if checks:
            print(checks_report(checks, "", 0))
        if a.checks != "only":
            print(f"tokens/s table: {NO_CUDA} (--dry-run runs it on the CPU with tiny shapes)")
        return 0
    work = make_workdir(a)
    device_name, peak = peak_flops(a.device)
    if a.checks != "none":
        if a.device == "cuda":
            write_check_rows(work, 512, 512)
        checks = run_checks(n_gpus if a.device == "cuda" else 0, work if a.device == "cuda" else None)
        print(checks_report(checks, device_name, n_gpus), flush=True)
    failed = any(status == "fail" for _, status, _ in checks)
    if a.checks == "only":
        shutil.rmtree(work, ignore_errors=True)
        return 1 if failed else 0
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
    print(json.dumps({"device": device_name, "peak_flops": peak, "seq": a.seq, "results": results,
                      "checks": [{"check": n, "status": st, "seen": seen} for n, st, seen in checks]}))
    if checks:
        print(checks_report(checks, device_name, n_gpus))
    print(table(results, device_name, peak, a))
    print(f"total {time.time() - t_start:.0f}s", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""CPU training benchmark (not a test): the tutorial's HF Trainer recipe vs `python -m bloom_peft train`.

Both sides train the same model (default: the embedded models/bloom-tiny) with the same method, data,
learning rate, schedule and effective batch (8 rows per optimizer step), and evaluate the same held-out
rows every --eval-every optimizer steps. The target eval loss is the lowest loss BOTH reach; each side's
time to first reach it (wall time from the start of its training loop, evals included) gives the ratio.

    .venv/bin/python scripts/bench/train_bench.py [--steps 100] [--eval-every 10] [--threads 1] [--method full]

Prints one JSON object on stdout (the last line). `--side baseline` runs only the baseline (used by the
driver in a child process so that each side's peak RSS is its own).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = str(ROOT / ".venv/bin/python") if (ROOT / ".venv/bin/python").exists() else sys.executable


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--side", choices=["driver", "baseline"], default="driver")
    p.add_argument("--model", default=str(ROOT / "models/bloom-tiny"))
    p.add_argument("--train", default=str(ROOT / "examples/code-tasks/train.jsonl"))
    p.add_argument("--eval", default=str(ROOT / "examples/code-tasks/heldout.jsonl"))
    p.add_argument("--method", default="full", choices=["full", "lora"])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=100, help="optimizer steps (8 rows each)")
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=42, help="data order and init of both sides")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--project-batch", type=int, default=8, help="the project's micro-batch (grad_accum = 8 / it)")
    p.add_argument("--group-by-length", choices=["on", "off", "both"], default="both",
                   help="the project's training.group_by_length (both: two project runs)")
    p.add_argument("--out", default=None)
    return p.parse_args()


# ---------------------------------------------------------------- baseline: the tutorial, faithfully
def baseline(a: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(a.threads)
    from datasets import Dataset
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer,
                              TrainerCallback, TrainingArguments)

    tokenizer = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    if a.method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, lora_dropout=0.0,
                                                 target_modules=["query_key_value"]))

    def rows(path):
        return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]

    def process_func(example):  # the tutorial's process_func, MAX_LENGTH 256
        instruction = tokenizer("\n".join(["Human: " + example["instruction"], example["input"]]).strip() + "\n\nAssistant: ")
        response = tokenizer(example["output"] + tokenizer.eos_token)
        input_ids = instruction["input_ids"] + response["input_ids"]
        attention_mask = instruction["attention_mask"] + response["attention_mask"]
        labels = [-100] * len(instruction["input_ids"]) + response["input_ids"]
        if len(input_ids) > a.max_length:
            input_ids, attention_mask, labels = input_ids[:a.max_length], attention_mask[:a.max_length], labels[:a.max_length]
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}

    cols = ["instruction", "input", "output"]
    train_ds = Dataset.from_list([{k: r.get(k, "") for k in cols} for r in rows(a.train)]).map(process_func, remove_columns=cols)
    eval_ds = Dataset.from_list([{k: r.get(k, "") for k in cols} for r in rows(a.eval)]).map(process_func, remove_columns=cols)
    train_tokens = sum(len(x) for x in train_ds["input_ids"])

    marks: dict = {"evals": [], "eval_s": 0.0}

    collator = DataCollatorForSeq2Seq(tokenizer=tokenizer, padding=True)

    def eval_loss(model) -> float:
        """Token-weighted mean loss over the held-out rows: the project's definition (HF's Trainer.evaluate averages
        per-batch means instead), batches of 8 in file order as Trainer.evaluate would feed them."""
        total = count = 0.0
        model.eval()
        with torch.no_grad():
            for i in range(0, len(eval_ds), 8):
                batch = collator([eval_ds[j] for j in range(i, min(i + 8, len(eval_ds)))])
                n = int((batch["labels"][:, 1:] != -100).sum())
                total += model(**batch).loss.item() * n
                count += n
        model.train()
        return total / count

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            marks["t0"] = time.time()

        def on_step_end(self, args, state, control, model=None, **kw):
            if state.global_step % a.eval_every == 0 or state.global_step == a.steps:
                t = time.time()
                loss = eval_loss(model)
                now = time.time()
                marks["eval_s"] += now - t
                marks["evals"].append({"step": state.global_step, "eval_loss": loss, "t": now - marks["t0"]})

        def on_train_end(self, args, state, control, **kw):
            marks["t_end"] = time.time() - marks["t0"]

    out = tempfile.mkdtemp(prefix="bench-baseline-")
    args = TrainingArguments(
        output_dir=out, per_device_train_batch_size=1, gradient_accumulation_steps=8, learning_rate=a.lr,
        max_steps=a.steps, logging_steps=10, eval_strategy="no", save_strategy="no",
        report_to=[], seed=a.seed, use_cpu=True, dataloader_num_workers=0, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                      data_collator=collator, callbacks=[Clock()])
    trainer.train()
    mean_len = train_tokens / len(train_ds)
    train_s = marks["t_end"] - marks["eval_s"]
    return {"side": "baseline", "evals": marks["evals"], "train_s_excl_eval": train_s, "eval_s": marks["eval_s"],
            "total_s": marks["t_end"], "tokens_per_s": a.steps * 8 * mean_len / train_s, "mean_row_tokens": mean_len}


# ---------------------------------------------------------------- project: python -m bloom_peft train
def project(a: argparse.Namespace, work: Path, grouped: bool) -> dict:
    micro = a.project_batch
    config = {
        "version": 1, "run_name": "bench",
        "model": {"name_or_path": a.model},
        "method": {"name": "full"} if a.method == "full" else {"name": "lora", "r": 16, "alpha": 32, "dropout": 0.0},
        "data": {"format": "instruction", "train_file": a.train, "eval_file": a.eval},
        "training": {"max_steps": a.steps, "batch_size": micro, "grad_accum": max(1, 8 // micro), "learning_rate": a.lr,
                     "scheduler": "linear", "warmup_ratio": 0.0, "weight_decay": 0.0, "max_grad_norm": 1.0,
                     "max_length": a.max_length, "eval_every": a.eval_every, "save_every": 0, "log_every": 10,
                     "seed": a.seed, "precision": "fp32", "device": "cpu", "group_by_length": grouped},
        "export": {"onnx": False},
    }
    run_dir = work / f"project-run-{'grouped' if grouped else 'shuffled'}"
    cfg = work / f"project-config-{'grouped' if grouped else 'shuffled'}.json"
    cfg.write_text(json.dumps(config))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer/src"), "TORCH_NUM_THREADS": str(a.threads),
           "OMP_NUM_THREADS": str(a.threads), "BLOOM_PEFT_IGNORE_STDIN": "1", "TOKENIZERS_PARALLELISM": "false"}
    events, rss = run_child([PY, "-m", "bloom_peft", "train", "--run-dir", str(run_dir), "--config", str(cfg)], env)
    events = [json.loads(line) for line in events.splitlines() if line.startswith("{")]
    err = [e for e in events if e.get("type") == "error"]
    if err:
        raise SystemExit(f"project trainer failed: {err[0]}")
    started = next(e for e in events if e["type"] == "started")
    done = next(e for e in events if e["type"] == "done")
    t0 = started["time"]
    evals = [{"step": e["step"], "eval_loss": e["eval_loss"], "t": e["time"] - t0} for e in events if e["type"] == "eval"]
    # Eval time: from the progress event of an eval step to its eval event (log_every divides eval_every).
    prog = {e["step"]: e["time"] for e in events if e["type"] == "progress"}
    eval_s = sum(e["time"] - prog[e["step"]] for e in events if e["type"] == "eval" and e["step"] in prog)
    total_s = done["time"] - t0
    return {"side": "project", "evals": evals, "eval_s": eval_s, "total_s": total_s, "train_s_excl_eval": total_s - eval_s,
            "reported_tokens_per_s": done["metrics"].get("tokens_per_s"), "peak_rss_mib": rss, "micro_batch": micro,
            "group_by_length": grouped}


def run_child(cmd: list[str], env: dict | None = None) -> tuple[str, float]:
    """Run a child, return (stdout, its own peak RSS in MiB): reaped with wait4 for its rusage."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if proc.returncode != 0:
            sys.stderr.write(err.read()[-4000:])
            raise SystemExit(f"{cmd[:4]} exited {proc.returncode}")
        return out.read(), usage.ru_maxrss / 1024


def time_to(evals: list[dict], target: float) -> dict | None:
    hit = next((e for e in evals if e["eval_loss"] <= target), None)
    return hit and {"step": hit["step"], "t": hit["t"]}


def driver(a: argparse.Namespace) -> dict:
    work = Path(a.out or tempfile.mkdtemp(prefix="bench-train-"))
    work.mkdir(parents=True, exist_ok=True)
    argv = [x for x in sys.argv[1:] if x != "--side"]
    t = time.time()
    b_out, b_rss = run_child([PY, __file__, *argv, "--side", "baseline"],
                             {**os.environ, "OMP_NUM_THREADS": str(a.threads), "TOKENIZERS_PARALLELISM": "false"})
    base = json.loads(b_out.strip().splitlines()[-1])
    base["peak_rss_mib"] = b_rss
    print(f"baseline done in {time.time() - t:.0f}s", file=sys.stderr)
    projects = {}
    for grouped in {"on": [True], "off": [False], "both": [True, False]}[a.group_by_length]:
        t = time.time()
        name = "project_grouped" if grouped else "project_shuffled"
        projects[name] = project(a, work, grouped)
        print(f"{name} done in {time.time() - t:.0f}s", file=sys.stderr)
    runs = {"baseline": base, **projects}
    # The lowest eval loss every run reaches; small float noise must not decide it.
    target = max(min(e["eval_loss"] for e in r["evals"]) for r in runs.values()) + 1e-6
    mean_len = base["mean_row_tokens"]
    for p in projects.values():
        p["tokens_per_s"] = a.steps * 8 * mean_len / p["train_s_excl_eval"]
    reach = {k: time_to(r["evals"], target) for k, r in runs.items()}
    return {"model": a.model, "method": a.method, "lr": a.lr, "steps": a.steps, "eval_every": a.eval_every,
            "threads": a.threads, "target_eval_loss": target, **runs, "time_to_target": reach,
            "speedup_time_to_target": {k: reach["baseline"]["t"] / reach[k]["t"] for k in projects},
            "speedup_tokens_per_s": {k: p["tokens_per_s"] / base["tokens_per_s"] for k, p in projects.items()},
            "load_average": os.getloadavg()}

if __name__ == "__main__":
    args = parse()
    res = baseline(args) if args.side == "baseline" else driver(args)
    print(json.dumps(res))

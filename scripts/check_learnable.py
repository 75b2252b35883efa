#!/usr/bin/env python3
"""Check that models/bloom-tiny learns examples/code-tasks/ with a short CPU PEFT run.

    .venv/bin/python scripts/check_learnable.py                       # LoRA, then prompt tuning
    .venv/bin/python scripts/check_learnable.py --method lora --steps 150

Uses the tutorial recipe: prompt "Human: {instruction}\\n{input}" (stripped) + "\\n\\nAssistant: ",
then output + EOS, loss masked (-100) on the prompt. Reports held-out loss before/after and the
greedy exact-match accuracy on held-out rows. A feasibility check, not a test.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch
from peft import LoraConfig, PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "trainer" / "src"))
from bloom_peft.data import DEFAULT_TEMPLATE, collate, encode_example, render_example  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def prompt_of(row: dict) -> str:
    return render_example(row)[0]


def encode(tok, row: dict) -> dict:
    """The trainer's own encoding (bloom_peft.data): tutorial template, EOS, -100 on the prompt."""
    return encode_example(tok, *render_example(row), DEFAULT_TEMPLATE, 256)


def batch(tok, rows: list[dict]):
    b = collate(rows, tok.pad_token_id)
    return b["input_ids"], b["labels"], b["attention_mask"]


def mean_loss(model, tok, rows) -> float:
    model.eval()
    items = [encode(tok, r) for r in rows]
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(items), 16):
            ids, labels, mask = batch(tok, items[i : i + 16])
            total += model(input_ids=ids, attention_mask=mask, labels=labels).loss.item() * len(ids)
    model.train()
    return total / len(items)


def accuracy(model, tok, rows, show: int = 0) -> float:
    model.eval()
    hits = 0
    with torch.no_grad():
        for k, row in enumerate(rows):
            enc = tok(prompt_of(row), return_tensors="pt")
            out = model.generate(**enc, max_new_tokens=24, do_sample=False,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
            text = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            hits += text == row["output"]
            if k < show or (text != row["output"] and show >= 0):
                print(f"   {row['input']!r:40} -> {text!r:40} {'ok' if text == row['output'] else 'WANT ' + repr(row['output'])}")
    model.train()
    return hits / len(rows)


def run(method: str, steps: int, lr: float, batch_size: int, model_dir: Path, data_dir: Path, n_eval: int, seed: int):
    torch.manual_seed(seed)
    rng = random.Random(seed)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    train = [json.loads(l) for l in (data_dir / "train.jsonl").read_text().splitlines()]
    held = [json.loads(l) for l in (data_dir / "heldout.jsonl").read_text().splitlines()][:n_eval]
    if method == "lora":
        cfg = LoraConfig(task_type=TaskType.CAUSAL_LM, r=8, lora_alpha=16, lora_dropout=0.0,
                         target_modules=["query_key_value"])
    elif method == "prompt":
        cfg = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=20,
                                 prompt_tuning_init=PromptTuningInit.RANDOM)
    else:
        raise SystemExit(f"unknown method {method}")
    model = get_peft_model(model, cfg)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    before = mean_loss(model, tok, held)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    items = [encode(tok, r) for r in train]
    t0 = time.time()
    order: list[int] = []
    for step in range(steps):
        if len(order) < batch_size:
            order = list(range(len(items)))
            rng.shuffle(order)
        ids, labels, mask = batch(tok, [items[order.pop()] for _ in range(batch_size)])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step % 50 == 0 or step == steps - 1:
            print(f"  {method} step {step:4d} loss {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
    secs = time.time() - t0
    after = mean_loss(model, tok, held)
    acc = accuracy(model, tok, held, show=3)
    print(f"{method}: {trainable} trainable, {steps} steps, batch {batch_size}, lr {lr}: {secs:.0f}s; "
          f"held-out loss {before:.3f} -> {after:.3f}; exact match {acc:.0%} on {len(held)} held-out rows")
    return acc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", choices=["lora", "prompt", "both"], default="both")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "bloom-tiny")
    ap.add_argument("--data", type=Path, default=ROOT / "examples" / "code-tasks")
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--lr", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--eval", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    defaults = {"lora": (150, 1e-3), "prompt": (300, 3e-2)}
    for method in (["lora", "prompt"] if args.method == "both" else [args.method]):
        steps, lr = defaults[method]
        run(method, args.steps or steps, args.lr or lr, args.batch, args.model, args.data, args.eval, args.seed)


if __name__ == "__main__":
    main()

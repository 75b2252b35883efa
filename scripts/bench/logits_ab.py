"""A/B (not a test): the model's own loss, logits at every position, vs the trainer's response loss, logits from the
first label position on (train.response_loss_sum, logits_to_keep), in training steps of the embedded model on real
rows of each task, the trainer's GELU fused on both sides.

    .venv/bin/python scripts/bench/logits_ab.py [--steps 30] [--model models/bloom-tiny] [--batch 8] [--threads 1]
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "trainer/src"))
p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=30)
p.add_argument("--batch", type=int, default=8)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--model", default=str(ROOT / "models/bloom-tiny"))
a = p.parse_args()
torch.set_num_threads(a.threads)
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from bloom_peft.data import DEFAULT_TEMPLATE, collate, encode_example, render_example  # noqa: E402
from bloom_peft.model_loading import fuse_bloom_gelu  # noqa: E402
from bloom_peft.train import first_label_position, label_count, response_loss_sum  # noqa: E402

tok = AutoTokenizer.from_pretrained(a.model)
rows = [json.loads(x) for x in (ROOT / "examples/code-tasks/train.jsonl").read_text().splitlines()]
encoded = [encode_example(tok, *render_example(r), DEFAULT_TEMPLATE, 256) for r in rows]
# batches as length grouping makes them: rows of similar length (the two tasks differ in length), and one mixed
by_len = sorted(encoded, key=lambda e: len(e["input_ids"]))
batches = {"short rows": collate(by_len[:a.batch], tok.pad_token_id),
           "long rows": collate(by_len[-a.batch:], tok.pad_token_id),
           "mixed": collate(encoded[:a.batch], tok.pad_token_id)}
model = AutoModelForCausalLM.from_pretrained(a.model)
fuse_bloom_gelu(model)
model.train()


def full(b):
    return model(**b).loss


def response(b):
    return response_loss_sum(model, b, first_label_position(b["labels"])) / label_count(b)


out = {}
for bname, b in batches.items():
    torch.manual_seed(0)
    model.eval()
    ref, new = full(b).item(), response(b).item()
    model.train()
    times = {"all positions": [], "from first label": []}
    for _ in range(a.steps):
        for name, fn in (("all positions", full), ("from first label", response)):  # interleaved
            t = time.perf_counter()
            fn(b).backward()
            model.zero_grad(set_to_none=True)
            times[name].append(time.perf_counter() - t)
    med = {k: sorted(v)[len(v) // 2] * 1000 for k, v in times.items()}
    out[bname] = {"seq": b["input_ids"].shape[1], "first_label_position": first_label_position(b["labels"]),
                  "loss_diff": abs(ref - new), "median_fwd_bwd_ms": {k: round(v, 2) for k, v in med.items()},
                  "speedup": round(med["all positions"] / med["from first label"], 3)}
print(json.dumps({"threads": a.threads, "batch": a.batch, **out}, indent=1))

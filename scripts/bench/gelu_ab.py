"""A/B (not a test): BLOOM's Python tanh-GELU (autograd Function, ~10 elementwise ops each way) vs torch's fused
F.gelu(approximate="tanh") (the same formula) in training steps of the embedded model on real rows.

    .venv/bin/python scripts/bench/gelu_ab.py [--steps 20] [--model models/bloom-tiny] [--batch 8]
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
p.add_argument("--steps", type=int, default=20)
p.add_argument("--batch", type=int, default=8)
p.add_argument("--model", default=str(ROOT / "models/bloom-tiny"))
a = p.parse_args()
torch.set_num_threads(1)
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from bloom_peft.data import DEFAULT_TEMPLATE, collate, encode_example, render_example  # noqa: E402
from bloom_peft.model_loading import fuse_bloom_gelu  # noqa: E402

tok = AutoTokenizer.from_pretrained(a.model)
rows = [json.loads(x) for x in (ROOT / "examples/code-tasks/train.jsonl").read_text().splitlines()[:a.batch]]
batch = collate([encode_example(tok, *render_example(r), DEFAULT_TEMPLATE, 256) for r in rows], tok.pad_token_id)
models = {"python_gelu": AutoModelForCausalLM.from_pretrained(a.model), "fused_gelu": AutoModelForCausalLM.from_pretrained(a.model)}
fuse_bloom_gelu(models["fused_gelu"])
losses, grads = {}, {}
for name, m in models.items():
    m.train()
    loss = m(**batch).loss
    loss.backward()
    losses[name], grads[name] = loss.item(), torch.cat([q.grad.flatten() for q in m.parameters()])
    m.zero_grad()
times = {k: [] for k in models}
for _ in range(a.steps):
    for name, m in models.items():  # interleaved: load changes hit both alike
        t = time.perf_counter()
        m(**batch).loss.backward()
        m.zero_grad(set_to_none=True)
        times[name].append(time.perf_counter() - t)
med = {k: sorted(v)[len(v) // 2] * 1000 for k, v in times.items()}
print(json.dumps({"loss_diff": abs(losses["python_gelu"] - losses["fused_gelu"]),
                  "grad_max_diff": (grads["python_gelu"] - grads["fused_gelu"]).abs().max().item(),
                  "median_fwd_bwd_ms": med, "speedup": med["python_gelu"] / med["fused_gelu"], "tokens": int(batch["attention_mask"].sum())}))

"""PyTorch's `model.generate` as the baseline of engine_vs_torch.ts, kept alive so its legs interleave with the
engine's. Makes the project's fp32/int8 exports of the same model first when they are missing.

    python scripts/bench/torch_generate.py --shape 560m|small|embedded --out DIR --threads 2 --tokens 32 --prompt TEXT

Prints {"ready": ...} once loaded and warmed up, then answers each line on stdin with one measurement (JSON): the
first token (prefill) and the decode ms/token of a greedy generation, and the share of the CPU other processes took
meanwhile (/proc/stat busy time less this process's own)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bandwidth import busy_seconds
from bench_model import build_model, ensure_exports, tokenizer_dir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="560m")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--prompt", required=True)
    a = ap.parse_args()
    import os

    import torch
    from bloom_peft.model_loading import load_tokenizer

    torch.set_num_threads(a.threads)
    torch.set_grad_enabled(False)
    out = Path(a.out)
    tok = load_tokenizer(str(tokenizer_dir(out / "scratch")))
    model = build_model(a.shape, out / "scratch")
    ensure_exports(model, tok, out, a.shape)
    ids = torch.tensor([tok(a.prompt)["input_ids"]])
    gen = {"do_sample": False, "eos_token_id": None, "pad_token_id": 3}
    model.generate(ids, max_new_tokens=2, **gen)  # warm-up
    print(json.dumps({"ready": True, "prompt_tokens": ids.shape[1], "torch": torch.__version__,
                      "weight_bytes": sum(p.numel() * p.element_size() for p in model.parameters())}), flush=True)
    for _ in sys.stdin:
        b0, c0, t0 = busy_seconds(), time.process_time(), time.perf_counter()
        t = time.perf_counter()
        model.generate(ids, max_new_tokens=1, **gen)
        first = time.perf_counter() - t
        t = time.perf_counter()
        model.generate(ids, max_new_tokens=a.tokens, **gen)
        total = time.perf_counter() - t
        wall, b1 = time.perf_counter() - t0, busy_seconds()
        other = 0.0 if b0 is None or b1 is None else max(0.0, (b1 - b0) - (time.process_time() - c0)) / (wall * os.cpu_count())
        print(json.dumps({"first_token_ms": first * 1000, "decode_ms_per_token": (total - first) / (a.tokens - 1) * 1000,
                          "otherShare": other}), flush=True)


if __name__ == "__main__":
    main()

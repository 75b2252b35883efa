#!/usr/bin/env python3
"""What quantizing the ONNX export costs a user in answers: greedy answers of the fp32, int8 and int4 exports of the
embedded model (alone, and with adapters trained as scripts/eval_methods.py trains them: its embedded preset) to the
held-out rows of examples/en-tasks, zh-tasks and unseen-words, counted as exact matches and as answers equal to the
fp32 export's.

    .venv/bin/python scripts/eval_quantized_exports.py [--work DIR] [--threads 2] [--methods lora,prefix_tuning]

The answers come from onnxruntime on the exported files (the export contract's greedy loop, as the completion engine
runs it: prefill, then one token a step with the past, stopping at EOS or 32 tokens). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "trainer" / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from bloom_peft.config import QUANTIZATIONS
from eval_methods import (
    SETS,
    mixed_training_file,
    read_rows,
    run_config,
    train,
)

MAX_NEW_TOKENS = 32


def greedy_answers(export: Path, rows: list[dict]) -> list[str]:
    import numpy as np
    from bloom_peft.data import render_example
    from bloom_peft.testing.parity import OrtDecoder
    from tokenizers import Tokenizer

    decoder = OrtDecoder(export, threads=1)
    eos = decoder.manifest["eos_token_id"]
    tokenizer = Tokenizer.from_file(str(export / "tokenizer.json"))
    out = []
    for row in rows:
        ids = tokenizer.encode(render_example(row)[0]).ids
        logits, past = decoder.step([ids], decoder.initial_past())
        new: list[int] = []
        while len(new) < MAX_NEW_TOKENS:
            token = int(np.argmax(logits[0, -1]))
            if token == eos:
                break
            new.append(token)
            logits, past = decoder.step([[token]], past)
        out.append(tokenizer.decode(new, skip_special_tokens=True))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", help="work folder (default: a temporary one)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", default="lora", help="comma-separated methods to train and export (default: lora)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from bloom_peft.export import export_adapter, export_run

    work = Path(args.work or tempfile.mkdtemp(prefix="bloom-peft-qeval-"))
    model = str(ROOT / "models" / "bloom-tiny")
    train_file, eval_file = mixed_training_file(work / "data", ROOT / "examples")
    heldout = {name: read_rows(ROOT / "examples" / name / "heldout.jsonl") for name in SETS}
    methods = args.methods.split(",") if args.methods else []
    for method in methods:
        if not (work / method / "adapter").is_dir():
            config = run_config(model, {"name": method}, train_file, eval_file, {})
            seconds, _ = train(work / method, config, args.threads)
            print(f"trained {method} in {seconds:.0f}s", file=sys.stderr)
    cache = work / "export-cache"
    results = {}
    for who in ("embedded model", *(f"{m} adapter" for m in methods)):
        for q in QUANTIZATIONS:
            out = work / f"export-{who.split()[0]}-{q}"
            t0 = time.time()
            if who != "embedded model":
                export_run(work / who.split()[0], out=out, quantize=q, base_cache=cache)
            else:
                export_adapter(model, None, out, quantize=q, base_cache=cache)
            seconds = time.time() - t0
            got = {name: greedy_answers(out, rows) for name, rows in heldout.items()}
            results[(who, q)] = {"answers": got, "export_s": seconds}
            print(f"{who} {q}: exported in {seconds:.1f}s, answered", file=sys.stderr)
    lines = ["| model | export | " + " | ".join(f"{s} exact" for s in SETS) + " | same answer as fp32 (all rows) |",
             "|---|---|" + "---|" * len(SETS) + "---|"]
    total = sum(len(r) for r in heldout.values())
    for (who, q), r in results.items():
        exact = [sum(g == row["output"] for g, row in zip(r["answers"][s], heldout[s])) for s in SETS]
        ref = results[(who, "none")]["answers"]
        same = sum(a == b for s in SETS for a, b in zip(r["answers"][s], ref[s]))
        lines.append(f"| {who} | {'fp32' if q == 'none' else q} | "
                     + " | ".join(f"{e}/{len(heldout[s])}" for e, s in zip(exact, SETS)) + f" | {same}/{total} |")
    print("\n".join(lines))
    (work / "answers.json").write_text(json.dumps({f"{w}/{q}": r for (w, q), r in results.items()}, ensure_ascii=False,
                                                  indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Exports + PyTorch reference vectors for the TypeScript engine's parity tests (docs/export.md, "Fixtures").

    python -m bloom_peft.testing.ts_fixtures --out DIR [--methods lora,prefix_tuning,...] [--model M] [--steps 12]
    python -m bloom_peft.testing.ts_fixtures --out DIR --random-shape bloom-560m [--quantize int8|int4]

For each variant (names in bloom_peft.testing.parity.VARIANTS; a method name such as p_tuning picks its first
variant) it writes DIR/<variant>/adapter (saved as the trainer saves it), DIR/<variant>/export (the export contract)
and DIR/<variant>/reference.json, then prints one JSON line {"fixtures": {variant: dir}} on stdout.
--random-shape exports a model of real size with random weights (for benchmarks) to DIR/random-<shape>/.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .parity import VARIANTS, OrtDecoder, make_adapter, torch_greedy, torch_logits

PROMPTS = [
    "Human: Convert to snake_case\nshow main worker\n\nAssistant: ",
    "def add(a, b):\n    return",
    "Human: 把这句话翻译成英文：你好，世界 🌍\n\nAssistant: ",
]
LOGITS_HEAD = 16
SHAPES: dict[str, dict[str, Any]] = {  # BloomConfig keyword arguments
    "bloom-560m": dict(vocab_size=250880, hidden_size=1024, n_layer=24, n_head=16),
    "bloom-1b1": dict(vocab_size=250880, hidden_size=1536, n_layer=24, n_head=16),
}


def _variant(name: str) -> str:
    if name in VARIANTS:
        return name
    for variant, cfg in VARIANTS.items():
        if cfg["name"] == name:
            return variant
    raise SystemExit(f"unknown method or variant '{name}'; choose from {', '.join(VARIANTS)}")


def reference(model, tokenizer, prompts: list[str], steps: int) -> dict:
    """What PyTorch computes for each prompt: ids, the first logits of the last position, the greedy continuation."""
    ids = [tokenizer(p)["input_ids"] for p in prompts]
    last = [torch_logits(model, x)[-1] for x in ids]
    return {"prompts": prompts, "input_ids": ids,
            "last_logits": [[float(v) for v in row[:LOGITS_HEAD]] for row in last],
            "last_argmax": [int(row.argmax()) for row in last],
            "greedy_ids": [torch_greedy(model, x, steps) for x in ids],
            "greedy_steps": steps, "tolerance": 1e-4}


def make_fixtures(out_dir, variants: list[str] | None = None, *, model: str | None = None, steps: int = 12,
                  prompts: list[str] | None = None, quantize: str = "none", fp16: bool = False) -> dict:
    from ..export import export_adapter
    from .tiny_model import base_model_dir

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    base = model or str(base_model_dir(out / "_base"))
    made = {}
    for variant in [_variant(v) for v in (variants or list(VARIANTS))]:
        d = out / variant
        t0 = time.time()
        trained, tokenizer = make_adapter(base, variant, d / "adapter")
        ref = reference(trained, tokenizer, prompts or PROMPTS, steps)
        export = export_adapter(base, d / "adapter", d / "export", quantize=quantize, fp16=fp16)
        ort_greedy = OrtDecoder(export).greedy(ref["input_ids"][0], steps)
        ref.update(method=VARIANTS[variant]["name"], variant=variant, base_model=base, export_dir=str(export),
                   python_onnxruntime_greedy_ids=ort_greedy, seconds=round(time.time() - t0, 2))
        if quantize != "none" or fp16:
            ref["tolerance"] = None  # parity is exact only for float32 exports; see docs/export.md
        (d / "reference.json").write_text(json.dumps(ref, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        made[variant] = str(d)
    return made


def make_random_export(out_dir, shape: str = "bloom-560m", *, tokenizer_from: str | None = None,
                       quantize: str = "none", fp16: bool = False, seed: int = 0) -> Path:
    """A real-size BLOOM with random weights (never downloaded) exported as method 'full'; its reference.json holds
    the PyTorch logits of one prompt. The tokenizer is the embedded model's, grown to the shape's vocabulary with
    placeholder tokens (testing/vocab.py): the engine refuses a tokenizer far smaller than the vocabulary."""
    import torch
    from transformers import BloomConfig, BloomForCausalLM

    from ..export import export_model
    from ..model_loading import load_tokenizer
    from .tiny_model import base_model_dir
    from .vocab import full_size_tokenizer

    d = Path(out_dir).resolve() / f"random-{shape}"
    torch.manual_seed(seed)
    model = BloomForCausalLM(BloomConfig(**SHAPES[shape])).eval()
    tokenizer = load_tokenizer(tokenizer_from or str(base_model_dir(d / "_base")))
    if tokenizer_from is None:
        tokenizer = full_size_tokenizer(tokenizer, model.config.vocab_size, d / "_tokenizer")
    ref = reference(model, tokenizer, PROMPTS[:1], steps=4)
    export = export_model(model, tokenizer, "full", d / "export", base_model=f"random:{shape}", quantize=quantize,
                          fp16=fp16)
    ref.update(method="full", variant=f"random-{shape}", base_model=f"random:{shape}", export_dir=str(export),
               tolerance=1e-3 if quantize == "none" and not fp16 else None)
    (d / "reference.json").write_text(json.dumps(ref, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return d


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(prog="python -m bloom_peft.testing.ts_fixtures", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--methods", help=f"comma-separated variants or methods (default all: {','.join(VARIANTS)})")
    parser.add_argument("--model", help="base model folder (default models/bloom-tiny, else a tiny random BLOOM)")
    parser.add_argument("--steps", type=int, default=12, help="greedy tokens per prompt")
    parser.add_argument("--prompts", help="JSON file with a list of prompt strings")
    parser.add_argument("--quantize", choices=["none", "int8", "int4"], default="none")
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--random-shape", choices=sorted(SHAPES), help="export a random-weight model of this shape instead")
    args = parser.parse_args(argv)
    torch.set_num_threads(1 if not args.random_shape else min(2, torch.get_num_threads()))
    stdout, sys.stdout = sys.stdout, sys.stderr  # library chatter to stderr; stdout carries the one result line
    try:
        if args.random_shape:
            made = {f"random-{args.random_shape}": str(make_random_export(
                args.out, args.random_shape, tokenizer_from=args.model, quantize=args.quantize, fp16=args.fp16))}
        else:
            prompts = json.loads(Path(args.prompts).read_text(encoding="utf-8")) if args.prompts else None
            made = make_fixtures(args.out, args.methods.split(",") if args.methods else None, model=args.model,
                                 steps=args.steps, prompts=prompts, quantize=args.quantize, fp16=args.fp16)
    finally:
        sys.stdout = stdout
    print(json.dumps({"fixtures": made}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

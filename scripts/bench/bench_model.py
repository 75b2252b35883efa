"""The benchmarks' random BLOOM models: one definition of each shape and of how its exports are made, shared by
engine_vs_torch.ts (engine vs PyTorch) and peer/ (engine vs llama.cpp), so every engine reads the same weights.

Weights are drawn with torch.manual_seed(0) at model construction: the same shape gives the same weights in every
process (same torch version), so an export made earlier and a GGUF written later hold the same numbers; the peer
bench checks that by comparing greedy tokens."""
from __future__ import annotations

import sys
import time
from pathlib import Path

SHAPES = {
    "560m": {"vocab_size": 250880, "hidden_size": 1024, "n_layer": 24, "n_head": 16},
    "small": {"vocab_size": 7168, "hidden_size": 512, "n_layer": 4, "n_head": 8},
}


def tokenizer_dir(scratch: Path) -> Path:
    from bloom_peft.testing.tiny_model import base_model_dir

    return Path(base_model_dir(scratch))


def build_model(shape: str, scratch: Path):
    """`shape` from SHAPES (random weights, seed 0) or "embedded" (models/bloom-tiny itself), in eval mode."""
    import torch
    from transformers import BloomConfig, BloomForCausalLM

    if shape == "embedded":
        return BloomForCausalLM.from_pretrained(str(tokenizer_dir(scratch))).eval()
    if shape not in SHAPES:
        raise SystemExit(f"bench_model: unknown shape '{shape}' (expected embedded or one of {', '.join(SHAPES)})")
    torch.manual_seed(0)
    config = BloomConfig(**SHAPES[shape], bos_token_id=1, eos_token_id=2, pad_token_id=3)
    return BloomForCausalLM(config).eval()


def ensure_exports(model, tok, out: Path, shape: str) -> None:
    """The project's fp32 and int8 exports of `model` under out/fp32 and out/int8, made when missing."""
    from bloom_peft.export import export_model

    for name, quantize in (("fp32", "none"), ("int8", "int8")):
        if not (out / name / "manifest.json").exists():
            t = time.time()
            export_model(model, tok, "full", out / name, base_model=f"random-{shape}", quantize=quantize, verify=False)
            print(f"exported {name} in {time.time() - t:.0f}s", file=sys.stderr)
        pad_tokenizer(out / name / "tokenizer.json", model.config.vocab_size)


def pad_tokenizer(file: Path, vocab_size: int) -> None:
    """Gives every id of the model's vocabulary a token in an export's tokenizer.json, as a real checkpoint's
    tokenizer has (the engine refuses a tokenizer far smaller than the vocabulary). The random 560m shape pairs
    250,880 rows with the embedded model's 7,148-token tokenizer; the added entries have no merges, so encoding
    is unchanged, and only generated ids reach them."""
    from bloom_peft.testing.vocab import grow_tokenizer_file

    grow_tokenizer_file(file, vocab_size)

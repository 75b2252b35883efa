"""Exports for the TypeScript engine tests (test/unit/inference*.test.ts), made with the project's exporter.

    .venv/bin/python test/unit/inference_fixtures.py OUT_DIR [parity] [big]

parity: every method variant of bloom_peft.testing.parity on the embedded model (or a tiny random stand-in),
        exported to OUT/parity/<variant>/ with reference.json: for each prompt the Python tokenizer's ids, the
        PyTorch (peft model) logits of the last position and a greedy continuation.
big:    a random-weight BLOOM with hidden 512 (decode steps that take a while) exported to OUT/big/.
Writes OUT/<part>/done last, so a half-written fixture is never reused."""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(2)

PROMPTS = [
    "def load_user(user_id):\n    ",
    "Human: Convert to snake_case\nReset User\n\nAssistant: ",
    "naïve café — 中文 😀 done",
]
GREEDY_STEPS = 8


def parity(out: Path) -> None:
    from bloom_peft.export import export_model
    from bloom_peft.testing.parity import VARIANTS, make_adapter, torch_greedy, torch_logits
    from bloom_peft.testing.tiny_model import base_model_dir

    base = base_model_dir(out / "scratch")
    for variant in VARIANTS:
        t0 = time.time()
        model, tokenizer = make_adapter(base, variant, out / "scratch" / variant, seed=1)
        refs = []
        for prompt in PROMPTS:
            ids = tokenizer(prompt)["input_ids"]
            refs.append({"prompt": prompt, "ids": ids, "last_logits": torch_logits(model, ids)[-1].tolist(),
                         "greedy": torch_greedy(model, ids, GREEDY_STEPS)})
        method = VARIANTS[variant]["name"]
        export_model(model, tokenizer, method, out / variant, base_model=str(base), verify=False)
        (out / variant / "reference.json").write_text(json.dumps({"variant": variant, "method": method, "prompts": refs}))
        print(f"parity fixture {variant}: {time.time() - t0:.1f}s", file=sys.stderr)
    shutil.rmtree(out / "scratch", ignore_errors=True)


def big(out: Path) -> None:
    from transformers import BloomConfig, BloomForCausalLM

    from bloom_peft.export import export_model
    from bloom_peft.model_loading import load_tokenizer
    from bloom_peft.testing.tiny_model import base_model_dir

    tokenizer = load_tokenizer(str(base_model_dir(out / "scratch")))
    torch.manual_seed(0)
    config = BloomConfig(vocab_size=len(tokenizer), hidden_size=512, n_layer=4, n_head=8,
                         bos_token_id=1, eos_token_id=2, pad_token_id=3)
    export_model(BloomForCausalLM(config).eval(), tokenizer, "full", out, base_model="random-hidden-512", verify=False)
    shutil.rmtree(out / "scratch", ignore_errors=True)


def main() -> None:
    root = Path(sys.argv[1])
    for part in sys.argv[2:] or ["parity", "big"]:
        dest = root / part
        if (dest / "done").exists():
            continue
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        {"parity": parity, "big": big}[part](dest)
        (dest / "done").write_text("ok")


if __name__ == "__main__":
    main()

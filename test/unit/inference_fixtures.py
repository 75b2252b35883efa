"""Exports for the TypeScript engine tests (test/unit/inference*.test.ts), made with the project's exporter.

    .venv/bin/python test/unit/inference_fixtures.py OUT_DIR [parity] [fp16] [big] [int4]

parity: bloom_peft.testing.ts_fixtures, one variant per method, on the embedded model (or a tiny random stand-in):
        OUT/parity/<variant>/{adapter,export,reference.json} with the PyTorch (peft model) references.
fp16:   the same for prefix tuning exported in float16, OUT/fp16/prefix_tuning/.
big:    a random-weight BLOOM with hidden 512 (decode steps that take a while) exported to OUT/big/.
int4:   the embedded model alone exported float32 and int4 (OUT/int4/{none,int4}/), and reference.json: held-out
        prompts of the sample sets with the greedy ids of onnxruntime in Python on each export.
Writes OUT/<part>/done last, so a half-written fixture is never reused."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

torch.set_num_threads(2)


def parity(out: Path) -> None:
    """The export helper's fixtures (adapter, export, reference.json per variant)."""
    from bloom_peft.testing.ts_fixtures import make_fixtures

    # One variant per method: the graph the engine sees differs by method only (merged weights or a prefix KV);
    # the other variants (text init, LSTM encoder, prefix projection) are the exporter's parity tests' business.
    make_fixtures(out, ["full", "bitfit", "prompt_tuning", "p_tuning", "prefix_tuning", "lora", "ia3"])


def fp16(out: Path) -> None:
    """A float16 export with a prefix KV: float16 past tensors, prefix conversion and KV slicing in the engine."""
    from bloom_peft.testing.ts_fixtures import make_fixtures

    make_fixtures(out, ["prefix_tuning"], fp16=True)


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


def int4(out: Path) -> None:
    import json

    from tokenizers import Tokenizer

    from bloom_peft.data import render_example
    from bloom_peft.export import export_adapter
    from bloom_peft.testing.parity import OrtDecoder
    from bloom_peft.testing.tiny_model import base_model_dir

    base = base_model_dir(out / "scratch")
    root = Path(__file__).resolve().parents[2]
    rows = [json.loads(line) for name in ("en-tasks", "zh-tasks", "unseen-words")
            for line in (root / "examples" / name / "heldout.jsonl").read_text(encoding="utf-8").splitlines()[:8]]
    prompts = [render_example(r)[0] for r in rows]
    steps, greedy = 8, {}
    for quantize in ("none", "int4"):
        export = export_adapter(str(base), None, out / quantize, quantize=quantize)
        decoder = OrtDecoder(export)
        tokenizer = Tokenizer.from_file(str(export / "tokenizer.json"))
        greedy[quantize] = [decoder.greedy(tokenizer.encode(p).ids, steps) for p in prompts]
    (out / "reference.json").write_text(json.dumps({"prompts": prompts, "steps": steps,
                                                    "python_onnxruntime_greedy_ids": greedy}, ensure_ascii=False))
    shutil.rmtree(out / "scratch", ignore_errors=True)


def main() -> None:
    root = Path(sys.argv[1])
    for part in sys.argv[2:] or ["parity", "fp16", "big", "int4"]:
        dest = root / part
        if (dest / "done").exists():
            continue
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        {"parity": parity, "fp16": fp16, "big": big, "int4": int4}[part](dest)
        (dest / "done").write_text("ok")


if __name__ == "__main__":
    main()

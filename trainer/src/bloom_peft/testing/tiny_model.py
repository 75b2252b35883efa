"""A tiny random BLOOM model folder (config.json, model.safetensors, tokenizer.json), saved with save_pretrained.

Stand-in for models/bloom-tiny where that is missing; `base_model_dir()` prefers the embedded model."""
from __future__ import annotations

from pathlib import Path

from ..paths import EMBEDDED_MODEL_DIR, PROJECT_ROOT


def _corpus() -> list[str]:
    texts = []
    for folder in ("examples/code-tasks", "examples/code-corpus"):
        d = PROJECT_ROOT / folder
        if d.is_dir():
            texts += [f.read_text(encoding="utf-8", errors="replace") for f in sorted(d.iterdir()) if f.is_file()]
    return texts or ["def add(a, b):\n    return a + b\n", "Human: hello\n\nAssistant: hi"]


def make_tiny_bloom(out_dir, *, vocab_size: int = 512, hidden_size: int = 64, n_layer: int = 2, n_head: int = 4,
                    seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import BloomConfig, BloomForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")
    fast.save_pretrained(str(out))
    torch.manual_seed(seed)
    config = BloomConfig(vocab_size=len(fast), hidden_size=hidden_size, n_layer=n_layer, n_head=n_head,
                         bos_token_id=1, eos_token_id=2, pad_token_id=3)
    BloomForCausalLM(config).save_pretrained(str(out), safe_serialization=True)
    return out


def base_model_dir(scratch) -> Path:
    """models/bloom-tiny when it exists, else a tiny random model made in `scratch`."""
    if (EMBEDDED_MODEL_DIR / "config.json").is_file() and (EMBEDDED_MODEL_DIR / "model.safetensors").is_file():
        return EMBEDDED_MODEL_DIR
    return make_tiny_bloom(Path(scratch) / "tiny-bloom")

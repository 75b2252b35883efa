"""The model the trainer-data tests run on: the embedded models/bloom-tiny (loaded through from_pretrained like
any BLOOM checkpoint). Torch threads are capped at 2 (CI runs on 2 cores)."""
from __future__ import annotations

import functools

import torch

from bloom_peft.paths import EMBEDDED_MODEL_DIR

torch.set_num_threads(min(2, torch.get_num_threads()))


@functools.cache
def model_dir() -> str:
    if (EMBEDDED_MODEL_DIR / "model.safetensors").is_file():
        return str(EMBEDDED_MODEL_DIR)
    # until the embedded model lands: a tiny random BLOOM with a BPE tokenizer trained on the sample data
    import tempfile

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import BloomConfig, BloomForCausalLM, PreTrainedTokenizerFast

    out = tempfile.mkdtemp(prefix="bloom-tiny-")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    root = EMBEDDED_MODEL_DIR.parent.parent
    text = (root / "examples" / "code-tasks" / "train.jsonl").read_text().splitlines()
    tok.train_from_iterator(text, trainers.BpeTrainer(vocab_size=500, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    torch.manual_seed(0)
    BloomForCausalLM(BloomConfig(vocab_size=len(fast), hidden_size=64, n_layer=2, n_head=4, bos_token_id=1,
                                 eos_token_id=2, pad_token_id=3)).save_pretrained(out)
    fast.save_pretrained(out)
    return out


def model_name() -> str:
    """What a config's model.name_or_path holds for the test model."""
    return "embedded" if model_dir() == str(EMBEDDED_MODEL_DIR) else model_dir()


ROOT = EMBEDDED_MODEL_DIR.parent.parent
TASKS = ROOT / "examples" / "code-tasks"
CORPUS = ROOT / "examples" / "code-corpus"

"""A tokenizer grown to a model's vocabulary, for benchmark models of real shapes with random weights.

Those models (bloom-560m: 250,880 rows) carry the embedded model's tokenizer (7,148 tokens), which the engine and the
trainer refuse as cut down: most ids the model samples would decode to nothing. Growing it with placeholder tokens
`<unused_N>` at every id it lacks keeps its ids and merges (the same prompt gives the same ids) and makes every id the
model can produce decode to text, as with the real checkpoint."""
from __future__ import annotations

import json
from pathlib import Path


def grow_tokenizer_file(path: Path, vocab_size: int) -> None:
    """Adds `<unused_N>` to tokenizer.json's vocabulary for each id below vocab_size it does not have (in place)."""
    state = json.loads(path.read_text(encoding="utf-8"))
    vocab = state["model"]["vocab"]
    taken = set(vocab.values()) | {a["id"] for a in state.get("added_tokens", [])}
    for i in range(vocab_size):
        if i not in taken:
            vocab[f"<unused_{i}>"] = i
    path.write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")


def full_size_tokenizer(tokenizer, vocab_size: int, folder: Path):
    """`tokenizer` saved to `folder` with its vocabulary grown to vocab_size, loaded back (special tokens kept)."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))
    grow_tokenizer_file(folder / "tokenizer.json", vocab_size)
    return AutoTokenizer.from_pretrained(str(folder))

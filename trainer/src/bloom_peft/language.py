"""Does the tokenizer know the dataset's language? A byte-level tokenizer that never saw a script spends a token per
byte on it (about 3 a character for Chinese), and a tokenizer without byte fallback produces unknown tokens; either
way the model has no words for the language, and fine-tuning on it mostly fails. Preview and the trainer warn."""
from __future__ import annotations

import re
import unicodedata
from collections import Counter

TOKENS_PER_CHAR_LIMIT = 2.0  # a tokenizer that knows a script needs about 1 token a character or less
MIN_CHARS = 20  # fewer non-ASCII characters than this (a name, a dash) say nothing about the language
SAMPLE_ROWS = 200
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


def _script(ch: str) -> str:
    name = unicodedata.name(ch, "")
    if name.startswith(("CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH")):
        return "Chinese"
    if name.startswith(("HIRAGANA", "KATAKANA")):
        return "Japanese"
    if name.startswith("HANGUL"):
        return "Korean"
    return name.split(" ")[0].capitalize() if name else "non-Latin"


def language_warnings(texts: list[str], tokenizer, model_name: str) -> list[str]:
    """Warnings (at most two) for the first SAMPLE_ROWS texts: too many tokens per non-ASCII character, or unknown
    tokens. ASCII text is never the problem: byte-level BPE spends at most one token per ASCII character."""
    runs = [run for text in texts[:SAMPLE_ROWS] for run in _NON_ASCII_RUN.findall(text)]
    warnings = []
    chars = sum(len(r) for r in runs)
    if chars >= MIN_CHARS:
        tokens = sum(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in runs)
        ratio = tokens / chars
        if ratio > TOKENS_PER_CHAR_LIMIT:
            script = Counter(_script(c) for r in runs for c in r if not c.isspace()).most_common(1)[0][0]
            sample = max(runs, key=len)[:12]
            warnings.append(
                f"the tokenizer of model '{model_name}' spends {ratio:.1f} tokens per character on the {script} text of "
                f"the dataset (e.g. '{sample}'): the model likely lacks the language and will learn it poorly; use a "
                f"model trained on it (for Chinese, e.g. Langboat/bloom-1b4-zh or bigscience/bloom-560m)")
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is not None:
        unknown = [t for t in texts[:SAMPLE_ROWS] if unk in tokenizer(t, add_special_tokens=False)["input_ids"]]
        if unknown:
            warnings.append(
                f"the tokenizer of model '{model_name}' turns characters of {len(unknown)} of the first "
                f"{min(len(texts), SAMPLE_ROWS)} rows into unknown tokens (e.g. in '{unknown[0][:40]}'): the model "
                f"likely lacks the language; use a model whose tokenizer covers it")
    return warnings

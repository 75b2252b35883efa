#!/usr/bin/env python3
"""Regenerate schemas/vectors/tokenizer.json: token ids of the embedded tokenizer (Python `tokenizers`) that the
TypeScript engine (@huggingface/tokenizers) must reproduce. See docs/export.md, "Tokenizer vectors".

    .venv/bin/python scripts/make_tokenizer_vectors.py [--model models/bloom-tiny] [--out schemas/vectors/tokenizer.json]
    .venv/bin/python scripts/make_tokenizer_vectors.py --check     # exit 1 when the file is stale
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TEXTS = [
    "",
    "hello world",
    "Hello, World! How are you?",
    "Human: Convert to snake_case\nshow main worker\n\nAssistant: ",
    "Human: 把这句话翻译成英文\n你好，世界\n\nAssistant: ",
    "def add(a, b):\n    return a + b\n",
    "function snakeCase(s) {\n\treturn s.replace(/([A-Z])/g, '_$1').toLowerCase();\n}",
    "if (x) {\n        y = [1, 2, 3];  // comment\n}\n",
    "    four leading spaces",
    "tabs\t\tand\ttrailing   ",
    "many\n\n\n\nnewlines\r\nand CRLF",
    "  \n \t ",
    "snake_case_name CamelCaseName kebab-case SCREAMING_CASE",
    "3.14159 1234567890 0x1F 1e-5",
    "你好，世界",
    "机器学习模型的参数高效微调",
    "日本語のテキストとカタカナ",
    "한국어 문장입니다",
    "Привет, мир",
    "مرحبا بالعالم",
    "café naïve résumé Ærøskøbing Ünïcödé straße",
    "e\u0301 (combining accent) vs \u00e9",
    "emoji 🌍🚀 family 👩\u200d👩\u200d👧 flag 🇫🇷 skin 👍🏽",
    "math ∑∫√∞ ≠ ≤ ≥ arrows → ⇒",
    "zero\u200bwidth and nbsp\u00a0here",
    "```python\nprint('hi')\n```",
    "<html><body class=\"x\">&amp;</body></html>",
]


def special_cases(tokenizer) -> list[str]:
    specials = [t.content for t in tokenizer.get_added_tokens_decoder().values() if t.special]
    out = list(specials)
    if specials:
        out.append(f"{specials[0]}text between{specials[-1]}")
        out.append(f"Human: hi{specials[-1]}\n\nAssistant: ok{specials[-1]}")
    return out


def build(model_dir: Path) -> dict:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    try:
        rel = model_dir.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        rel = str(model_dir)
    cases = []
    for text in TEXTS + special_cases(tok):
        enc = tok.encode(text)
        cases.append({"text": text, "ids": enc.ids, "decoded": tok.decode(enc.ids, skip_special_tokens=False)})
    return {"model": rel, "tokenizer": "tokenizer.json", "library": "tokenizers (Python) Tokenizer.encode(text).ids",
            "cases": cases}


def render(data: dict) -> str:
    """One case per line: readable diffs when the tokenizer changes."""
    head = {k: v for k, v in data.items() if k != "cases"}
    lines = [json.dumps(c, ensure_ascii=False) for c in data["cases"]]
    return json.dumps(head, ensure_ascii=False)[:-1] + ', "cases": [\n' + ",\n".join(lines) + "\n]}\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "bloom-tiny"))
    parser.add_argument("--out", default=str(ROOT / "schemas" / "vectors" / "tokenizer.json"))
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    model = Path(args.model)
    if not (model / "tokenizer.json").is_file():
        print(f"{model / 'tokenizer.json'} not found: build the embedded model first (or pass --model)", file=sys.stderr)
        return 2
    text = render(build(model))
    out = Path(args.out)
    if args.check:
        if not out.is_file() or out.read_text(encoding="utf-8") != text:
            print(f"{out} is stale: run scripts/make_tokenizer_vectors.py", file=sys.stderr)
            return 1
        return 0
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out} ({len(json.loads(text)['cases'])} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`preview`: the first rows exactly as the model will see them (text, token counts, truncation), plus the
number of train and eval rows. Reads only the tokenizer, never the weights.

stdout: {"rows": [{"text", "prompt", "response", "tokens", "prompt_tokens", "truncated"}], "train_rows": n,
         "eval_rows": n, "warnings": [...]}; errors as in params (exit code 2).
"""
from __future__ import annotations

from .config import Config, learning_rate_warnings
from .params import print_result, read_cli_config


def preview(config: Config, rows: int = 3) -> dict:
    from .data import load_examples
    from .model_loading import load_model_config, load_tokenizer

    name, revision = config.model.name_or_path, config.model.revision
    tokenizer = load_tokenizer(name, revision, load_model_config(name, revision))
    warnings: list[str] = learning_rate_warnings(config)
    train, evals = load_examples(config, tokenizer, warnings=warnings)
    shown = []
    for ex in train[:max(rows, 0)]:
        text = tokenizer.decode(ex["input_ids"], skip_special_tokens=False)
        shown.append({"text": text, "prompt": ex["prompt"], "response": ex["response"] if ex["response"] is not None else text,
                      "tokens": len(ex["input_ids"]), "prompt_tokens": min(ex["prompt_tokens"], len(ex["input_ids"])),
                      "truncated": ex["truncated"]})
    return {"rows": shown, "train_rows": len(train), "eval_rows": len(evals), "warnings": warnings}


def run(args) -> int:
    return print_result(lambda: preview(read_cli_config(args), getattr(args, "rows", 3)))

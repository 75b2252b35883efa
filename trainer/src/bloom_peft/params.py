"""`params`: trainable/total parameter counts of a config, computed on the meta device (no weights read or
downloaded; only config.json is needed), so the dashboard can show them before a run starts.

stdout: {"trainable": int, "total": int, "percent": float, "method": str, "model": str}
errors: {"error": {code, message, hint, field, ...}} and exit code 2.
"""
from __future__ import annotations

import contextlib
import json
import sys

from .config import Config, load_config, parse_config
from .errors import ConfigError, InternalError, as_trainer_error


def read_cli_config(args, need_data: bool = True) -> Config:
    """The config from --config FILE or --json TEXT, parsed once (config.parse_config); `params` needs no data."""
    if getattr(args, "config", None):
        return load_config(args.config, need_data=need_data, hint="Pass --config FILE or --json TEXT.")
    try:
        raw = json.loads(args.json)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--json: not valid JSON at column {e.colno}: {e.msg}", hint="Pass one JSON object.") from None
    return parse_config(raw, need_data=need_data)


def print_result(fn) -> int:
    """Run fn() with stdout pointed at stderr (library prints cannot corrupt the answer), then print its result
    (or the error) as one JSON line on the real stdout."""
    out = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            result, code = fn(), 0
    except Exception as e:  # noqa: BLE001 - every failure is answered in JSON, so the host can show it
        error = as_trainer_error(e)
        if isinstance(error, InternalError):
            import traceback

            traceback.print_exc(file=sys.stderr)
        result, code = {"error": error.event_fields()}, error.exit_code
    out.write(json.dumps(result) + "\n")
    out.flush()
    return code


def count_for_config(config: Config) -> dict:
    import dataclasses

    import torch
    from transformers import BloomForCausalLM

    from .config import PromptTuningOptions
    from .methods import apply_method, count_parameters
    from .model_loading import load_model_config

    bloom_config = load_model_config(config.model.name_or_path, config.model.revision)
    method = config.method
    if isinstance(method, PromptTuningOptions):  # the count does not depend on the init; text init needs the tokenizer
        method = dataclasses.replace(method, init="random", init_text=None)
    with torch.device("meta"):  # shapes only: bloom-560m..7b1 in well under a second, no memory
        model = BloomForCausalLM(bloom_config)
    model = apply_method(model, method, None)
    trainable, total = count_parameters(model)
    return {"trainable": trainable, "total": total, "percent": round(100.0 * trainable / total, 6) if total else 0.0,
            "method": method.name, "model": config.model.name_or_path}


def run(args) -> int:
    return print_result(lambda: count_for_config(read_cli_config(args, need_data=False)))

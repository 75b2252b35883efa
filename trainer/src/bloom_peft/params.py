"""`params`: trainable/total parameter counts of a config, computed on the meta device (no weights read or
downloaded; only config.json is needed), so the dashboard can show them before a run starts.

stdout: {"trainable": int, "total": int, "percent": float, "method": str, "model": str}
errors: {"error": {code, message, hint, field, ...}} and exit code 2.
"""
from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from .errors import ConfigError, TrainerError

# params needs only the model and method; the dashboard may ask before a dataset is chosen
_PLACEHOLDER_DATA = {"format": "text", "train_file": "."}


def read_cli_config(args, need_data: bool = True) -> dict:
    """The config from --config FILE or --json TEXT, validated against the schema."""
    from .config import load_config, validate_config

    if getattr(args, "config", None):
        if need_data:
            return load_config(args.config)
        path = Path(args.config)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}", file=str(path), hint="Pass --config FILE or --json TEXT.")
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}", file=str(path)) from None
        source = args.config
    else:
        try:
            config = json.loads(args.json)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--json: not valid JSON at column {e.colno}: {e.msg}", hint="Pass one JSON object.") from None
        source = None
    if not need_data and isinstance(config, dict) and "data" not in config:
        validate_config({**config, "data": _PLACEHOLDER_DATA}, source)
        return config
    return validate_config(config, source)


def print_result(fn) -> int:
    """Run fn() with stdout pointed at stderr (library prints cannot corrupt the answer), then print its result
    (or the error) as one JSON line on the real stdout."""
    out = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            result, code = fn(), 0
    except TrainerError as e:
        result, code = {"error": e.event_fields()}, e.exit_code
    except ImportError as e:  # ModuleNotFoundError too: the Python environment lacks a package, not a bug
        from .check import SETUP_HINT
        result, code = {"error": {"code": "environment", "message": f"the training environment is incomplete: {e}",
                                  "hint": SETUP_HINT}}, 2
    except Exception as e:  # a bug, not a user error: still answer in JSON so the host can show it
        result, code = {"error": {"code": "internal_error", "message": f"{type(e).__name__}: {e}",
                                  "hint": "This is a bug in the trainer; the log has the traceback."}}, 1
        import traceback
        traceback.print_exc(file=sys.stderr)
    out.write(json.dumps(result) + "\n")
    out.flush()
    return code


def count_for_config(config: dict) -> dict:
    import torch
    from transformers import BloomForCausalLM

    from .methods import apply_method, count_parameters, method_options
    from .model_loading import load_model_config

    model_cfg = config["model"]
    bloom_config = load_model_config(model_cfg["name_or_path"], model_cfg.get("revision"))
    method = method_options(config["method"])
    if method["name"] == "prompt_tuning":  # the count does not depend on the init, and text init would need the tokenizer
        method = {**method, "init": "random"}
        method.pop("init_text", None)
    with torch.device("meta"):  # shapes only: bloom-560m..7b1 in well under a second, no memory
        model = BloomForCausalLM(bloom_config)
    model = apply_method(model, method, None)
    trainable, total = count_parameters(model)
    return {"trainable": trainable, "total": total, "percent": round(100.0 * trainable / total, 6) if total else 0.0,
            "method": method["name"], "model": model_cfg["name_or_path"]}


def run(args) -> int:
    return print_result(lambda: count_for_config(read_cli_config(args, need_data=False)))

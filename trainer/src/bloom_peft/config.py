"""Load and validate a training config against the shared JSON Schema (schemas/training-config.schema.json)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from .errors import ConfigError
from .paths import CONFIG_SCHEMA

_SCHEMA = json.loads(CONFIG_SCHEMA.read_text(encoding="utf-8"))
_VALIDATOR = jsonschema.Draft7Validator(_SCHEMA)


def config_issues(config: Any) -> list[tuple[str, str]]:
    """Every schema violation as (JSON pointer of the field, message); [] when valid."""
    issues = []
    for error in sorted(_VALIDATOR.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        # an if/then failure hides the real cause in the sub-errors of the branch it applied
        leaves = [error]
        while leaves and leaves[0].context:
            leaves = leaves[0].context
        for leaf in leaves:
            pointer = "/" + "/".join(map(str, leaf.absolute_path)) if leaf.absolute_path else ""
            issues.append((pointer, f"{pointer or '(config)'}: {leaf.message}"))
    return issues


def validate_config(config: Any, source: str | None = None) -> dict:
    issues = config_issues(config)
    if issues:
        pointer, message = issues[0]
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        raise ConfigError(message + more, field=pointer, file=source,
                          hint="Fix the field named above; schemas/training-config.schema.json lists every option.")
    return config


def load_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}", file=str(path), hint="Pass --config FILE or a run dir with config.json.")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}", file=str(path)) from None
    return validate_config(config, str(path))


def with_defaults(config: dict) -> dict:
    """A copy of a valid config with every schema default filled in (echoed in `started`, so the run is self-describing).

    Walks properties (creating absent sub-objects such as training/template/export), $refs and the if/then branches
    that apply (method-specific options)."""
    import copy

    def resolve(schema: dict) -> dict:
        while "$ref" in schema:
            node: Any = _SCHEMA
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def fill(value: dict, schema: dict) -> None:
        schema = resolve(schema)
        for key, sub in schema.get("properties", {}).items():
            sub = resolve(sub)
            if key not in value:
                if "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
                elif sub.get("type") == "object" and "properties" in sub and key not in schema.get("required", []):
                    value[key] = {}
            if isinstance(value.get(key), dict):
                fill(value[key], sub)
        for branch in schema.get("allOf", []):
            if "if" in branch and jsonschema.Draft7Validator(branch["if"]).is_valid(value) and "then" in branch:
                fill(value, branch["then"])

    out = copy.deepcopy(config)
    fill(out, _SCHEMA)
    return out


METHOD_LABELS = {"full": "full fine-tuning", "bitfit": "BitFit", "prompt_tuning": "prompt tuning",
                 "p_tuning": "P-tuning", "prefix_tuning": "prefix tuning", "lora": "LoRA", "ia3": "IA3"}
DIVERGING_LR_FACTOR = 100  # this many times the method's default learning rate: AdamW steps that size blow up


def learning_rate_warnings(config: dict) -> list[str]:
    """A learning rate so far above the method's default that the run will likely diverge (legal, so a warning:
    shown by `preview` and at the start of training; divergence itself then stops the run)."""
    name = config.get("method", {}).get("name")
    lr = config.get("training", {}).get("learning_rate")
    definition = _SCHEMA["definitions"].get(f"method_{name}", {})
    default = definition.get("x-default-learning-rate")
    if not isinstance(lr, (int, float)) or not default or lr < DIVERGING_LR_FACTOR * default:
        return []
    return [f"lr {lr:g} with {METHOD_LABELS.get(name, name)} will likely diverge (the default for it is {default:g}; "
            f"training.learning_rate)"]

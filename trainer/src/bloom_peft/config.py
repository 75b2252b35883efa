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

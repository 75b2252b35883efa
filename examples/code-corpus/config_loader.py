"""Load and validate a small JSON config file."""
import json
from pathlib import Path

DEFAULT_CONFIG = {"max_size": 100, "cache_path": ".cache", "log_level": "info"}


def load_config(config_path: str) -> dict:
    """Load the config file and merge it over the default config."""
    path = Path(config_path)
    config = dict(DEFAULT_CONFIG)
    if path.exists():
        config.update(json.loads(path.read_text()))
    validate_config(config)
    return config


def validate_config(config: dict) -> None:
    """Check that the config values are valid."""
    if config["max_size"] <= 0:
        raise ValueError("max_size must be positive")
    if config["log_level"] not in ("debug", "info", "error"):
        raise ValueError("unknown log_level")


def save_config(config: dict, config_path: str) -> None:
    """Write the config file as formatted JSON."""
    Path(config_path).write_text(json.dumps(config, indent=2) + "\n")

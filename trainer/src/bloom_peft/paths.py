"""Where the project's shared files live, relative to this package (same layout in the repo and in the .vsix)."""
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parents[2]  # trainer/src/bloom_peft -> project root
SCHEMAS_DIR = PROJECT_ROOT / "schemas"
EMBEDDED_MODEL_DIR = PROJECT_ROOT / "models" / "bloom-tiny"
CONFIG_SCHEMA = SCHEMAS_DIR / "training-config.schema.json"
EVENTS_SCHEMA = SCHEMAS_DIR / "events.schema.json"


def resolve_model_path(name_or_path: str) -> str:
    """'embedded' names the bundled tiny BLOOM model; anything else is a hub id or a local folder."""
    return str(EMBEDDED_MODEL_DIR) if name_or_path == "embedded" else name_or_path

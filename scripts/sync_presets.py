"""Write the "Quick demo (embedded model)" preset of schemas/presets.json from trainer/src/bloom_peft/presets.py.

The per-method values for the embedded model are measured and kept in Python (EMBEDDED_TRAINING, EMBEDDED_PRESET:
scripts/eval_methods.py uses them); the CLI, the palette and the dashboard read schemas/presets.json. This script
copies the former into the latter; trainer/tests/test_tutorial_recipe.py fails when they differ.

    .venv/bin/python scripts/sync_presets.py          # rewrite schemas/presets.json
    .venv/bin/python scripts/sync_presets.py --check  # exit 1 when it is stale
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "trainer" / "src"))

from bloom_peft.presets import EMBEDDED_PRESET, EMBEDDED_TRAINING  # noqa: E402

PRESETS_FILE = ROOT / "schemas" / "presets.json"
# run bookkeeping of the demo (not learning values): evaluate, checkpoint and log often enough to watch
DEMO_BOOKKEEPING = {"eval_every": 50, "save_every": 100, "log_every": 5}


def synced(doc: dict) -> dict:
    out = json.loads(json.dumps(doc))
    demo = next(p for p in out["presets"] if p["id"] == "quick-demo")
    demo["config"]["training"] = {**EMBEDDED_TRAINING, **DEMO_BOOKKEEPING}
    demo["methods"] = {name: {"method": dict(entry["method"]), "training": dict(entry["training"])}
                       for name, entry in EMBEDDED_PRESET.items()}
    return out


def main() -> int:
    current = json.loads(PRESETS_FILE.read_text(encoding="utf-8"))
    wanted = synced(current)
    if "--check" in sys.argv:
        if wanted != current:
            print(f"{PRESETS_FILE} is stale: run .venv/bin/python scripts/sync_presets.py", file=sys.stderr)
            return 1
        return 0
    PRESETS_FILE.write_text(json.dumps(wanted, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

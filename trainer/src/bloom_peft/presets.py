"""Training presets: tested values for a whole run, by method.

EMBEDDED_PRESET is the "Quick demo (embedded model)" recipe: the learning rate, optimizer steps and virtual-token
count that each method needs on models/bloom-tiny to answer held-out rows of the sample task sets
(examples/en-tasks, zh-tasks, unseen-words) exactly, each run in at most about 2 minutes on 2 CPU cores.
Measured by scripts/eval_methods.py (docs/methods-eval.md). The schema's defaults stay the ones for real BLOOM
sizes; these values are for the tiny embedded model only (it needs larger learning rates than a 560M model).
"""
from __future__ import annotations

import copy

# Shared by every method of the embedded preset.
EMBEDDED_TRAINING = {
    "batch_size": 8,
    "grad_accum": 1,
    "max_length": 64,
    "scheduler": "linear",
    "warmup_ratio": 0.05,
    "weight_decay": 0.0,
}

# method name -> {"training": {...}, "method": {...}} merged over EMBEDDED_TRAINING and the config's method.
EMBEDDED_PRESET: dict[str, dict] = {
    "full": {"training": {"learning_rate": 2e-4, "max_steps": 150}, "method": {}},  # 1e-3 overfits: unseen words 42%
    "bitfit": {"training": {"learning_rate": 1e-2, "max_steps": 200}, "method": {}},
    "prompt_tuning": {"training": {"learning_rate": 3e-2, "max_steps": 300}, "method": {"num_virtual_tokens": 20}},
    "p_tuning": {"training": {"learning_rate": 3e-3, "max_steps": 700}, "method": {"num_virtual_tokens": 20}},  # 500 steps: MLP Chinese 85-88% over seeds 42/1/7, 700: 88-98%; lr 1e-2 or 1e-3: worse
    "prefix_tuning": {"training": {"learning_rate": 3e-2, "max_steps": 300}, "method": {"num_virtual_tokens": 20}},  # 1e-2: Chinese 50%
    "lora": {"training": {"learning_rate": 3e-3, "max_steps": 150}, "method": {}},
    "ia3": {"training": {"learning_rate": 3e-2, "max_steps": 200}, "method": {}},
}


def embedded_preset(method: dict) -> dict:
    """{"method": ..., "training": ...} of the embedded preset for `method` ({"name": ..., other options});
    the method's own options win over the preset's."""
    name = method["name"]
    if name not in EMBEDDED_PRESET:
        raise ValueError(f"no embedded preset for method {name!r}; known: {', '.join(EMBEDDED_PRESET)}")
    entry = EMBEDDED_PRESET[name]
    return {
        "method": {**copy.deepcopy(entry["method"]), **method},
        "training": {**EMBEDDED_TRAINING, **entry["training"]},
    }

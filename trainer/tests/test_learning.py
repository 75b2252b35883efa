"""Every method learns a task on the embedded model: held-out loss falls and held-out rows are answered exactly.

A CI-sized subset of scripts/eval_methods.py (the full table is docs/methods-eval.md): the embedded preset of
each method (bloom_peft.presets: learning rate, virtual tokens) with fewer steps, on one instruction of
examples/en-tasks ("Turn these words into a URL slug": stop main row -> stop-main-row), then greedy answers in
the tutorial template to held-out rows whose word sequences no training row contains. The real trainer runs
in-process (train.run_with), as in test_train_methods.py."""
import json

import pytest
import torch

from bloom_peft.config import parse_config
from bloom_peft.data import load_splits
from bloom_peft.methods import load_trained
from bloom_peft.model_loading import load_base_model
from bloom_peft.paths import EMBEDDED_MODEL_DIR, PROJECT_ROOT
from bloom_peft.presets import embedded_preset
from train_harness import eval_loss, run_in_process, write_config

TASK = "Turn these words into a URL slug"
N_HELDOUT = 12
# method config -> (steps, exact-match threshold on N_HELDOUT rows). Steps are fewer than the preset's;
# the thresholds leave room for float differences across CPUs and torch versions.
RUNS = {
    "full": ({"name": "full"}, 40, 0.75),
    "bitfit": ({"name": "bitfit"}, 60, 0.5),
    "prompt_tuning": ({"name": "prompt_tuning"}, 60, 0.5),
    "p_tuning": ({"name": "p_tuning"}, 60, 0.5),
    "prefix_tuning": ({"name": "prefix_tuning"}, 60, 0.5),
    "lora": ({"name": "lora"}, 40, 0.75),
    "ia3": ({"name": "ia3"}, 60, 0.5),
}


def rows_of(path, limit=None):
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r["instruction"] == TASK]
    return rows[:limit] if limit else rows


@pytest.fixture(scope="module")
def task_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slug")
    src = PROJECT_ROOT / "examples" / "en-tasks"
    for name, limit in (("train.jsonl", None), ("heldout.jsonl", N_HELDOUT)):
        rows = rows_of(src / name, limit)
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def config_for(method: dict, steps: int, folder) -> dict:
    preset = embedded_preset(method)
    return {
        "model": {"name_or_path": "embedded"},
        "method": preset["method"],
        "data": {"format": "instruction", "train_file": str(folder / "train.jsonl"),
                 "eval_file": str(folder / "heldout.jsonl")},
        "training": {**preset["training"], "max_steps": steps, "eval_every": 0, "save_every": 0, "log_every": 10},
        "export": {"onnx": False},
    }


def exact_matches(model, tokenizer, rows) -> int:
    from bloom_peft.data import render_example

    hits = 0
    model.eval()
    with torch.no_grad():
        for row in rows:
            enc = tokenizer(render_example(row)[0], return_tensors="pt")
            out = model.generate(**enc, max_new_tokens=24, do_sample=False,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
            hits += tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True) == row["output"]
    return hits


@pytest.mark.skipif(not (EMBEDDED_MODEL_DIR / "model.safetensors").is_file(), reason="needs models/bloom-tiny")
@pytest.mark.parametrize("method", list(RUNS))
def test_method_learns_heldout_rows(method, task_files, tmp_path):
    method_cfg, steps, threshold = RUNS[method]
    config = config_for(method_cfg, steps, task_files)
    parsed = parse_config(config)
    base, tokenizer = load_base_model(parsed.model)
    _, held = load_splits(parsed, tokenizer)
    heldout_rows = rows_of(task_files / "heldout.jsonl")
    base_loss = eval_loss(base, held, tokenizer.pad_token_id)
    base_hits = exact_matches(base, tokenizer, heldout_rows)

    write_config(tmp_path / "run", config)
    rc, events = run_in_process("train", tmp_path / "run")
    assert rc == 0, events[-1]
    trained = load_trained(load_base_model(parsed.model)[0], tmp_path / "run" / "adapter")
    trained_loss = eval_loss(trained, held, tokenizer.pad_token_id)
    hits = exact_matches(trained, tokenizer, heldout_rows)

    assert trained_loss < base_loss * 0.5, (method, base_loss, trained_loss)
    assert hits >= threshold * len(heldout_rows), f"{method}: {hits}/{len(heldout_rows)} exact (base {base_hits})"
    assert hits > base_hits

"""The trainer's side of the project's fault corpus (test/fixtures/faults/cases.json, side "trainer"): bad datasets,
configs and models, a 50 MB row, a diverging learning rate and a disk that fills mid-run. Each case says what the
user must see (code, file:line, field, message, hint, warning); the table lives in docs/reliability.md.

Data and config cases run `preview` in-process (the tokenizer only, as the dashboard does), model cases the loader
that `train` uses, run cases a real training loop (train.run_with, the CLI's error contract)."""
from __future__ import annotations

import copy
import json
import re
import resource
import shutil
import subprocess
from pathlib import Path

import pytest

from bloom_peft.errors import TrainerError
from bloom_peft.paths import EMBEDDED_MODEL_DIR, PROJECT_ROOT
from train_harness import checkpoint_steps, run_in_process, write_config

CORPUS = PROJECT_ROOT / "test" / "fixtures" / "faults"
CASES = [c for c in json.loads((CORPUS / "cases.json").read_text())["cases"] if c["side"] == "trainer"]


def merged(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = merged(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def config_for(case: dict, data: Path, model: str = "embedded") -> dict:
    base = {"model": {"name_or_path": model}, "method": {"name": "lora"},
            "data": {"format": "instruction", "train_file": str(data), "eval_split": 0},
            "training": {"max_length": 64, "max_steps": 2, "batch_size": 2, "eval_every": 0, "save_every": 0,
                         "log_every": 1, "warmup_ratio": 0.0},
            "export": {"onnx": False}}
    return merged(base, case.get("config", {}))


# ---------------------------------------------------------------------------------------------------- faults made here

def make_huge_row(tmp: Path) -> Path:
    """A dataset whose second row holds 50 MB of input (rows 1 and 3 are ordinary)."""
    path = tmp / "huge.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"instruction": "Say hi", "input": "", "output": "hi"}) + "\n")
        f.write(json.dumps({"instruction": "Summarise", "input": "word " * 10_000_000, "output": "words"}) + "\n")
        f.write(json.dumps({"instruction": "Say bye", "input": "", "output": "bye"}) + "\n")
    return path


def model_copy(tmp: Path) -> Path:
    if not (EMBEDDED_MODEL_DIR / "model.safetensors").is_file():
        pytest.skip("models/bloom-tiny is missing (scripts/make_model.py makes it)")
    dest = tmp / "model"
    shutil.copytree(EMBEDDED_MODEL_DIR, dest)
    return dest


def make_truncate_weights(tmp: Path) -> Path:
    m = model_copy(tmp)
    data = (m / "model.safetensors").read_bytes()
    (m / "model.safetensors").write_bytes(data[: len(data) // 3])  # an interrupted download
    return m


def make_garbage_weights(tmp: Path) -> Path:
    m = model_copy(tmp)
    (m / "model.safetensors").write_bytes(bytes(range(256)) * 20)
    return m


def make_hidden_size_256(tmp: Path) -> Path:
    m = model_copy(tmp)
    config = json.loads((m / "config.json").read_text())
    config["hidden_size"] = 256  # the weights are 128 wide
    (m / "config.json").write_text(json.dumps(config))
    return m


def make_cut_vocabulary(tmp: Path) -> Path:
    """The model with a tokenizer retrained down to 300 tokens (its ids stop far below the embedding's 7,168)."""
    from transformers import AutoTokenizer

    m = model_copy(tmp)
    small = AutoTokenizer.from_pretrained(str(m)).train_new_from_iterator(["def add(a, b): return a + b"] * 20, 300)
    small.save_pretrained(str(m))
    return m


MAKERS = {"truncate_weights": make_truncate_weights, "garbage_weights": make_garbage_weights,
          "hidden_size_256": make_hidden_size_256, "cut_vocabulary": make_cut_vocabulary}


# ---------------------------------------------------------------------------------------------------- checks

def check_error(err: dict, expect: dict) -> None:
    assert err["code"] == expect["code"], err
    assert re.search(expect["message"], err["message"]), err
    for key in ("line", "field"):
        if key in expect:
            assert err.get(key) == expect[key], err
    if "hint" in expect:
        assert re.search(expect["hint"], err.get("hint") or ""), err
    assert err.get("hint"), f"every error carries a hint: {err}"


def check_warnings(warnings: list[str], expect: dict) -> None:
    if "warning" in expect:
        assert any(re.search(expect["warning"], w) for w in warnings), warnings


@pytest.mark.parametrize("case", [c for c in CASES if c["run"] == "preview"], ids=lambda c: c["id"])
def test_preview_case(case, tmp_path):
    from bloom_peft.config import parse_config
    from bloom_peft.preview import preview

    data = make_huge_row(tmp_path) if case.get("make") == "huge_row" else CORPUS / case["data"]
    expect = case["expect"]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux: the high-water mark so far
    try:
        result = preview(parse_config(config_for(case, data)))
    except TrainerError as e:
        assert "code" in expect, f"unexpected error: {e.event_fields()}"
        check_error(e.event_fields(), expect)
        return
    assert "code" not in expect, f"expected {expect['code']}, got a preview: {result['warnings']}"
    check_warnings(result["warnings"], expect)
    if "rows" in expect:
        assert result["train_rows"] == expect["rows"], result
    if "max_rss_growth_mb" in expect:
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        assert grown_mb < expect["max_rss_growth_mb"], f"peak memory grew by {grown_mb:.0f} MB"
        assert all(r["tokens"] <= 64 for r in result["rows"])


@pytest.mark.parametrize("case", [c for c in CASES if c["run"] == "load_model"], ids=lambda c: c["id"])
def test_model_case(case, tmp_path):
    from bloom_peft.config import parse_config
    from bloom_peft.model_loading import load_base_model

    model = MAKERS[case["make"]](tmp_path)
    with pytest.raises(TrainerError) as info:
        load_base_model(parse_config(config_for(case, CORPUS / "data" / "u2028-in-string.jsonl", str(model))).model)
    check_error(info.value.event_fields(), case["expect"])
    assert str(model) in info.value.message, "the message names the file"


def test_huge_row_trains_in_bounded_memory(tmp_path):
    """The 50 MB row through a real training step: the row is cut, skipped (its prompt fills max_length), the others
    train; peak memory stays bounded (the trainer ran in this process, so its own high-water mark is measured)."""
    case = next(c for c in CASES if c["id"] == "huge-row-50mb")
    run = tmp_path / "run"
    write_config(run, config_for(case, make_huge_row(tmp_path)))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rc, events = run_in_process("train", run)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert rc == 0, [e for e in events if e["type"] == "error"]
    check_warnings([e["message"] for e in events if e["type"] == "warning"], case["expect"])
    assert grown_mb < case["expect"]["max_rss_growth_mb"], f"peak memory grew by {grown_mb:.0f} MB"
    assert events[-1]["type"] == "done" and events[-1]["status"] == "completed"


def test_diverging_learning_rate_stops_the_run(tmp_path):
    case = next(c for c in CASES if c["id"] == "lr-10-full-diverges")
    run = tmp_path / "run"
    write_config(run, config_for(case, CORPUS / case["data"]))
    rc, events = run_in_process("train", run)
    assert rc == case["expect"]["exit"]
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1 and not [e for e in events if e["type"] == "done"], events
    check_error(errors[0], case["expect"])
    check_warnings([e["message"] for e in events if e["type"] == "warning"], case["expect"])
    assert errors[0]["step"] <= 8


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs: one checkpoint of full fine-tuning of the embedded model (weights + AdamW state) fits, two do
    not. Needs root (mount); skipped with that reason elsewhere."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or 'mount failed'}): the disk-full case needs root")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_mid_run_is_a_clear_error_and_keeps_complete_checkpoints(small_disk):
    case = next(c for c in CASES if c["id"] == "disk-full-mid-run")
    run = small_disk / "run"
    write_config(run, config_for(case, CORPUS / "data" / "u2028-in-string.jsonl"))
    rc, events = run_in_process("train", run)
    assert rc == case["expect"]["exit"], events
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1, events
    check_error(errors[0], case["expect"])
    assert errors[0].get("file", "").startswith(str(run)), errors[0]
    steps = checkpoint_steps(run)
    assert steps, "the checkpoint written before the disk filled is kept, complete"
    assert any(e["type"] == "checkpoint" and e["step"] == steps[-1] for e in events)


def test_corpus_text_is_tokenised_in_pieces_with_the_same_ids(monkeypatch):
    """A corpus file is tokenised a million characters at a time (bounded tokenizer memory); cutting before a newline
    that follows a word gives exactly the ids of tokenising it whole."""
    from transformers import AutoTokenizer

    from bloom_peft import data

    tok = AutoTokenizer.from_pretrained(str(EMBEDDED_MODEL_DIR))
    text = "".join(p.read_text() for p in sorted((PROJECT_ROOT / "trainer" / "src" / "bloom_peft").glob("*.py")))
    whole = tok(text, add_special_tokens=False)["input_ids"]
    for piece in (777, 5000):
        monkeypatch.setattr(data, "CORPUS_PIECE_CHARS", piece)
        assert data.tokenize_long(tok, text) == whole

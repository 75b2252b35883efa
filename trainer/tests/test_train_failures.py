"""Failures: NaN loss (exit 3, last good checkpoint kept), CUDA OOM back-off (through the test hook: there is no GPU
here), bad config / dataset / model (exit 2, an error naming file, line or field, and nothing saved before lost).

Most run in-process (train.run_with: the CLI's error contract and exit codes, without an interpreter start-up each);
the bad-config case runs the real command line."""
import hashlib
import json
import shutil

import pytest

from bloom_peft.testing.faults import InjectedFaults
from train_harness import checkpoint_steps, make_config, model_name, run_in_process, run_trainer, write_config


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return model_name(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def finished_run(model, tmp_path_factory):
    """A run that finished (adapter, checkpoints, config): bad follow-ups must leave it exactly as it is."""
    run = tmp_path_factory.mktemp("finished") / "run"
    write_config(run, make_config(model, "lora", training={"max_steps": 2}))
    rc, _ = run_in_process("train", run)
    assert rc == 0
    return run


def snapshot(run) -> dict:
    """Every file of the run and its hash, except run.lock: each trainer process writes who holds the run there."""
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file() and p.name != "run.lock"}


def copy_run(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    return run, snapshot(run)


def only_error(events) -> dict:
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1 and not [e for e in events if e["type"] == "done"], events
    return errors[0]


def test_nan_loss_stops_with_exit_3_and_keeps_the_last_checkpoint(model, tmp_path):
    run = tmp_path / "run"
    write_config(run, make_config(model, "lora", training={"max_steps": 20, "save_every": 3}))
    rc, events = run_in_process("train", run, faults=InjectedFaults(nan_at_step=5))
    assert rc == 3
    error = only_error(events)
    assert error["code"] == "nan_loss" and error["step"] == 5 and "step 5" in error["message"] and error["hint"]
    nan_progress = [e for e in events if e["type"] == "progress" and e["step"] == 5]
    assert nan_progress and nan_progress[0]["loss"] is None  # reported (as null), not filtered out
    assert checkpoint_steps(run) == [3]
    assert not (run / "adapter").exists()


def test_a_full_disk_while_checkpointing_is_disk_full_and_keeps_the_complete_checkpoints(model, tmp_path):
    run = tmp_path / "run"
    write_config(run, make_config(model, "lora", training={"max_steps": 6, "save_every": 2}))
    rc, events = run_in_process("train", run, faults=InjectedFaults(disk_full_at_checkpoint=4))
    assert rc == 2
    error = only_error(events)
    assert error["code"] == "disk_full" and ".tmp-step-4-" in error["file"] and error["hint"]
    assert checkpoint_steps(run) == [2]


def test_cuda_oom_halves_the_micro_batch_and_keeps_the_effective_batch(model, tmp_path):
    run = tmp_path / "run"
    write_config(run, make_config(model, "lora", training={"max_steps": 3, "batch_size": 8}))
    rc, events = run_in_process("train", run, faults=InjectedFaults(oom_from_rows=3))
    assert rc == 0
    warnings = [e for e in events if e["type"] == "warning" and e.get("code") == "oom_retry"]
    assert len(warnings) == 2  # 8 -> 4 -> 2 rows per forward pass
    assert "micro-batch 2" in warnings[-1]["message"] and "4 accumulation steps" in warnings[-1]["message"]
    assert events[-1]["type"] == "done" and events[-1]["step"] == 3
    from bloom_peft import checkpoint as ckpt

    state = ckpt.load_checkpoint(ckpt.latest_complete(run))["trainer_state"]
    assert state["micro_batch"] == 2  # a resume keeps the size that fits


def test_cuda_oom_at_micro_batch_1_is_an_error_with_a_hint(model, tmp_path):
    run = tmp_path / "run"
    write_config(run, make_config(model, "lora", training={"max_steps": 3, "batch_size": 2}))
    rc, events = run_in_process("train", run, faults=InjectedFaults(oom_from_rows=1))
    assert rc == 2
    error = only_error(events)
    assert error["code"] == "out_of_memory" and error["step"] == 1 and "max_length" in error["hint"]


def test_bad_config_leaves_the_run_untouched(finished_run, tmp_path):
    run, before = copy_run(finished_run, tmp_path)
    bad = tmp_path / "bad.json"
    config = json.loads((run / "config.json").read_text())
    config["training"]["batch_size"] = 0
    bad.write_text(json.dumps(config))
    rc, events, _ = run_trainer("train", run, "--config", str(bad))
    assert rc == 2
    error = only_error(events)
    assert error["code"] == "invalid_config" and error["field"] == "/training/batch_size"
    assert error["file"] == str(bad) and error["hint"]
    assert snapshot(run) == before


def test_bad_dataset_row_names_file_line_and_field_and_loses_nothing(finished_run, tmp_path):
    run, before = copy_run(finished_run, tmp_path)
    data = tmp_path / "broken.jsonl"
    data.write_text('{"instruction": "a", "input": "b", "output": "c"}\n'
                    '{"instruction": "a", "input": "b", "output": "c"}\n'
                    '{"instruction": "a", "input": "b"}\n')
    config = json.loads((run / "config.json").read_text())
    config["data"]["train_file"] = str(data)
    new_config = tmp_path / "new.json"
    new_config.write_text(json.dumps(config))
    rc, events = run_in_process("train", run, str(new_config))
    assert rc == 2
    error = only_error(events)
    assert error["code"] == "invalid_data" and error["file"] == str(data) and error["line"] == 3
    assert error["field"] == "output" and error["hint"]
    assert snapshot(run) == before


def test_resume_with_a_broken_dataset_keeps_the_checkpoints(finished_run, tmp_path):
    run, _ = copy_run(finished_run, tmp_path)
    config = json.loads((run / "config.json").read_text())
    config["data"]["train_file"] = str(tmp_path / "missing.jsonl")
    (run / "config.json").write_text(json.dumps(config))
    before = snapshot(run)
    rc, events = run_in_process("resume", run)
    assert rc == 2
    error = only_error(events)
    assert error["code"] == "invalid_data" and error["field"] == "/data/train_file"
    assert snapshot(run) == before


def test_non_bloom_model_is_refused(tmp_path):
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 1, "n_head": 1, "n_embd": 8,
                                                   "vocab_size": 10}))
    run = tmp_path / "run"
    write_config(run, make_config(str(gpt2), "lora"))
    rc, events = run_in_process("train", run)
    assert rc == 2
    error = only_error(events)
    assert error["code"] == "invalid_model" and error["field"] == "/model/name_or_path" and "BLOOM" in error["hint"]
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "run.lock"]  # nothing written but the lock


def test_retraining_a_finished_run_archives_its_outputs(finished_run, tmp_path):
    run, before = copy_run(finished_run, tmp_path)
    rc, events = run_in_process("train", run)
    assert rc == 0
    warning = [e for e in events if e["type"] == "warning" and e.get("code") == "previous_run_archived"]
    assert len(warning) == 1
    archived = list((run / "previous").iterdir())
    assert len(archived) == 1
    for name, digest in before.items():  # every earlier file is still there, byte for byte
        if name.startswith(("adapter/", "checkpoints/")):
            assert snapshot(archived[0])[name] == digest

"""Every method trains on the embedded model: the held-out loss ends below the base model's, and the saved adapter
reloads (peft, or the project's loader for BitFit/full) with the same logits as the trained weights had.

The loop runs in-process here (train.run_with with an in-memory protocol channel) to spare seven interpreter
start-ups; the process-level behaviour (stdout discipline, signals, kills) is covered by test_stop.py,
test_train_resume.py and test_train_failures.py. Every emitted line is still validated against the schema."""
import pytest
import torch

from bloom_peft import checkpoint as ckpt
from bloom_peft.config import parse_config
from bloom_peft.data import load_splits
from bloom_peft.methods import apply_method, count_parameters, load_method_state_dict, load_trained
from bloom_peft.model_loading import load_base_model
from train_harness import eval_loss, make_config, model_name, run_in_process, write_config

# Short runs that reliably beat the base model on held-out rows (tuned on models/bloom-tiny, 2 CPU threads);
# learning rates are the methods' defaults unless set here.
RUNS = {
    "full": ({"name": "full"}, {"max_steps": 20}),
    "bitfit": ({"name": "bitfit"}, {"max_steps": 20}),
    "prompt_tuning": ({"name": "prompt_tuning", "num_virtual_tokens": 8}, {"max_steps": 20}),
    "p_tuning": ({"name": "p_tuning", "num_virtual_tokens": 8, "encoder_hidden_size": 64}, {"max_steps": 20}),
    "prefix_tuning": ({"name": "prefix_tuning", "num_virtual_tokens": 8}, {"max_steps": 20, "learning_rate": 3e-2}),
    "lora": ({"name": "lora"}, {"max_steps": 20}),
    "ia3": ({"name": "ia3"}, {"max_steps": 20}),
}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.set_num_threads(1)  # 1 thread: far faster than 2 on a busy 2-core box
    return model_name(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def base_eval(model):
    """The base model's held-out loss and the held-out rows."""
    config = parse_config(make_config(model))
    base, tok = load_base_model(config.model)
    _, rows = load_splits(config, tok)
    return eval_loss(base, rows, tok.pad_token_id), rows, tok.pad_token_id


def train_in_process(run_dir, config) -> tuple[int, list[dict]]:
    write_config(run_dir, config)
    return run_in_process("train", run_dir)


@pytest.mark.parametrize("method", list(RUNS))
def test_method_learns_and_reloads(method, model, base_eval, tmp_path):
    base_loss, held_rows, pad_id = base_eval
    method_cfg, training = RUNS[method]
    config = make_config(model, method_cfg, training=training)
    run = tmp_path / "run"
    rc, events = train_in_process(run, config)
    assert rc == 0, events[-1]

    started, done = [e for e in events if e["type"] == "started"][0], events[-1]
    assert done["type"] == "done" and done["status"] == "completed"
    assert started["config"]["method"]["name"] == method and started["config"]["training"]["learning_rate"] > 0
    assert started["world_size"] == 1 and started["total_steps"] == training["max_steps"]
    assert [e["step"] for e in events if e["type"] == "progress"] == list(range(1, training["max_steps"] + 1))
    trained_loss = done["metrics"]["eval_loss"]
    assert trained_loss < base_loss, f"{method}: held-out loss {trained_loss:.4f} not below the base's {base_loss:.4f}"

    # the trained weights (from the final checkpoint) and the saved adapter give the same logits
    final = ckpt.load_checkpoint(ckpt.latest_complete(run))
    assert final["trainer_state"]["step"] == training["max_steps"]
    parsed = parse_config(config)
    fresh, tok = load_base_model(parsed.model)
    torch.manual_seed(0)
    trained = apply_method(fresh, parsed.method, tok)
    assert count_parameters(trained) == (started["trainable_params"], started["total_params"])
    load_method_state_dict(trained, method, final["weights"])
    trained.eval()
    reloaded = load_trained(load_base_model(parsed.model)[0], parsed.method, done["adapter_dir"])
    from bloom_peft.data import collate

    batch = collate(held_rows[:8], pad_id)
    with torch.no_grad():
        want = trained(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        got = reloaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # and the reloaded adapter scores the held-out rows exactly as the trainer's final eval did
    assert eval_loss(reloaded, held_rows, pad_id) == pytest.approx(trained_loss, rel=1e-4)
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))


def test_train_with_export_writes_onnx(model, tmp_path):
    config = make_config(model, "lora", training={"max_steps": 2}, export=True)
    rc, events = train_in_process(tmp_path / "run", config)
    assert rc == 0
    done = events[-1]
    assert done["export_dir"] == str(tmp_path / "run" / "export")
    assert (tmp_path / "run" / "export" / "model.onnx").is_file()
    assert (tmp_path / "run" / "export" / "manifest.json").is_file()


def test_options_accumulation_checkpointing_workers_give_the_same_losses(model, tmp_path):
    """grad_accum 2 x batch 4 == batch 8 (token-weighted step loss); gradient checkpointing and DataLoader workers
    change how, not what, the model computes."""
    common = {"max_steps": 3, "group_by_length": False}
    runs = {
        "plain": {"batch_size": 8},
        "accum": {"batch_size": 4, "grad_accum": 2, "gradient_checkpointing": True, "num_workers": 1},
    }
    losses = {}
    for name, training in runs.items():
        rc, events = train_in_process(tmp_path / name, make_config(model, {"name": "lora", "dropout": 0.0},
                                                                   training={**common, **training}))
        assert rc == 0, events[-1]
        started = [e for e in events if e["type"] == "started"][0]
        assert started["effective_batch_size"] == 8
        losses[name] = [e["loss"] for e in events if e["type"] == "progress"]
    assert losses["accum"] == pytest.approx(losses["plain"], rel=1e-4)


def test_early_stopping(model, tmp_path):
    # a learning rate so small the eval loss cannot improve: patience 2 ends the run after the third eval
    config = make_config(model, "lora", training={"max_steps": 50, "eval_every": 1, "early_stopping_patience": 2,
                                                  "learning_rate": 1e-12})
    rc, events = train_in_process(tmp_path / "run", config)
    assert rc == 0
    done = events[-1]
    assert done["status"] == "early_stopped" and done["step"] == 3
    assert len([e for e in events if e["type"] == "eval"]) == 3
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()

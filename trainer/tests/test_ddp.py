"""training.num_gpus = 2 on a machine without GPUs: `train` re-launches itself through torchrun with 2 CPU processes
(gloo); events come from rank 0 only; a stop reaches both workers, they checkpoint together, and `resume` (also
through torchrun) finishes the run with a falling loss."""
import pytest
import torch

from bloom_peft.config import parse_config
from bloom_peft.data import load_splits
from bloom_peft.model_loading import load_base_model
from train_harness import TrainerProcess, checkpoint_steps, eval_loss, make_config, model_name, write_config

STEPS = 12


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return model_name(tmp_path_factory.mktemp("model"))


def test_two_process_ddp_run_stops_resumes_and_learns(model, tmp_path):
    config = make_config(model, "lora", training={"max_steps": STEPS, "batch_size": 4, "num_gpus": 2,
                                                  "save_every": 0, "eval_every": 4})
    run = tmp_path / "run"
    write_config(run, config)
    env = {"OMP_NUM_THREADS": "1", "TORCH_NUM_THREADS": "1"}

    first = TrainerProcess("train", run, env=env, faults={"step_delay": 0.3})
    first.wait_step(3)
    first.stop()  # the launcher turns it into EOF on both workers' stdin
    assert first.finish() == 0, first.stderr_tail()
    started = first.of("started")
    assert len(started) == 1 and started[0]["world_size"] == 2  # rank 1 is silent
    assert started[0]["effective_batch_size"] == 8
    done = first.of("done")
    assert len(done) == 1 and done[0]["status"] == "stopped"
    stopped_at = done[0]["step"]
    assert 3 <= stopped_at < STEPS and checkpoint_steps(run) == [stopped_at]

    second = TrainerProcess("resume", run, env=env)
    assert second.finish() == 0, second.stderr_tail()
    assert second.of("started")[0]["resumed_from_step"] == stopped_at
    assert [e["step"] for e in second.of("progress")] == list(range(stopped_at + 1, STEPS + 1))
    final = second.of("done")[0]
    assert final["status"] == "completed" and final["step"] == STEPS

    # the held-out loss (per-batch train losses are too noisy to compare) falls below the base model's and keeps falling
    torch.set_num_threads(1)  # 1 thread: far faster than 2 on a busy 2-core box
    parsed = parse_config(config)
    base, tok = load_base_model(parsed.model)
    _, held = load_splits(parsed, tok)
    evals = [e["eval_loss"] for e in first.of("eval") + second.of("eval")]
    assert len(evals) == 3 and evals[-1] < evals[0] < eval_loss(base, held, tok.pad_token_id), evals

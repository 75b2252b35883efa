"""Graceful stop: a stop line on stdin, stdin EOF (the parent went away), SIGTERM and SIGINT all stop at the last
complete step (a step still in forward/backward is abandoned), save a checkpoint and the adapter, emit
done(status=stopped) and exit 0. The kill -9 of the trainer's owner mid-step is in test_train_resume.py."""
import json
import signal

import pytest

from train_harness import TrainerProcess, checkpoint_steps, make_config, model_name, write_config


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return model_name(tmp_path_factory.mktemp("model"))


@pytest.mark.parametrize("how", ["stop_line", "stdin_eof", "sigterm", "sigint"])
def test_graceful_stop(model, tmp_path, how):
    run = tmp_path / "run"
    write_config(run, make_config(model, "lora", training={"max_steps": 1000, "save_every": 0}))
    p = TrainerProcess("train", run, faults={"step_delay": 0.1})
    p.wait_step(2)
    if how == "stop_line":
        p.send("not json, ignored\n")
        p.send(json.dumps({"type": "hello"}) + "\n")
        p.stop()
    elif how == "stdin_eof":
        p.close_stdin()
    else:
        p.signal(signal.SIGTERM if how == "sigterm" else signal.SIGINT)
    assert p.finish(timeout=120) == 0, p.stderr_tail()

    done = p.of("done")[-1]
    assert done["status"] == "stopped" and 2 <= done["step"] < 1000
    assert done["stop_reason"] == {"stop_line": "stop message", "stdin_eof": "stdin closed",
                                   "sigterm": "SIGTERM", "sigint": "SIGINT"}[how]
    assert checkpoint_steps(run) == [done["step"]]
    assert p.of("checkpoint")[-1]["step"] == done["step"]
    assert (run / "adapter" / "adapter_config.json").is_file() and done["adapter_dir"] == str(run / "adapter")
    assert done["export_dir"] is None  # a stop does not spend time exporting
    assert not p.of("error")


def test_a_stop_cuts_into_the_backward_pass(tmp_path):
    """The autograd engine runs backward in one call; the hooks on the model's blocks are where a stop ends it."""
    import torch
    from transformers import AutoModelForCausalLM

    from bloom_peft.stop import StepAbandoned, StopRequest, add_stop_checks
    from bloom_peft.testing.tiny_model import make_tiny_bloom

    model = AutoModelForCausalLM.from_pretrained(make_tiny_bloom(tmp_path / "model", n_layer=4))
    stop = StopRequest()
    add_stop_checks(model, stop)
    ids = torch.randint(0, 500, (2, 12))

    loss = model(input_ids=ids, labels=ids).loss
    loss.register_hook(lambda grad: stop.event.set())  # the stop arrives as backward begins
    with pytest.raises(StepAbandoned), stop.interruptible():
        loss.backward()
    assert model.transformer.word_embeddings.weight.grad is None  # backward never reached the first block

    model(input_ids=ids, labels=ids).loss.backward()  # outside interruptible(), a pending stop changes nothing
    assert model.transformer.word_embeddings.weight.grad is not None
    with pytest.raises(StepAbandoned), stop.interruptible():  # and a stop already pending ends the next step at once
        raise AssertionError("not reached")

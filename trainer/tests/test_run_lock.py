"""One process per run directory (runlock.py), with real trainer processes: a second `resume` (or `train`, or
`export`) of a run that is training refuses with `run_in_use` naming the holder's pid, and touches nothing of it;
a lock left by a killed trainer does not block the next resume."""
import json
import os
import signal

import pytest

from train_harness import TrainerProcess, checkpoint_steps, make_config, model_name, run_trainer, write_config


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return model_name(tmp_path_factory.mktemp("model"))


def holder(run) -> dict:
    return json.loads((run / "run.lock").read_text())


def test_second_trainer_refused_while_a_run_trains(model, tmp_path):
    run = tmp_path / "run"
    write_config(run, make_config(model, "lora", training={"max_steps": 1000, "save_every": 2}))
    first = TrainerProcess("train", run, faults={"step_delay": 0.1})
    try:
        first.wait_for(lambda e: e["type"] == "checkpoint")
        assert holder(run)["pid"] == first.proc.pid and holder(run)["command"] == "train"
        outputs_before = sorted(p.name for p in run.iterdir())

        for command in ("resume", "train", "export"):
            rc, events, p = run_trainer(command, run)
            errors = [e for e in events if e["type"] == "error"]
            assert rc == 2, p.stderr_tail()
            assert errors and errors[0]["code"] == "run_in_use", events
            assert f"in use by pid {first.proc.pid} (train" in errors[0]["message"]
            assert not any(e["type"] in ("started", "progress", "done") for e in events)

        # the refused `train` moved nothing: no previous/ archive, the live checkpoints are where they were
        assert not (run / "previous").exists()
        assert sorted(p.name for p in run.iterdir()) == outputs_before
        assert first.proc.poll() is None and checkpoint_steps(run)
        first.stop()
        assert first.finish() == 0, first.stderr_tail()
    finally:
        if first.proc.poll() is None:
            first.kill()


def test_concurrent_resumes_one_refuses(model, tmp_path):
    run = tmp_path / "run"
    write_config(run, make_config(model, "lora", training={"max_steps": 6, "save_every": 2}))
    rc, _, p = run_trainer("train", run)
    assert rc == 0, p.stderr_tail()
    (run / "config.json").write_text(json.dumps(make_config(model, "lora", training={"max_steps": 400, "save_every": 2})))
    # both start at once; whichever takes the lock first trains, the other refuses before touching anything
    a = TrainerProcess("resume", run, faults={"step_delay": 0.1})
    b = TrainerProcess("resume", run, faults={"step_delay": 0.1})
    try:
        first_event = {}
        for proc in (a, b):
            first_event[proc] = proc.wait_for(lambda e: e["type"] in ("started", "error"))
        refused = [proc for proc in (a, b) if first_event[proc]["type"] == "error"]
        winner = [proc for proc in (a, b) if first_event[proc]["type"] == "started"]
        assert len(refused) == 1 and len(winner) == 1, first_event
        loser, winner = refused[0], winner[0]
        assert first_event[loser]["code"] == "run_in_use"
        assert f"in use by pid {winner.proc.pid} (resume" in first_event[loser]["message"]
        assert loser.finish() == 2
        winner.wait_step(8)
        winner.stop()
        assert winner.finish() == 0, winner.stderr_tail()
        assert not any(e["type"] == "error" for e in winner.events)
    finally:
        for proc in (a, b):
            if proc.proc.poll() is None:
                proc.kill()


def test_lock_of_a_killed_trainer_is_not_held(model, tmp_path):
    run = tmp_path / "run"
    write_config(run, make_config(model, "lora", training={"max_steps": 1000, "save_every": 2}))
    p = TrainerProcess("train", run, faults={"step_delay": 0.1})
    p.wait_for(lambda e: e["type"] == "checkpoint")
    os.kill(p.proc.pid, signal.SIGKILL)
    p.finish()
    assert holder(run)["pid"] == p.proc.pid  # the file still names the dead holder: the OS lock is what counts
    (run / "config.json").write_text(json.dumps(make_config(model, "lora", training={"max_steps": 12, "save_every": 2})))
    rc, events, r = run_trainer("resume", run)
    assert rc == 0, r.stderr_tail()
    assert events[-1]["type"] == "done" and holder(run)["pid"] == r.proc.pid

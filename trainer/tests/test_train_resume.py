"""Resume: after a graceful stop, a SIGKILL mid-run and a SIGKILL mid-checkpoint, the run reaches the same final
step, with the same losses as an uninterrupted run, and no corrupt checkpoint is left behind."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from bloom_peft.paths import PROJECT_ROOT
from train_harness import (
    TRAINER_SRC,
    TrainerProcess,
    assert_no_partial_checkpoints,
    checkpoint_steps,
    fault_env,
    make_config,
    model_name,
    run_in_process,
    write_config,
)

STEPS, SAVE_EVERY = 12, 4


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    model = model_name(tmp_path_factory.mktemp("model"))
    # LoRA with dropout: the resumed losses only match if the RNG, data position and optimizer all come back
    return make_config(model, {"name": "lora", "dropout": 0.1}, training={"max_steps": STEPS, "save_every": SAVE_EVERY})


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory):
    """The uninterrupted run: its loss at every step."""
    run = tmp_path_factory.mktemp("reference") / "run"
    write_config(run, config)
    rc, events = run_in_process("train", run)  # same numerics as a trainer process: 1 thread, seeded
    assert rc == 0
    return {e["step"]: e["loss"] for e in events if e["type"] == "progress"}


def _losses(*processes) -> dict:
    out = {}
    for p in processes:
        out.update({e["step"]: e["loss"] for e in p.of("progress")})
    return out


def test_stop_then_resume_continues_the_same_curve(config, reference, tmp_path):
    run = tmp_path / "run"
    write_config(run, config)
    first = TrainerProcess("train", run, faults={"step_delay": 0.3})
    first.wait_step(5)
    first.stop()
    assert first.finish() == 0
    done = first.of("done")[-1]
    stopped_at = done["step"]
    assert done["status"] == "stopped" and 5 <= stopped_at < STEPS
    assert checkpoint_steps(run)[-1] == stopped_at  # the stop saved a checkpoint at the step it finished

    second = TrainerProcess("resume", run)
    assert second.finish() == 0
    started = second.of("started")[0]
    assert started["resumed_from_step"] == stopped_at and started["total_steps"] == STEPS
    steps = [e["step"] for e in second.of("progress")]
    assert steps == list(range(stopped_at + 1, STEPS + 1))
    assert second.of("done")[-1]["status"] == "completed" and second.of("done")[-1]["step"] == STEPS
    losses = _losses(first, second)
    assert sorted(losses) == list(range(1, STEPS + 1))
    for step, loss in reference.items():
        assert math.isclose(losses[step], loss, rel_tol=1e-5), (step, losses[step], loss)


def test_sigkill_mid_run_and_mid_checkpoint_then_resume(config, reference, tmp_path):
    run = tmp_path / "run"
    write_config(run, config)
    ckpt_root = run / "checkpoints"

    # 1. killed mid-run, just after the first checkpoint
    p1 = TrainerProcess("train", run, faults={"step_delay": 0.3})
    p1.wait_for(lambda e: e["type"] == "checkpoint" and e["step"] == SAVE_EVERY)
    p1.wait_step(SAVE_EVERY + 1)
    p1.kill()
    assert checkpoint_steps(run) == [SAVE_EVERY]

    # 2. resumed, then killed while the next checkpoint is half written
    p2 = TrainerProcess("resume", run, faults={"slow_checkpoint": 1.5})
    deadline = time.time() + 240
    while not any(p.name.startswith(".tmp-step-8") and len(list(p.iterdir())) >= 2 for p in ckpt_root.iterdir()):
        assert time.time() < deadline and p2.proc.poll() is None, p2.stderr_tail()
        time.sleep(0.05)
    p2.kill()
    assert not (ckpt_root / "step-8").exists()
    assert any(p.name.startswith(".tmp-") for p in ckpt_root.iterdir())  # the torn write is there...
    assert checkpoint_steps(run) == [SAVE_EVERY]  # ...but is not a checkpoint

    # 3. resumed again: skips the torn write, removes it, finishes the run
    p3 = TrainerProcess("resume", run)
    assert p3.finish() == 0
    assert p3.of("started")[0]["resumed_from_step"] == SAVE_EVERY
    done = p3.of("done")[-1]
    assert done["status"] == "completed" and done["step"] == STEPS
    assert_no_partial_checkpoints(run)
    assert checkpoint_steps(run) == [8, 12]  # keep_checkpoints = 2
    for step in range(SAVE_EVERY + 1, STEPS + 1):
        assert math.isclose(_losses(p3)[step], reference[step], rel_tol=1e-5), step

    # 4. resuming a finished run trains nothing and reports it finished
    rc, events = run_in_process("resume", run)
    assert rc == 0
    assert [e["type"] for e in events if e["type"] == "progress"] == []
    assert events[-1]["type"] == "done" and events[-1]["step"] == STEPS and events[-1]["status"] == "completed"


def test_resume_without_checkpoint_starts_over(config, tmp_path):
    run = tmp_path / "run"
    write_config(run, {**config, "training": {**config["training"], "max_steps": 2}})
    rc, events = run_in_process("resume", run)
    assert rc == 0
    assert any(e["type"] == "warning" and e.get("code") == "no_checkpoint" for e in events)
    assert events[-1]["type"] == "done" and events[-1]["step"] == 2


def test_sigterm_twice_exits_at_once(config, tmp_path):
    """The first SIGTERM asks for a graceful stop; a second one (an impatient parent) ends the process."""
    run = tmp_path / "run"
    write_config(run, {**config, "training": {**config["training"], "max_steps": 500}})
    p = TrainerProcess("train", run, faults={"step_delay": 0.2, "slow_checkpoint": 5})
    p.wait_step(1)
    p.signal(signal.SIGTERM)
    deadline = time.time() + 60
    while not (run / "checkpoints").exists():  # it is now writing its stop checkpoint, slowly
        assert time.time() < deadline
        time.sleep(0.05)
    p.signal(signal.SIGTERM)
    rc = p.finish(timeout=30)
    assert rc == 128 + signal.SIGTERM
    assert checkpoint_steps(run) == []  # the interrupted write never became a checkpoint


# An owner as the host's run supervisor is one: it holds the trainer's stdin, stdout and stderr, and relays the events.
SUPERVISOR = """
import subprocess, sys, threading
trainer = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
threading.Thread(target=lambda: [None for _ in trainer.stderr], daemon=True).start()
print(trainer.pid, flush=True)
for line in trainer.stdout:
    sys.stdout.buffer.write(line)
    sys.stdout.flush()
"""


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet counts as gone: the trainer's parent was killed)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_supervisor_killed_mid_step_the_trainer_abandons_the_step_and_resume_is_exact(config, reference, tmp_path):
    """kill -9 of the trainer's owner while a step is computing (60 s long from step 3 on, through the fault seam, after
    its forward): the trainer drops that step, checkpoints the last complete one and ends within 10 s of the kill, not
    after the step; resuming from that checkpoint gives the uninterrupted run's losses (dropout on: the RNG that step 3's
    forward advanced is rewound)."""
    run = tmp_path / "run"
    write_config(run, {**config, "training": {**config["training"], "save_every": 0}})
    env = {**os.environ, "TORCH_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", **fault_env({"step_delay": 60, "delay_from_step": 3}, str(TRAINER_SRC))}
    owner = subprocess.Popen([sys.executable, "-c", SUPERVISOR, sys.executable, "-m", "bloom_peft", "train",
                              "--run-dir", str(run)], stdout=subprocess.PIPE, env=env, cwd=str(PROJECT_ROOT))
    trainer_pid = int(owner.stdout.readline())
    events = []
    for line in owner.stdout:  # relayed until step 2 is done
        events.append(json.loads(line))
        if events[-1]["type"] == "progress" and events[-1]["step"] == 2:
            break
    time.sleep(5)  # step 3's forward (well under a second) has drawn its dropout masks; 55 s of the step remain
    owner.kill()
    killed_at = time.time()
    owner.wait(30)
    while _alive(trainer_pid) and time.time() - killed_at < 120:
        time.sleep(0.1)
    took = time.time() - killed_at
    assert not _alive(trainer_pid)
    assert took < 10, f"the trainer ended {took:.1f} s after its owner was killed"
    print(f"trainer gone {took:.2f} s after kill -9 of its owner")

    recorded = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]  # the pipe was dead
    done = recorded[-1]
    assert done["type"] == "done" and done["status"] == "stopped" and done["stop_reason"] == "stdin closed"
    assert done["step"] == 2 and checkpoint_steps(run) == [2]  # step 3 was abandoned, not finished

    resumed = TrainerProcess("resume", run)
    assert resumed.finish() == 0
    assert resumed.of("started")[0]["resumed_from_step"] == 2
    losses = {e["step"]: e["loss"] for e in events + resumed.of("progress") if e["type"] == "progress"}
    assert sorted(losses) == list(range(1, STEPS + 1))
    for step, loss in reference.items():
        assert math.isclose(losses[step], loss, rel_tol=1e-5), (step, losses[step], loss)

"""Shared helpers of the training tests: real trainer processes, their event stream validated line by line."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema

from bloom_peft.paths import EMBEDDED_MODEL_DIR, EVENTS_SCHEMA, PROJECT_ROOT

TRAINER_SRC = PROJECT_ROOT / "trainer" / "src"
FAULT_SITE = Path(__file__).resolve().parent / "fault_site"  # its sitecustomize installs a process's faults
CODE_TASKS = PROJECT_ROOT / "examples" / "code-tasks"
EVENT_VALIDATOR = jsonschema.Draft7Validator(json.loads(EVENTS_SCHEMA.read_text()))
TIMEOUT = float(os.environ.get("BLOOM_PEFT_TEST_TIMEOUT", "240"))  # generous: CI machines are shared


def model_name(scratch: Path) -> str:
    """'embedded' (models/bloom-tiny) when it is there, else a tiny random BLOOM made once in `scratch`;
    BLOOM_PEFT_TEST_MODEL=PATH runs the training tests on another base model."""
    if os.environ.get("BLOOM_PEFT_TEST_MODEL"):
        return os.environ["BLOOM_PEFT_TEST_MODEL"]
    if (EMBEDDED_MODEL_DIR / "model.safetensors").is_file():
        return "embedded"
    from bloom_peft.testing.tiny_model import make_tiny_bloom

    path = scratch / "tiny-bloom"
    if not (path / "model.safetensors").is_file():
        make_tiny_bloom(path)
    return str(path)


def make_config(model: str, method: dict | str = "lora", *, training: dict | None = None, data: dict | None = None,
                export: bool = False) -> dict:
    method = {"name": method} if isinstance(method, str) else method
    return {
        "model": {"name_or_path": model},
        "method": method,
        "data": {"format": "instruction", "train_file": str(CODE_TASKS / "train.jsonl"),
                 "eval_file": str(CODE_TASKS / "heldout.jsonl"), **(data or {})},
        "training": {"max_steps": 12, "batch_size": 8, "max_length": 64, "eval_every": 0, "save_every": 0,
                     "log_every": 1, "warmup_ratio": 0.0, **(training or {})},
        "export": {"onnx": export},
    }


def write_config(run_dir: Path, config: dict) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


class TrainerProcess:
    """`python -m bloom_peft <command> --run-dir DIR`, with stdin as a pipe (the host's control channel). `faults`:
    what bloom_peft.testing.faults.InjectedFaults injects into that process (e.g. {"step_delay": 0.3})."""

    def __init__(self, command: str, run_dir: Path, *extra: str, env: dict | None = None, faults: dict | None = None):
        self.run_dir = Path(run_dir)
        self.events: list[dict] = []
        self.bad_lines: list[str] = []
        self._cond = threading.Condition()
        full_env = dict(os.environ)
        full_env.update({"PYTHONPATH": str(TRAINER_SRC), "TORCH_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                         "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
        full_env.update(env or {})
        if faults:
            full_env.update(fault_env(faults, full_env["PYTHONPATH"]))
        self.stderr_path = self.run_dir.parent / f"{self.run_dir.name}.{command}.{int(time.time() * 1000)}.stderr"
        self.stderr_path.parent.mkdir(parents=True, exist_ok=True)
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "bloom_peft", command, "--run-dir", str(run_dir), *extra],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                     env=full_env, cwd=str(PROJECT_ROOT))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                event = json.loads(line)
                errors = [e.message for e in EVENT_VALIDATOR.iter_errors(event)]
            except ValueError as e:
                event, errors = None, [str(e)]
            with self._cond:
                if errors or not isinstance(event, dict):
                    self.bad_lines.append(f"{line[:300]} -> {errors}")
                else:
                    self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    # -- observing
    def of(self, type_: str) -> list[dict]:
        with self._cond:
            return [e for e in self.events if e["type"] == type_]

    def wait_for(self, predicate, timeout: float = TIMEOUT) -> dict:
        """The first event satisfying predicate(event); fails if the process ends or time runs out first."""
        deadline = time.time() + timeout
        with self._cond:
            while True:
                for e in self.events:
                    if predicate(e):
                        return e
                if not self._reader.is_alive() or time.time() > deadline:
                    raise AssertionError(f"event not seen (rc={self.proc.poll()}); events: "
                                         f"{[e['type'] for e in self.events]}\nstderr tail:\n{self.stderr_tail()}")
                self._cond.wait(0.2)

    def wait_step(self, step: int) -> dict:
        return self.wait_for(lambda e: e["type"] == "progress" and e["step"] >= step)

    def stderr_tail(self, n: int = 4000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    # -- controlling
    def send(self, text: str) -> None:
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def stop(self) -> None:
        self.send('{"type":"stop"}\n')

    def close_stdin(self) -> None:
        self.proc.stdin.close()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._reader.join(10)

    def finish(self, timeout: float = TIMEOUT) -> int:
        """Wait for the exit (stdin stays open until then, like a live host); returns the exit code."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"trainer did not exit in {timeout}s\n{self.stderr_tail()}") from None
        self._reader.join(10)
        self._stderr.close()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        assert not self.bad_lines, f"non-protocol lines on stdout: {self.bad_lines[:5]}"
        return rc


def fault_env(faults: dict, pythonpath: str) -> dict:
    """The environment that makes a trainer process inject `faults` (trainer/tests/fault_site/sitecustomize.py)."""
    from bloom_peft.testing.faults import ENV

    return {"PYTHONPATH": os.pathsep.join([str(FAULT_SITE), pythonpath]), ENV: json.dumps(faults)}


def run_trainer(command: str, run_dir: Path, *extra: str, env: dict | None = None, timeout: float = TIMEOUT):
    """Run to the end; returns (exit code, events, process)."""
    p = TrainerProcess(command, run_dir, *extra, env=env)
    rc = p.finish(timeout)
    return rc, p.events, p


def run_in_process(command: str, run_dir: Path, config: str | None = None, faults=None):
    """train/resume in this process (train.run_with: the same error contract and exit codes as the CLI) with an
    in-memory protocol channel: spares an interpreter start-up (most of a short run's time). Returns (rc, events),
    every event validated against the schema. `faults`: a bloom_peft.faults.Faults to inject. Signals, stdout
    discipline and kills need TrainerProcess."""
    import argparse
    import io

    import torch

    from bloom_peft.faults import NO_FAULTS
    from bloom_peft.protocol import EventEmitter
    from bloom_peft.train import StopRequest, run_with

    torch.set_num_threads(1)
    stream = io.StringIO()
    rc = run_with(argparse.Namespace(command=command, run_dir=str(run_dir), config=config),
                  EventEmitter(stream), StopRequest(), faults or NO_FAULTS)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    for e in events:
        assert not list(EVENT_VALIDATOR.iter_errors(e)), e
    return rc, events


def eval_loss(model, rows: list[dict], pad_id: int, batch_size: int = 16) -> float:
    """Token-weighted mean loss of a model on encoded rows (the trainer's own eval does the same)."""
    import torch

    from bloom_peft.data import collate

    model.eval()
    total = count = 0.0
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            batch = collate(rows[i:i + batch_size], pad_id)
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += model(**batch).loss.item() * n
            count += n
    return total / count


def checkpoint_steps(run_dir: Path) -> list[int]:
    from bloom_peft import checkpoint as ckpt

    return [s for s, _, ok in ckpt.list_checkpoints(run_dir) if ok]


def assert_no_partial_checkpoints(run_dir: Path) -> None:
    from bloom_peft import checkpoint as ckpt

    entries = list((run_dir / "checkpoints").iterdir())
    assert all(p.name.startswith("step-") for p in entries), [p.name for p in entries]
    for _step, path, ok in ckpt.list_checkpoints(run_dir):
        assert ok, f"{path} is incomplete"
        ckpt.load_checkpoint(path)  # every file parses

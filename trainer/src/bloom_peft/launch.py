"""Multi-process launch: `train`/`resume` with training.num_gpus > 1 re-runs itself under torchrun (DDP).

    python -m bloom_peft train --run-dir DIR            (num_gpus = 2)
      └─ python -m torch.distributed.run --standalone --nproc_per_node 2 -m bloom_peft train --run-dir DIR
           ├─ rank 0: trains, writes the run directory, emits the events
           └─ rank 1: trains silently

This process stays in between as the supervisor the host talks to: it forwards rank 0's protocol lines (anything
else on that channel goes to stderr), turns a stop request (stdin line, stdin EOF, SIGTERM, SIGINT) into closing
the workers' stdin pipe, which every worker reads as a graceful stop (they agree on the step with an all-reduce),
and maps the final event to the exit code. If this process dies, the pipe closes by itself and the workers still
stop gracefully. Without CUDA the workers are CPU processes on the gloo backend (that is how the tests run it).

Launchers the user starts (torchrun, `accelerate launch` with an FSDP config, multi-node) set WORLD_SIZE, and the
trainer then runs as one of their workers directly; see docs/multi-gpu.md.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from .config import Config
from .errors import ConfigError
from .log import log
from .paths import PACKAGE_DIR

DISTRIBUTED_ENV = ("WORLD_SIZE", "LOCAL_RANK", "RANK")
EXIT_BY_ERROR_CODE = {"nan_loss": 3, "internal": 1}  # other error codes are bad input: 2


def in_distributed_env() -> bool:
    return any(k in os.environ for k in DISTRIBUTED_ENV)


def needs_launch(config: Config) -> bool:
    return config.training.num_gpus > 1 and not in_distributed_env()


def worker_command(args, run_dir: Path, nproc: int) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "bloom_peft", args.command, "--run-dir", str(run_dir)]
    if args.command == "train" and getattr(args, "config", None):
        cmd += ["--config", str(Path(args.config).resolve())]
    return cmd


def launch(args, config: Config, run_dir: Path, emitter, stop) -> int:
    import torch

    n, device = config.training.num_gpus, config.training.device
    cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"training.num_gpus is {n} with device 'cuda', but no CUDA device is available",
                          field="/training/device", hint="Install a CUDA build of torch, or set training.num_gpus to 1.")
    if device == "mps":
        raise ConfigError("multi-process training is not supported on MPS", field="/training/num_gpus",
                          hint="Set training.num_gpus to 1 on Apple silicon.")
    if cuda and torch.cuda.device_count() < n:
        raise ConfigError(f"training.num_gpus is {n} but this machine has {torch.cuda.device_count()} CUDA device(s)",
                          field="/training/num_gpus",
                          hint=f"Set training.num_gpus to at most {torch.cuda.device_count()} (several machines: docs/multi-gpu.md).")
    if not cuda:
        log(f"no CUDA device: launching {n} CPU processes (gloo backend)", level="warning")

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_DIR.parent), env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))
    env["BLOOM_PEFT_LAUNCHED"] = "1"
    env.pop("BLOOM_PEFT_IGNORE_STDIN", None)  # the workers' stdin is this process's stop channel
    proc = subprocess.Popen(worker_command(args, run_dir, n), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    worker_stdin, worker_stdout = proc.stdin, proc.stdout
    assert worker_stdin is not None and worker_stdout is not None  # both are PIPEs

    seen: dict[str, Any] = {"error": None, "done": False}

    def forward() -> None:
        for raw in iter(worker_stdout.readline, b""):
            try:
                event = json.loads(raw)
            except ValueError:
                event = None
            if isinstance(event, dict) and isinstance(event.get("type"), str):
                if event["type"] == "error":
                    seen["error"] = event.get("code")
                elif event["type"] == "done":
                    seen["done"] = True
                emitter.emit(event.pop("type"), **event)  # keeps the worker's v and time
            else:
                sys.stderr.buffer.write(raw)
                sys.stderr.flush()

    reader = threading.Thread(target=forward, name="worker-events", daemon=True)
    reader.start()

    def force(_signum):
        proc.terminate()  # torchrun passes SIGTERM on; the workers are already stopping, so they exit at once

    stop.on_force = force
    stopping = False
    while proc.poll() is None:
        if stop.event.wait(0.2) and not stopping:
            stopping = True
            try:
                worker_stdin.close()  # every worker's stdin hits EOF: a graceful stop
            except OSError:
                pass
    reader.join(timeout=10)

    if seen["error"]:
        return EXIT_BY_ERROR_CODE.get(seen["error"], 2)
    if seen["done"]:
        return 0
    emitter.error("internal", f"the training processes exited with code {proc.returncode} without finishing",
                  hint="See the trainer log for the workers' tracebacks.")
    return 1

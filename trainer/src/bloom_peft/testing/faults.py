"""Faults the tests inject through the trainer's one seam (bloom_peft.faults): a slow step, a NaN loss, CUDA out of
memory, a slow or full disk while checkpointing. In-process: `train.run_with(..., faults=InjectedFaults(...))`; in a
trainer process: BLOOM_PEFT_TEST_FAULTS='{"step_delay": 0.5}' with trainer/tests/fault_site on PYTHONPATH
(`install_from_environment`, run by that folder's sitecustomize.py at interpreter start-up)."""
from __future__ import annotations

import errno
import json
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from .. import faults

ENV = "BLOOM_PEFT_TEST_FAULTS"


@dataclass
class InjectedFaults(faults.Faults):
    # seconds added to each step between its first forward and backward: a stop then abandons a step whose forward
    # already drew its dropout masks, as it would real compute
    step_delay: float = 0.0
    delay_from_step: int = 1  # the first step slowed down
    nan_at_step: int = 0  # the loss of this step becomes NaN
    oom_from_rows: int = 0  # forward passes of this many rows or more raise torch.OutOfMemoryError (no GPU needed)
    slow_checkpoint: float = 0.0  # seconds after each checkpoint file: a window to SIGKILL mid-checkpoint
    disk_full_at_checkpoint: int = 0  # the checkpoint of this step fails with ENOSPC after its first file
    _delayed: int = field(default=0, repr=False)  # the last step slowed down

    def micro_batch(self, rows: int) -> None:
        if self.oom_from_rows and rows >= self.oom_from_rows:
            import torch

            error = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
            raise error(f"CUDA out of memory (injected: micro-batch {rows} >= {self.oom_from_rows})")

    def loss(self, loss, step: int):
        if self.step_delay and step >= self.delay_from_step and step != self._delayed:
            self._delayed = step  # once per step, after its first micro-batch's forward
            time.sleep(self.step_delay)
        return loss * float("nan") if self.nan_at_step and step == self.nan_at_step else loss

    def checkpoint_file_written(self, path: Path) -> None:
        if self.disk_full_at_checkpoint and path.parent.name.startswith(f".tmp-step-{self.disk_full_at_checkpoint}-"):
            raise OSError(errno.ENOSPC, "No space left on device (injected)", str(path))
        if self.slow_checkpoint:
            time.sleep(self.slow_checkpoint)


def from_spec(spec: dict) -> InjectedFaults:
    known = {f.name for f in fields(InjectedFaults) if not f.name.startswith("_")}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(f"{ENV}: unknown fault(s) {unknown}; known: {sorted(known)}")
    return InjectedFaults(**spec)


def install_from_environment() -> None:
    """Replace the seam's `active` faults with the ones named in BLOOM_PEFT_TEST_FAULTS (JSON), if set."""
    spec = os.environ.get(ENV)
    if spec:
        faults.active = from_spec(json.loads(spec))

"""The one seam for fault injection: the training loop and the checkpoint writer call these at their points, and here
each does nothing. Tests give a trainer their own `Faults` (bloom_peft.testing.faults): in-process through
`train.run_with(..., faults=...)`, in a trainer process by replacing `active` at start-up
(trainer/tests/fault_site/sitecustomize.py). Production code never reads a test switch."""
from __future__ import annotations

from pathlib import Path


class Faults:
    def micro_batch(self, rows: int) -> None:
        """Before the forward pass of a micro-batch of `rows` rows."""

    def loss(self, loss, step: int):
        """The loss of a micro-batch of optimizer step `step` (1-based): its forward is done, its backward next."""
        return loss

    def checkpoint_file_written(self, path: Path) -> None:
        """After each file of a checkpoint is written and fsynced (before the COMPLETE marker makes it whole)."""


NO_FAULTS = Faults()
active: Faults = NO_FAULTS  # what a trainer process uses; replaced only by a test's sitecustomize

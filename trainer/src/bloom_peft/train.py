"""`train` and `resume`: the training loop, streamed as protocol events (docs/trainer.md).

train_locked reads as setup, loop, finish: `set_up` (config -> re-launch under torchrun when num_gpus > 1 ->
accelerator -> model + method -> data -> run directory -> the checkpoint to resume from), `TrainingRun.loop` (each
step: forward/backward with OOM back-off, NaN and divergence checks, clip, optimizer step, log, eval, checkpoint, stop
check), `TrainingRun.finish` (final checkpoint, adapter, evaluation, ONNX export, `done`).

Exit codes (docs/contracts.md): 0 ok (also after a graceful stop), 1 internal error, 2 bad input (config, data,
model, out of memory at micro-batch 1), 3 NaN/inf loss or gradient.

Knobs: BLOOM_PEFT_IGNORE_STDIN=1 (headless runs under nohup: stdin EOF does not stop the run), TORCH_NUM_THREADS=N
(CPU threads per process). Tests inject faults through the one seam, bloom_peft.faults.
"""
from __future__ import annotations

import contextlib
import errno
import gc
import json
import math
import os
import shutil
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import NamedTuple

from . import checkpoint as ckpt
from .config import Config, MethodOptions, TrainingSection, load_config
from .errors import ConfigError, DataError, TrainerError
from .faults import NO_FAULTS, Faults
from .log import log, routed_to
from .protocol import EventEmitter, claim_stdout
from .runlock import RunLock
from .stop import StepAbandoned, StopRequest, add_stop_checks

EXIT_OK, EXIT_INTERNAL, EXIT_USER, EXIT_NAN = 0, 1, 2, 3
RUN_OUTPUTS = ("checkpoints", "adapter", "export", "tensorboard")


class NonFiniteError(TrainerError):
    """The loss (or, outside fp16, the gradient norm) stopped being a finite number."""

    exit_code = EXIT_NAN


class Diverged(TrainerError):
    """The loss grew far past where it started and past a uniform guess: the updates are blowing the model up."""

    exit_code = EXIT_NAN

    def __init__(self, message: str, hint: str, step: int):
        super().__init__("diverged", message, hint, field="/training/learning_rate", step=step)


def divergence_limit(first_loss: float, vocab_size: int) -> float:
    """Above this the run has diverged: twice the loss of guessing uniformly over the vocabulary (a model that bad has
    learned worse than nothing) and four times where this run started. Healthy runs, spikes included, stay far below."""
    return max(2 * math.log(max(vocab_size, 2)), 4 * first_loss)


class DiskFull(TrainerError):
    def __init__(self, path: str | None, step: int | None):
        where = f" while writing {path}" if path else ""
        super().__init__("disk_full", f"the disk is full{where}; the trainer stopped (complete checkpoints are kept)",
                         "Free space on that disk (old runs' checkpoints/ folders are the largest), or set "
                         "training.keep_checkpoints lower, then resume.", file=path, step=step)


def disk_full_cause(e: BaseException, run_dir: str | None) -> DiskFull | None:
    """ENOSPC anywhere in the exception chain (torch and safetensors wrap it in their own errors); named by the file
    when the error carries it (a failed write() does not), else by the run directory."""
    seen: BaseException | None = e
    while seen is not None:
        if (isinstance(seen, OSError) and seen.errno == errno.ENOSPC) or "No space left on device" in str(seen) \
                or "os error 28" in str(seen):
            return DiskFull(getattr(seen, "filename", None) or run_dir, None)
        seen = seen.__cause__ or seen.__context__
    return None


class OutOfMemory(TrainerError):
    def __init__(self, message: str, hint: str, step: int):
        super().__init__("out_of_memory", message, hint, field="/training/batch_size", step=step)


# ---------------------------------------------------------------------------------------------------- entry point

def run(args) -> int:
    rank = int(os.environ.get("RANK", "0"))
    emitter = claim_stdout(enabled=rank == 0)  # every other write goes to stderr from here on
    stop = StopRequest()
    if os.environ.get("BLOOM_PEFT_LAUNCHED") != "1":  # launch.py's workers report through their parent
        emitter.fallback_path = Path(args.run_dir) / "events.jsonl"
        stop.log_path = Path(args.run_dir) / "trainer.log"
    stop.install()
    from . import faults as fault_seam  # read now: a test's sitecustomize may have replaced `active`

    rc = run_with(args, emitter, stop, fault_seam.active)
    if stop.reason == "stdin closed":
        # the owner is gone (or closed the pipe after `done`) and every output is written: skip the interpreter's
        # teardown (torch finalizers, seconds on a loaded CPU) so a trainer whose owner was killed ends promptly
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(rc)
    return rc


def run_with(args, emitter: EventEmitter, stop: StopRequest, faults: Faults = NO_FAULTS) -> int:
    """train/resume under the error contract: TrainerError -> its error event and exit code; anything else ->
    `internal` and 1 (traceback on stderr). The tests call this in-process with an in-memory channel."""
    try:
        with routed_to(emitter):  # log() messages are this run's log events
            return train(args, emitter, stop, faults)
    except TrainerError as e:
        emitter.emit("error", **e.event_fields())
        return e.exit_code
    except KeyboardInterrupt:
        emitter.error("internal", "interrupted", hint="The trainer was interrupted before training began.")
        return EXIT_INTERNAL
    except Exception as e:  # noqa: BLE001 - the last line of defence: report, never die silently
        traceback.print_exc(file=sys.stderr)
        full = disk_full_cause(e, getattr(args, "run_dir", None))
        if full is not None:
            emitter.emit("error", **full.event_fields())
            return full.exit_code
        emitter.error("internal", f"{type(e).__name__}: {e}",
                      hint="An unexpected error; the traceback is in the trainer log. Please report it.")
        return EXIT_INTERNAL


def read_config(args) -> tuple[Config, Path]:
    """(the parsed config, its file): `train --config FILE`, else RUN_DIR/config.json."""
    run_dir = Path(args.run_dir)
    source = Path(args.config) if getattr(args, "config", None) and args.command == "train" else run_dir / "config.json"
    return load_config(source), source


def train(args, emitter: EventEmitter, stop: StopRequest, faults: Faults = NO_FAULTS) -> int:
    """One trainer per run directory: the run lock is held for the whole train/resume (runlock.py)."""
    if os.environ.get("BLOOM_PEFT_LAUNCHED") == "1":  # a worker of launch.py, whose parent holds the lock
        return train_locked(args, emitter, stop, faults)
    with RunLock(Path(args.run_dir).resolve(), args.command):
        return train_locked(args, emitter, stop, faults)


def train_locked(args, emitter: EventEmitter, stop: StopRequest, faults: Faults) -> int:
    t_start = time.time()
    config, config_source = read_config(args)
    from . import launch

    if launch.needs_launch(config):
        return launch.launch(args, config, Path(args.run_dir).resolve(), emitter, stop)
    run = set_up(args, config, config_source, emitter, stop, faults)
    status = run.loop()
    return run.finish(status, t_start)


# ---------------------------------------------------------------------------------------------------- setup

class TrainingData(NamedTuple):
    train: list[dict]  # input_ids and labels: all the loop needs
    eval: list[dict]
    eval_examples: list[dict]  # the eval rows with their texts, for the end-of-run evaluation (evaluation.py)


def set_up(args, config: Config, config_source: Path, emitter: EventEmitter, stop: StopRequest,
           faults: Faults) -> TrainingRun:
    """Device and precision, model and method, data, the run directory and the checkpoint to resume from. Every user
    error surfaces before the run directory is touched."""
    import torch
    from accelerate.utils import set_seed

    from . import launch
    from .methods import count_parameters

    if os.environ.get("TORCH_NUM_THREADS"):
        torch.set_num_threads(max(1, int(os.environ["TORCH_NUM_THREADS"])))
    t = config.training
    accelerator, precision = make_accelerator(t, emitter)
    world = accelerator.num_processes
    if world != t.num_gpus and launch.in_distributed_env():
        emitter.warning(f"training.num_gpus is {t.num_gpus} but the launcher started {world} processes; using {world}",
                        code="world_size_mismatch")
    log(f"loading {config.model.name_or_path} on {accelerator.device} ({precision}, {world} process(es))")
    set_seed(t.seed)
    model, tokenizer, base_weights = load_model(config, accelerator.process_index, stop)
    trainable_params, total_params = count_parameters(model)
    data = load_data(config, config_source, tokenizer, emitter)
    checkpoint = open_run_dir(Path(args.run_dir).resolve(), args.command == "resume", config_source, accelerator,
                              emitter)
    run = TrainingRun(config, Path(args.run_dir).resolve(), emitter, stop, faults, accelerator, precision, model,
                      tokenizer, base_weights, data, checkpoint)
    run.announce(int(trainable_params), int(total_params))
    return run


def load_model(config: Config, rank: int, stop: StopRequest):
    """(model with its method applied, tokenizer, the base weights the end-of-run evaluation compares against)."""
    import torch

    from .evaluation import base_snapshot
    from .methods import apply_method
    from .model_loading import fuse_bloom_gelu, load_base_model

    model, tokenizer = load_base_model(config.model, dtype=torch.float32)
    fuse_bloom_gelu(model)  # BLOOM's Python GELU as one kernel, the same formula (docs/benchmarks.md)
    if config.training.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    model = apply_method(model, config.method, tokenizer)
    add_stop_checks(model, stop)
    # BitFit / full change the base weights in place: keep what the end-of-run evaluation compares against
    base_weights = base_snapshot(model, config.method.name) if rank == 0 else None
    return model, tokenizer, base_weights


def load_data(config: Config, config_source: Path, tokenizer, emitter: EventEmitter) -> TrainingData:
    from .config import learning_rate_warnings
    from .data import load_examples

    data_warnings: list[str] = []
    train_examples, eval_examples = load_examples(config, tokenizer, warnings=data_warnings, base_dir=config_source.parent)
    train_rows, eval_rows = ([{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows]
                             for rows in (train_examples, eval_examples))
    del train_examples
    for message in data_warnings:
        emitter.warning(message, code="data")
    for message in learning_rate_warnings(config):
        emitter.warning(message, code="learning_rate")
    if not train_rows:
        raise DataError("the training set is empty", file=config.data.train_file if config.data else None, field="/data/train_file",
                        hint="Point data.train_file at a file with at least one row (or lower data.eval_split).")
    return TrainingData(train_rows, eval_rows, eval_examples)


def open_run_dir(run_dir: Path, resume: bool, config_source: Path, accelerator, emitter: EventEmitter) -> dict | None:
    """`resume`: the newest complete checkpoint (torn writes removed), or None; a fresh `train`: archive an older
    run's outputs and copy the config in."""
    checkpoint = None
    if resume:
        if accelerator.is_main_process:
            for p in ckpt.clean_stale(run_dir):
                log(f"removed an incomplete checkpoint write: {p.name}", level="warning")
        accelerator.wait_for_everyone()
        latest = ckpt.latest_complete(run_dir)
        if latest is None:
            emitter.warning("no complete checkpoint in the run directory; starting from step 0", code="no_checkpoint")
        else:
            checkpoint = ckpt.load_checkpoint(latest)
            saved_world = checkpoint["trainer_state"].get("world_size", 1)
            if saved_world != accelerator.num_processes:
                raise ConfigError(f"the checkpoint {latest.name} was written by {saved_world} processes, this run has "
                                  f"{accelerator.num_processes}",
                                  field="/training/num_gpus", hint=f"Resume with training.num_gpus = {saved_world}.")
    elif accelerator.is_main_process:
        prepare_run_dir(run_dir, config_source, emitter)
    accelerator.wait_for_everyone()
    return checkpoint


def make_optimizer(model, t: TrainingSection, total_steps: int, accelerator):
    """(model, optimizer) prepared by accelerate, and the lr schedule: AdamW (no decay on biases and norms, fused on
    CUDA) with linear/cosine/... warmup."""
    import torch
    from transformers import get_scheduler

    if not is_fsdp(accelerator):  # FSDP shards from the CPU copy in prepare(); everything else trains on the device
        model = model.to(accelerator.device)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in trainable if p.ndim >= 2], "weight_decay": t.weight_decay},
              {"params": [p for n, p in trainable if p.ndim < 2], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    raw_optimizer = torch.optim.AdamW(groups, lr=t.learning_rate, betas=(0.9, 0.999),
                                      **({"fused": True} if accelerator.device.type == "cuda" else {}))
    scheduler = get_scheduler(t.scheduler, optimizer=raw_optimizer,
                              num_warmup_steps=math.ceil(t.warmup_ratio * total_steps), num_training_steps=total_steps)
    model, optimizer = accelerator.prepare(model, raw_optimizer)
    return model, optimizer, scheduler


# ---------------------------------------------------------------------------------------------------- the run

@dataclass
class LoopState:
    """Where the run is: saved in every checkpoint (trainer_state.json) and restored on resume."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # optimizer steps done in this epoch
    micro_batch: int = 0  # rows per forward pass (halved on CUDA out of memory)
    best_eval: float | None = None
    evals_without_improvement: int = 0
    elapsed_s: float = 0.0
    last_eval_loss: float | None = None
    last_train_loss: float | None = None
    tokens_seen: int = 0
    first_loss: float | None = None


@dataclass
class Interval:
    """Sums over the steps since the last `progress` event."""

    loss: float = 0.0
    steps: int = 0
    tokens: int = 0
    samples: int = 0
    t0: float = field(default_factory=time.time)


@dataclass
class StepResult:
    loss: float  # token-weighted mean over the step's rows, all processes
    tokens: int  # non-pad tokens, all processes
    samples: int
    lr: float
    grad_norm: float | None = None


class TrainingRun:
    """One session of a run, set up: the model, optimizer and schedule on their device, the data, where the run is
    (LoopState), and where it reports. `loop()` trains until the end, a stop or early stopping; `finish()` saves and
    reports the end."""

    def __init__(self, config: Config, run_dir: Path, emitter: EventEmitter, stop: StopRequest, faults: Faults,
                 accelerator, precision: str, model, tokenizer, base_weights, data: TrainingData,
                 checkpoint: dict | None):
        t = self.t = config.training
        self.config, self.run_dir, self.emitter, self.stop, self.faults = config, run_dir, emitter, stop, faults
        self.accelerator, self.precision, self.device = accelerator, precision, accelerator.device
        self.rank, self.world, self.is_main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
        self.fsdp = is_fsdp(accelerator)
        self.method_name = config.method.name
        self.tokenizer, self.base_weights, self.data = tokenizer, base_weights, data
        # batches: a deterministic function of (seed, epoch); one global micro-batch = batch_size rows per process
        self.batch_size, self.grad_accum = t.batch_size, t.grad_accum
        self.epoch_batches = make_epoch_batches(data.train, self.batch_size * self.world, t.seed, t.group_by_length)
        self.steps_per_epoch = math.ceil(len(self.epoch_batches(0)) / self.grad_accum)
        self.total_steps = t.max_steps or max(1, math.ceil(t.epochs * self.steps_per_epoch))
        self.model, self.optimizer, self.scheduler = make_optimizer(model, t, self.total_steps, accelerator)
        self.unwrapped = accelerator.unwrap_model(self.model)
        self.state = LoopState(micro_batch=self.batch_size)
        self.restore(checkpoint)
        self.start_step = self.last_eval_step = self.state.step
        self.base_elapsed, self.session_t0, self.session_steps = self.state.elapsed_s, time.time(), 0
        self.interval = Interval()
        self.batches: list[list[int]] = []  # the current epoch's global micro-batches (row indices)
        self.loader: Iterator[dict] | None = None  # this process's share of them, from the data position on
        self.writer = open_tensorboard(run_dir, self.start_step, emitter) if self.is_main else None

    def restore(self, checkpoint: dict | None) -> None:
        """The checkpoint's weights, optimizer, schedule, scaler, RNG and loop state; without one, per-process seeds."""
        from accelerate.utils import set_seed

        if checkpoint is None:
            if self.rank > 0:
                set_seed(self.t.seed + 1000 * self.rank)  # different dropout per process (the model init is shared)
            return
        from .methods import load_method_state_dict

        load_method_state_dict(self.unwrapped, self.method_name, checkpoint["weights"])
        if checkpoint["optimizer"]["param_groups"]:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        else:
            self.emitter.warning("the checkpoint holds no optimizer state (FSDP run): AdamW's moments restart",
                                 code="optimizer_state_missing")
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint["scaler"] is not None and self.accelerator.scaler is not None:
            self.accelerator.scaler.load_state_dict(checkpoint["scaler"])
        saved = checkpoint["trainer_state"]
        self.state = replace(self.state, **{f.name: saved[f.name] for f in fields(LoopState) if f.name in saved})
        if self.rank == 0:
            ckpt.restore_rng(*checkpoint["rng"])  # the same dropout masks as an uninterrupted run
        else:
            set_seed(self.t.seed + 1000 * self.rank + self.state.step)

    def announce(self, trainable_params: int, total_params: int) -> None:
        import torch

        device_name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else None
        self.emitter.emit("started", run_dir=str(self.run_dir), config=self.config.as_dict(), device=str(self.device),
                          **({"device_name": device_name} if device_name else {}), precision=self.precision,
                          world_size=self.world, trainable_params=trainable_params, total_params=total_params,
                          total_steps=self.total_steps, resumed_from_step=self.start_step,
                          train_rows=len(self.data.train), eval_rows=len(self.data.eval),
                          steps_per_epoch=self.steps_per_epoch,
                          effective_batch_size=self.batch_size * self.grad_accum * self.world)

    # ---- the loop

    def loop(self) -> str:
        """Steps until total_steps; returns how the loop ended: completed, stopped or early_stopped."""
        self.model.train()
        while self.state.step < self.total_steps:
            # a stop asked for between steps: every process must agree, or DDP would hang waiting for the others
            if synced_flag(self.stop.requested, self.accelerator):
                return "stopped"
            try:
                result = self.compute_step()
            except StepAbandoned:
                return "stopped"
            self.check_loss(result)
            self.apply_step(result)
            self.report(result)
            if self.eval_due() and self.evaluate_and_decide() == "early_stopped":
                return "early_stopped"
            if self.t.save_every and self.state.step % self.t.save_every == 0 and self.state.step < self.total_steps:
                self.save()
        return "completed"

    def next_batches(self) -> list[dict]:
        """This process's micro-batches of the next step (the epoch's last step may be short)."""
        s = self.state
        if self.loader is None:
            self.batches = self.epoch_batches(s.epoch)
            self.loader = epoch_loader(self.data.train, self.batches, s.batch_in_epoch * self.grad_accum, self.rank,
                                       self.world, self.collate, self.t.num_workers, self.device.type == "cuda")
        left_in_epoch, loader = len(self.batches) - s.batch_in_epoch * self.grad_accum, self.loader
        return [next(loader) for _ in range(min(self.grad_accum, left_in_epoch))]

    def compute_step(self) -> StepResult:
        """Forward and backward over the step's micro-batches, the gradients accumulated. A stop meanwhile abandons
        the step (single process): its gradients are dropped and the RNG goes back to where the step began, so the
        stop's checkpoint is the last complete step exactly, as if the stop had come between steps."""
        import torch

        batches = self.next_batches()
        lr = self.scheduler.get_last_lr()[0]
        rng = ckpt.rng_snapshot()
        try:
            with self.stop.interruptible(self.world == 1):
                loss_sum, tokens, samples = self.forward_backward_with_backoff(batches)
        except StepAbandoned:
            self.optimizer.zero_grad(set_to_none=True)
            ckpt.restore_rng_snapshot(rng)
            raise
        # one number per process, summed: loss, non-pad tokens, rows
        stats = torch.tensor([float(loss_sum), float(tokens), float(samples)], dtype=torch.float64, device=self.device)
        if self.world > 1:
            stats = self.accelerator.reduce(stats, reduction="sum")
        return StepResult(stats[0].item() / self.world, int(stats[1].item()), int(stats[2].item()), lr)

    def forward_backward_with_backoff(self, batches: list[dict]) -> tuple[float, int, int]:
        """forward_backward; on CUDA out of memory the micro-batch is halved and the step retried (same effective
        batch), down to micro-batch 1."""
        import torch

        out_of_memory = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)  # torch < 2.5: cuda's only
        step = self.state.step + 1
        while True:
            try:
                return forward_backward(self.model, batches, self.state.micro_batch, self.accelerator, self.faults,
                                        self.stop, step)
            except out_of_memory:
                pass
            self.optimizer.zero_grad(set_to_none=True)
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            micro = self.state.micro_batch
            if micro <= 1 or self.world > 1:
                why = "with micro-batch 1" if micro <= 1 else f"in a {self.world}-process run (micro-batch {micro})"
                raise OutOfMemory(f"CUDA out of memory at step {step} {why}",
                                  hint="Lower training.max_length or training.batch_size, enable "
                                       "training.gradient_checkpointing, use a LoRA/prompt method instead of full "
                                       "fine-tuning, or a GPU with more memory.", step=step)
            self.state.micro_batch = micro // 2
            self.emitter.warning(f"CUDA out of memory at step {step} with micro-batch {micro}: retrying with micro-batch "
                                 f"{micro // 2} and {math.ceil(self.batch_size / (micro // 2)) * self.grad_accum} "
                                 "accumulation steps (same effective batch)", code="oom_retry")

    def check_loss(self, r: StepResult) -> None:
        """NaN/inf or a diverging loss ends the run before its update is applied (the last checkpoint stays good)."""
        s, step = self.state, self.state.step + 1
        if not math.isfinite(r.loss):
            self.emitter.emit("progress", step=step, total_steps=self.total_steps, epoch=self.epoch(), loss=r.loss,
                              lr=r.lr, elapsed_s=self.elapsed())
            raise NonFiniteError("nan_loss", f"the loss became {r.loss} at step {step}; training stopped "
                                 f"(the last good checkpoint is kept)", step=step,
                                 hint="Lower training.learning_rate, keep training.max_grad_norm at 1.0, check the "
                                      "data for empty responses, or use precision fp32/bf16 instead of fp16.")
        s.first_loss = s.first_loss if s.first_loss is not None else r.loss
        if r.loss > divergence_limit(s.first_loss, len(self.tokenizer)):
            self.emitter.emit("progress", step=step, total_steps=self.total_steps, epoch=self.epoch(), loss=r.loss,
                              lr=r.lr, elapsed_s=self.elapsed())
            raise Diverged(f"the loss exploded to {r.loss:.4g} at step {step} (it started at "
                           f"{s.first_loss:.4g}); training diverged and stopped (the last good checkpoint is kept)",
                           hint=f"Lower training.learning_rate (it is {self.t.learning_rate:g}; the method's default is "
                                f"a safe start) and keep training.max_grad_norm at 1.0.", step=step)

    def apply_step(self, r: StepResult) -> None:
        """Clip, optimizer step, schedule; then the step counts."""
        grad_norm = self.accelerator.clip_grad_norm_(self.model.parameters(), self.t.max_grad_norm or float("inf"))
        r.grad_norm = float(grad_norm) if grad_norm is not None else None
        if r.grad_norm is not None and not math.isfinite(r.grad_norm) and self.precision != "fp16":
            raise NonFiniteError("nan_loss", f"the gradient norm became {r.grad_norm} at step {self.state.step + 1}; "
                                 f"training stopped before applying it (the last good checkpoint is kept)",
                                 step=self.state.step + 1,
                                 hint="Lower training.learning_rate or set training.max_grad_norm (e.g. 1.0).")
        self.optimizer.step()
        if not self.accelerator.optimizer_step_was_skipped:  # fp16 overflow: the scaler skipped the step
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

        s = self.state
        s.step += 1
        s.batch_in_epoch += 1
        if s.batch_in_epoch >= self.steps_per_epoch:
            s.epoch, s.batch_in_epoch, self.loader = s.epoch + 1, 0, None
        s.tokens_seen += r.tokens
        self.session_steps += 1
        self.interval.loss += r.loss
        self.interval.steps += 1
        self.interval.tokens += r.tokens
        self.interval.samples += r.samples

    def report(self, r: StepResult) -> None:
        """A `progress` event (and TensorBoard scalars) every log_every steps and at the last."""
        step = self.state.step
        if step % self.t.log_every and step != self.total_steps:
            return
        now, i = time.time(), self.interval
        dt = max(now - i.t0, 1e-9)
        self.state.last_train_loss = i.loss / i.steps
        progress = dict(step=step, total_steps=self.total_steps, epoch=self.epoch(), loss=self.state.last_train_loss,
                        lr=r.lr, grad_norm=r.grad_norm, tokens_per_s=i.tokens / dt, samples_per_s=i.samples / dt,
                        gpu_mem_bytes=gpu_memory(self.device), cpu_mem_bytes=cpu_memory(),
                        eta_s=(self.total_steps - step) * (now - self.session_t0) / self.session_steps,
                        elapsed_s=self.elapsed())
        self.emitter.emit("progress", **progress)
        if self.writer is not None:
            for key in ("loss", "lr", "grad_norm", "tokens_per_s", "samples_per_s"):
                if progress[key] is not None:
                    self.writer.add_scalar(f"train/{key}", progress[key], step)
        self.interval = Interval(t0=now)

    def eval_due(self) -> bool:
        step, every = self.state.step, self.t.eval_every
        return bool(self.data.eval) and bool(every) and step % every == 0 and step < self.total_steps

    def evaluate_and_decide(self) -> str:
        """An evaluation mid-run; "early_stopped" after early_stopping_patience evaluations without a new best."""
        s = self.state
        eval_loss = self.evaluate()
        if eval_loss is None:
            return "continue"
        self.last_eval_step = s.step
        self.emit_eval(eval_loss)
        s.evals_without_improvement = 0 if self.improved(eval_loss) else s.evals_without_improvement + 1
        patience = self.t.early_stopping_patience
        if patience and s.evals_without_improvement >= patience:
            log(f"early stopping: no eval improvement in {patience} evaluations (best {s.best_eval:.4f})")
            return "early_stopped"
        return "continue"

    # ---- pieces the loop and the end share

    def collate(self, rows):
        from .data import collate

        return collate(rows, self.tokenizer.pad_token_id)

    def elapsed(self) -> float:
        """Training time over every session of this run (resumes add up)."""
        return self.base_elapsed + time.time() - self.session_t0

    def epoch(self) -> float:
        return self.state.epoch + self.state.batch_in_epoch / self.steps_per_epoch

    def evaluate(self) -> float | None:
        """The held-out loss; None when a stop cut it short."""
        try:
            with self.stop.interruptible(self.world == 1):
                return evaluate_loss(self.model, self.data.eval, self.collate, self.batch_size, self.accelerator,
                                     self.stop if self.world == 1 else None)
        except StepAbandoned:
            return None

    def emit_eval(self, eval_loss: float) -> None:
        self.state.last_eval_loss = eval_loss
        perplexity = math.exp(eval_loss) if eval_loss < 700 else None
        self.emitter.emit("eval", step=self.state.step, eval_loss=eval_loss, perplexity=perplexity)
        if self.writer is not None:
            self.writer.add_scalar("eval/loss", eval_loss, self.state.step)

    def improved(self, eval_loss: float) -> bool:
        if self.state.best_eval is None or eval_loss < self.state.best_eval:
            self.state.best_eval = eval_loss
            return True
        return False

    def save(self) -> Path | None:
        """Checkpoint (main process writes; everyone waits so no rank runs ahead of a half-written state)."""
        path = None
        step = self.state.step
        weights = method_weights(self.accelerator, self.model, self.method_name)
        if self.is_main:
            path = ckpt.save_checkpoint(
                self.run_dir, step, weights=weights,
                # FSDP shards the optimizer state across processes; it is not gathered (docs/multi-gpu.md)
                optimizer_state={"state": {}, "param_groups": []} if self.fsdp else self.optimizer.state_dict(),
                scheduler_state=self.scheduler.state_dict(),
                scaler_state=self.accelerator.scaler.state_dict() if self.accelerator.scaler is not None else None,
                trainer_state={**asdict(self.state), "elapsed_s": self.elapsed(), "total_steps": self.total_steps,
                               "world_size": self.world, "method": self.method_name, "grad_accum": self.grad_accum,
                               "batch_size": self.batch_size},
                faults=self.faults)
            for old in ckpt.prune(self.run_dir, self.t.keep_checkpoints):
                log(f"removed old checkpoint {old.name}")
            self.emitter.emit("checkpoint", step=step, path=str(path))
        self.accelerator.wait_for_everyone()
        return path

    # ---- the end

    def finish(self, status: str, t_start: float) -> int:
        """Final eval (not after a stop: a stop must be quick), checkpoint, adapter, evaluation, export, `done`."""
        s, run_dir, step = self.state, self.run_dir, self.state.step
        s.elapsed_s = self.elapsed()
        if status != "stopped" and self.data.eval and self.last_eval_step != step:
            eval_loss = self.evaluate()
            if eval_loss is not None:
                self.emit_eval(eval_loss)
                self.improved(eval_loss)
        if step > 0:
            self.save()  # the final state too, so `resume` of a finished run knows it is finished
        adapter_dir = None
        finished_before = self.start_step >= self.total_steps and (run_dir / "adapter").is_dir()  # `resume` of a finished run
        if finished_before:
            adapter_dir = str(run_dir / "adapter")
        elif step > 0:
            full_state = self.accelerator.get_state_dict(self.model) if self.fsdp else None  # collective: all gather
            weights_dir = save_adapter(self.accelerator, self.model, self.config.method, run_dir, self.tokenizer,
                                       full_state) if self.is_main else None
            self.accelerator.wait_for_everyone()
            adapter_dir = str(weights_dir) if weights_dir else None
        if self.writer is not None:
            self.writer.close()
        if not self.is_main:
            self.accelerator.end_training()
            return EXIT_OK
        if status != "stopped" and adapter_dir and not finished_before:
            run_evaluation(self.unwrapped, self.method_name, self.tokenizer, self.data.eval_examples, self.base_weights,
                           step, self.accelerator, run_dir, self.fsdp, self.emitter)
        export_dir = None
        if status != "stopped" and self.config.export.onnx and adapter_dir:
            done_before = finished_before and (run_dir / "export" / "manifest.json").is_file()
            export_dir = str(run_dir / "export") if done_before else run_export(run_dir, self.emitter)
        self.emitter.emit("done", status=status, step=step, adapter_dir=adapter_dir, export_dir=export_dir,
                          metrics={"train_loss": s.last_train_loss, "eval_loss": s.last_eval_loss,
                                   "best_eval_loss": s.best_eval, "runtime_s": time.time() - t_start,
                                   "train_time_s": s.elapsed_s,
                                   "tokens_per_s": s.tokens_seen / s.elapsed_s if s.elapsed_s > 0 else None},
                          **({"stop_reason": self.stop.reason} if status == "stopped" else {}))
        self.accelerator.end_training()
        return EXIT_OK


# ---------------------------------------------------------------------------------------------------- pieces of the loop

def make_accelerator(t: TrainingSection, emitter: EventEmitter):
    """Accelerator on the requested device (auto: CUDA, then MPS, then CPU) with the resolved precision."""
    import torch
    from accelerate import Accelerator

    cuda, mps = torch.cuda.is_available(), bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    wanted = t.device
    if wanted == "cuda" and not cuda:
        raise ConfigError("training.device is 'cuda' but no CUDA device is available", field="/training/device",
                          hint="Install a CUDA build of torch (docs/python.md), or set training.device to auto or cpu.")
    if wanted == "mps" and not mps:
        raise ConfigError("training.device is 'mps' but Apple's MPS backend is not available", field="/training/device",
                          hint="Set training.device to auto or cpu.")
    device = wanted if wanted != "auto" else ("cuda" if cuda else "mps" if mps else "cpu")
    precision = t.precision
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if device == "cuda" else "fp32"
    if precision == "fp16" and device == "cpu":
        emitter.warning("fp16 autocast needs a GPU; training in fp32 on the CPU", code="precision_fallback")
        precision = "fp32"
    accelerator = Accelerator(cpu=device == "cpu", mixed_precision={"fp32": "no"}.get(precision, precision))
    return accelerator, precision


def make_epoch_batches(rows: list, global_batch: int, seed: int, group_by_length: bool):
    """epoch -> list of global micro-batches (row indices); the same for a given (seed, epoch) on every process."""
    import random

    from .data import length_grouped_batches

    lengths = [len(r["input_ids"]) for r in rows]

    def batches(epoch: int) -> list[list[int]]:
        if group_by_length:
            return [list(b) for b in length_grouped_batches(lengths, global_batch, seed, epoch)]
        order = list(range(len(rows)))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        return [order[i:i + global_batch] for i in range(0, len(order), global_batch)]

    return batches


def epoch_loader(rows, batches, start: int, rank: int, world: int, collate_fn, num_workers: int, pin: bool):
    """Iterator over this process's share of each global micro-batch from `start` on (DataLoader for workers)."""
    from torch.utils.data import DataLoader

    shards = []
    for batch in batches[start:]:
        if len(batch) < world:  # every process needs rows or DDP waits forever: repeat rows of a short last batch
            batch = (batch * world)[:world]
        shards.append(batch[rank::world])
    # its own generator: creating a DataLoader iterator draws a seed, and from the global RNG that draw would shift
    # the dropout masks of a resumed run against an uninterrupted one
    import torch

    generator = torch.Generator().manual_seed(len(batches) * 7919 + start)
    return iter(DataLoader(rows, batch_sampler=shards, collate_fn=collate_fn, num_workers=num_workers, pin_memory=pin,
                           generator=generator))


def split_batch(batch: dict, micro: int) -> list[dict]:
    """Chunks of `micro` rows, each trimmed to its longest row (right padding)."""
    n = batch["input_ids"].shape[0]
    chunks = []
    for i in range(0, n, micro):
        chunk = {k: v[i:i + micro] for k, v in batch.items()}
        width = int(chunk["attention_mask"].sum(dim=1).max())
        chunks.append({k: v[:, :max(width, 1)] for k, v in chunk.items()})
    return chunks


def label_count(chunk: dict) -> int:
    return int((chunk["labels"][:, 1:] != -100).sum())  # the model predicts token t+1 from t


def first_label_position(labels) -> int:
    """The first position whose next token is a label in any row (0 when there are none)."""
    has = (labels[:, 1:] != -100).any(dim=0).nonzero()
    return int(has[0]) if len(has) else 0


def response_loss_sum(model, chunk: dict, first: int):
    """Summed cross-entropy over the label tokens of `chunk` (already on the device), the logits computed from
    position `first` on only (`logits_to_keep`). The prompt's logits would be masked out anyway, and with the
    instruction template most of a row is prompt; the [tokens x vocabulary] lm_head and softmax are the largest
    cost of a small model's step and the largest tensor of a big one's (250,880 columns for bloom-560m).
    Counting from the end also holds for prompt-learning methods, which prepend virtual tokens.
    (scripts/bench/logits_ab.py compares it with the model's own loss over every position.)"""
    import torch.nn.functional as F

    labels = chunk["labels"]
    keep = labels.shape[1] - first
    out = model(input_ids=chunk["input_ids"], attention_mask=chunk["attention_mask"], logits_to_keep=keep)
    logits = out.logits[:, :-1]  # positions first..seq-2 predict labels first+1..seq-1
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels[:, first + 1:].reshape(-1),
                           ignore_index=-100, reduction="sum")


def forward_backward(model, batches: list[dict], micro: int, accelerator, faults: Faults, stop: StopRequest,
                     step: int):
    """Accumulate gradients over the step's micro-batches; the loss is the token-weighted mean of the step."""
    import torch

    chunks = [c for b in batches for c in split_batch(b, micro)]
    counts = [label_count(c) for c in chunks]
    total_labels = max(sum(counts), 1)
    loss_sum = torch.zeros((), device=accelerator.device)
    tokens = samples = 0
    for i, chunk in enumerate(chunks):
        stop.check()
        faults.micro_batch(chunk["input_ids"].shape[0])
        first = first_label_position(chunk["labels"])  # on the CPU copy: no device sync
        chunk = {k: v.to(accelerator.device, non_blocking=True) for k, v in chunk.items()}
        sync = i == len(chunks) - 1
        with contextlib.nullcontext() if sync else accelerator.no_sync(model):
            # a chunk whose responses were all truncated away has no labels: its sum is 0 with the graph kept
            loss = faults.loss(response_loss_sum(model, chunk, first) / total_labels, step)
            accelerator.backward(loss)
        loss_sum += loss.detach().float()
        tokens += int(chunk["attention_mask"].sum())
        samples += chunk["input_ids"].shape[0]
    return loss_sum.item(), tokens, samples


def evaluate_loss(model, rows: list, collate_fn, batch_size: int, accelerator, stop: StopRequest | None) -> float | None:
    """Token-weighted mean loss over the eval rows (sharded across processes); None when a stop cut it short."""
    import torch

    if not rows:
        return None
    world, rank = accelerator.num_processes, accelerator.process_index
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))[rank::world]  # little padding
    total = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(order), batch_size):
                if stop is not None and stop.requested:
                    return None
                batch = collate_fn([rows[j] for j in order[i:i + batch_size]])
                n = label_count(batch)
                if not n:
                    continue
                first = first_label_position(batch["labels"])
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                with accelerator.autocast():
                    loss_sum = response_loss_sum(model, batch, first)
                total += torch.tensor([loss_sum.item(), n], dtype=torch.float64, device=accelerator.device)
    finally:
        model.train()
    if world > 1:
        total = accelerator.reduce(total, reduction="sum")
    return total[0].item() / total[1].item() if total[1].item() else None


def synced_flag(flag: bool, accelerator) -> bool:
    if accelerator.num_processes == 1:
        return flag
    import torch

    t = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return accelerator.reduce(t, reduction="sum").item() > 0


def gpu_memory(device) -> int | None:
    import torch

    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    if device.type == "mps":
        return int(torch.mps.driver_allocated_memory())
    return None


def cpu_memory() -> int | None:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:  # noqa: BLE001 - memory is informative only
        return None


def method_weights(accelerator, model, method_name: str) -> dict:
    """The checkpoint's weights; collective under FSDP (every process must call it)."""
    from .methods import method_state_dict

    if is_fsdp(accelerator):
        full = accelerator.get_state_dict(model)  # gathered on the main process
        if method_name != "full":
            names = {n for n, p in accelerator.unwrap_model(model).named_parameters() if p.requires_grad}
            full = {k: v for k, v in full.items() if k in names}
        return full
    return method_state_dict(accelerator.unwrap_model(model), method_name)


def is_fsdp(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


def save_adapter(accelerator, model, method: MethodOptions, run_dir: Path, tokenizer, full_state: dict | None = None) -> Path:
    """methods.save_trained into adapter.tmp, then swap it in: a crash never leaves a half-written adapter/."""
    from .methods import save_trained

    final, tmp, old = run_dir / "adapter", run_dir / "adapter.tmp", run_dir / "adapter.old"
    for p in (tmp, old):
        if p.exists():
            shutil.rmtree(p)
    unwrapped = accelerator.unwrap_model(model)
    if full_state is None:
        save_trained(unwrapped, method, tmp, tokenizer)
    else:  # FSDP: the parameters are shards; save from the gathered state dict instead
        save_gathered(unwrapped, method, tmp, tokenizer, full_state)
    if final.exists():
        os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def save_gathered(model, method: MethodOptions, out: Path, tokenizer, state: dict) -> None:
    """methods.save_trained's formats, from a state dict gathered across FSDP processes."""
    from safetensors.torch import save_file

    from .methods import BITFIT_CONFIG, BITFIT_WEIGHTS, PEFT_METHODS

    name = method.name
    out.mkdir(parents=True, exist_ok=True)
    if name in PEFT_METHODS or name == "full":
        model.save_pretrained(str(out), state_dict=state, safe_serialization=True)
        if name == "full":
            tokenizer.save_pretrained(str(out))
    else:
        biases = {k: v.detach().cpu().contiguous() for k, v in state.items() if k.endswith("bias")}
        save_file(biases, str(out / BITFIT_WEIGHTS), metadata={"format": "pt", "method": "bitfit"})
        (out / BITFIT_CONFIG).write_text(json.dumps({"method": "bitfit", "num_tensors": len(biases),
                                                     "tensors": sorted(biases)}, indent=2) + "\n")


def run_evaluation(model, method: str, tokenizer, eval_examples: list, snapshot, step: int, accelerator, run_dir: Path,
                   fsdp: bool, emitter: EventEmitter) -> None:
    """The `evaluation` event: greedy answers to the held-out rows vs the base model's (evaluation.py). Under FSDP the
    parameters are shards, so the saved adapter is evaluated from disk. A failure is a warning: the run is saved."""
    from . import evaluation

    if not evaluation.pick_rows(eval_examples, 1):
        log("evaluation skipped: no held-out instruction rows to answer (data.eval_split 0, or a text corpus)")
        return
    fields: dict | None
    try:
        if fsdp:
            fields = evaluation.evaluate_run(run_dir)
            fields["trigger"] = "end_of_run"
        else:
            fields = evaluation.evaluate(model, method, tokenizer, eval_examples, snapshot=snapshot, step=step,
                                         autocast=accelerator.autocast)
    except Exception as e:  # noqa: BLE001 - the adapter is saved; a failed evaluation must not fail the run
        traceback.print_exc(file=sys.stderr)
        emitter.warning(f"evaluation failed: {type(e).__name__}: {e} (retry with `python -m bloom_peft evaluate "
                        f"--run-dir {run_dir}`)", code="evaluation_failed")
        return
    assert fields is not None  # pick_rows found a row above
    emitter.emit("evaluation", **fields)


def run_export(run_dir: Path, emitter: EventEmitter) -> str | None:
    """ONNX export for the completion engine; a failure is a warning (the trained adapter is already safe)."""
    try:
        from .export import export_run
    except ImportError as e:
        emitter.warning(f"ONNX export is not available in this installation ({e})", code="export_unavailable")
        return None
    try:
        return str(export_run(run_dir, emitter))
    except TrainerError as e:
        emitter.warning(f"ONNX export failed: {e.message} (the adapter is saved; retry with "
                        f"`python -m bloom_peft export --run-dir {run_dir}`)", code="export_failed")
    except Exception as e:  # noqa: BLE001
        traceback.print_exc(file=sys.stderr)
        emitter.warning(f"ONNX export failed: {type(e).__name__}: {e} (the adapter is saved; retry with "
                        f"`python -m bloom_peft export --run-dir {run_dir}`)", code="export_failed")
    return None


def prepare_run_dir(run_dir: Path, config_source: Path, emitter: EventEmitter) -> None:
    """A fresh `train`: move an earlier run's outputs to previous/<time>/ (never delete), then copy the config in."""
    run_dir.mkdir(parents=True, exist_ok=True)
    target = run_dir / "config.json"
    old = [run_dir / name for name in RUN_OUTPUTS if (run_dir / name).exists()]
    if old:
        dest = run_dir / "previous" / time.strftime("%Y%m%d-%H%M%S")
        n = 1
        while dest.exists():
            dest, n = dest.with_name(f"{dest.name.split('.')[0]}.{n}"), n + 1
        dest.mkdir(parents=True)
        for p in old:
            os.rename(p, dest / p.name)
        if target.exists() and config_source.resolve() != target.resolve():
            shutil.copy2(target, dest / "config.json")
        emitter.warning(f"the run directory already held a run; moved its {', '.join(p.name for p in old)} to {dest}",
                        code="previous_run_archived")
    if config_source.resolve() != target.resolve():
        tmp = run_dir / ".config.json.tmp"
        shutil.copyfile(config_source, tmp)
        os.replace(tmp, target)


def open_tensorboard(run_dir: Path, start_step: int, emitter: EventEmitter):
    try:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events a killed run logged after its last checkpoint, so resumed curves do not overlap
        return SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_step or None)
    except Exception as e:  # noqa: BLE001 - TensorBoard logs are a convenience
        emitter.warning(f"TensorBoard logging is off: {e}", code="tensorboard_unavailable")
        return None

"""`train` and `resume`: the training loop, streamed as protocol events (docs/trainer.md).

Reads top to bottom: config -> (re-launch under torchrun when num_gpus > 1) -> accelerator -> model + method ->
data -> run directory -> optimizer + schedule -> resume state -> loop (forward/backward with OOM back-off,
NaN check, clip, step, log, eval, checkpoint, stop) -> final checkpoint, adapter, ONNX export -> `done`.

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
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from . import checkpoint as ckpt
from .config import Config, MethodOptions, TrainingSection, load_config
from .errors import ConfigError, DataError, TrainerError
from .faults import NO_FAULTS, Faults
from .log import log, routed_to
from .protocol import EventEmitter, claim_stdout, reroute_dead_stderr
from .runlock import RunLock

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


# ---------------------------------------------------------------------------------------------------- stop requests

class StopRequest:
    """Set by a `{"type":"stop"}` line or EOF on stdin, SIGTERM or SIGINT; the loop polls it between steps.
    A second signal ends the process at once (the host escalates to killing the tree anyway)."""

    def __init__(self):
        self.event = threading.Event()
        self.reason: str | None = None
        self.on_force = lambda signum: os._exit(128 + signum)
        self.log_path: Path | None = None  # where stderr goes if the parent reading it is gone

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def request(self, reason: str) -> None:
        if not self.event.is_set():
            # the flag first: when the parent died, the print below is the first write to a dead pipe
            self.reason = reason
            self.event.set()
            message = f"[bloom_peft] stop requested ({reason}); finishing the current step"
            try:
                print(message, file=sys.stderr, flush=True)
            except (BrokenPipeError, OSError, ValueError):
                reroute_dead_stderr(self.log_path)
                with contextlib.suppress(Exception):
                    print(message + " (the supervisor is gone; output continues here)", file=sys.stderr, flush=True)

    def install(self, watch_stdin: bool = True) -> None:
        def handler(signum, _frame):
            if self.event.is_set():
                self.on_force(signum)
            else:
                self.request(signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, handler)
        if os.environ.get("BLOOM_PEFT_LAUNCHED") == "1":
            # a worker of launch.py: a terminal Ctrl-C reaches the whole group, and torchrun then signals us once
            # more, which would count as "second signal: exit now"; the supervisor's pipe close is the stop
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        else:
            signal.signal(signal.SIGINT, handler)
        if watch_stdin and os.environ.get("BLOOM_PEFT_IGNORE_STDIN") != "1" and sys.stdin is not None:
            threading.Thread(target=self._read_stdin, name="stdin-control", daemon=True).start()

    def _read_stdin(self) -> None:
        # os.read on the fd, not sys.stdin: a daemon thread blocked inside a BufferedReader holds its lock, and
        # the interpreter aborts at exit when it cannot take that lock ("could not acquire lock ... daemon threads")
        try:
            fd = sys.stdin.fileno()
        except (OSError, ValueError, AttributeError):
            return
        pending = b""
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                pending += chunk
                while b"\n" in pending:
                    raw, pending = pending.split(b"\n", 1)
                    self._control_line(raw)
                pending = pending[-65536:]  # a control line is short; never let junk grow without bound
        except OSError:
            pass
        if pending.strip():
            self._control_line(pending)
        self.request("stdin closed")  # the parent went away (or closed the pipe to ask for a stop)

    def _control_line(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            message = None
        if isinstance(message, dict) and message.get("type") == "stop":
            self.request("stop message")
        elif raw.strip():
            log(f"ignoring control line {raw[:200]!r}", "warning")


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
    resume = args.command == "resume"
    run_dir = Path(args.run_dir).resolve()
    config, config_source = read_config(args)
    t = config.training
    method_name = config.method.name

    from . import launch

    if launch.needs_launch(config):
        return launch.launch(args, config, run_dir, emitter, stop)

    import torch
    from accelerate.utils import set_seed

    if os.environ.get("TORCH_NUM_THREADS"):
        torch.set_num_threads(max(1, int(os.environ["TORCH_NUM_THREADS"])))

    from .data import collate, load_examples
    from .methods import apply_method, count_parameters
    from .model_loading import load_base_model

    # ---- device, precision, processes
    accelerator, precision = make_accelerator(t, emitter)
    rank, world = accelerator.process_index, accelerator.num_processes
    is_main = accelerator.is_main_process
    device = accelerator.device
    if world != t.num_gpus and launch.in_distributed_env():
        emitter.warning(f"training.num_gpus is {t.num_gpus} but the launcher started {world} processes; using {world}",
                        code="world_size_mismatch")

    # ---- model, method, data (every user error surfaces here, before the run directory is touched)
    emitter.log(f"loading {config.model.name_or_path} on {device} ({precision}, {world} process(es))")
    set_seed(t.seed)
    model, tokenizer = load_base_model(config.model, dtype=torch.float32)
    from .model_loading import fuse_bloom_gelu

    fuse_bloom_gelu(model)  # BLOOM's Python GELU as one kernel, the same formula (docs/benchmarks.md)
    if t.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    model = apply_method(model, config.method, tokenizer)
    from .evaluation import base_snapshot

    # BitFit / full change the base weights in place: keep what the end-of-run evaluation compares against
    base_weights = base_snapshot(model, method_name) if rank == 0 else None
    trainable_params, total_params = count_parameters(model)
    data_warnings: list[str] = []
    train_examples, eval_examples = load_examples(config, tokenizer, warnings=data_warnings, base_dir=config_source.parent)
    # the loop needs ids and labels only; the eval rows' texts stay for the end-of-run evaluation (evaluation.py)
    train_rows, eval_rows = ([{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows]
                             for rows in (train_examples, eval_examples))
    del train_examples
    for message in data_warnings:
        emitter.warning(message, code="data")
    from .config import learning_rate_warnings

    for message in learning_rate_warnings(config):
        emitter.warning(message, code="learning_rate")
    if not train_rows:
        raise DataError("the training set is empty", file=config.data.train_file if config.data else None, field="/data/train_file",
                        hint="Point data.train_file at a file with at least one row (or lower data.eval_split).")
    pad_id = tokenizer.pad_token_id

    # ---- the run directory: resume picks its newest complete checkpoint; a fresh run archives an older one
    state = None
    if resume:
        if is_main:
            for p in ckpt.clean_stale(run_dir):
                emitter.log(f"removed an incomplete checkpoint write: {p.name}", level="warning")
        accelerator.wait_for_everyone()
        latest = ckpt.latest_complete(run_dir)
        if latest is None:
            emitter.warning("no complete checkpoint in the run directory; starting from step 0", code="no_checkpoint")
        else:
            state = ckpt.load_checkpoint(latest)
            saved_world = state["trainer_state"].get("world_size", 1)
            if saved_world != world:
                raise ConfigError(f"the checkpoint {latest.name} was written by {saved_world} processes, this run has {world}",
                                  field="/training/num_gpus", hint=f"Resume with training.num_gpus = {saved_world}.")
    elif is_main:
        prepare_run_dir(run_dir, config_source, emitter)
    accelerator.wait_for_everyone()

    # ---- batches: a deterministic function of (seed, epoch); one global micro-batch = batch_size rows per process
    batch_size, grad_accum = t.batch_size, t.grad_accum
    epoch_batches = make_epoch_batches(train_rows, batch_size * world, t.seed, t.group_by_length)
    steps_per_epoch = math.ceil(len(epoch_batches(0)) / grad_accum)
    total_steps = t.max_steps or max(1, math.ceil(t.epochs * steps_per_epoch))

    # ---- optimizer (AdamW, no decay on biases/norms, fused on CUDA) and lr schedule with warmup
    from transformers import get_scheduler

    fsdp = is_fsdp(accelerator)
    if not fsdp:  # FSDP shards from the CPU copy in prepare(); everything else trains on the device
        model = model.to(device)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in trainable if p.ndim >= 2], "weight_decay": t.weight_decay},
              {"params": [p for n, p in trainable if p.ndim < 2], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    raw_optimizer = torch.optim.AdamW(groups, lr=t.learning_rate, betas=(0.9, 0.999),
                                      **({"fused": True} if device.type == "cuda" else {}))
    scheduler = get_scheduler(t.scheduler, optimizer=raw_optimizer,
                              num_warmup_steps=math.ceil(t.warmup_ratio * total_steps), num_training_steps=total_steps)
    model, optimizer = accelerator.prepare(model, raw_optimizer)
    unwrapped = accelerator.unwrap_model(model)

    # ---- loop state, restored from the checkpoint when resuming
    loop: dict[str, Any] = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "micro_batch": batch_size, "best_eval": None,
            "evals_without_improvement": 0, "elapsed_s": 0.0, "last_eval_loss": None, "last_train_loss": None,
            "tokens_seen": 0, "first_loss": None}
    if state is not None:
        from .methods import load_method_state_dict

        load_method_state_dict(unwrapped, method_name, state["weights"])
        if state["optimizer"]["param_groups"]:
            optimizer.load_state_dict(state["optimizer"])
        else:
            emitter.warning("the checkpoint holds no optimizer state (FSDP run): AdamW's moments restart",
                            code="optimizer_state_missing")
        scheduler.load_state_dict(state["scheduler"])
        if state["scaler"] is not None and accelerator.scaler is not None:
            accelerator.scaler.load_state_dict(state["scaler"])
        loop.update({k: v for k, v in state["trainer_state"].items() if k in loop})
        if rank == 0:
            ckpt.restore_rng(*state["rng"])  # the same dropout masks as an uninterrupted run
        else:
            set_seed(t.seed + 1000 * rank + loop["step"])
        del state
    elif rank > 0:
        set_seed(t.seed + 1000 * rank)  # different dropout per process (the model init above is shared)
    start_step = loop["step"]
    base_elapsed, session_t0 = loop["elapsed_s"], time.time()

    def elapsed() -> float:
        """Training time over every session of this run (resumes add up)."""
        return base_elapsed + time.time() - session_t0

    writer = open_tensorboard(run_dir, start_step, emitter) if is_main else None
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    emitter.emit("started", run_dir=str(run_dir), config=config.as_dict(), device=str(device),
                 **({"device_name": device_name} if device_name else {}), precision=precision, world_size=world,
                 trainable_params=int(trainable_params), total_params=int(total_params), total_steps=total_steps,
                 resumed_from_step=start_step, train_rows=len(train_rows), eval_rows=len(eval_rows),
                 steps_per_epoch=steps_per_epoch, effective_batch_size=batch_size * grad_accum * world)

    def collate_rows(rows):
        return collate(rows, pad_id)

    def evaluate() -> float | None:
        return evaluate_loss(model, eval_rows, collate_rows, batch_size, accelerator,
                             stop if world == 1 else None)

    def save(step_now: int) -> Path | None:
        """Checkpoint (main process writes; everyone waits so no rank runs ahead of a half-written state)."""
        path = None
        weights = method_weights(accelerator, model, method_name)
        if is_main:
            path = ckpt.save_checkpoint(
                run_dir, step_now, weights=weights,
                # FSDP shards the optimizer state across processes; it is not gathered (docs/multi-gpu.md)
                optimizer_state={"state": {}, "param_groups": []} if fsdp else optimizer.state_dict(),
                scheduler_state=scheduler.state_dict(),
                scaler_state=accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
                trainer_state={**loop, "step": step_now, "elapsed_s": elapsed(), "total_steps": total_steps, "world_size": world,
                               "method": method_name, "grad_accum": grad_accum, "batch_size": batch_size},
                faults=faults)
            for old in ckpt.prune(run_dir, t.keep_checkpoints):
                log(f"removed old checkpoint {old.name}")
            emitter.emit("checkpoint", step=step_now, path=str(path))
        accelerator.wait_for_everyone()
        return path

    # ---- the loop
    OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)  # torch < 2.5: cuda's only
    model.train()
    status = "completed"
    session_steps = 0
    interval = {"loss": 0.0, "steps": 0, "tokens": 0, "samples": 0, "t0": time.time()}
    loader_iter = None
    step = loop["step"]
    last_eval_step = step
    while step < total_steps:
        # a stop asked for between steps: every process must agree, or DDP would hang waiting for the others
        if synced_flag(stop.requested, accelerator):
            status = "stopped"
            break
        if loader_iter is None:
            batches = epoch_batches(loop["epoch"])
            loader_iter = epoch_loader(train_rows, batches, loop["batch_in_epoch"] * grad_accum,
                                       rank, world, collate_rows, t.num_workers, device.type == "cuda")
        left_in_epoch = len(batches) - loop["batch_in_epoch"] * grad_accum  # the epoch's last step may be short
        step_batches = [next(loader_iter) for _ in range(min(grad_accum, left_in_epoch))]

        # forward + backward over the micro-batches; on CUDA OOM halve the micro-batch (the effective batch stays)
        lr = scheduler.get_last_lr()[0]
        while True:
            oom = False
            try:
                loss_sum, tokens, samples = forward_backward(model, step_batches, loop["micro_batch"], accelerator,
                                                             faults, step + 1)
            except OUT_OF_MEMORY:
                oom = True
            if not oom:
                break
            optimizer.zero_grad(set_to_none=True)
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            micro = loop["micro_batch"]
            if micro <= 1 or world > 1:
                why = "with micro-batch 1" if micro <= 1 else f"in a {world}-process run (micro-batch {micro})"
                raise OutOfMemory(f"CUDA out of memory at step {step + 1} {why}",
                                  hint="Lower training.max_length or training.batch_size, enable "
                                       "training.gradient_checkpointing, use a LoRA/prompt method instead of full "
                                       "fine-tuning, or a GPU with more memory.", step=step + 1)
            loop["micro_batch"] = micro // 2
            emitter.warning(f"CUDA out of memory at step {step + 1} with micro-batch {micro}: retrying with micro-batch "
                            f"{micro // 2} and {math.ceil(batch_size / (micro // 2)) * grad_accum} accumulation steps "
                            "(same effective batch)", code="oom_retry")

        # one number per process, summed: loss, non-pad tokens, rows
        stats = torch.tensor([float(loss_sum), float(tokens), float(samples)], dtype=torch.float64, device=device)
        if world > 1:
            stats = accelerator.reduce(stats, reduction="sum")
        step_loss, step_tokens, step_samples = stats[0].item() / world, int(stats[1].item()), int(stats[2].item())
        if not math.isfinite(step_loss):
            emitter.emit("progress", step=step + 1, total_steps=total_steps, epoch=epoch_float(loop, steps_per_epoch),
                         loss=step_loss, lr=lr, elapsed_s=elapsed())
            raise NonFiniteError("nan_loss", f"the loss became {step_loss} at step {step + 1}; training stopped "
                                 f"(the last good checkpoint is kept)", step=step + 1,
                                 hint="Lower training.learning_rate, keep training.max_grad_norm at 1.0, check the "
                                      "data for empty responses, or use precision fp32/bf16 instead of fp16.")

        loop["first_loss"] = loop["first_loss"] if loop["first_loss"] is not None else step_loss
        limit = divergence_limit(loop["first_loss"], len(tokenizer))
        if step_loss > limit:
            emitter.emit("progress", step=step + 1, total_steps=total_steps, epoch=epoch_float(loop, steps_per_epoch),
                         loss=step_loss, lr=lr, elapsed_s=elapsed())
            raise Diverged(f"the loss exploded to {step_loss:.4g} at step {step + 1} (it started at "
                           f"{loop['first_loss']:.4g}); training diverged and stopped (the last good checkpoint is kept)",
                           hint=f"Lower training.learning_rate (it is {t.learning_rate:g}; the method's default is "
                                f"a safe start) and keep training.max_grad_norm at 1.0.", step=step + 1)

        # clip, step, schedule
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), t.max_grad_norm or float("inf"))
        grad_norm = float(grad_norm) if grad_norm is not None else None
        if grad_norm is not None and not math.isfinite(grad_norm) and precision != "fp16":
            raise NonFiniteError("nan_loss", f"the gradient norm became {grad_norm} at step {step + 1}; training "
                                 f"stopped before applying it (the last good checkpoint is kept)", step=step + 1,
                                 hint="Lower training.learning_rate or set training.max_grad_norm (e.g. 1.0).")
        optimizer.step()
        if not accelerator.optimizer_step_was_skipped:  # fp16 overflow: the scaler skipped the step
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        step += 1
        session_steps += 1
        loop["step"] = step
        loop["batch_in_epoch"] += 1
        if loop["batch_in_epoch"] >= steps_per_epoch:
            loop["epoch"], loop["batch_in_epoch"], loader_iter = loop["epoch"] + 1, 0, None
        loop["tokens_seen"] += step_tokens
        interval["loss"] += step_loss
        interval["steps"] += 1
        interval["tokens"] += step_tokens
        interval["samples"] += step_samples

        # log
        if step % t.log_every == 0 or step == total_steps:
            now = time.time()
            dt = max(now - interval["t0"], 1e-9)
            session_elapsed = now - session_t0
            loop["last_train_loss"] = interval["loss"] / interval["steps"]
            progress = dict(step=step, total_steps=total_steps, epoch=epoch_float(loop, steps_per_epoch),
                            loss=loop["last_train_loss"], lr=lr, grad_norm=grad_norm,
                            tokens_per_s=interval["tokens"] / dt, samples_per_s=interval["samples"] / dt,
                            gpu_mem_bytes=gpu_memory(device), cpu_mem_bytes=cpu_memory(),
                            eta_s=(total_steps - step) * session_elapsed / session_steps,
                            elapsed_s=elapsed())
            emitter.emit("progress", **progress)
            if writer is not None:
                for key in ("loss", "lr", "grad_norm", "tokens_per_s", "samples_per_s"):
                    if progress[key] is not None:
                        writer.add_scalar(f"train/{key}", progress[key], step)
            interval = {"loss": 0.0, "steps": 0, "tokens": 0, "samples": 0, "t0": now}

        # eval, early stopping
        if eval_rows and t.eval_every and step % t.eval_every == 0 and step < total_steps:
            eval_loss = evaluate()
            if eval_loss is not None:
                last_eval_step = step
                emit_eval(emitter, writer, step, eval_loss, loop)
                if improved(loop, eval_loss):
                    loop["evals_without_improvement"] = 0
                else:
                    loop["evals_without_improvement"] += 1
                patience = t.early_stopping_patience
                if patience and loop["evals_without_improvement"] >= patience:
                    emitter.log(f"early stopping: no eval improvement in {patience} evaluations (best "
                                f"{loop['best_eval']:.4f})")
                    status = "early_stopped"
                    break

        # checkpoint
        if t.save_every and step % t.save_every == 0 and step < total_steps:
            save(step)

    # ---- the end: final eval, checkpoint, adapter, export, done
    loop["elapsed_s"] = elapsed()
    if status != "stopped" and eval_rows and last_eval_step != step:
        eval_loss = evaluate()
        if eval_loss is not None:
            emit_eval(emitter, writer, step, eval_loss, loop)
            improved(loop, eval_loss)
    if step > 0:
        save(step)  # the final state too, so `resume` of a finished run knows it is finished
    adapter_dir = None
    finished_before = start_step >= total_steps and (run_dir / "adapter").is_dir()  # `resume` of a finished run
    if finished_before:
        adapter_dir = str(run_dir / "adapter")
    elif step > 0:
        full_state = accelerator.get_state_dict(model) if fsdp else None  # collective: every process gathers
        weights_dir = save_adapter(accelerator, model, config.method, run_dir, tokenizer, full_state) if is_main else None
        accelerator.wait_for_everyone()
        adapter_dir = str(weights_dir) if weights_dir else None
    if writer is not None:
        writer.close()
    if not is_main:
        accelerator.end_training()
        return EXIT_OK
    if status != "stopped" and adapter_dir and not finished_before:
        run_evaluation(unwrapped, method_name, tokenizer, eval_examples, base_weights, step, accelerator, run_dir,
                       fsdp, emitter)
    export_dir = None
    if status != "stopped" and config.export.onnx and adapter_dir:
        done_before = finished_before and (run_dir / "export" / "manifest.json").is_file()
        export_dir = str(run_dir / "export") if done_before else run_export(run_dir, emitter)
    emitter.emit("done", status=status, step=step, adapter_dir=adapter_dir, export_dir=export_dir,
                 metrics={"train_loss": loop["last_train_loss"], "eval_loss": loop["last_eval_loss"],
                          "best_eval_loss": loop["best_eval"], "runtime_s": time.time() - t_start,
                          "train_time_s": loop["elapsed_s"],
                          "tokens_per_s": loop["tokens_seen"] / loop["elapsed_s"] if loop["elapsed_s"] > 0 else None},
                 **({"stop_reason": stop.reason} if status == "stopped" else {}))
    accelerator.end_training()
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


def forward_backward(model, batches: list[dict], micro: int, accelerator, faults: Faults, step: int):
    """Accumulate gradients over the step's micro-batches; the loss is the token-weighted mean of the step."""
    import torch

    faults.step_compute(step)
    chunks = [c for b in batches for c in split_batch(b, micro)]
    counts = [label_count(c) for c in chunks]
    total_labels = max(sum(counts), 1)
    loss_sum = torch.zeros((), device=accelerator.device)
    tokens = samples = 0
    for i, chunk in enumerate(chunks):
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


def emit_eval(emitter: EventEmitter, writer, step: int, eval_loss: float, loop: dict) -> None:
    loop["last_eval_loss"] = eval_loss
    perplexity = math.exp(eval_loss) if eval_loss < 700 else None
    emitter.emit("eval", step=step, eval_loss=eval_loss, perplexity=perplexity)
    if writer is not None:
        writer.add_scalar("eval/loss", eval_loss, step)


def improved(loop: dict, eval_loss: float) -> bool:
    if loop["best_eval"] is None or eval_loss < loop["best_eval"]:
        loop["best_eval"] = eval_loss
        return True
    return False


def synced_flag(flag: bool, accelerator) -> bool:
    if accelerator.num_processes == 1:
        return flag
    import torch

    t = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return accelerator.reduce(t, reduction="sum").item() > 0


def epoch_float(loop: dict, steps_per_epoch: int) -> float:
    return loop["epoch"] + loop["batch_in_epoch"] / steps_per_epoch


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
        emitter.log("evaluation skipped: no held-out instruction rows to answer (data.eval_split 0, or a text corpus)")
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

"""Atomic, pickle-free training checkpoints: `<run>/checkpoints/step-N/`.

A checkpoint is written into `checkpoints/.tmp-step-N-<pid>/`, every file fsynced, the COMPLETE marker (a JSON list
of the files and their sizes) written last, then the folder is renamed to `step-N` and the parent fsynced. So a
`step-N` folder either holds a whole checkpoint or, if something older or foreign left it there, has no valid
marker and is skipped. Tensors go to safetensors; everything else to JSON; nothing is unpickled on resume.

Files: trainable.safetensors (methods.method_state_dict: trainable weights, every weight for full FT),
optimizer.safetensors + optimizer.json (optimizer state tensors / param groups and scalars), scheduler.json,
scaler.json (fp16 only), rng.safetensors + rng.json (torch/cuda generator states; python and numpy states),
trainer_state.json (step, epoch, position in the epoch, micro-batch after OOM halving, eval history, ...).

`save_checkpoint(..., faults=)` calls the fault seam after each file (bloom_peft.faults: tests slow the write down to
SIGKILL the trainer mid-checkpoint, or fill the disk).
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import time
from pathlib import Path
from typing import Any, cast

from .faults import NO_FAULTS, Faults

CHECKPOINTS_DIR = "checkpoints"
MARKER = "COMPLETE"
TMP_PREFIX = ".tmp-"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def checkpoints_dir(run_dir) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR


# ---------------------------------------------------------------------------------------------------- writing

def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # Windows cannot open folders; rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, allow_nan=True) + "\n").encode("utf-8")


def _tensor_bytes(tensors: dict, metadata: dict | None = None) -> bytes:
    from safetensors.torch import save

    # safetensors refuses shared or strided storage: give it contiguous CPU copies
    data = {k: t.detach().to("cpu").contiguous().clone() for k, t in tensors.items()}
    return save(data, metadata={k: str(v) for k, v in (metadata or {}).items()})


def _split_optimizer_state(state_dict: dict) -> tuple[dict, dict]:
    """optimizer.state_dict() -> (tensors, JSON): tensors keyed 'state.<param index>.<name>'."""
    import torch

    tensors, scalars = {}, {}
    for idx, per_param in state_dict["state"].items():
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{name}"] = value
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _join_optimizer_state(tensors: dict, meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for key, value in meta.get("scalars", {}).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def capture_rng() -> tuple[dict, dict]:
    """(tensors, JSON) of every random generator a training step touches."""
    import numpy as np
    import torch

    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    np_state = cast(tuple, np.random.get_state())  # legacy=True (the default) gives the tuple form
    meta = {
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    return tensors, meta


def rng_snapshot() -> tuple:
    """The state of the generators a step's forward/backward draws from (torch's: dropout), taken before each step so
    an abandoned one can be undone. Python's and NumPy's are drawn from only between steps (data), so an abandoned step
    leaves them as they were; copying them too cost ~60 us a step, 95% of the snapshot (docs/benchmarks.md)."""
    import torch

    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    return torch.get_rng_state(), cuda


def restore_rng_snapshot(snapshot: tuple) -> None:
    import torch

    cpu, cuda = snapshot
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


def restore_rng(tensors: dict, meta: dict) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda.")), key=lambda k: int(k[5:]))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def save_checkpoint(run_dir, step: int, *, weights: dict, optimizer_state: dict, scheduler_state: dict | None,
                    scaler_state: dict | None, trainer_state: dict, faults: Faults = NO_FAULTS) -> Path:
    """Write checkpoints/step-<step>/ atomically and return its path (an existing complete one is kept as is)."""
    root = checkpoints_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    if is_complete(final):
        return final  # e.g. a stop right after resuming: this exact state is already on disk
    tmp = root / f"{TMP_PREFIX}step-{step}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()

    def write(name: str, data: bytes) -> None:
        _write_bytes(tmp / name, data)
        faults.checkpoint_file_written(tmp / name)

    write("trainable.safetensors", _tensor_bytes(weights, {"step": step}))
    opt_tensors, opt_meta = _split_optimizer_state(optimizer_state)
    write("optimizer.safetensors", _tensor_bytes(opt_tensors))
    write("optimizer.json", _json_bytes(opt_meta))
    write("scheduler.json", _json_bytes(scheduler_state))
    if scaler_state is not None:
        write("scaler.json", _json_bytes(scaler_state))
    rng_tensors, rng_meta = capture_rng()
    write("rng.safetensors", _tensor_bytes(rng_tensors))
    write("rng.json", _json_bytes(rng_meta))
    write("trainer_state.json", _json_bytes({**trainer_state, "step": step}))
    files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}
    _write_bytes(tmp / MARKER, _json_bytes({"step": step, "files": files, "time": time.time()}))  # last: now whole
    _fsync_dir(tmp)

    if final.exists():  # a step-N without a valid marker: leftover of something else, never a good checkpoint
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(root)
    return final


# ---------------------------------------------------------------------------------------------------- reading

def is_complete(path: Path) -> bool:
    """The marker exists, parses, and every file it lists is there with the recorded size."""
    marker = Path(path) / MARKER
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
        return all((Path(path) / name).stat().st_size == size for name, size in info["files"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def list_checkpoints(run_dir) -> list[tuple[int, Path, bool]]:
    """(step, path, complete) of every step-N folder, oldest first."""
    root = checkpoints_dir(run_dir)
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p, is_complete(p)))
    return sorted(out, key=lambda t: t[0])


def latest_complete(run_dir) -> Path | None:
    complete = [p for _, p, ok in list_checkpoints(run_dir) if ok]
    return complete[-1] if complete else None


def clean_stale(run_dir) -> list[Path]:
    """Remove temp folders of interrupted writes and step-N folders without a valid marker; returns what went."""
    root = checkpoints_dir(run_dir)
    removed = []
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(TMP_PREFIX) or (_STEP_DIR.match(p.name) and not is_complete(p)):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed


def prune(run_dir, keep: int) -> list[Path]:
    """Keep the newest `keep` complete checkpoints (at least the newest one); returns what was deleted."""
    complete = [p for _, p, ok in list_checkpoints(run_dir) if ok]
    doomed = complete[:-max(1, keep)]
    for p in doomed:
        shutil.rmtree(p, ignore_errors=True)
    return doomed


def load_checkpoint(path) -> dict:
    """Everything a checkpoint holds, as tensors and plain values (safetensors + JSON; no unpickling)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not is_complete(path):
        raise ValueError(f"{path} is not a complete checkpoint")

    def js(name: str):
        f = path / name
        return json.loads(f.read_text(encoding="utf-8")) if f.exists() else None

    return {
        "path": path,
        "weights": load_file(str(path / "trainable.safetensors")),
        "optimizer": _join_optimizer_state(load_file(str(path / "optimizer.safetensors")), js("optimizer.json")),
        "scheduler": js("scheduler.json"),
        "scaler": js("scaler.json"),
        "rng": (load_file(str(path / "rng.safetensors")), js("rng.json")),
        "trainer_state": js("trainer_state.json"),
    }

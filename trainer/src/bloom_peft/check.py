"""`check`: environment report as one JSON line (python, platform, package versions, CUDA/MPS, problems).

Uses only the standard library until it tries torch, so it answers even when torch is missing or broken:
that is exactly when the host needs it. Exit code 0 whenever a report was written; `ok` is false when a
problem of level "error" means training cannot run.

`check --config FILE` adds what that config would run into, found without loading the model or reading the data:
the schema and the method's rules, a learning rate that will likely diverge (as the preview and the start of
training say it), train/eval files and a local model folder that are not there, a device or GPU count this machine
does not have, fp16 on the CPU. Each such problem names the file and the field.
"""
from __future__ import annotations

import contextlib
import json
import platform
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .paths import PROJECT_ROOT

PACKAGES = ("torch", "transformers", "peft", "accelerate", "datasets", "safetensors", "tokenizers", "onnx",
            "onnxruntime", "jsonschema", "numpy")
REQUIRED = ("torch", "transformers", "peft", "accelerate", "safetensors", "tokenizers", "jsonschema", "numpy")
REQUIREMENTS = PROJECT_ROOT / "trainer" / "requirements.txt"
SETUP_HINT = "Run 'Bloom PEFT: Set Up Training Environment' from the Command Palette (it installs the trainer's pinned packages)."


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _pins() -> dict[str, str]:
    try:
        lines = REQUIREMENTS.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    pins = {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;#]+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def _base(version: str) -> str:
    return version.split("+", 1)[0]  # 2.13.0+cu124 is torch 2.13.0 built for CUDA 12.4


def _torch_report(problems: list) -> tuple[dict, dict, str | None]:
    cuda: dict[str, Any] = {"available": False, "version": None, "devices": []}
    mps = {"available": False}
    try:
        import torch
    except BaseException as e:  # ImportError, OSError from a missing CUDA library, even SystemExit
        if _version("torch") is None:
            problems.append({"code": "torch_missing", "level": "error", "message": "PyTorch is not installed",
                             "hint": SETUP_HINT})
        else:
            problems.append({"code": "torch_broken", "level": "error",
                             "message": f"PyTorch is installed but fails to import: {type(e).__name__}: {e}",
                             "hint": "Reinstall torch (a CUDA build needs a matching NVIDIA driver). " + SETUP_HINT})
        return cuda, mps, None
    try:
        cuda["version"] = torch.version.cuda
        if torch.cuda.is_available():
            cuda["available"] = True
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                cuda["devices"].append({"index": i, "name": p.name, "memory_bytes": int(p.total_memory),
                                        "capability": f"{p.major}.{p.minor}"})
        mps["available"] = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    except Exception as e:
        problems.append({"code": "cuda_error", "level": "warning", "message": f"querying the GPU failed: {e}",
                         "hint": "Check the NVIDIA driver (nvidia-smi)."})
    device = "cuda" if cuda["available"] else "mps" if mps["available"] else "cpu"
    return cuda, mps, device


def config_problems(path: str, cuda_devices: int, mps: bool) -> list[dict]:
    """What the config in `path` would run into on this machine, without loading the model or the data."""
    try:
        from .config import learning_rate_warnings, load_config
        from .data import _resolve
        from .errors import TrainerError
        from .model_loading import _source
    except ImportError as e:
        return [{"code": "config_unchecked", "level": "warning", "message": f"{path}: not checked ({e})",
                 "hint": SETUP_HINT, "file": path}]

    def problem(code: str, level: str, message: str, hint: str | None, field: str | None) -> dict:
        found = {"code": code, "level": level, "message": message, "hint": hint or "", "file": path}
        return {**found, "field": field} if field else found

    try:
        config = load_config(path, hint="Pass --config with a JSON training config (see examples/demo-config.json).")
    except TrainerError as e:
        return [problem("config_invalid", "error", e.message, e.hint, e.field)]
    problems = [problem("learning_rate", "warning", message, "Leave training.learning_rate out to use the method's "
                        "default, or lower it; a diverging run stops itself with 'diverged'.", "/training/learning_rate")
                for message in learning_rate_warnings(config)]
    data = config.data
    assert data is not None  # load_config needs a data section
    if data.format != "hub":
        base_dir = Path(path).resolve().parent  # as a relative path in a run's config.json resolves
        for name, value in (("train_file", data.train_file), ("eval_file", data.eval_file)):
            if value:
                try:
                    _resolve(str(value), f"/data/{name}", base_dir)
                except TrainerError as e:
                    problems.append(problem("data_missing", "error", e.message, e.hint, e.field))
    try:
        _source(config.model.name_or_path)  # a local folder must hold config.json; a hub id is not looked up
    except TrainerError as e:
        problems.append(problem("model_missing", "error", e.message, e.hint, e.field))
    t = config.training
    if t.device == "cuda" and cuda_devices == 0:
        problems.append(problem("device_unavailable", "error", "training.device is 'cuda' but no CUDA device is available",
                                "Install a CUDA build of torch (docs/python.md), or set training.device to auto or cpu.",
                                "/training/device"))
    elif t.device == "mps" and not mps:
        problems.append(problem("device_unavailable", "error", "training.device is 'mps' but Apple's MPS backend is not "
                                "available", "Set training.device to auto or cpu.", "/training/device"))
    if t.num_gpus > 1 and 0 < cuda_devices < t.num_gpus:
        problems.append(problem("num_gpus", "error", f"training.num_gpus is {t.num_gpus} but this machine has "
                                f"{cuda_devices} CUDA device(s)", f"Set training.num_gpus to at most {cuda_devices} "
                                "(several machines: docs/multi-gpu.md).", "/training/num_gpus"))
    elif t.num_gpus > 1 and cuda_devices == 0 and t.device != "cuda":
        problems.append(problem("num_gpus", "warning", f"training.num_gpus is {t.num_gpus} but there is no CUDA device: "
                                f"{t.num_gpus} CPU processes will share this machine's cores",
                                "Set training.num_gpus to 1 on a machine without GPUs.", "/training/num_gpus"))
    on_cpu = t.device == "cpu" or (t.device == "auto" and cuda_devices == 0 and not mps)
    if t.precision == "fp16" and on_cpu:
        problems.append(problem("precision", "warning", "training.precision is fp16, which needs a GPU: this machine "
                                "will train in fp32 on the CPU", "Set training.precision to auto or fp32.",
                                "/training/precision"))
    return problems


def report(config_path: str | None = None) -> dict:
    problems: list[dict] = []
    # the report must also answer under an interpreter older than requires-python allows
    if sys.version_info < (3, 10):  # noqa: UP036
        problems.append({"code": "python_too_old", "level": "error",
                         "message": f"Python {platform.python_version()} is too old", "hint": "Use Python 3.10 or newer."})
    packages = {name: _version(name) for name in PACKAGES}
    for name in REQUIRED:
        if packages[name] is None and name != "torch":  # torch gets its own, more specific problem below
            problems.append({"code": "package_missing", "level": "error", "message": f"{name} is not installed",
                             "hint": SETUP_HINT})
    for name in ("onnx", "onnxruntime"):
        if packages[name] is None:
            problems.append({"code": "package_missing", "level": "warning",
                             "message": f"{name} is not installed: training works, ONNX export for completions does not",
                             "hint": SETUP_HINT})
    for name, pinned in _pins().items():
        have = packages.get(name)
        if have is not None and _base(have) != _base(pinned):
            problems.append({"code": "version_mismatch", "level": "warning",
                             "message": f"{name} {have} is installed; this trainer is tested with {pinned}",
                             "hint": SETUP_HINT})
    cuda, mps, device = _torch_report(problems)
    if config_path is not None:
        problems.extend(config_problems(config_path, len(cuda["devices"]), bool(mps["available"])))
    if device == "cpu":
        problems.append({"code": "no_gpu", "level": "warning", "message": "no CUDA or MPS device: training runs on the CPU",
                         "hint": "Fine for the embedded model; for bloom-560m and larger use a machine with an NVIDIA GPU "
                                 "and a CUDA build of torch."})
    return {
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": packages,
        "torch": packages["torch"], "transformers": packages["transformers"], "peft": packages["peft"],
        "accelerate": packages["accelerate"], "onnx": packages["onnx"], "onnxruntime": packages["onnxruntime"],
        "cuda": cuda,
        "mps": mps,
        "device": device,
        "problems": problems,
        "ok": not any(p["level"] == "error" for p in problems),
        **({"config": config_path} if config_path is not None else {}),
    }


def run(args=None) -> int:
    out = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # whatever importing torch prints stays off the answer
        result = report(getattr(args, "config", None))
    out.write(json.dumps(result) + "\n")
    out.flush()
    return 0

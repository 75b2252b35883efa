"""`export-hf`: a run's result as a Hugging Face checkpoint that plain transformers (or peft) reload elsewhere.

LoRA and IA3 are merged into the base weights (peft's merge_and_unload), BitFit's biases are written into the base
model, and a full fine-tune is its own model: each becomes one folder that
`AutoModelForCausalLM.from_pretrained(DIR)` loads (safetensors, config, tokenizer). Prompt tuning, P-tuning and
prefix tuning cannot be merged (their virtual tokens are not weights of the base model): the folder holds the peft
adapter, its `base_model_name_or_path` naming the base, plus the tokenizer; `AutoPeftModelForCausalLM.from_pretrained
(DIR)` (or PeftModel on the base) loads it. README.md in the folder says which, and how.

stdout: events: log..., then `done` with hf_dir, hf_kind ("merged" | "adapter") and the adapter_dir; or `error`.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from .errors import TrainerError
from .log import log

MERGEABLE = ("lora", "ia3", "bitfit", "full")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
INFO_FILE = "bloom_peft_export.json"


def base_reference(name_or_path: str) -> str:
    """What another machine should load as the base: a hub id as is, a local folder (or 'embedded') as its
    absolute path."""
    from .model_loading import _looks_local
    from .paths import resolve_model_path

    path = resolve_model_path(name_or_path)
    return str(Path(path).expanduser().resolve()) if _looks_local(path) else name_or_path


def export_hf_run(run_dir, out=None) -> dict:
    """Write RUN_DIR/hf (or `out`); returns {"hf_dir", "kind": "merged" | "adapter", "method", "base_model"}."""
    import torch

    from .export import ExportError, _cpu_base, _full_tokenizer, _read_run_config
    from .methods import PEFT_METHODS, load_trained

    run_dir = Path(run_dir).resolve()
    config = _read_run_config(run_dir)
    adapter = run_dir / "adapter"
    if not adapter.is_dir():
        raise ExportError(f"{adapter} does not exist: the run has not saved an adapter yet",
                          hint="Export after training finishes (or resume the run to let it finish).", file=str(adapter))
    method = config.method.name
    base_name = config.model.name_or_path
    out = Path(out).resolve() if out else run_dir / "hf"
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if method in MERGEABLE:
        if method == "full":
            base, tokenizer = None, _full_tokenizer(adapter, base_name)
        else:
            base, tokenizer = _cpu_base(config.model, config.training.seed)
        model = load_trained(base, config.method, adapter)
        if method in PEFT_METHODS:
            log(f"export-hf: merging the {method} weights into the base model")
            model = model.merge_and_unload()
        with torch.no_grad():
            model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        kind = "merged"
    else:
        from .model_loading import load_tokenizer

        for name in ADAPTER_FILES:
            shutil.copy2(adapter / name, tmp / name)
        adapter_config = json.loads((tmp / "adapter_config.json").read_text(encoding="utf-8"))
        adapter_config["base_model_name_or_path"] = base_reference(base_name)
        (tmp / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2) + "\n", encoding="utf-8")
        load_tokenizer(base_name, config.model.revision).save_pretrained(str(tmp))
        kind = "adapter"
    info: dict[str, Any] = {"kind": kind, "method": method, "base_model": base_reference(base_name) if kind == "adapter" else base_name,
            "run_dir": str(run_dir), "template": config.template.as_dict(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    (tmp / "README.md").write_text(_readme(kind, method, info["base_model"]), encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    log(f"export-hf: {kind} checkpoint written to {out}")
    return {"hf_dir": str(out), "kind": kind, "method": method, "base_model": info["base_model"]}


def _readme(kind: str, method: str, base: str) -> str:
    if kind == "merged":
        how = ("The fine-tuned weights are merged into the base model: this folder is a complete BLOOM checkpoint.\n\n"
               "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
               "model = AutoModelForCausalLM.from_pretrained(\"THIS_FOLDER\")\n"
               "tokenizer = AutoTokenizer.from_pretrained(\"THIS_FOLDER\")\n```\n")
    else:
        how = (f"peft cannot merge {method} into the base weights (its virtual tokens are not weights of the model), so "
               f"this folder holds the peft adapter and the tokenizer; the base model is `{base}`.\n\n"
               "```python\nfrom peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer\n"
               "model = AutoPeftModelForCausalLM.from_pretrained(\"THIS_FOLDER\")  # loads the base named in adapter_config.json\n"
               "tokenizer = AutoTokenizer.from_pretrained(\"THIS_FOLDER\")\n```\n")
    return (f"# Bloom PEFT Studio export ({method})\n\n{how}\n"
            "Prompts follow the run's template (bloom_peft_export.json), e.g. `Human: ...\\n\\nAssistant: `.\n")


def run(args) -> int:
    """`python -m bloom_peft export-hf --run-dir DIR [--out DIR]`: log events, then `done` (hf_dir, hf_kind)."""
    from .protocol import claim_stdout

    emitter = claim_stdout()
    t0 = time.time()
    try:
        from .runlock import RunLock

        with RunLock(Path(args.run_dir).resolve(), "export"):
            result = export_hf_run(args.run_dir, getattr(args, "out", None))
    except TrainerError as e:
        emitter.error(**e.event_fields())
        return e.exit_code
    except Exception as e:  # noqa: BLE001 - reported to the host as an event, with the traceback on stderr
        import traceback

        traceback.print_exc()
        emitter.error("export_failed", f"{type(e).__name__}: {e}", hint="See trainer.log for the traceback.")
        return 1
    emitter.emit("done", status="completed", step=0, adapter_dir=str(Path(args.run_dir).resolve() / "adapter"),
                 hf_dir=result["hf_dir"], hf_kind=result["kind"], metrics={"runtime_s": round(time.time() - t0, 3)})
    return 0

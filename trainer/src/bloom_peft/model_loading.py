"""Load a BLOOM base model and its tokenizer: hub id, local folder, or 'embedded' (models/bloom-tiny).

Always through from_pretrained with safetensors only and trust_remote_code off, so the embedded model takes the
very same path as bigscience/bloom-560m. Every failure is a ModelError naming /model/name_or_path with a hint.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from .errors import ModelError
from .paths import EMBEDDED_MODEL_DIR, resolve_model_path

if TYPE_CHECKING:
    from .config import ModelSection

FIELD = "/model/name_or_path"
BLOOM_PAD_ID = 3  # BLOOM's <pad>; every bigscience checkpoint uses it


def _looks_local(name: str) -> bool:
    """Hub ids are 'org/name' or 'name'; anything else (absolute, ./, ~, backslash, deeper paths) is a folder."""
    return (os.path.isabs(name) or name.startswith((".", "~")) or "\\" in name or name.count("/") > 1
            or os.path.exists(name))


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe of the hub. huggingface_hub retries an unreachable host with back-off for ~25 s; the
    dashboard calls `params` on every form change, so fail fast instead. With a proxy configured we cannot tell
    locally, so we let the download try."""
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout):
            return True
    except OSError:
        return False


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def _hub_call(fn, name: str, what: str, **kwargs):
    """Run a from_pretrained-style call for a hub id: cache first, then the network if it is reachable."""
    try:
        return fn(name, local_files_only=True, **kwargs)
    except OSError:
        pass
    if _offline() or not _hub_reachable():
        raise ModelError(
            f"'{name}' is not a local folder and the Hugging Face hub is unreachable (no {what} in the local cache)",
            hint="Use a local folder with config.json, model.safetensors and tokenizer.json (download it once on a "
                 "machine with internet, e.g. `huggingface-cli download bigscience/bloom-560m --local-dir DIR`), "
                 "or 'embedded' for the bundled tiny model.")
    try:
        return fn(name, **kwargs)
    except OSError as e:
        raise ModelError(f"could not load {what} of '{name}' from the hub: {e}",
                         hint="Check the model id and revision (e.g. bigscience/bloom-560m), or use a local folder.") from None


def _source(name_or_path: str) -> tuple[str, bool]:
    """(path or hub id, is_local); a missing local folder is an error here, with the hint that fits."""
    path = resolve_model_path(name_or_path)
    if name_or_path == "embedded" and not Path(path, "config.json").is_file():
        raise ModelError(f"the embedded model is missing ({EMBEDDED_MODEL_DIR})",
                         hint="Reinstall the extension, or rebuild it with the project's model script (see README).")
    if _looks_local(path):
        p = Path(path).expanduser()
        if not p.is_dir():
            raise ModelError(f"model folder not found: {p.resolve()}",
                             hint="Give a folder that holds config.json (relative paths are resolved against "
                                  f"{Path.cwd()}), a hub id such as bigscience/bloom-560m, or 'embedded'.")
        if not (p / "config.json").is_file():
            raise ModelError(f"{p.resolve()} has no config.json, so it is not a transformers model folder",
                             hint="Point /model/name_or_path at the folder saved with save_pretrained (it holds config.json).")
        return str(p), True
    return path, False


def load_model_config(name_or_path: str, revision: str | None = None):
    """The model's BloomConfig, without weights; ModelError when it is not a BLOOM model or cannot be found."""
    from transformers import AutoConfig, BloomConfig

    path, local = _source(name_or_path)
    kwargs = dict(revision=revision, trust_remote_code=False)
    try:
        config = AutoConfig.from_pretrained(path, **kwargs) if local else _hub_call(AutoConfig.from_pretrained, path, "config.json", **kwargs)
    except ValueError as e:  # unknown model_type, or a config.json transformers cannot read
        raise ModelError(f"'{name_or_path}': {e}", hint="Bloom PEFT Studio trains BLOOM models (model_type 'bloom').") from None
    except OSError as e:
        raise ModelError(f"could not read the config of '{name_or_path}': {e}", hint="Check that config.json is valid JSON.") from None
    if getattr(config, "model_type", None) != "bloom" or not isinstance(config, BloomConfig):
        raise ModelError(f"'{name_or_path}' is a '{getattr(config, 'model_type', '?')}' model, not BLOOM",
                         hint="Choose a BLOOM checkpoint (bigscience/bloom-560m, bloomz-560m, bloom-1b1, ...) or 'embedded'.")
    return config


def load_tokenizer(name_or_path: str, revision: str | None = None, model_config=None):
    """The model's fast tokenizer, with the pad token set (BLOOM's <pad> = 3; else EOS) so batches can be padded."""
    from transformers import AutoTokenizer

    path, local = _source(name_or_path)
    kwargs = dict(revision=revision, trust_remote_code=False)
    try:
        tok = AutoTokenizer.from_pretrained(path, **kwargs) if local else _hub_call(AutoTokenizer.from_pretrained, path, "tokenizer", **kwargs)
    except (OSError, ValueError) as e:
        raise ModelError(f"could not load the tokenizer of '{name_or_path}': {e}",
                         hint="The model folder needs tokenizer.json (save the tokenizer with save_pretrained next to the model).") from None
    if model_config is not None:
        check_vocabulary(tok, model_config, name_or_path)
    if tok.pad_token_id is None:
        pad_id = getattr(model_config, "pad_token_id", None)
        if pad_id is None or pad_id >= len(tok):
            pad_id = BLOOM_PAD_ID if BLOOM_PAD_ID < len(tok) else tok.eos_token_id
        tok.pad_token = tok.convert_ids_to_tokens(pad_id)
    return tok


def check_vocabulary(tokenizer, model_config, name_or_path: str) -> None:
    """The tokenizer and the embedding must agree: an id past the embedding crashes a forward pass, and a tokenizer
    cut down far below the model's vocabulary decodes most generated ids to nothing (empty completions). BLOOM
    checkpoints pad the embedding by a few hundred rows (bloom-560m: 250,680 tokens, 250,880 rows): that is fine."""
    n, rows = len(tokenizer), int(model_config.vocab_size)
    where = _tokenizer_file(name_or_path)
    if n > rows:
        raise ModelError(f"{where} has {n} tokens but the model's embedding has {rows} rows (config.json vocab_size): "
                         f"ids {rows}..{n - 1} would index past it",
                         hint="Use the tokenizer saved with this model (save_pretrained writes both), or resize the "
                              "model's embeddings to the tokenizer and save it again.")
    if rows - n > max(1024, rows // 100):
        raise ModelError(f"{where} has only {n} tokens but the model's vocabulary has {rows} (config.json vocab_size): "
                         f"a cut-down tokenizer; ids {n}..{rows - 1} would decode to nothing",
                         hint="Use the tokenizer saved with this model (save_pretrained writes both).")


def _tokenizer_file(name_or_path: str) -> str:
    try:
        path, local = _source(name_or_path)
    except ModelError:
        return f"the tokenizer of '{name_or_path}'"
    return str(Path(path) / "tokenizer.json") if local else f"the tokenizer of '{name_or_path}'"


def _weights_error(name: str, path: str, local: bool, bloom_config, e: Exception) -> ModelError:
    """A corrupt, truncated or mismatched weights file as a ModelError naming the file, the cause and a fix."""
    files = sorted(Path(path).glob("*.safetensors")) if local else []
    weights = str(files[0]) if len(files) == 1 else f"the safetensors files of '{name}'"
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if type(e).__name__ == "SafetensorError":
        err = ModelError(f"{weights} is not a readable safetensors file ({text})",
                         hint="The file is truncated or corrupt (an interrupted download or copy): download or save "
                              "the model again.")
    else:
        mismatch = _first_shape_mismatch(files, bloom_config) if local else None
        detail = f": {mismatch}" if mismatch else ""
        err = ModelError(f"the weights in {weights} do not match the shapes in {Path(path) / 'config.json'}{detail}",
                         hint="config.json and the weights come from different models (hidden_size, n_layer, n_head or "
                              "vocab_size differ): use the config.json saved with these weights.")
    err.file = weights if len(files) == 1 else None
    return err


def _first_shape_mismatch(files: list, bloom_config) -> str | None:
    """'transformer.h.0...: file [128, 384] vs config [256, 768]' for the first tensor whose shape differs."""
    try:
        import torch
        from safetensors import safe_open
        from transformers import BloomForCausalLM

        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in BloomForCausalLM(bloom_config).state_dict().items()}
        for f in files:
            with safe_open(str(f), framework="pt") as st:
                for key in st.keys():
                    shape = tuple(st.get_slice(key).get_shape())
                    want = expected.get(key) or expected.get(f"transformer.{key}")
                    if want is not None and want != shape:
                        return f"{key} is {list(shape)} in {Path(f).name}, config.json makes it {list(want)}"
    except Exception:  # noqa: BLE001 - the detail is a courtesy; the error itself stands without it
        return None
    return None


def load_base_model(model_section: ModelSection, *, device=None, dtype=None):
    """(model, tokenizer) of a config's model section; config_only builds the architecture with random weights."""
    import torch
    from transformers import BloomForCausalLM

    name, revision = model_section.name_or_path, model_section.revision
    bloom_config = load_model_config(name, revision)
    tokenizer = load_tokenizer(name, revision, bloom_config)
    if model_section.config_only:
        model = BloomForCausalLM(bloom_config)
        if dtype is not None:
            model = model.to(dtype)
        model.config._name_or_path = resolve_model_path(name)
    else:
        path, local = _source(name)
        kwargs: dict[str, Any] = dict(revision=revision, use_safetensors=True, trust_remote_code=False, dtype=dtype or torch.float32)
        try:
            model = (BloomForCausalLM.from_pretrained(path, **kwargs) if local
                     else _hub_call(BloomForCausalLM.from_pretrained, path, "safetensors weights", **kwargs))
        except OSError as e:
            raise ModelError(f"could not load the weights of '{name}': {e}",
                             hint="Only safetensors weights are loaded (never pickled .bin files): convert the "
                                  "checkpoint with save_pretrained(safe_serialization=True), or set "
                                  "model.config_only to train from random weights.") from None
        except Exception as e:  # noqa: BLE001 - safetensors' SafetensorError, transformers' size-mismatch RuntimeError
            if type(e).__name__ == "SafetensorError" or "mismatch" in str(e):
                raise _weights_error(name, path, local, bloom_config, e) from None
            raise
    if device is not None:
        model = model.to(device)
    return model, tokenizer


def fuse_bloom_gelu(model) -> int:
    """Swap every BloomGelu in `model` (peft-wrapped or not) for torch's fused tanh GELU; returns how many.

    BLOOM's GELU is the tanh approximation written as a Python autograd Function (about ten elementwise kernels each
    way); F.gelu(approximate="tanh") is the same formula in one kernel. Used for training (bench: the Python GELU
    was ~15% of a CPU training step of the embedded model; docs/benchmarks.md)."""
    import torch
    from transformers.models.bloom.modeling_bloom import BloomGelu

    class FusedTanhGelu(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.gelu(x, approximate="tanh")

    swapped = 0
    for module in model.modules():
        if isinstance(getattr(module, "gelu_impl", None), BloomGelu):
            module.gelu_impl = FusedTanhGelu()
            swapped += 1
    return swapped

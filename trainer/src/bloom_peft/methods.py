"""The seven fine-tuning methods: make a base model trainable, count, save, reload, and checkpoint it.

peft methods (prompt_tuning, p_tuning, prefix_tuning, lora, ia3) go through get_peft_model and save in peft's
adapter format; BitFit freezes everything but the bias terms and saves only those; full trains and saves every
weight. Method options arrive parsed (config.MethodOptions: one dataclass per method, defaults from the schema).

BLOOM + prefix tuning (transformers 5.18, peft 0.21): peft's get_prompt returns a DynamicCache in the standard
[batch, heads, tokens, head_dim] layout and BLOOM (since transformers PR #31445) consumes exactly that; ALiBi
positions come from the attention mask, which peft extends over the virtual tokens. So the cache format needs no
workaround: test_methods.py checks that a prefix equal to the KV cache of real tokens reproduces the base model's
logits. One change is made for exactness and speed: the prefix encoder runs once per batch (_encode_prefix_once).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from .config import (
    DEFAULT_LEARNING_RATES,
    METHODS,
    IA3Options,
    LoraOptions,
    MethodOptions,
    PrefixTuningOptions,
    PromptTuningOptions,
    PTuningOptions,
)
from .errors import ConfigError, ModelError

__all__ = ["METHODS", "DEFAULT_LEARNING_RATES"]  # re-exported: the method list and their learning rates live in config
PEFT_METHODS = ("prompt_tuning", "p_tuning", "prefix_tuning", "lora", "ia3")
PEFT_TYPE_TO_METHOD = {"PROMPT_TUNING": "prompt_tuning", "P_TUNING": "p_tuning", "PREFIX_TUNING": "prefix_tuning",
                       "LORA": "lora", "IA3": "ia3"}
BITFIT_WEIGHTS, BITFIT_CONFIG = "bitfit_biases.safetensors", "bitfit_config.json"
BLOOM_LINEAR_MODULES = ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")



def default_learning_rate(name: str) -> float:
    """AdamW learning rate of a method (x-default-learning-rate of its schema definition, so the dashboard shows the
    value that applies), from the methods' papers and peft's examples. Prompt-learning methods train a few thousand
    parameters from scratch and need large steps; full fine-tuning moves every pretrained weight. Sensible both for
    bloom-560m..7b1 and for the embedded tiny model (training.learning_rate overrides it)."""
    return DEFAULT_LEARNING_RATES[name]


def _tokenizer_source(model, tokenizer, scratch: list) -> str | None:
    """A folder AutoTokenizer can load offline for peft's TEXT init: the tokenizer's own folder, else the model's;
    for a hub id, the loaded tokenizer saved to a temporary folder (peft would otherwise go to the network)."""
    for cand in (getattr(tokenizer, "name_or_path", None), getattr(model.config, "_name_or_path", None)):
        if cand and Path(cand).is_dir():
            return str(cand)
    if tokenizer is not None:
        import tempfile

        tmp = tempfile.TemporaryDirectory(prefix="bloom-peft-tokenizer-")
        scratch.append(tmp)
        tokenizer.save_pretrained(tmp.name)
        return tmp.name
    return getattr(model.config, "_name_or_path", None)


def peft_config(o: MethodOptions, tokenizer_name_or_path: str | None = None, model_hidden_size: int | None = None):
    """The peft config object for a peft method (task CAUSAL_LM). An absent encoder_hidden_size (P-tuning's
    encoder, prefix tuning's projection) is the model's hidden size, as in peft."""
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig

    if isinstance(o, PromptTuningOptions):
        if o.init == "text":  # the schema requires init_text with it
            return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=o.num_virtual_tokens,
                                      prompt_tuning_init="TEXT", prompt_tuning_init_text=o.init_text,
                                      tokenizer_name_or_path=tokenizer_name_or_path)
        return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=o.num_virtual_tokens, prompt_tuning_init="RANDOM")
    if isinstance(o, PTuningOptions):
        extra: dict[str, Any] = {}
        if o.encoder_type == "LSTM":  # peft's MLP encoder always has 2 layers and no dropout (it warns otherwise)
            extra = dict(encoder_num_layers=o.encoder_num_layers, encoder_dropout=o.encoder_dropout)
        # peft annotates encoder_hidden_size as int yet defaults it to None (then the model's hidden size)
        return PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=o.num_virtual_tokens,
                                   encoder_reparameterization_type=o.encoder_type,
                                   encoder_hidden_size=cast(int, o.encoder_hidden_size or model_hidden_size), **extra)
    if isinstance(o, PrefixTuningOptions):
        return PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=o.num_virtual_tokens,
                                  prefix_projection=o.prefix_projection,
                                  encoder_hidden_size=cast(int, o.encoder_hidden_size or model_hidden_size))
    if isinstance(o, LoraOptions):
        # peft annotates lora_alpha as int; it only scales by alpha / r, so the schema's number works
        return LoraConfig(task_type="CAUSAL_LM", r=o.r, lora_alpha=cast(int, o.alpha), lora_dropout=o.dropout,
                          target_modules=list(o.target_modules))
    if isinstance(o, IA3Options):  # feedforward_modules within target_modules: checked by config.parse_config
        return IA3Config(task_type="CAUSAL_LM", target_modules=list(o.target_modules),
                         feedforward_modules=list(o.feedforward_modules))
    raise ValueError(f"{o.name} is not a peft method")


def apply_method(model, method: MethodOptions, tokenizer=None):
    """The model ready to train with the method: a PeftModel, or the base model with the right params frozen."""
    name = method.name
    if name == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if name == "bitfit":
        # BitFit (Ben Zaken et al.) as in the tutorial: every parameter named *bias trains (linear and LayerNorm)
        for pname, p in model.named_parameters():
            p.requires_grad_(pname.endswith("bias"))
        return model
    from peft import get_peft_model

    scratch: list = []
    text_init = isinstance(method, PromptTuningOptions) and method.init == "text"
    cfg = peft_config(method, _tokenizer_source(model, tokenizer, scratch) if text_init else None,
                      model.config.hidden_size)
    try:
        peft_model = get_peft_model(model, cfg)
        if name == "prefix_tuning":
            _encode_prefix_once(peft_model.prompt_encoder["default"])
        if scratch:  # the adapter config should name the real tokenizer, not a deleted temporary folder
            peft_model.peft_config["default"].tokenizer_name_or_path = getattr(tokenizer, "name_or_path", None)
        return peft_model
    except ValueError as e:
        if "target" in str(e).lower():
            raise ConfigError(f"{name}: {e}", field="/method/target_modules",
                              hint=f"BLOOM's linear modules are {', '.join(BLOOM_LINEAR_MODULES)} "
                                   "(suffixes such as mlp.dense_4h_to_h also work).") from None
        raise
    except OSError as e:  # TEXT init could not load the tokenizer
        raise ConfigError(f"prompt tuning text init could not load the tokenizer: {e}", field="/method/init_text",
                          hint="Use a local model folder that holds tokenizer.json, or init 'random'.") from None
    finally:
        for tmp in scratch:
            tmp.cleanup()


def _encode_prefix_once(encoder) -> None:
    """peft feeds the prefix encoder one identical row of virtual-token ids per batch row; run it on one row and
    repeat the result (as peft itself does for prompt tuning and P-tuning). Same values and gradients, less work
    with prefix_projection, and the prefix no longer depends on the batch size: the adapter file, which peft fills
    from a batch of one, then reproduces the trained model's logits exactly rather than to ~1e-6."""
    forward = encoder.forward

    def forward_once(prefix):
        out = forward(prefix[:1])
        return out.repeat(prefix.shape[0], *([1] * (out.dim() - 1)))

    encoder.forward = forward_once


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) exactly as peft's get_nb_trainable_parameters counts; plain counts for full/BitFit."""
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
        return int(trainable), int(total)
    trainable = total = 0
    for _, p in model.named_parameters():  # named_parameters skips tied duplicates (lm_head = word embeddings)
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


def _base_name(model) -> str | None:
    cfg = getattr(model, "config", None)
    return getattr(cfg, "_name_or_path", None) or getattr(cfg, "name_or_path", None)


def save_trained(model, method: MethodOptions, out_dir, tokenizer=None) -> Path:
    """Save what the method trained: a peft adapter, BitFit's biases, or the full model (safetensors always)."""
    import torch
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = method.name
    if name in PEFT_METHODS:
        # no_grad: P-tuning's saved prompts are its encoder's output, and the CPU LSTM kernel without autograd (the one
        # inference runs) differs from the autograd one in the last bits; save what inference computes
        with torch.no_grad():
            model.save_pretrained(str(out), safe_serialization=True)
    elif name == "bitfit":
        biases = {k: p.detach().cpu().contiguous() for k, p in model.named_parameters() if k.endswith("bias")}
        save_file(biases, str(out / BITFIT_WEIGHTS), metadata={"format": "pt", "method": "bitfit"})
        (out / BITFIT_CONFIG).write_text(json.dumps({
            "method": "bitfit", "base_model_name_or_path": _base_name(model), "num_tensors": len(biases),
            "num_parameters": sum(t.numel() for t in biases.values()), "tensors": sorted(biases)}, indent=2) + "\n")
    else:
        model.save_pretrained(str(out), safe_serialization=True)
    if tokenizer is not None and name == "full":
        tokenizer.save_pretrained(str(out))  # a full model folder should load on its own
    return out


def detect_method(adapter_dir) -> str:
    """Which method saved the folder: peft adapter_config.json, BitFit's json, or a full model's config.json."""
    d = Path(adapter_dir)
    if (d / "adapter_config.json").is_file():
        peft_type = json.loads((d / "adapter_config.json").read_text())["peft_type"]
        if peft_type not in PEFT_TYPE_TO_METHOD:
            raise ModelError(f"{d}: peft type {peft_type} is not supported", field=None,
                             hint=f"Supported: {', '.join(PEFT_TYPE_TO_METHOD)}.")
        return PEFT_TYPE_TO_METHOD[peft_type]
    if (d / BITFIT_CONFIG).is_file():
        return "bitfit"
    if (d / "config.json").is_file():
        return "full"
    raise ModelError(f"{d} holds no adapter (adapter_config.json), BitFit biases ({BITFIT_CONFIG}) or model (config.json)",
                     field=None, hint="Point at the adapter/ folder of a finished run.")


def load_trained(base_model, method_or_dir, adapter_dir=None):
    """The trained model in eval mode: load_trained(base, method, dir) or load_trained(base, dir).

    peft adapters load with PeftModel.from_pretrained; BitFit's biases are copied into base_model; full loads the
    saved model (base_model then only lends its dtype and device and may be None)."""
    import torch

    method: MethodOptions | None
    if adapter_dir is None:
        adapter_dir, method = method_or_dir, None
    else:
        method = method_or_dir
    d = Path(adapter_dir)
    if not d.is_dir():
        raise ModelError(f"adapter folder not found: {d}", field=None, hint="Train the run first (its adapter/ folder).")
    name = detect_method(d)
    if method is not None and method.name != name:
        raise ModelError(f"{d} holds a {name} adapter, but the config's method is {method.name}", field="/method/name",
                         hint="Use the config the adapter was trained with.")
    if name in PEFT_METHODS:
        from peft import PeftModel

        return PeftModel.from_pretrained(base_model, str(d), is_trainable=False).eval()
    if name == "bitfit":
        from safetensors.torch import load_file

        biases = load_file(str(d / BITFIT_WEIGHTS))
        params = dict(base_model.named_parameters())
        for k, t in biases.items():
            if k not in params or params[k].shape != t.shape:
                raise ModelError(f"{d / BITFIT_WEIGHTS}: tensor {k} {tuple(t.shape)} does not fit the base model",
                                 hint="Load the biases into the base model they were trained on.")
        with torch.no_grad():
            for k, t in biases.items():
                params[k].copy_(t.to(params[k].dtype))
        return base_model.eval()
    from transformers import BloomForCausalLM

    ref = next(base_model.parameters()) if base_model is not None else None
    model = BloomForCausalLM.from_pretrained(str(d), use_safetensors=True, trust_remote_code=False,
                                             dtype=ref.dtype if ref is not None else torch.float32)
    return (model.to(ref.device) if ref is not None else model).eval()


def method_state_dict(model, name: str) -> dict:
    """Tensors a checkpoint needs: the trainable parameters (prompt encoders' MLP/LSTM weights included, which
    peft's adapter format replaces by their output), or for full every weight once (tied lm_head left out)."""
    if name != "full":
        return {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
    seen, out = set(), {}
    for k, t in model.state_dict().items():
        key = (t.data_ptr(), t.shape, t.dtype)
        if key not in seen:
            seen.add(key)
            out[k] = t.detach()
    return out


def load_method_state_dict(model, name: str, state: dict) -> None:
    """Copy a method_state_dict back into a model prepared the same way; mismatches raise ModelError."""
    import torch

    target = method_state_dict(model, name)
    missing, unexpected = sorted(set(target) - set(state)), sorted(set(state) - set(target))
    if missing or unexpected:
        raise ModelError(f"checkpoint does not match the {name} model: missing {missing[:3]}, unexpected {unexpected[:3]}",
                         field="/method", hint="Resume with the same method and options the run started with.")
    with torch.no_grad():
        for k, t in target.items():
            if t.shape != state[k].shape:
                raise ModelError(f"checkpoint tensor {k} has shape {tuple(state[k].shape)}, the model {tuple(t.shape)}",
                                 field="/method", hint="Resume with the same method and options the run started with.")
            t.copy_(state[k].to(device=t.device, dtype=t.dtype))

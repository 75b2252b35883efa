"""GGUF files (F32 and Q8_0) of a benchmark model, for llama.cpp as the engine's peer in `npm run bench`.

    PYTHONPATH=trainer/src:scripts/bench:<gguf package> python scripts/bench/peer/write_gguf.py --shape 560m --out DIR

Writes DIR/model-f32.gguf and DIR/model-q8_0.gguf (each only when missing) and, with --exports, the project's
fp32/int8 exports of the same weights under DIR/fp32 and DIR/int8. Tensor names, the fused QKV layout and the
metadata follow llama.cpp's convert_hf_to_gguf.py for BLOOM (BloomModel): the QKV rows regrouped from BLOOM's
per-head [q, k, v] to [all q, all k, all v], the tied embedding written again as output.weight, context length =
seq_length or the hidden size, 1-D tensors kept F32 in the Q8_0 file, the GPT-2 style vocabulary padded to
vocab_size with [PADn] tokens. The prompt is fed to llama.cpp as token ids, so its tokenizer is never used to
encode; it only has to load."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import gguf
import numpy as np
from bench_model import (
    SHAPES,
    build_model,
    ensure_exports,
    pad_tokenizer,
    tokenizer_dir,
)

FILES = {"f32": gguf.LlamaFileType.ALL_F32, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}


def bloom_tensors(model) -> list[tuple[str, np.ndarray]]:
    """(GGUF name, fp32 array) pairs in the converter's order and layout."""
    cfg = model.config
    n_head, n_embed = cfg.n_head, cfg.hidden_size
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BLOOM, cfg.n_layer)
    out: list[tuple[str, np.ndarray]] = []
    for name, t in model.transformer.state_dict().items():
        data = t.detach().float()
        if name.endswith("self_attention.query_key_value.weight"):
            w = data.reshape(n_head, 3, n_embed // n_head, n_embed)
            data = np.concatenate([w[:, i].reshape(-1, n_embed) for i in range(3)], axis=0)
        elif name.endswith("self_attention.query_key_value.bias"):
            b = data.reshape(n_head, 3, n_embed // n_head)
            data = np.concatenate([b[:, i].reshape(n_embed) for i in range(3)], axis=0)
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise SystemExit(f"write_gguf: no GGUF name for BLOOM tensor '{name}'")
        array = np.ascontiguousarray(data.numpy() if hasattr(data, "numpy") else data, dtype=np.float32)
        out.append((gguf_name, array))
        if name == "word_embeddings.weight":  # tied lm_head: the converter writes it again as output.weight
            out.append((gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.OUTPUT] + ".weight", array))
    return out


def write(model, tok_dir: Path, path: Path, file_type: gguf.LlamaFileType) -> None:
    cfg = model.config
    tmp = path.with_name(path.name + ".tmp")
    w = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BLOOM])
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(path.stem)
    w.add_context_length(getattr(cfg, "seq_length", None) or cfg.hidden_size)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(4 * cfg.hidden_size)
    w.add_block_count(cfg.n_layer)
    w.add_head_count(cfg.n_head)
    w.add_head_count_kv(cfg.n_head)
    w.add_layer_norm_eps(cfg.layer_norm_epsilon)
    w.add_file_type(file_type)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    # vocabulary: the converter's _set_vocab_gpt2 (tokens by id, [PADn] up to vocab_size, merges, special ids)
    tj = json.loads((tok_dir / "tokenizer.json").read_text(encoding="utf-8"))
    by_id = {i: t for t, i in tj["model"]["vocab"].items()}
    added = {a["id"]: a for a in tj.get("added_tokens", [])}
    tokens, types = [], []
    for i in range(cfg.vocab_size):
        if i in added:
            tokens.append(added[i]["content"])
            types.append(gguf.TokenType.CONTROL if added[i].get("special") else gguf.TokenType.USER_DEFINED)
        elif i in by_id:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("bloom")
    w.add_token_list(tokens)
    w.add_token_types(types)
    gguf.SpecialVocab(tok_dir, load_merges=True, n_vocab=len(tokens)).add_to_gguf(w)

    for name, data in bloom_tensors(model):
        # Q8_0 for the 2-D weights only; norms and biases stay F32 (the converter's rule)
        if file_type == gguf.LlamaFileType.MOSTLY_Q8_0 and data.ndim == 2:
            w.add_tensor(name, gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="560m")
    ap.add_argument("--out", required=True)
    ap.add_argument("--exports", action="store_true", help="also make the project's fp32/int8 exports when missing")
    a = ap.parse_args()
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    wanted = {k: out / f"model-{k}.gguf" for k in FILES}
    missing_exports = a.exports and not all((out / q / "manifest.json").exists() for q in ("fp32", "int8"))
    if not missing_exports and all(p.exists() for p in wanted.values()):
        for q in ("fp32", "int8"):  # exports cached before the tokenizer padding existed
            if (out / q / "manifest.json").exists():
                pad_tokenizer(out / q / "tokenizer.json", SHAPES[a.shape]["vocab_size"])
        return
    import torch
    from bloom_peft.model_loading import load_tokenizer

    torch.set_grad_enabled(False)
    tok_dir = tokenizer_dir(out / "scratch")
    model = build_model(a.shape, out / "scratch")
    if missing_exports:
        ensure_exports(model, load_tokenizer(str(tok_dir)), out, a.shape)
    for kind, path in wanted.items():
        if not path.exists():
            t = time.time()
            write(model, tok_dir, path, FILES[kind])
            print(f"wrote {path.name} ({path.stat().st_size / 2**20:.0f} MiB) in {time.time() - t:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()

"""ONNX export for the completion engine: one "decoder with past" graph serves all seven methods (docs/export.md).

BLOOM uses ALiBi (positions come from the attention mask, not from embeddings), so
- prompt tuning / P-tuning reduce to the KV cache of their virtual-token embeddings run once through the base model,
- prefix tuning reduces to the KV cache peft's get_prompt already returns,
- LoRA / IA3 merge into the weights, BitFit's biases are already in the weights, full fine-tuning is the model.
The engine prepends prefix_kv.safetensors (when there is one) as the initial past, with attention-mask ones over it.

The export is written to <out>.tmp and swapped in only when complete, so a failed export never destroys a good one.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from .config import QUANTIZATIONS, Config, ModelSection, parse_model
from .errors import ConfigError, ModelError, TrainerError

# 6: next_tokens, the argmax of every kept position (one step verifies drafted tokens); 5: the past position-major
# ([positions, heads, head_dim]) and read in place (no Slice copies); 4: the next_token output (the graph's greedy
# argmax); 3: batch 1, the past as slots with past_length (no attention_mask, no present); 2: model_data is a list (a
# cached base + the adapter's changes). Older exports are refused with the hint to export again.
FORMAT_VERSION = 6
OPSET = 17
PROMPT_LEARNING = ("prompt_tuning", "p_tuning", "prefix_tuning")
MODEL_FILE, DATA_FILE, TOKENIZER_FILE, PREFIX_FILE, MANIFEST_FILE = (
    "model.onnx", "model.onnx.data", "tokenizer.json", "prefix_kv.safetensors", "manifest.json")
# protobuf cannot hold more than 2 GiB; keep a margin for the graph itself
EXTERNAL_DATA_BYTES = 1_800_000_000
# trace with 3 new tokens after 2 filled of 5 past rows: no dimension is 0 or 1, so none is specialised into the graph
TRACE_SEQ, TRACE_PAST, TRACE_ROWS = 3, 2, 5
# an fp32 export whose ORT logits differ from PyTorch by more than this is broken, not imprecise
FP32_TOLERANCE = 1e-3


class ExportError(TrainerError):
    def __init__(self, message: str, hint: str | None = None, file: str | None = None):
        super().__init__("export_failed", message, hint, file=file)


# ---------------------------------------------------------------------------------------------------------------
# names and shapes of the contract


def past_names(num_layers: int) -> list[str]:
    return [f"past_key_values.{i}.{kv}" for i in range(num_layers) for kv in ("key", "value")]


def input_names(num_layers: int) -> list[str]:
    # past_key_values.{i}.*: [P, heads, head_dim], position-major (the engine's slot layout, so the filled prefix of
    # its arrays goes in as is). P >= 1: onnxruntime's FusedMatMul fails on an empty past, so none is given as one row.
    # past_length (int64 scalar): how many of the P rows hold positions; rows from past_length on are masked out.
    # logits_to_keep (int64 scalar): 0 = logits of every new position, k = of the last k.
    # A prompt's logits are [seq x vocab]: for bloom-560m the lm_head over them is about half of a prefill's work.
    return ["input_ids"] + past_names(num_layers) + ["past_length", "logits_to_keep"]


def output_names(num_layers: int) -> list[str]:
    # next_tokens (int64 [kept]): the argmax of each kept position's logits (the first on ties, as torch.argmax), so
    # greedy decoding fetches 8 bytes a position instead of a vocabulary-sized row (1 MB for bloom's 250,880 tokens),
    # and a step that runs drafted tokens learns how many of them greedy decoding would have chosen
    return ["logits", "next_tokens"] + new_kv_names(num_layers)


def new_kv_names(num_layers: int) -> list[str]:
    """The KV of the new positions only: the caller keeps the cache and writes these into its next free slots, so a
    step copies a few rows out of onnxruntime instead of the whole cache."""
    return [f"new_key_values.{i}.{kv}" for i in range(num_layers) for kv in ("key", "value")]


def _dynamic_axes(num_layers: int) -> dict:
    axes = {"input_ids": {1: "seq"}, "logits": {1: "logits_seq"}}
    for name in past_names(num_layers):
        axes[name] = {0: "past_rows"}
    for name in new_kv_names(num_layers):
        axes[name] = {0: "seq"}
    return axes


def _shapes(config) -> dict:
    heads = config.n_head
    return {"num_layers": config.n_layer, "num_heads": heads, "head_dim": config.hidden_size // heads,
            "hidden_size": config.hidden_size, "vocab_size": config.vocab_size}


# ---------------------------------------------------------------------------------------------------------------
# reducing a trained model to (plain BLOOM model, optional constant prefix KV)


def _cache_kv(cache) -> list[tuple[Any, Any]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def compute_prefix_kv(peft_model) -> list[tuple[Any, Any]]:
    """Per layer (key, value) [1, heads, P, head_dim] that make the base model behave like the prompt-learning model."""
    import torch
    from peft import PeftType

    cfg = peft_model.active_peft_config
    base = peft_model.get_base_model()
    with torch.no_grad():
        if cfg.peft_type == PeftType.PREFIX_TUNING:
            return [(k.detach(), v.detach()) for k, v in _cache_kv(peft_model.get_prompt(batch_size=1))]
        # prompt tuning / P-tuning: peft prepends these embeddings to the input embeddings, so their KV is the prefix
        prompts = peft_model.get_prompt(batch_size=1).to(base.dtype)
        mask = torch.ones(prompts.shape[:2], dtype=torch.long, device=prompts.device)
        out = base.transformer(inputs_embeds=prompts, attention_mask=mask, use_cache=True, return_dict=True)
        return [(k.detach(), v.detach()) for k, v in _cache_kv(out.past_key_values)]


def reduce_for_serving(model, method: str):
    """(BloomForCausalLM in eval mode, prefix KV or None) that serve exactly what `model` computes."""
    if method in PROMPT_LEARNING:
        prefix = compute_prefix_kv(model)
        return model.get_base_model().eval(), prefix
    if method in ("lora", "ia3"):
        return model.merge_and_unload().eval(), None
    if hasattr(model, "peft_config"):
        raise ExportError(f"a peft model cannot be exported as method '{method}'")
    return model.eval(), None


# ---------------------------------------------------------------------------------------------------------------
# the ONNX graph


def alibi_slopes(num_heads: int):
    """BLOOM's ALiBi slope per head, computed as transformers' build_alibi_tensor does (float32)."""
    import math

    import torch

    closest = 2 ** math.floor(math.log2(num_heads))
    base = torch.full((), 2 ** (-(2 ** -(math.log2(closest) - 3))), dtype=torch.float32)
    slopes = torch.pow(base, torch.arange(1, 1 + closest, dtype=torch.int32))
    if closest != num_heads:
        extra = torch.full((), 2 ** (-(2 ** -(math.log2(2 * closest) - 3))), dtype=torch.float32)
        remaining = min(closest, num_heads - closest)
        slopes = torch.cat([slopes, torch.pow(extra, torch.arange(1, 1 + 2 * remaining, 2, dtype=torch.int32))])
    return slopes


def _head_matmul():
    """Per-head matmul with the heads in the middle of position-major tensors, as onnxruntime's FusedMatMul
    (com.microsoft) computes it: transBatch reads [positions, heads, head_dim] as [heads, positions, head_dim] by
    strides, so the past is read where the engine keeps it, with no Slice or Transpose copying it first.

        head_matmul(a, b, trans_batch_a, trans_b) = a' @ b', a' = a.transpose(0, 1) if trans_batch_a
        else a, b' = b.transpose(0, 1) (b is always [positions, heads, x]), transposed once more on its last two
        axes if trans_b."""
    import torch

    class HeadMatMul(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, b, trans_batch_a, trans_b):  # noqa: ARG004 - the signature autograd wants
            a = a.transpose(0, 1) if trans_batch_a else a
            b = b.transpose(0, 1)
            return torch.matmul(a, b.transpose(1, 2) if trans_b else b)

        @staticmethod
        def symbolic(g, a, b, trans_batch_a, trans_b):
            out = g.op("com.microsoft::FusedMatMul", a, b, transA_i=0, transB_i=int(trans_b),
                       transBatchA_i=int(trans_batch_a), transBatchB_i=1)
            out.setType(a.type().with_sizes([None, None, None]))  # [heads, seq, x]: torch cannot infer a contrib op
            return out

    return HeadMatMul.apply


def _decoder_with_past(model):
    """A module with the contract's flat signature: (input_ids, *past, past_length, logits_to_keep) -> (logits,
    next_tokens, *new).

    BLOOM's forward written out for batch 1 and a position-major past, instead of tracing transformers' forward: the
    trace of that one carries the batch, padding masks and cache bookkeeping as ~1,300 shape nodes a step (Shape,
    Gather, Unsqueeze, Concat, Reshape), attends over every slot it is given and copies the whole past into `present`.
    Here every reshape has constant dims, the past comes in as [positions, heads, head_dim] and is read in place by
    the attention matmuls (the engine hands over the filled prefix of its slot arrays without a copy, so a step costs
    the same whatever the free capacity), and only the new positions' KV leaves the graph. The arithmetic is
    transformers' (ALiBi bias added to q.k / sqrt(head_dim), the finfo.min causal mask, softmax in float32, BLOOM's
    tanh GELU), so the logits match PyTorch's; the parameters are the model's own modules, so export_cache maps them as
    before."""
    import torch

    head_matmul = _head_matmul()

    class DecoderWithPast(torch.nn.Module):
        def __init__(self, lm):
            super().__init__()
            self.transformer = lm.transformer
            cfg = lm.config
            self.num_layers, self.num_heads = cfg.n_layer, cfg.n_head
            self.hidden, self.vocab = cfg.hidden_size, cfg.vocab_size
            self.head_dim = cfg.hidden_size // cfg.n_head
            self.post_ln_residual = bool(cfg.apply_residual_connection_post_layernorm)
            self.register_buffer("alibi_slopes", alibi_slopes(cfg.n_head).view(cfg.n_head, 1, 1), persistent=False)
            # 1/sqrt(head_dim) applied to q, as one value per head: onnxruntime folds a scalar Mul into the attention
            # matmul's alpha, and with alpha != 1 MLAS leaves its single-row kernels and packs every head's past first
            # (a decode step 4% slower). A [heads, 1] tensor is not folded.
            self.register_buffer("q_scale", torch.full((cfg.n_head, 1), 1.0 / (self.head_dim ** 0.5),
                                                           dtype=lm.lm_head.weight.dtype), persistent=False)
            # BLOOM ties lm_head to the word embeddings. Traced naively, the exporter folds lm_head's transpose into a
            # second copy of the vocabulary matrix (1 GB for bloom-560m); instead keep one [hidden, vocab] matrix and
            # gather the embeddings from its columns (a few columns per step; cheap).
            self.tied = lm.lm_head.weight.data_ptr() == lm.transformer.word_embeddings.weight.data_ptr()
            if self.tied:
                # contiguous: index_select on the transposed view takes ~16 s for a 250k vocabulary
                self.vocab_t = torch.nn.Parameter(lm.lm_head.weight.detach().t().contiguous(), requires_grad=False)
            else:
                self.lm_head = lm.lm_head

        def forward(self, input_ids, *past_length_keep):
            past, past_length, logits_to_keep = past_length_keep[:-2], past_length_keep[-2], past_length_keep[-1]
            t = self.transformer
            heads, head_dim = self.num_heads, self.head_dim
            ids = input_ids.reshape(-1)
            if self.tied:
                embeds = self.vocab_t.index_select(1, ids).t().unsqueeze(0)
            else:
                embeds = t.word_embeddings(ids).unsqueeze(0)
            hidden = t.word_embeddings_layernorm(embeds)  # [1, seq, hidden]
            dtype = hidden.dtype
            # Columns: the P past rows given, then the seq new positions. ALiBi over key positions (softmax ignores a
            # per-row shift, so the key's position is all that counts); masked: past rows from past_length on (there
            # only because an empty past is given as one row) and, causally, new position j for queries before j.
            seq = ids.shape[0]
            rows = past[0].shape[0]
            past_keys = torch.arange(rows, dtype=torch.int64)
            new_keys = torch.arange(seq, dtype=torch.int64)
            keys = torch.cat([past_keys, new_keys + past_length])
            bias = (self.alibi_slopes * keys.to(torch.float32)).to(dtype)  # [heads, 1, P + seq]
            blocked = torch.cat([(past_keys >= past_length).unsqueeze(0).expand(seq, rows),
                                 new_keys.unsqueeze(0) > new_keys.unsqueeze(1)], dim=1)  # [seq, P + seq]
            bias = bias.masked_fill(blocked, torch.finfo(dtype).min)  # [heads, seq, P + seq]
            new = []
            for i, block in enumerate(t.h):
                attn = block.self_attention
                normed = block.input_layernorm(hidden)
                residual = normed if self.post_ln_residual else hidden
                # -1, not seq: a constant shape (a traced seq would rebuild it with Concat every layer)
                qkv = attn.query_key_value(normed).view(-1, heads, 3, head_dim)
                q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [seq, heads, head_dim]: the cache's layout
                q = q * self.q_scale
                new += [k, v]
                # past and new keys apart: concatenating the new rows to the past would copy the past once more
                k_past, v_past = past[2 * i], past[2 * i + 1]
                scores = torch.cat([head_matmul(q, k_past, True, True), head_matmul(q, k, True, True)],
                                   dim=2)  # [heads, seq, P + seq]
                probs = torch.softmax((scores + bias).float(), dim=-1).to(dtype)
                context = (head_matmul(probs[:, :, :rows], v_past, False, False)
                           + head_matmul(probs[:, :, rows:], v, False, False))  # [heads, seq, head_dim]
                context = context.transpose(0, 1).reshape(1, -1, self.hidden)
                hidden = attn.dense(context) + residual
                normed = block.post_attention_layernorm(hidden)
                residual = normed if self.post_ln_residual else hidden
                mlp = block.mlp
                hidden = mlp.dense_4h_to_h(mlp.gelu_impl(mlp.dense_h_to_4h(normed))) + residual
            hidden = t.ln_f(hidden)
            # positions counted from the end (seq-1 ... 0); kept: the last logits_to_keep of them, or all for 0.
            # Tensor arithmetic only: a Python int here would freeze the traced value into the graph.
            from_end = torch.arange(seq).flip(0)
            kept = torch.nonzero((from_end < logits_to_keep) | (logits_to_keep <= 0)).reshape(-1)
            hidden = hidden.index_select(1, kept)
            logits = torch.matmul(hidden, self.vocab_t) if self.tied else self.lm_head(hidden)
            logits = logits.float().reshape(1, -1, self.vocab)
            return (logits, logits[0].argmax(-1), *new)

    return DecoderWithPast(model).eval()


@contextlib.contextmanager
def _shape_inference_without_weights():
    """The legacy exporter runs ONNX shape inference node by node, copying every weight a node reads into a scratch
    model each time: minutes for bloom-560m, pure overhead (weight shapes are already known from the trace; only small
    constants such as shape tensors can matter). Hand it the small parameters only, for the duration of one export."""
    import torch

    original = torch._C._jit_pass_onnx_graph_shape_type_inference

    def small_params_only(graph, params, opset):
        return original(graph, {k: v for k, v in params.items() if v.numel() <= 4096}, opset)

    torch._C._jit_pass_onnx_graph_shape_type_inference = small_params_only
    try:
        yield
    finally:
        torch._C._jit_pass_onnx_graph_shape_type_inference = original


def export_onnx(model, path: Path, *, fp16: bool = False) -> dict:
    """Write the decoder-with-past graph of a plain BLOOM model to `path` (+ path.data when large); returns file info."""
    import onnx
    import torch

    path = Path(path)
    dtype = torch.float16 if fp16 else torch.float32
    model = model.to(device="cpu", dtype=dtype).eval()
    shapes = _shapes(model.config)
    layers, heads, head_dim = shapes["num_layers"], shapes["num_heads"], shapes["head_dim"]
    wrapper = _decoder_with_past(model)
    # the graph's weights (the word-embedding matrix is not used by the graph when it is tied: vocab_t replaces it)
    weight_bytes = sum(t.numel() * t.element_size() for k, t in wrapper.state_dict().items()
                       if not (wrapper.tied and k == "transformer.word_embeddings.weight"))
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, shapes["vocab_size"], (1, TRACE_SEQ), generator=gen)
    past = [torch.randn(TRACE_ROWS, heads, head_dim, generator=gen).to(dtype) for _ in range(2 * layers)]

    scratch = path.parent / "onnx-scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    raw = scratch / MODEL_FILE
    with torch.no_grad(), warnings.catch_warnings(), _shape_inference_without_weights():
        warnings.simplefilter("ignore")  # TracerWarnings about Python-side branches that hold for every shape we serve
        torch.onnx.export(wrapper, (ids, *past, torch.tensor(TRACE_PAST), torch.tensor(0)), str(raw),
                          input_names=input_names(layers),
                          output_names=output_names(layers), dynamic_axes=_dynamic_axes(layers), opset_version=OPSET,
                          dynamo=False, do_constant_folding=True, custom_opsets={"com.microsoft": 1})
    del wrapper
    for f in path.parent.glob(path.name + "*"):
        f.unlink()
    data_name = path.name + ".data"
    if any(f.name != MODEL_FILE for f in scratch.iterdir()):
        _consolidate_external(raw, path, data_name)  # past 2 GiB torch writes one file per tensor
    elif weight_bytes > EXTERNAL_DATA_BYTES:
        onnx.save_model(onnx.load(str(raw)), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=1024)
    else:
        os.replace(raw, path)
    shutil.rmtree(scratch, ignore_errors=True)
    _declare_output_shapes(path, shapes)
    external = (path.parent / data_name).exists()
    onnx.checker.check_model(str(path))  # by path, so a model with external data is checked too
    return {"external_data": data_name if external else None, "weight_bytes": weight_bytes}


def _declare_output_shapes(path: Path, shapes: dict) -> None:
    """The exporter's shape inference loses the static dims of the outputs (batch 1, heads, head_dim, vocab) on the
    way through the logits_to_keep selection; declare the contract's shapes (the weights stay where they are)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    kv = ["seq", shapes["num_heads"], shapes["head_dim"]]
    for out in proto.graph.output:
        dims = {"logits": [1, "logits_seq", shapes["vocab_size"]], "next_tokens": ["logits_seq"]}.get(out.name, kv)
        shape = out.type.tensor_type.shape
        del shape.dim[:]
        for d in dims:
            dim = shape.dim.add()
            if isinstance(d, int):
                dim.dim_value = d
            else:
                dim.dim_param = d
    onnx.save_model(proto, str(path))


def _consolidate_external(src: Path, dst: Path, data_name: str) -> None:
    """Rewrite a model whose tensors live in one file each as dst + one data file, streaming the bytes (no parse)."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    proto = onnx.load(str(src), load_external_data=False)
    offset = 0
    with open(dst.parent / data_name, "wb") as out:
        for tensor in _get_all_tensors(proto):
            if not uses_external_data(tensor):
                continue
            info = {e.key: e.value for e in tensor.external_data}
            pad = (-offset) % 4096  # page-aligned, as onnx writes it, so onnxruntime can map it
            out.write(b"\0" * pad)
            offset += pad
            length = 0
            with open(src.parent / info["location"], "rb") as f:
                f.seek(int(info.get("offset", 0)))
                remaining = int(info["length"]) if "length" in info else -1
                while remaining != 0:
                    chunk = f.read(1 << 24 if remaining < 0 else min(1 << 24, remaining))
                    if not chunk:
                        break
                    out.write(chunk)
                    length += len(chunk)
                    remaining = remaining - len(chunk) if remaining > 0 else remaining
            del tensor.external_data[:]
            for key, value in (("location", data_name), ("offset", str(offset)), ("length", str(length))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            offset += length
    onnx.save_model(proto, str(dst))


QUANTIZATION_NAMES = {"int8": "int8 dynamic quantization", "int4": "4-bit block quantization"}


def quantize_weights(quantize: str, src: Path, dst: Path) -> None:
    """The float32 graph src (+ its data) quantized as `quantize` ("int8" or "int4") into dst."""
    (quantize_int8 if quantize == "int8" else quantize_int4)(src, dst)


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization of the MatMul weights (activations quantized on the fly by onnxruntime).

    The embedding Gather is quantized too: it reads the same [hidden, vocab] matrix as the lm_head MatMul, and
    leaving it float would keep that whole matrix in float32 beside its int8 copy (1 GB of 1.6 for bloom-560m)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    large = Path(str(src) + ".data").exists()
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gather"],
                     per_channel=False, use_external_data_format=large,
                     extra_options={"MatMulConstBOnly": True})
    _signed_shared_weights(Path(dst))


def _signed_shared_weights(path: Path) -> None:
    """quantize_dynamic stores the vocabulary matrix as uint8, not int8: the input-embedding Gather, which comes first,
    quantizes it, and the lm_head MatMul reuses it. onnxruntime's uint8 x uint8 kernel reads it at about half the rate
    of its uint8 x int8 one, and it is half of bloom-560m's int8 bytes. Shifting such a weight and its zero point by
    -128 keeps every q - zero_point, so the graph computes the same values (measured: the same logits, decode step
    1.1-1.2x faster)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))  # external data too: the tensors are rewritten
    inits = {t.name: t for t in proto.graph.initializer}
    readers: dict[str, set] = {}
    for node in proto.graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.op_type)
    # ops that take int8 where they took uint8, with the zero point's type following the data's
    accepting = {"Gather", "DequantizeLinear", "MatMulInteger"}
    targets: set[str] = set()
    for node in proto.graph.node:
        if node.op_type != "MatMulInteger" or len(node.input) < 4:
            continue
        weight, zero_point = inits.get(node.input[1]), inits.get(node.input[3])
        if (weight is None or zero_point is None or weight.data_type != onnx.TensorProto.UINT8
                or not readers[weight.name] | readers[zero_point.name] <= accepting):
            continue
        targets.update((weight.name, zero_point.name))
    if not targets:
        return
    for name in targets:
        t = inits[name]
        t.CopyFrom(numpy_helper.from_array((numpy_helper.to_array(t).astype(np.int16) - 128).astype(np.int8), name))
    data = Path(str(path) + ".data")
    external = data.exists()
    if external:
        data.unlink()  # loaded above; onnx appends to an existing data file
    onnx.save_model(proto, str(path), save_as_external_data=external, all_tensors_to_one_file=True,
                    location=data.name, size_threshold=1024)


# 4-bit: onnxruntime's MatMulNBits (weights in blocks of INT4_BLOCK along K, one float scale a block, symmetric) with
# accuracy level 4 (activations quantized to int8 per block: the fastest CPU kernel, measured 0.72x the int8 step)
INT4_BLOCK = 32
INT4_ACCURACY_LEVEL = 4


def quantize_int4(src: Path, dst: Path) -> None:
    """Block-wise 4-bit weights for every MatMul with a constant weight (onnxruntime's MatMulNBitsQuantizer), and the
    input-embedding Gather on the same 4-bit bytes as the lm_head (GatherBlockQuantized), so the float vocabulary
    matrix is not kept: for a tied BLOOM it would be most of the file (bloom-560m: 1.03 GB beside 0.35 GB)."""
    import logging

    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    logging.getLogger(MatMulNBitsQuantizer.__module__).setLevel(logging.WARNING)  # a line per node otherwise
    large = Path(str(src) + ".data").exists()
    proto = onnx.load(str(src))  # with its external data: every weight is rewritten
    index_ranks = _gather_index_ranks(proto)
    quantizer = MatMulNBitsQuantizer(proto, bits=4, block_size=INT4_BLOCK, is_symmetric=True,
                                     accuracy_level=INT4_ACCURACY_LEVEL, op_types_to_quantize=("MatMul",))
    quantizer.process()
    proto = quantizer.model.model
    _block_quantized_gathers(proto, index_ranks)
    for f in (Path(dst), Path(str(dst) + ".data")):
        if f.exists():
            f.unlink()  # onnx appends to an existing data file
    onnx.save_model(proto, str(dst), save_as_external_data=large, all_tensors_to_one_file=True,
                    location=Path(str(dst) + ".data").name, size_threshold=1024)


def _gather_index_ranks(proto) -> dict[str, int]:
    """Gather node name -> rank of its indices, for the Gathers that read a 2-D float initializer (shape inference on
    the graph without its weights' values)."""
    import onnx

    inits = {t.name: t for t in proto.graph.initializer}
    gathers = [n for n in proto.graph.node if n.op_type == "Gather" and n.input[0] in inits
               and len(inits[n.input[0]].dims) == 2 and inits[n.input[0]].data_type == onnx.TensorProto.FLOAT]
    if not gathers:
        return {}
    # the graph without its weights' values (they are graph inputs of known shape): cheap to infer, whatever its size
    bare = onnx.helper.make_model(
        onnx.helper.make_graph(list(proto.graph.node), "shapes", [*proto.graph.input, *(
            onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in proto.graph.initializer)],
            list(proto.graph.output)), opset_imports=list(proto.opset_import), ir_version=proto.ir_version)
    inferred = onnx.shape_inference.infer_shapes(bare)
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in
             [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
             if v.type.tensor_type.HasField("shape")}
    out = {}
    for n in gathers:
        if n.input[1] not in ranks:
            raise RuntimeError(f"the rank of {n.input[1]} (indices of {n.name}) is unknown")
        out[n.name] = ranks[n.input[1]]
    return out


def _block_quantized_gathers(proto, index_ranks: dict[str, int]) -> None:
    """Each Gather of a float [K, N] matrix that the quantizer turned into MatMulNBits weights (BLOOM's tied vocabulary:
    gathered along N for the embeddings, multiplied for the logits) becomes a GatherBlockQuantized on those 4-bit
    bytes. MatMulNBits stores the matrix as [N, K/block, block/2] (a row per column of the float one, its 4-bit values
    in blocks along K), the layout GatherBlockQuantized reads with uint8 data: gathered along axis 0, quantized along the
    last; no zero points = 8, as in symmetric MatMulNBits. An untied embedding matrix [vocab, hidden] gathered along
    axis 0 is quantized the same way on its own."""
    import numpy as np
    from onnx import helper, numpy_helper
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, DefaultWeightOnlyQuantizer

    inits = {t.name: t for t in proto.graph.initializer}
    nodes = []
    for node in proto.graph.node:
        data = inits.get(node.input[0]) if node.op_type == "Gather" else None
        if data is None or node.name not in index_ranks:
            nodes.append(node)
            continue
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)
        k_dim, n_dim = (data.dims[1], data.dims[0]) if axis == 0 else (data.dims[0], data.dims[1])
        q_name, s_name = data.name + "_Q4", data.name + "_scales"
        if q_name not in inits:  # not a MatMul weight (an untied embedding): quantize it as one, [K, N]
            w = numpy_helper.to_array(data)
            quantizer = DefaultWeightOnlyQuantizer(DefaultWeightOnlyQuantConfig(
                block_size=INT4_BLOCK, is_symmetric=True, accuracy_level=INT4_ACCURACY_LEVEL, bits=4))
            packed, scales, _ = quantizer.qbits_block_quant(np.ascontiguousarray(w.T if axis == 0 else w))
            for t in (numpy_helper.from_array(packed, q_name), numpy_helper.from_array(scales, s_name)):
                proto.graph.initializer.append(t)
                inits[t.name] = t
        blocks, rank = inits[q_name].dims[1], index_ranks[node.name]
        p = node.name or data.name + "_gather"
        consts = {"scales_shape": [n_dim, blocks, 1], "rows_shape": [0] * rank + [blocks * INT4_BLOCK],
                  "k_start": [0], "k_end": [k_dim], "k_axis": [rank]}
        for name, value in consts.items():
            proto.graph.initializer.append(numpy_helper.from_array(np.array(value, np.int64), f"{p}_{name}"))
        rows = node.output[0] if axis == 0 else f"{p}_Q4_rows"  # [*indices, K]
        padded = blocks * INT4_BLOCK != k_dim
        # the [N, K/block] scales as the [N, K/block, 1] GatherBlockQuantized wants: a Reshape onnxruntime folds at load
        nodes += [
            helper.make_node("Reshape", [s_name, f"{p}_scales_shape"], [f"{p}_scales_3d"], name=f"{p}_scales_reshape"),
            helper.make_node("GatherBlockQuantized", [q_name, node.input[1], f"{p}_scales_3d"], [f"{p}_Q4_blocks"],
                             name=f"{p}_Q4", domain="com.microsoft", gather_axis=0, quantize_axis=2,
                             block_size=INT4_BLOCK, bits=4),
            helper.make_node("Reshape", [f"{p}_Q4_blocks", f"{p}_rows_shape"], [f"{p}_Q4_padded" if padded else rows],
                             name=f"{p}_Q4_reshape")]
        if padded:  # K rounded up to whole blocks: cut the padding
            nodes.append(helper.make_node("Slice", [f"{p}_Q4_padded", f"{p}_k_start", f"{p}_k_end", f"{p}_k_axis"],
                                          [rows], name=f"{p}_Q4_unpad"))
        if axis == 1:  # the float Gather's [K, *indices]
            nodes.append(helper.make_node("Transpose", [rows], [node.output[0]], name=f"{p}_Q4_transpose",
                                          perm=[rank, *range(rank)]))
    proto.graph.ClearField("node")
    proto.graph.node.extend(nodes)
    used = {i for n in proto.graph.node for i in n.input}
    keep = [t for t in proto.graph.initializer if t.name in used]
    proto.graph.ClearField("initializer")
    proto.graph.initializer.extend(keep)
    if not any(o.domain == "com.microsoft" for o in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid("com.microsoft", 1))


# ---------------------------------------------------------------------------------------------------------------
# export folder


def _versions() -> dict:
    from importlib import metadata

    from . import __version__

    out: dict[str, str | None] = {}
    for name in ("torch", "transformers", "peft", "onnx", "onnxruntime"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["bloom_peft"] = __version__
    return out


def _special_id(tokenizer, config, name: str):
    value = getattr(tokenizer, f"{name}_token_id", None) if tokenizer is not None else None
    return value if value is not None else getattr(config, f"{name}_token_id", None)


def save_tokenizer(tokenizer, path: Path) -> None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ExportError("the tokenizer is not a fast (tokenizers) tokenizer, so it has no tokenizer.json",
                          hint="BLOOM models ship tokenizer.json; load the model folder that holds it.")
    backend.save(str(path))


def save_prefix_kv(prefix, path: Path, dtype) -> None:
    from safetensors.torch import save_file

    tensors = {}  # [prefix_length, heads, head_dim]: the graph's past layout (peft's is [1, heads, P, head_dim])
    for i, (k, v) in enumerate(prefix):
        tensors[f"past_key_values.{i}.key"] = k[0].transpose(0, 1).to(device="cpu", dtype=dtype).contiguous()
        tensors[f"past_key_values.{i}.value"] = v[0].transpose(0, 1).to(device="cpu", dtype=dtype).contiguous()
    save_file(tensors, str(path), metadata={"format": "bloom_peft.prefix_kv", "prefix_length": str(prefix[0][0].shape[2])})


VERIFY_IDS, VERIFY_NEXT = [5, 17, 42], 7


def reference_logits(model, prefix):
    """PyTorch logits of the served model for a fixed short input (3 tokens, then 1 more), prefix included."""
    import torch
    from transformers.cache_utils import DynamicCache

    vocab = model.config.vocab_size
    ids = torch.tensor([[min(i, vocab - 1) for i in VERIFY_IDS + [VERIFY_NEXT]]])
    p = prefix[0][0].shape[2] if prefix is not None else 0
    with torch.no_grad():
        cache = DynamicCache(tuple((k.float().cpu(), v.float().cpu()) for k, v in prefix)) if prefix is not None else None
        return model.float().cpu()(input_ids=ids, attention_mask=torch.ones(1, p + ids.shape[1], dtype=torch.long),
                                   past_key_values=cache, use_cache=cache is not None).logits.numpy()


def ort_logits(export_dir: Path, config) -> Any:
    """The same logits from the exported files through onnxruntime: prefill 3 tokens, then decode 1 with the past."""
    import numpy as np
    import onnxruntime as ort
    from safetensors.numpy import load_file

    shapes = _shapes(config)
    layers = shapes["num_layers"]
    names = past_names(layers)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = min(2, os.cpu_count() or 1)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting on a shared machine
    session = ort.InferenceSession(str(export_dir / MODEL_FILE), opts, providers=["CPUExecutionProvider"])
    past_type = next(i.type for i in session.get_inputs() if i.name == names[0])
    np_dtype = np.float16 if "float16" in past_type else np.float32
    if (export_dir / PREFIX_FILE).exists():
        stored = load_file(str(export_dir / PREFIX_FILE))
        past = [stored[n] for n in names]
    else:
        past = [np.zeros((0, shapes["num_heads"], shapes["head_dim"]), np_dtype) for _ in names]
    vocab = shapes["vocab_size"]
    every = {"logits_to_keep": np.array(0, np.int64)}
    fetch = ["logits", "next_tokens"] + new_kv_names(layers)
    logits = []
    for ids in ([min(i, vocab - 1) for i in VERIFY_IDS], [min(VERIFY_NEXT, vocab - 1)]):
        given = [p if len(p) else np.zeros((1, *p.shape[1:]), np_dtype) for p in past]  # an empty past: one row
        out = session.run(fetch, {"input_ids": np.array([ids], np.int64), **dict(zip(names, given)),
                                  "past_length": np.array(len(past[0]), np.int64), **every})
        # greedy decoding trusts next_tokens instead of the logits: they must be their argmax (first index on ties)
        if out[1].tolist() != out[0][0].argmax(-1).tolist():
            raise ExportError(f"the exported graph's next_tokens {out[1].tolist()} are not the argmax "
                              f"{out[0][0].argmax(-1).tolist()} of its own logits", file=str(export_dir / MODEL_FILE))
        logits.append(out[0])
        past = [np.concatenate([p, n], axis=0) for p, n in zip(past, out[2:])]
    return np.concatenate(logits, axis=1)


def build_manifest(*, method: str, base_model: str, config, tokenizer, fp16: bool, quantization: str,
                   prefix_length: int, template: dict | None, instruction_tuned: bool, external_data: list[str],
                   run_dir: str | None, verification: dict | None = None) -> dict:
    manifest = {
        "format_version": FORMAT_VERSION,
        "method": method,
        "base_model": base_model,
        "dtype": "float16" if fp16 else "float32",
        "quantization": quantization,
        **_shapes(config),
        "prefix_length": prefix_length,
        "eos_token_id": _special_id(tokenizer, config, "eos"),
        "pad_token_id": _special_id(tokenizer, config, "pad"),
        "bos_token_id": _special_id(tokenizer, config, "bos"),
        "template": template,
        "instruction_tuned": instruction_tuned,
        "files": {"model": MODEL_FILE, "model_data": external_data, "tokenizer": TOKENIZER_FILE,
                  "prefix_kv": PREFIX_FILE if prefix_length else None},
        "tools": _versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "run_dir": run_dir,
    }
    if verification is not None:
        manifest["verification"] = verification
    return manifest


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace `out` with the finished `tmp`; the old export survives as out.old until the new one is in place."""
    old = out.with_name(out.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        if old.exists() and not out.exists():
            os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def check_options(quantize: str, fp16: bool) -> None:
    if quantize not in QUANTIZATIONS:
        choices = ", ".join(f"'{q}'" for q in QUANTIZATIONS)
        raise ConfigError(f"unknown quantization '{quantize}'", field="/export/quantize", hint=f"Use one of {choices}.")
    if quantize != "none" and fp16:
        # both quantizers take a float32 graph: onnxruntime's int8 dynamic quantization and its 4-bit MatMulNBits keep
        # float32 scales and activations on CPU
        raise ConfigError(f"{quantize} quantization and fp16 cannot be combined", field="/export/fp16",
                          hint=f"Choose one: {quantize} (smaller, faster on CPU) or fp16; {quantize} quantizes a float32 graph.")


def export_model(model, tokenizer, method: str, out_dir, *, base_model: str, template: dict | None = None,
                 instruction_tuned: bool = False, fp16: bool = False, quantize: str = "none",
                 run_dir: str | None = None, emitter=None, verify: bool = True, base_entry: Path | None = None) -> Path:
    """Export a trained model (PeftModel for peft methods, BloomForCausalLM for bitfit/full) to `out_dir`.

    base_entry: the export cache's entry for the model's base (export_cache.ensure_base_export, same fp16/quantize):
    only what the adapter changes is written; without one (or when the changes do not fit it) the whole model is."""
    import torch

    out = Path(out_dir).resolve()
    check_options(quantize, fp16)
    log = (lambda msg: emitter.log(msg)) if emitter is not None else (lambda msg: None)
    # a leftover out.old means a swap was interrupted after the old export moved away: put it back first
    old = out.with_name(out.name + ".old")
    if old.exists() and not out.exists():
        os.replace(old, out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        t0 = time.time()
        serving, prefix = reduce_for_serving(model, method)
        dtype = torch.float16 if fp16 else torch.float32
        reference = reference_logits(serving, prefix) if verify else None  # fp32, before any conversion
        log(f"export: {method} reduced to {'merged weights' if prefix is None else f'a {prefix[0][0].shape[2]}-token prefix KV'}")
        if prefix is not None:
            save_prefix_kv(prefix, tmp / PREFIX_FILE, dtype)
        external = None
        if base_entry is not None:
            from .export_cache import write_adapter_export

            external = write_adapter_export(base_entry, serving, tmp, log=log)
        if external is None:
            external = _export_whole(serving, tmp, fp16=fp16, quantize=quantize, log=log)
        log(f"export: ONNX graph ready in {time.time() - t0:.1f}s")
        save_tokenizer(tokenizer, tmp / TOKENIZER_FILE)
        verification = None
        if verify:
            diff = float(abs(ort_logits(tmp, serving.config) - reference).max())
            verification = {"max_abs_logit_diff": diff}
            if not fp16 and quantize == "none" and not diff <= FP32_TOLERANCE:
                raise ExportError(f"the exported graph does not reproduce PyTorch (max logit difference {diff:.3g})",
                                  hint="Report this with the manifest's tool versions; the previous export is kept.")
            log(f"export: onnxruntime matches PyTorch to {diff:.2g} (max abs logit difference)")
        manifest = build_manifest(
            method=method, base_model=base_model, config=serving.config, tokenizer=tokenizer, fp16=fp16,
            quantization=quantize, prefix_length=int(prefix[0][0].shape[2]) if prefix is not None else 0,
            template=template, instruction_tuned=instruction_tuned, external_data=external, run_dir=run_dir,
            verification=verification)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _export_whole(serving, tmp: Path, *, fp16: bool, quantize: str, log) -> list[str]:
    """Trace and write the whole served model (then quantize it); returns its external data file names."""
    t0 = time.time()
    info = export_onnx(serving, tmp / MODEL_FILE, fp16=fp16)
    log(f"export: ONNX graph written ({info['weight_bytes'] / 1e6:.1f} MB of weights) in {time.time() - t0:.1f}s")
    external = info["external_data"]
    if quantize != "none":
        t0 = time.time()
        fp_path = tmp / "model.fp.onnx"
        os.replace(tmp / MODEL_FILE, fp_path)
        if external:
            os.replace(tmp / external, tmp / "model.fp.onnx.data")
            # onnx resolves external data by the location recorded in the graph: rewrite it for the new name
            _relocate_external(fp_path, "model.fp.onnx.data")
        quantize_weights(quantize, fp_path, tmp / MODEL_FILE)
        for f in tmp.glob("model.fp.onnx*"):
            f.unlink()
        external = DATA_FILE if (tmp / DATA_FILE).exists() else None
        log(f"export: {QUANTIZATION_NAMES[quantize]} done in {time.time() - t0:.1f}s")
    return [external] if external else []


def _relocate_external(model_path: Path, location: str) -> None:
    import onnx

    proto = onnx.load(str(model_path), load_external_data=False)
    for t in proto.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save_model(proto, str(model_path))


# ---------------------------------------------------------------------------------------------------------------
# entry points: a run, or a base model + adapter folder


def template_for(config: Config | None) -> tuple[dict | None, bool]:
    """(manifest template, instruction_tuned) of a training config, as data.render_example applies it.

    None (an adapter without its run config) means the project's default recipe: the tutorial's template. Text-corpus
    runs have no template: the model continues raw text. A hub dataset is assumed to be instruction rows."""
    from .data import DEFAULT_TEMPLATE

    if config is not None and config.data is not None and config.data.format == "text":
        return None, False
    tpl = config.template if config is not None else DEFAULT_TEMPLATE
    return {"prompt": tpl.prompt, "response_prefix": tpl.response_prefix}, True


def _read_run_config(run_dir: Path) -> Config:
    from .config import load_config

    return load_config(run_dir / "config.json")


def _cpu_base(model: ModelSection, seed: int | None = None):
    import torch

    from .model_loading import load_base_model

    if model.config_only and seed is not None:
        # random weights: seeded exactly as train.py seeds before building the model, so they are the same ones
        from accelerate.utils import set_seed

        set_seed(seed)
    return load_base_model(model, device="cpu", dtype=torch.float32)


def export_run(run_dir, emitter=None, *, out=None, quantize: str | None = None, fp16: bool | None = None,
               base_cache: Path | None | str = "default") -> Path:
    """Export RUN_DIR/adapter (trained with RUN_DIR/config.json) to RUN_DIR/export (or `out`).

    base_cache: the export cache folder ("default": export_cache.default_cache_dir(); None: export the whole model)."""
    from .methods import load_trained

    run_dir = Path(run_dir).resolve()
    config = _read_run_config(run_dir)
    adapter = run_dir / "adapter"
    if not adapter.is_dir():
        raise ExportError(f"{adapter} does not exist: the run has not saved an adapter yet",
                          hint="Export after training finishes (or resume the run to let it finish).", file=str(adapter))
    quantize = quantize or config.export.quantize
    fp16 = config.export.fp16 if fp16 is None else fp16
    check_options(quantize, fp16)
    method = config.method.name
    if config.model.config_only and method != "full" and emitter is not None:
        emitter.log("export: the base model has random weights (config_only); rebuilt from the run's seed")
    if method == "full":  # the adapter folder is the whole model; the base is not needed
        base, tokenizer = None, _full_tokenizer(adapter, config.model.name_or_path)
    else:
        base, tokenizer = _cpu_base(config.model, config.training.seed)
    entry = _base_entry(base, base_cache, fp16=fp16, quantize=quantize, emitter=emitter)
    model = load_trained(base, config.method, adapter)
    template, instruction_tuned = template_for(config)
    return export_model(model, tokenizer, method, Path(out) if out else run_dir / "export",
                        base_model=config.model.name_or_path, template=template,
                        instruction_tuned=instruction_tuned, fp16=fp16, quantize=quantize, run_dir=str(run_dir),
                        emitter=emitter, base_entry=entry)


def _base_entry(base, base_cache, *, fp16: bool, quantize: str, emitter) -> Path | None:
    """The export cache's entry for `base` (before an adapter touches it), or None: no base, no cache, or a cache
    that cannot be used (the export then writes the whole model, as it always can)."""
    if base is None or base_cache is None:
        return None
    from .export_cache import default_cache_dir, ensure_base_export

    log = (lambda msg: emitter.log(msg)) if emitter is not None else (lambda msg: None)
    cache = default_cache_dir() if base_cache == "default" else Path(base_cache)
    try:
        return ensure_base_export(base, cache, fp16=fp16, quantize=quantize, log=log)
    except OSError as e:  # a read-only or full cache folder must not cost the user the export
        log(f"export: the export cache {cache} is not usable ({e}); exporting the whole model")
        return None


def export_adapter(model_name: str | None, adapter_dir, out, *, emitter=None, quantize: str = "none",
                   fp16: bool = False, base_cache: Path | None | str = "default") -> Path:
    """Export a base model + adapter folder (method detected from the folder); no adapter = the base model itself."""
    from .methods import detect_method, load_trained

    check_options(quantize, fp16)
    if adapter_dir is None:
        if not model_name:
            raise ConfigError("give --run-dir, or --model (and --adapter)", field="--model",
                              hint="python -m bloom_peft export --model embedded --adapter ADAPTER_DIR --out OUT_DIR")
        base, tokenizer = _cpu_base(parse_model(model_name))
        entry = _base_entry(base, base_cache, fp16=fp16, quantize=quantize, emitter=emitter)
        return export_model(base, tokenizer, "full", out, base_model=model_name, template=None,
                            instruction_tuned=False, fp16=fp16, quantize=quantize, emitter=emitter, base_entry=entry)
    adapter = Path(adapter_dir).resolve()
    if not adapter.is_dir():
        raise ExportError(f"adapter folder not found: {adapter}", hint="Give the adapter/ folder of a run.", file=str(adapter))
    method = detect_method(adapter)
    # an adapter inside a run folder carries its run's template
    run_config = None
    if (adapter.parent / "config.json").is_file():
        try:
            run_config = _read_run_config(adapter.parent)
        except TrainerError:
            run_config = None
    if model_name is None:
        model_name = _adapter_base_name(adapter, method, run_config)
    if method == "full":
        base, tokenizer = None, _full_tokenizer(adapter, model_name)
    else:
        base, tokenizer = _cpu_base(parse_model(model_name))
    entry = _base_entry(base, base_cache, fp16=fp16, quantize=quantize, emitter=emitter)
    model = load_trained(base, adapter)
    template, instruction_tuned = template_for(run_config)
    return export_model(model, tokenizer, method, out, base_model=model_name, template=template,
                        instruction_tuned=instruction_tuned, fp16=fp16, quantize=quantize,
                        run_dir=str(adapter.parent) if run_config else None, emitter=emitter, base_entry=entry)


def _full_tokenizer(adapter: Path, base_name: str):
    from .model_loading import load_tokenizer

    return load_tokenizer(str(adapter) if (adapter / TOKENIZER_FILE).is_file() else base_name)


def _adapter_base_name(adapter: Path, method: str, run_config: Config | None) -> str:
    if run_config is not None:
        return run_config.model.name_or_path
    for name in ("adapter_config.json", "bitfit_config.json"):
        f = adapter / name
        if f.is_file():
            base = json.loads(f.read_text(encoding="utf-8")).get("base_model_name_or_path")
            if base:
                return base
    if method == "full":
        return str(adapter)
    raise ModelError(f"{adapter} does not name its base model", field="--model",
                     hint="Pass --model (hub id, folder or 'embedded') with --adapter.")


def run(args) -> int:
    """`python -m bloom_peft export`: events on stdout (log..., then done with export_dir, or error)."""
    from .protocol import claim_stdout

    emitter = claim_stdout()
    t0 = time.time()
    try:
        if args.run_dir:
            from .runlock import RunLock

            with RunLock(Path(args.run_dir).resolve(), "export"):  # never beside a trainer writing the same run
                out = export_run(args.run_dir, emitter, out=args.out, quantize=args.quantize,
                                 fp16=True if args.fp16 else None)
            adapter_dir: str | None = str(Path(args.run_dir).resolve() / "adapter")
        else:
            if not args.out:
                raise ConfigError("--out is required with --model/--adapter", field="--out",
                                  hint="python -m bloom_peft export --model M --adapter A --out DIR")
            out = export_adapter(args.model, args.adapter, args.out, emitter=emitter,
                                 quantize=args.quantize or "none", fp16=bool(args.fp16))
            adapter_dir = str(Path(args.adapter).resolve()) if args.adapter else None
    except TrainerError as e:
        emitter.error(**e.event_fields())
        return e.exit_code
    except Exception as e:  # noqa: BLE001 - reported to the host as an event, with the traceback on stderr
        import traceback

        traceback.print_exc()
        emitter.error("export_failed", f"{type(e).__name__}: {e}", hint="See trainer.log for the traceback; the previous export is kept.")
        return 1
    emitter.emit("done", status="completed", step=0, adapter_dir=adapter_dir, export_dir=str(out),
                 metrics={"runtime_s": round(time.time() - t0, 3)})
    return 0

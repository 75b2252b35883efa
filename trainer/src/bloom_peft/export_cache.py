"""Base-model export cache: a base model's ONNX graph and weights are exported once and kept, keyed by a hash of its
weights; an adapter export then writes only what the adapter changes (docs/export.md, "Base cache").

An entry (CACHE/<key>/) holds the graph (`model.onnx`), its weights (`model.onnx.data`) and `map.json`: for every
parameter of the base model, the digest of its values and the initializers that hold it (transposed or not; for int8
and int4 entries, quantized or float). An adapter export compares the served model's parameters with those digests and
writes the changed ones, in the graph's form (transposed, quantized exactly as the whole export's quantizer does), to `adapter.onnx.data`; its `model.onnx` is the entry's graph with those initializers pointed there, and its
`model.onnx.data` is a copy of the entry's weights made by the kernel (a reflink where the file system can).

The graph of an entry is traced from a probe: a copy of the base whose every parameter is filled with distinct random
values, so that no two parameters share an initializer (the exporter merges initializers with equal values, as the
zero biases and unit LayerNorm weights of a randomly initialised model are) and each initializer is found by value.
The real weights are then written through that map and checked against PyTorch.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CACHE_ENV = "BLOOM_PEFT_EXPORT_CACHE"
# bump when the entry layout or the exported graph changes: old entries are then never matched (and age out)
CACHE_LAYOUT = 6  # 6: export format 6 (next_tokens for every kept position); 5: q scaled per head (attention matmuls at alpha 1); 4: export format 5 (position-major past); 3: format 4 with next_token (2: the reverted GQA format 4)
KEEP_ENTRIES = 3
MAP_FILE, BASE_DATA, ADAPTER_DATA = "map.json", "model.onnx.data", "adapter.onnx.data"
ALIGN = 4096  # page-aligned tensors, as onnx writes them, so onnxruntime can map them
# constants the exporter makes (shapes, scalars) are small; a larger float initializer that matches no parameter would
# be derived from weights, and the probe's values would leak into the graph: such a graph is not cached
CONSTANT_MAX_ELEMENTS = 16
# an entry's logits must be this close to PyTorch's (x max(1, max |logit|)) to be kept: a wrongly mapped weight is far
# off, quantization noise is not (the embedded model: int8 0.03x, int4 0.23x)
QUANTIZED_BOUND = {"int8": 0.1, "int4": 0.5}


def default_cache_dir() -> Path:
    """BLOOM_PEFT_EXPORT_CACHE (the extension passes its global storage), else the user's cache folder."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bloom-peft" / "export-base"


def _tensor_digest(t) -> str:
    import torch
    import xxhash

    a = t.detach().to("cpu").contiguous()
    h = xxhash.xxh3_128(f"{a.dtype}{tuple(a.shape)}".encode())
    h.update(memoryview(a.view(torch.uint8).reshape(-1).numpy()))
    return h.hexdigest()


def parameter_digests(model) -> dict[str, str]:
    """name -> digest of the values, for every tensor of the model's state dict (tied ones under each name)."""
    return {name: _tensor_digest(t) for name, t in model.state_dict().items()}


def entry_key(model, digests: dict[str, str], *, fp16: bool, quantize: str) -> str:
    import xxhash

    from .export import FORMAT_VERSION, _versions

    config = {k: v for k, v in model.config.to_dict().items() if k not in ("_name_or_path", "transformers_version")}
    tools = {k: v for k, v in _versions().items() if k in ("torch", "transformers", "onnx", "onnxruntime")}
    what = {"layout": CACHE_LAYOUT, "format": FORMAT_VERSION, "tools": tools, "config": config,
            "dtype": "float16" if fp16 else "float32", "quantization": quantize, "digests": sorted(digests.items())}
    return xxhash.xxh3_128(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# building an entry


def ensure_base_export(base_model, cache_dir: Path, *, fp16: bool, quantize: str,
                       log: Callable[[str], None] = lambda m: None) -> Path | None:
    """The cache entry for this base model (built now when missing), or None when this graph cannot be cached (the
    caller then exports the whole model). `base_model` is a plain BloomForCausalLM; it is not modified."""
    digests = parameter_digests(base_model)
    key = entry_key(base_model, digests, fp16=fp16, quantize=quantize)
    cache_dir = Path(cache_dir)
    entry = cache_dir / key
    if (entry / MAP_FILE).is_file():
        os.utime(entry / MAP_FILE)  # most recently used: kept longest
        log(f"export: base model found in the export cache ({entry})")
        return entry
    log(f"export: base model not in the export cache yet: exporting it once ({entry})")
    t0 = time.time()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f"{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        reason = _build_entry(base_model, digests, tmp, fp16=fp16, quantize=quantize)
        if reason is not None:
            log(f"export: this base model's graph cannot be cached ({reason}); exporting the whole model")
            return None
        try:
            os.rename(tmp, entry)
        except OSError:  # another export built the same entry meanwhile
            if not (entry / MAP_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"export: base model cached in {time.time() - t0:.1f}s")
    _evict(cache_dir, keep=entry)
    return entry


def _evict(cache_dir: Path, keep: Path) -> None:
    """Keep the KEEP_ENTRIES most recently used entries (each is a whole model's weights)."""
    entries = sorted((d for d in cache_dir.iterdir() if (d / MAP_FILE).is_file()),
                     key=lambda d: (d == keep, (d / MAP_FILE).stat().st_mtime), reverse=True)
    for old in entries[KEEP_ENTRIES:]:
        shutil.rmtree(old, ignore_errors=True)


def _build_entry(base_model, digests: dict[str, str], out: Path, *, fp16: bool, quantize: str) -> str | None:
    import numpy as np
    import onnx
    import torch
    from onnx import numpy_helper

    from .export import (
        FP32_TOLERANCE,
        MODEL_FILE,
        alibi_slopes,
        export_onnx,
        ort_logits,
        quantize_weights,
        reference_logits,
    )

    dtype = torch.float16 if fp16 else torch.float32
    # the probe: the same architecture (and tying) with distinct values everywhere
    probe = copy.deepcopy(base_model).to(device="cpu", dtype=dtype)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in probe.parameters():
            p.copy_(torch.rand(p.shape, generator=gen, dtype=torch.float32).to(dtype) + 0.5)
    names_by_ptr: dict[int, list[str]] = {}
    for name, t in probe.state_dict().items():
        names_by_ptr.setdefault(t.data_ptr(), []).append(name)
    probe_dir = out / "probe"
    probe_dir.mkdir()
    export_onnx(probe, probe_dir / MODEL_FILE, fp16=fp16)

    def head(a) -> bytes:  # the first values in memory order: a fingerprint that distinct random values make unique
        return np.ascontiguousarray(a.reshape(-1)[:8]).tobytes()

    def head_t(a) -> bytes:  # head(a.T) without transposing the whole matrix
        return np.ascontiguousarray(a.T[: -(-8 // a.shape[0])]).reshape(-1)[:8].tobytes()

    probe_state = probe.state_dict()
    direct: dict[tuple, tuple[str, Any]] = {}
    transposed: dict[tuple, tuple[str, Any]] = {}
    for names in names_by_ptr.values():
        a = probe_state[names[0]].detach().numpy()
        direct[(a.shape, head(a))] = (names[0], a)
        if a.ndim == 2:
            transposed[(a.T.shape, head_t(a))] = (names[0], a)
    proto = onnx.load(str(probe_dir / MODEL_FILE), load_external_data=False)
    # the architecture's own constant: ALiBi slopes depend on the head count only, never on weights
    slopes = alibi_slopes(base_model.config.n_head).to(dtype).numpy()
    targets: dict[str, list[dict]] = {}
    for init in proto.graph.initializer:
        if init.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
            continue
        arr = numpy_helper.to_array(init, base_dir=str(probe_dir))
        found = None
        hit = direct.get((arr.shape, head(arr)))
        if hit is not None and np.array_equal(arr, hit[1]):
            found = (hit[0], False)
        else:
            hit = transposed.get((arr.shape, head(arr)))
            if hit is not None and np.array_equal(arr, hit[1].T):
                found = (hit[0], True)
        if found is None:
            if arr.size > CONSTANT_MAX_ELEMENTS and not np.array_equal(arr.reshape(-1), slopes):
                return f"initializer {init.name} {list(arr.shape)} matches no parameter"
            continue
        targets.setdefault(found[0], []).append({"initializer": init.name, "transpose": found[1]})
    del probe, probe_state, direct, transposed

    # the graph with the real weights, every parameter's initializer in model.onnx.data
    real = base_model.state_dict()
    fp_dir = out / "fp" if quantize != "none" else out
    fp_dir.mkdir(exist_ok=True)
    by_init = {t["initializer"]: (name, t["transpose"]) for name, ts in targets.items() for t in ts}
    offset = 0
    with open(fp_dir / BASE_DATA, "wb") as data:
        for init in proto.graph.initializer:
            if init.name not in by_init:
                if init.data_location == onnx.TensorProto.EXTERNAL:  # a small constant the exporter put outside
                    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init, base_dir=str(probe_dir)), init.name))
                continue
            name, transpose = by_init[init.name]
            a = real[name].detach().to(dtype).numpy()
            offset = _write_external(init, np.ascontiguousarray(a.T if transpose else a), data, offset, BASE_DATA)
    onnx.save_model(proto, str(fp_dir / MODEL_FILE))
    shutil.rmtree(probe_dir)

    if quantize != "none":
        quantize_weights(quantize, fp_dir / MODEL_FILE, out / MODEL_FILE)
        shutil.rmtree(fp_dir)
    # the entry reproduces PyTorch within the export's tolerance for its precision (docs/export.md)
    reference = reference_logits(base_model, None)
    diff = float(abs(ort_logits(out, base_model.config) - reference).max())
    scale = max(1.0, float(abs(reference).max()))
    bound = QUANTIZED_BOUND[quantize] * scale if quantize != "none" else 1e-2 * scale if fp16 else FP32_TOLERANCE
    if not diff <= bound:
        return f"the cached graph differs from PyTorch by {diff:.3g}"
    params = {}
    kinds = _initializer_kinds(out / MODEL_FILE) if quantize != "none" else None
    for names in names_by_ptr.values():
        ts = targets.get(names[0])
        if ts is not None and kinds is not None:
            ts = [{**t, "kind": kinds.get(t["initializer"])} for t in ts]
            if any(t["kind"] is None for t in ts):
                ts = None  # e.g. the int8 vocabulary matrix, quantized for its Gather: only a full export rewrites it
        elif ts is not None:
            ts = [{**t, "kind": "float"} for t in ts]
        for name in names:
            params[name] = {"digest": digests[name], "targets": ts}
    (out / MAP_FILE).write_text(json.dumps({"layout": CACHE_LAYOUT, "dtype": "float16" if fp16 else "float32",
                                            "quantization": quantize, "params": params}, indent=1), encoding="utf-8")
    return None


def _initializer_kinds(model_path: Path) -> dict[str, str]:
    """float initializer name -> 'float' (kept as is by quantization), 'int8' (X_quantized/X_scale/X_zero_point,
    symmetric, read by MatMul kernels only) or 'int4' (X_Q4/X_scales, the weight of a MatMulNBits, which the tied
    vocabulary's GatherBlockQuantized may read too) in a quantized graph."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(model_path), load_external_data=False)
    inits = {t.name: t for t in proto.graph.initializer}
    readers: dict[str, set] = {}
    for node in proto.graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.op_type)
    kinds = {}
    for name, t in inits.items():
        if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
            kinds[name] = "float"
        if name.endswith("_quantized") and t.data_type == onnx.TensorProto.INT8:
            base = name[: -len("_quantized")]
            zp = inits.get(base + "_zero_point")
            if (zp is not None and base + "_scale" in inits and not numpy_helper.to_array(zp).any()
                    and readers.get(name, set()) <= {"MatMulInteger", "DynamicQuantizeMatMul"}):
                kinds[base] = "int8"
        if name.endswith("_Q4") and t.data_type == onnx.TensorProto.UINT8:
            base = name[: -len("_Q4")]
            if (base + "_scales" in inits and "MatMulNBits" in readers.get(name, set())
                    and readers[name] <= {"MatMulNBits", "GatherBlockQuantized"}
                    and readers.get(base + "_scales", set()) <= {"MatMulNBits", "Reshape"}):
                kinds[base] = "int4"
    return kinds


def _write_external(init, a, data, offset: int, location: str) -> int:
    """Store `a` as `init`'s value at the end of the open file `data` (aligned); returns the new end offset."""
    import onnx
    from onnx import numpy_helper

    pad = (-offset) % ALIGN
    data.write(b"\0" * pad)
    offset += pad
    raw = a.tobytes()
    data.write(raw)
    fresh = numpy_helper.from_array(a, init.name)
    init.ClearField("raw_data")
    for field in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data"):
        init.ClearField(field)
    del init.dims[:]
    init.dims.extend(fresh.dims)
    init.data_type = fresh.data_type
    init.data_location = onnx.TensorProto.EXTERNAL
    del init.external_data[:]
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(len(raw)))):
        entry = init.external_data.add()
        entry.key, entry.value = key, value
    return offset + len(raw)


# ---------------------------------------------------------------------------------------------------------------
# an adapter export on top of an entry


def write_adapter_export(entry: Path, serving, out: Path, *, log: Callable[[str], None] = lambda m: None) -> list[str] | None:
    """Writes out/model.onnx (+ its data files) for `serving` (the reduced model) from the cache entry; returns the
    data file names, or None when the changes cannot be expressed on this graph (the caller exports the whole model)."""
    import numpy as np
    import onnx
    import torch
    from onnx import numpy_helper

    from .export import MODEL_FILE

    info = json.loads((entry / MAP_FILE).read_text(encoding="utf-8"))
    dtype = torch.float16 if info["dtype"] == "float16" else torch.float32
    state = serving.state_dict()
    params = info["params"]
    unknown = sorted(set(state) - set(params))
    if unknown:
        log(f"export: the served model has tensors its base has not ({', '.join(unknown[:3])}); exporting the whole model")
        return None
    changed = [n for n, t in state.items() if _tensor_digest(t.to(torch.float32) if t.dtype != torch.float32 else t)
               != params[n]["digest"]]
    floats: dict[str, Any] = {}
    to_quantize: dict[str, Any] = {}
    for name in changed:
        targets = params[name]["targets"]
        if targets is None:
            log(f"export: {name} changed and is not a plain initializer of the cached graph; exporting the whole model")
            return None
        a = state[name].detach().to(device="cpu", dtype=dtype).numpy()
        for t in targets:
            value = np.ascontiguousarray(a.T if t["transpose"] else a)
            (to_quantize if t["kind"] in ("int8", "int4") else floats)[t["initializer"]] = value
    overrides = dict(floats)
    if to_quantize:
        overrides.update(_quantize_like_export(to_quantize, info["quantization"]))
    proto = onnx.load(str(entry / MODEL_FILE), load_external_data=False)
    inits = {t.name: t for t in proto.graph.initializer}
    files = [BASE_DATA] if (entry / BASE_DATA).exists() else []
    if overrides:
        offset = 0
        with open(out / ADAPTER_DATA, "wb") as data:
            for name, value in overrides.items():
                init = inits.get(name)
                fresh = numpy_helper.from_array(value, name)
                if init is None or tuple(init.dims) != value.shape or init.data_type != fresh.data_type:
                    log(f"export: {name} does not fit the cached graph; exporting the whole model")
                    return None
                if value.nbytes < 1024:  # scales, zero points, small biases: inline, as onnx stores them
                    init.CopyFrom(fresh)
                else:
                    offset = _write_external(init, value, data, offset, ADAPTER_DATA)
        files.append(ADAPTER_DATA)
    onnx.save_model(proto, str(out / MODEL_FILE))
    if BASE_DATA in files:
        _copy_file(entry / BASE_DATA, out / BASE_DATA)
    log(f"export: {len(changed)} changed tensor(s) written over the cached base ({len(overrides)} initializer(s), "
        f"{sum(v.nbytes for v in overrides.values()) / 1e6:.1f} MB)")
    return files


def _copy_file(src: Path, dst: Path) -> None:
    """A copy made by the kernel (copy_file_range: a reflink where the file system shares blocks). Not a hard link:
    onnx refuses external data with several links ("potential hardlink attack"), and an export must stand alone."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        left = os.fstat(fin.fileno()).st_size
        try:
            while left > 0:
                n = os.copy_file_range(fin.fileno(), fout.fileno(), min(left, 1 << 30))
                if n == 0:
                    break
                left -= n
        except (OSError, AttributeError):  # not on this kernel, file system or platform: copy through user space
            fin.seek(0)
            fout.seek(0)
            fout.truncate()
            shutil.copyfileobj(fin, fout, 1 << 24)
            left = 0
    if left:
        raise OSError(f"copying {src} to {dst} stopped {left} bytes short")


def _quantize_like_export(weights: dict[str, Any], quantize: str) -> dict[str, Any]:
    """int8: X -> X_quantized, X_scale, X_zero_point (onnxruntime's quantize_dynamic); int4: X -> X_Q4, X_scales
    (its MatMulNBitsQuantizer); computed with the export's options on a graph of one MatMul per weight: the same code,
    so the same bytes as a whole quantized export."""
    import tempfile

    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from .export import OPSET, quantize_weights

    nodes, inputs, outputs, inits = [], [], [], []
    for i, (name, w) in enumerate(weights.items()):
        inputs.append(helper.make_tensor_value_info(f"a{i}", TensorProto.FLOAT, [1, w.shape[0]]))
        outputs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [1, w.shape[1]]))
        nodes.append(helper.make_node("MatMul", [f"a{i}", name], [f"y{i}"]))
        inits.append(numpy_helper.from_array(w, name))
    graph = helper.make_graph(nodes, "changed_weights", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    with tempfile.TemporaryDirectory(prefix="bloom-peft-quantize-") as d:
        src, dst = Path(d) / "w.onnx", Path(d) / "q.onnx"
        onnx.save_model(model, str(src), save_as_external_data=True, all_tensors_to_one_file=True,
                        location="w.onnx.data", size_threshold=0)
        quantize_weights(quantize, src, dst)
        q = onnx.load(str(dst), load_external_data=False)
        suffixes = ("_quantized", "_scale", "_zero_point") if quantize == "int8" else ("_Q4", "_scales")
        wanted = {f"{n}{suffix}" for n in weights for suffix in suffixes}
        out = {t.name: np.array(numpy_helper.to_array(t, base_dir=d)) for t in q.graph.initializer if t.name in wanted}
    missing = wanted - set(out)
    if missing:
        raise RuntimeError(f"the {quantize} quantizer did not quantize {sorted(missing)[:3]}")
    return out

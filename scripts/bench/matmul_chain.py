"""Decode-shaped matmuls (one row, M=1) with about a bloom-560m step's weight bytes (24 layers of 1024x4096, 4096x1024,
1024x3072 and 3072x1024 (bloom's attention output is 1024x1024: 609 MB in all, not 559) and the 1024x250880
vocabulary), in several weight formats, each its own onnxruntime session
(2 threads) in one process, blocks of 10 steps alternating; prints ms a step and the weight bytes read per second.

    .venv/bin/python scripts/bench/matmul_chain.py [layers] [vocab] [kinds]   kinds: dqmm (the export's int8:
        DynamicQuantizeMatMul, signed weights), dqmm_u8, s8s8, nb8a4, nb8a0, nb4a4 (MatMulNBits; nb8a4b128: block 128), fp32

To compare MLAS with and without its AMX kernels (Intel Sapphire Rapids and later; docs/engine.md), run it again with
LD_PRELOAD set to the shim scripts/bench/deny_amx.c builds (gcc -O2 -shared -fPIC -o /tmp/deny_amx.so deny_amx.c -ldl)."""
import os
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

rng = np.random.default_rng(0)
L = int(sys.argv[1]) if len(sys.argv) > 1 else 24
VOCAB = int(sys.argv[2]) if len(sys.argv) > 2 else 250880
shapes = []
for _ in range(L):
    shapes += [(1024, 4096), (4096, 1024), (1024, 3072), (3072, 1024)]
shapes.append((1024, VOCAB))

def build(kind):
    nodes, inits = [], []
    x = "x"; nbytes = 0
    for i, (K, N) in enumerate(shapes):
        y = f"y{i}"
        if kind == "fp32":
            w = (rng.standard_normal((K, N), dtype=np.float32) / np.sqrt(K)).astype(np.float32)
            inits.append(nh.from_array(w, f"w{i}")); nodes.append(h.make_node("MatMul", [x, f"w{i}"], [y])); nbytes += w.nbytes
        elif kind == "dqmm":
            w = rng.integers(-127, 128, (K, N), dtype=np.int8)
            inits += [nh.from_array(w, f"w{i}"), nh.from_array(np.array(1 / (127 * np.sqrt(K) / 3), np.float32), f"s{i}"), nh.from_array(np.array(0, np.int8), f"z{i}")]
            nodes.append(h.make_node("DynamicQuantizeMatMul", [x, f"w{i}", f"s{i}", f"z{i}"], [y], domain="com.microsoft")); nbytes += w.nbytes
        elif kind == "dqmm_u8":
            w = rng.integers(0, 256, (K, N), dtype=np.uint8)
            inits += [nh.from_array(w, f"w{i}"), nh.from_array(np.array(1 / (127 * np.sqrt(K) / 3), np.float32), f"s{i}"), nh.from_array(np.array(128, np.uint8), f"z{i}")]
            nodes.append(h.make_node("DynamicQuantizeMatMul", [x, f"w{i}", f"s{i}", f"z{i}"], [y], domain="com.microsoft")); nbytes += w.nbytes
        elif kind == "s8s8":
            w = rng.integers(-127, 128, (K, N), dtype=np.int8)
            inits += [nh.from_array(w, f"w{i}"), nh.from_array(np.array(1 / (127 * np.sqrt(K) / 3), np.float32), f"s{i}"), nh.from_array(np.array(0, np.int8), f"z{i}"), nh.from_array(np.array(1/127, np.float32), f"c{i}")]
            nodes += [h.make_node("Abs", [x], [f"a{i}"]), h.make_node("ReduceMax", [f"a{i}"], [f"m{i}"], keepdims=0),
                      h.make_node("Mul", [f"m{i}", f"c{i}"], [f"xs{i}"]),
                      h.make_node("QuantizeLinear", [x, f"xs{i}", f"z{i}"], [f"xq{i}"]),
                      h.make_node("MatMulInteger", [f"xq{i}", f"w{i}"], [f"yi{i}"]),
                      h.make_node("Cast", [f"yi{i}"], [f"yf{i}"], to=T.FLOAT),
                      h.make_node("Mul", [f"xs{i}", f"s{i}"], [f"ss{i}"]),
                      h.make_node("Mul", [f"yf{i}", f"ss{i}"], [y])]
            nbytes += w.nbytes
        elif kind.startswith("nb"):  # nb8a4, nb8a0, nb4a4; a suffix bN sets the block size (default 32)
            bits = int(kind[2]); acc = int(kind[4]); blk = int(kind.split("b")[-1]) if kind.count("b") > 1 else 32
            nblk = K // blk
            if bits == 8:
                q = rng.integers(0, 256, (N, nblk, blk), dtype=np.uint8)
            else:
                q = rng.integers(0, 256, (N, nblk, blk // 2), dtype=np.uint8)
            sc = np.full((N * nblk,), 1 / (127 * np.sqrt(K) / 3), np.float32)
            inits += [nh.from_array(q, f"w{i}"), nh.from_array(sc, f"s{i}")]
            nodes.append(h.make_node("MatMulNBits", [x, f"w{i}", f"s{i}"], [y], domain="com.microsoft", K=K, N=N, bits=bits, block_size=blk, accuracy_level=acc)); nbytes += q.nbytes + sc.nbytes
        x = y
    g = h.make_graph(nodes, kind, [h.make_tensor_value_info("x", T.FLOAT, [1, 1024])], [h.make_tensor_value_info(x, T.FLOAT, [1, shapes[-1][1]])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("com.microsoft", 1)])
    m.ir_version = 9
    path = os.path.join(tempfile.gettempdir(), f"matmul_chain_{kind}.onnx")
    onnx.save(m, path, save_as_external_data=True, location=f"matmul_chain_{kind}.data")
    return path, nbytes

kinds = sys.argv[3].split(",") if len(sys.argv) > 3 else ["dqmm", "nb8a4", "nb8a0", "fp32"]
sess = {}
for k in kinds:
    p, nb = build(k)
    o = ort.SessionOptions(); o.intra_op_num_threads = 2
    s = ort.InferenceSession(p, o, providers=["CPUExecutionProvider"])
    sess[k] = (s, nb)
x = rng.standard_normal((1, 1024), dtype=np.float32)
for k, (s, nb) in sess.items():
    for _ in range(3): s.run(None, {"x": x})
res = {k: [] for k in sess}
for rnd in range(8):
    for k, (s, nb) in sess.items():
        t = time.perf_counter()
        for _ in range(10): s.run(None, {"x": x})
        res[k].append((time.perf_counter() - t) / 10 * 1e3)
for k, (s, nb) in sess.items():
    med = float(np.median(res[k]))
    print(f"{k:6s} {nb/1e6:7.1f} MB  median {med:6.2f} ms  min {min(res[k]):6.2f}  -> {nb/med/1e6:5.1f} GB/s")

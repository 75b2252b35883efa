"""Why onnxruntime's GroupQueryAttention with the KV written in place (export format 4 of 87fb4ef, reverted in
076336b) is faster from Python's onnxruntime and slower from onnxruntime-node (not a test; seconds).

One GroupQueryAttention node with bloom-560m's heads (16 x 64), a slotted past of SLOTS positions of which 128 are
filled, one new token, two ways of handling `present`:
  shared:   present bound to the past's own buffers (Python: io_binding with the same OrtValue; node: preallocated output
            Tensors over the slot arrays, as the engine did). The kernel sees one buffer and writes the new row in place.
  internal: present not fetched (onnxruntime allocates it and the kernel copies the filled past into it).
Both runtimes time the same graph with the same inputs, one intra-op thread, CPU time per call (one layer; a
bloom-560m step has 24). The node leg also reports whether the kernel wrote into the slot arrays and whether the
present tensor it returns is the slot array itself or a copy: onnxruntime-node 1.30 hands every fetched output over
as a fresh ArrayBuffer, so a bound present costs a copy of the whole slot array per layer and step.

    .venv/bin/python scripts/bench/gqa_bound_output.py [--slots 192,1024,4096] [--calls 200]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

HEADS, HEAD_DIM, FILLED = 16, 64, 128
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_graph(path: str) -> None:
    t = TensorProto.FLOAT
    kv = [1, HEADS, "slots", HEAD_DIM]
    inputs = [helper.make_tensor_value_info("qkv", t, [1, "seq", 3 * HEADS * HEAD_DIM]),
              helper.make_tensor_value_info("past_key", t, kv), helper.make_tensor_value_info("past_value", t, kv),
              helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, [1]),
              helper.make_tensor_value_info("total", TensorProto.INT32, []),
              helper.make_tensor_value_info("bias", t, [1, HEADS, "seq", "total"])]
    outputs = [helper.make_tensor_value_info("out", t, [1, "seq", HEADS * HEAD_DIM]),
               helper.make_tensor_value_info("present_key", t, kv), helper.make_tensor_value_info("present_value", t, kv)]
    node = helper.make_node("GroupQueryAttention",
                            ["qkv", "", "", "past_key", "past_value", "seqlens_k", "total", "", "", "", "bias"],
                            ["out", "present_key", "present_value"], domain="com.microsoft",
                            num_heads=HEADS, kv_num_heads=HEADS, scale=HEAD_DIM ** -0.5)
    model = helper.make_model(helper.make_graph([node], "gqa", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10  # onnxruntime 1.30 reads IR <= 13
    onnx.save(model, path)


def python_leg(path: str, slots: int, calls: int) -> dict:
    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads = 1, 1
    o.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    past = [np.zeros((1, HEADS, slots, HEAD_DIM), np.float32) for _ in range(2)]
    values = [ort.OrtValue.ortvalue_from_numpy(a) for a in past]
    res = {}
    for mode in ("shared", "internal"):
        def call(mode: str = mode) -> None:
            b = session.io_binding()
            b.bind_cpu_input("qkv", np.ones((1, 1, 3 * HEADS * HEAD_DIM), np.float32))
            b.bind_ortvalue_input("past_key", values[0])
            b.bind_ortvalue_input("past_value", values[1])
            b.bind_cpu_input("seqlens_k", np.array([FILLED], np.int32))
            b.bind_cpu_input("total", np.array(FILLED + 1, np.int32))
            b.bind_cpu_input("bias", np.zeros((1, HEADS, 1, FILLED + 1), np.float32))
            b.bind_output("out")
            if mode == "shared":
                b.bind_ortvalue_output("present_key", values[0])
                b.bind_ortvalue_output("present_value", values[1])
            session.run_with_iobinding(b)
        call()
        start = time.process_time()
        for _ in range(calls):
            call()
        res[mode] = round((time.process_time() - start) * 1e3 / calls, 3)
    return res


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--slots", default="192,1024,4096")
    p.add_argument("--calls", type=int, default=200)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        graph = os.path.join(tmp, "gqa.onnx")
        build_graph(graph)
        report = {"filled": FILLED, "calls": a.calls, "load_before": os.getloadavg(), "slots": {}}
        for slots in [int(s) for s in a.slots.split(",")]:
            node = subprocess.run(["node", os.path.join(ROOT, "scripts", "bench", "gqa_bound_output.mjs"), graph,
                                   str(slots), str(FILLED), str(a.calls)], capture_output=True, text=True, check=True)
            report["slots"][slots] = {"python_cpu_ms": python_leg(graph, slots, a.calls),
                                      "node": json.loads(node.stdout)}
        report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    sys.exit(main())

// The node leg of gqa_bound_output.py (see there): one GroupQueryAttention node run from onnxruntime-node with
// `present` bound to the slot arrays (preallocated output Tensors, as the engine did) or not fetched.
// Prints JSON: CPU ms per call for each mode, and what the bound run did to the slot arrays.
//   node scripts/bench/gqa_bound_output.mjs GRAPH SLOTS FILLED CALLS
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ort = createRequire(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json'))('onnxruntime-node');
const [graph, slotsArg, filledArg, callsArg] = process.argv.slice(2);
const slots = Number(slotsArg), filled = Number(filledArg), calls = Number(callsArg);
const heads = 16, headDim = 64;
const session = await ort.InferenceSession.create(graph, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' });
const keys = new Float32Array(heads * slots * headDim), values = new Float32Array(heads * slots * headDim);
keys[0] = 42; // a filled position: must survive a step
const dims = [1, heads, slots, headDim];

async function call(mode) {
  const feeds = {
    qkv: new ort.Tensor('float32', new Float32Array(3 * heads * headDim).fill(1), [1, 1, 3 * heads * headDim]),
    past_key: new ort.Tensor('float32', keys, dims),
    past_value: new ort.Tensor('float32', values, dims),
    seqlens_k: new ort.Tensor('int32', Int32Array.of(filled), [1]),
    total: new ort.Tensor('int32', Int32Array.of(filled + 1), []),
    bias: new ort.Tensor('float32', new Float32Array(heads * (filled + 1)), [1, heads, 1, filled + 1]),
  };
  const fetches = mode === 'shared'
    ? { out: null, present_key: new ort.Tensor('float32', keys, dims), present_value: new ort.Tensor('float32', values, dims) }
    : { out: null };
  return session.run(feeds, fetches);
}

const report = { cpu_ms: {} };
const first = await call('shared');
const returned = first.present_key.data;
returned[1] = 7; // does the returned tensor alias the slot array?
report.shared_wrote_in_place = keys[filled * headDim] === 1 && keys[0] === 42;
report.shared_returns_the_slot_array = keys[1] === 7;
keys[1] = 0;
for (const mode of ['shared', 'internal']) {
  await call(mode);
  const start = process.cpuUsage();
  for (let i = 0; i < calls; i++) await call(mode);
  const used = process.cpuUsage(start);
  report.cpu_ms[mode] = +((used.user + used.system) / 1000 / calls).toFixed(3);
}
console.log(JSON.stringify(report));

// Completion engine benchmark (not a test): engine vs PyTorch generate on the same model and prompt,
// warm (one more character typed) vs cold latency, decode ms/token for a bloom-560m-shaped model with
// random weights in fp32 and int8 against this machine's memory-bandwidth bound.
//
//   node --import tsx scripts/bench-engine.ts [--shape 560m|small|embedded] [--threads 2] [--tokens 32] [--out DIR]
//
// 560m and small: random weights of those shapes. embedded: models/bloom-tiny itself (the default completion model).
//
// Exports are made by the project's exporter into DIR (default: the temp folder), reused when present.
// Prints one JSON object (and a markdown table on stderr) for docs/benchmarks.md.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { benchEngine, copyBandwidth } from './bench/engine';

const ROOT = path.resolve(__dirname, '..');
const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const shape = arg('shape', '560m');
if (!['560m', 'small', 'embedded'].includes(shape)) throw new Error(`--shape must be 560m, small or embedded, not ${shape}`);
const threads = Number(arg('threads', '2'));
const tokens = Number(arg('tokens', '32'));
const out = path.resolve(arg('out', path.join(os.tmpdir(), 'bloom-peft-bench-engine', shape)));
const SHAPES: Record<string, string> = {
  '560m': 'vocab_size=250880, hidden_size=1024, n_layer=24, n_head=16',
  small: 'vocab_size=4096, hidden_size=512, n_layer=4, n_head=8',
};
const PROMPT = fs.readFileSync(path.join(ROOT, 'examples/code-corpus/user_store.py'), 'utf8').slice(0, 600);

// One Python process: exports (fp32, int8) if missing, then PyTorch's generate on the same model.
const PY = String.raw`
import json, sys, time, torch
from pathlib import Path
from transformers import BloomConfig, BloomForCausalLM
from bloom_peft.export import export_model
from bloom_peft.model_loading import load_tokenizer
from bloom_peft.testing.tiny_model import base_model_dir
out, threads, tokens, prompt = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(threads)
tok = load_tokenizer(str(base_model_dir(out / "scratch")))
torch.manual_seed(0)
model = ${shape === 'embedded' ? 'BloomForCausalLM.from_pretrained(str(base_model_dir(out / "scratch")))'
  : `BloomForCausalLM(BloomConfig(${SHAPES[shape]}, bos_token_id=1, eos_token_id=2, pad_token_id=3))`}.eval()
for name, q in (("fp32", "none"), ("int8", "int8")):
    if not (out / name / "manifest.json").exists():
        t = time.time()
        export_model(model, tok, "full", out / name, base_model="random-${shape}", quantize=q, verify=False)
        print(f"exported {name} in {time.time() - t:.0f}s", file=sys.stderr)
ids = torch.tensor([tok(prompt)["input_ids"]])
with torch.no_grad():
    model.generate(ids, max_new_tokens=2, do_sample=False, eos_token_id=None, pad_token_id=3)
    firsts, decodes = [], []
    for _ in range(3):  # medians, as the engine side
        t = time.perf_counter(); model.generate(ids, max_new_tokens=1, do_sample=False, eos_token_id=None, pad_token_id=3); first = time.perf_counter() - t
        t = time.perf_counter(); model.generate(ids, max_new_tokens=tokens, do_sample=False, eos_token_id=None, pad_token_id=3); total = time.perf_counter() - t
        firsts.append(first); decodes.append((total - first) / (tokens - 1))
first, decode = sorted(firsts)[1], sorted(decodes)[1]
# copy bandwidth with the engine's thread count (torch parallelizes a large copy): one thread alone reads less
# than two can, which would make the bound too lenient
a = torch.ones(64 * 2**20); b = torch.empty_like(a); best = 1e9
for _ in range(7):
    t = time.perf_counter(); b.copy_(a); best = min(best, time.perf_counter() - t)
print(json.dumps({"copy_bytes_per_s": 2 * a.numel() * 4 / best, "first_token_ms": first * 1000, "decode_ms_per_token": decode * 1000,
                  "prompt_tokens": ids.shape[1], "weight_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
                  "torch": torch.__version__, "threads": threads}))
`;

async function main(): Promise<void> {
  fs.mkdirSync(out, { recursive: true });
  const env = { ...process.env, PYTHONPATH: path.join(ROOT, 'trainer/src'), TOKENIZERS_PARALLELISM: 'false', OMP_NUM_THREADS: String(threads) };
  const pyOut = execFileSync(path.join(ROOT, '.venv/bin/python'), ['-c', PY, out, String(threads), String(tokens), PROMPT], { env, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 });
  const torchRes = JSON.parse(pyOut.toString().trim().split('\n').pop()!);
  // the higher of one JS thread's copy rate and torch's with `threads` threads (read + write bytes)
  const bandwidth = Math.max(copyBandwidth(), torchRes.copy_bytes_per_s);
  const engine: Record<string, unknown> = {};
  for (const name of ['fp32', 'int8']) {
    const dir = path.join(out, name);
    const r = await benchEngine(dir, PROMPT, { threads, decodeTokens: tokens });
    const modelBytes = fs.readdirSync(dir).filter(f => f.startsWith('model.onnx')).reduce((s, f) => s + fs.statSync(path.join(dir, f)).size, 0);
    // Every decode step reads all the weights once: that many bytes of memory traffic at the measured
    // (read + write) copy rate is the floor for one step.
    const boundMs = (modelBytes / bandwidth) * 1000;
    engine[name] = { ...r, modelBytes, bandwidthBoundMsPerToken: boundMs, overBound: r.decodeMsPerToken / boundMs };
  }
  const fp32 = engine.fp32 as Awaited<ReturnType<typeof benchEngine>>;
  const result = {
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), copyBandwidthGBs: bandwidth / 1e9, node: process.version },
    shape, threads, tokens, torch: torchRes, engine,
    engineOverTorchDecode: fp32.decodeMsPerToken / torchRes.decode_ms_per_token,
    engineOverTorchFirstToken: fp32.coldFirstTokenMs / torchRes.first_token_ms,
  };
  console.log(JSON.stringify(result, null, 2));
  const rows = ['fp32', 'int8'].map(n => {
    const e = engine[n] as Record<string, number>;
    return `| ${n} | ${(e.modelBytes / 2 ** 20).toFixed(0)} MiB | ${e.loadMs.toFixed(0)} | ${e.coldFirstTokenMs.toFixed(0)} | ${e.warmFirstTokenMs.toFixed(0)} (${e.warmOverCold.toFixed(2)}x) | ${e.decodeMsPerToken.toFixed(1)} | ${e.bandwidthBoundMsPerToken.toFixed(1)} (${e.overBound.toFixed(1)}x) |`;
  });
  console.error([
    `bloom-${shape} random weights, ${threads} threads, prompt ${fp32.promptTokens} tokens, ${os.cpus()[0]?.model}, copy bandwidth ${(bandwidth / 1e9).toFixed(1)} GB/s`,
    `PyTorch ${torchRes.torch} generate: first token ${torchRes.first_token_ms.toFixed(0)} ms, decode ${torchRes.decode_ms_per_token.toFixed(1)} ms/token; engine/PyTorch decode ${result.engineOverTorchDecode.toFixed(2)}x, first token ${result.engineOverTorchFirstToken.toFixed(2)}x`,
    '| export | model | load ms | cold first token ms | warm (+1 char) ms | decode ms/token | bandwidth bound ms/token |',
    '|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n'));
}

void main().catch(e => {
  console.error(e);
  process.exit(1);
});

// The completion engine against PyTorch's generate on the same model and prompt (not a test): cold and warm
// (one more character typed) first token, decode ms/token of the fp32 and int8 exports, decode against the
// read-bandwidth bound with the engine's thread count.
//
//   node --import tsx scripts/bench/engine_vs_torch.ts [--shape 560m|small|embedded] [--threads 2] [--tokens 32]
//        [--out DIR] [--rounds 3] [--max-other 0.10] [--wait-quiet 60]
//
// 560m and small: random weights of those shapes (scripts/bench/bench_model.py); embedded: models/bloom-tiny.
// Exports are made by the project's exporter into DIR when missing. The three legs (PyTorch in a helper process,
// engine fp32, engine int8, all loaded once) run interleaved, one measurement each per round, in an order that
// rotates every round; a read-only bandwidth measurement runs before each round. Each leg records the CPU share
// other processes took (load.ts): a round counts only when every leg is clean (<= --max-other), and rounds go on
// (up to 3x --rounds) until --rounds clean ones are in; if none is, all are reported and flagged. Before each round
// the bench waits up to --wait-quiet seconds for a second in which others took <= --max-other of the CPU.
// Prints one JSON object on stdout and a markdown table on stderr.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CompletionEngine } from '../../src/inference/engine';
import { type EngineSample, exportWeightBytes, sampleEngine } from './engine';
import { type BandwidthReading, cpuWindow, endWithThisProcess, jsonLines, median, startBandwidth, waitForQuiet } from './load';

const ROOT = path.resolve(__dirname, '../..');
const PY = fs.existsSync(path.join(ROOT, '.venv/bin/python')) ? path.join(ROOT, '.venv/bin/python') : 'python3';
const arg = (name: string, dflt: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1]! : dflt; };
const shape = arg('shape', '560m');
if (!['560m', 'small', 'embedded'].includes(shape)) throw new Error(`--shape must be 560m, small or embedded, not ${shape}`);
const threads = Number(arg('threads', '2'));
const tokens = Number(arg('tokens', '32'));
const wantRounds = Number(arg('rounds', '3'));
const maxOther = Number(arg('max-other', '0.10'));
const waitQuietMs = Number(arg('wait-quiet', '60')) * 1000;
const out = path.resolve(arg('out', path.join(os.tmpdir(), 'bloom-peft-bench-engine', shape)));
const PROMPT = fs.readFileSync(path.join(ROOT, 'examples/code-corpus/user_store.py'), 'utf8').slice(0, 600);
const log = (m: string) => console.error(`[engine_vs_torch ${new Date().toISOString().slice(11, 19)}] ${m}`);

interface TorchSample { first_token_ms: number; decode_ms_per_token: number; otherShare: number }

async function startTorch() {
  const env = { ...process.env, PYTHONPATH: [path.join(ROOT, 'trainer/src'), __dirname].join(path.delimiter), TOKENIZERS_PARALLELISM: 'false', OMP_NUM_THREADS: String(threads) };
  const child = spawn(PY, [path.join(__dirname, 'torch_generate.py'), '--shape', shape, '--out', out, '--threads', String(threads), '--tokens', String(tokens), '--prompt', PROMPT], { env, stdio: ['pipe', 'pipe', 'inherit'] });
  endWithThisProcess(child);
  const next = jsonLines(child.stdout, 'torch_generate.py');
  const ready = await next(); // after the exports exist
  return {
    ready: ready as { prompt_tokens: number; torch: string; weight_bytes: number },
    async sample(): Promise<TorchSample> { child.stdin.write('go\n'); return (await next()) as unknown as TorchSample; },
    close() { child.stdin.end(); },
  };
}

type LegName = 'torch' | 'fp32' | 'int8';
interface Round { torch: TorchSample; fp32: EngineSample & { otherShare: number }; int8: EngineSample & { otherShare: number }; clean: boolean; bandwidth: BandwidthReading }

async function main(): Promise<void> {
  fs.mkdirSync(out, { recursive: true });
  log(`PyTorch helper: model ${shape}, exports in ${out} (made when missing: minutes for 560m)`);
  const torch = await startTorch();
  const bw = await startBandwidth(PY, threads);
  const engines: Record<'fp32' | 'int8', { engine: CompletionEngine; loadMs: number }> = {} as never;
  const rounds: Round[] = [];
  try {
    for (const q of ['fp32', 'int8'] as const) {
      const t = performance.now();
      const engine = await CompletionEngine.load(path.join(out, q), { threads });
      engines[q] = { engine, loadMs: performance.now() - t };
      await engine.generate(PROMPT, { maxTokens: 2, ignoreEos: true, reuseCache: false }); // warm-up
    }
    const order: LegName[] = ['torch', 'fp32', 'int8'];
    for (let r = 0; rounds.filter(x => x.clean).length < wantRounds && r < 3 * wantRounds; r++) {
      await waitForQuiet(maxOther, waitQuietMs);
      const bandwidth = await bw.measure();
      const legs: Partial<Round> = { bandwidth };
      for (let k = 0; k < 3; k++) {
        const leg = order[(r + k) % 3]!;
        if (leg === 'torch') legs.torch = await torch.sample();
        else {
          const end = cpuWindow();
          const s = await sampleEngine(engines[leg].engine, PROMPT, tokens, 'abcdefghij'[r % 10]);
          legs[leg] = { ...s, otherShare: end().otherShare };
        }
      }
      const round = { ...legs, clean: [legs.torch!, legs.fp32!, legs.int8!].every(l => l.otherShare <= maxOther) } as Round;
      rounds.push(round);
      log(`round ${r}: PyTorch decode ${round.torch.decode_ms_per_token.toFixed(1)} ms/token, engine fp32 ${round.fp32.decodeMsPerToken.toFixed(1)}, int8 ${round.int8.decodeMsPerToken.toFixed(1)}; others took ${[round.torch, round.fp32, round.int8].map(l => (l.otherShare * 100).toFixed(0) + '%').join(' / ')}${round.clean ? '' : ' DISTURBED'}`);
    }
  } finally {
    torch.close();
    bw.close();
    for (const e of Object.values(engines)) await e.engine.dispose();
  }
  const kept = rounds.filter(x => x.clean);
  const use = kept.length ? kept : rounds;
  const bwKept = rounds.map(x => x.bandwidth).filter(b => b.otherShare <= maxOther);
  const bwUse = bwKept.length ? bwKept : rounds.map(x => x.bandwidth);
  const bandwidth = median(bwUse.map(b => b.GBs)) * 1e9;
  const engine: Record<string, unknown> = {};
  for (const q of ['fp32', 'int8'] as const) {
    const m = (k: keyof EngineSample) => median(use.map(x => x[q][k]));
    const modelBytes = exportWeightBytes(path.join(out, q));
    // Every decode step reads all the weights once: that many bytes at the measured read bandwidth is its floor.
    const boundMs = (modelBytes / bandwidth) * 1000;
    engine[q] = {
      loadMs: engines[q].loadMs, promptTokens: m('promptTokens'), coldFirstTokenMs: m('coldFirstTokenMs'), warmFirstTokenMs: m('warmFirstTokenMs'),
      warmOverCold: m('warmFirstTokenMs') / m('coldFirstTokenMs'), reusedTokens: m('reusedTokens'), decodeMsPerToken: m('decodeMsPerToken'),
      decodeTokens: m('decodeTokens'), modelBytes, bandwidthBoundMsPerToken: boundMs, overBound: m('decodeMsPerToken') / boundMs,
      // per round: PyTorch / engine, both measured within seconds of each other
      torchOverEngineDecode: use.map(x => x.torch.decode_ms_per_token / x[q].decodeMsPerToken),
    };
  }
  const torchRes = { ...torch.ready, first_token_ms: median(use.map(x => x.torch.first_token_ms)), decode_ms_per_token: median(use.map(x => x.torch.decode_ms_per_token)) };
  const fp32 = engine.fp32 as { decodeMsPerToken: number; coldFirstTokenMs: number; promptTokens: number };
  const result = {
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, loadAvg: os.loadavg(),
      readBandwidthGBs: bandwidth / 1e9, readBandwidthSpreadGBs: [Math.min(...bwUse.map(b => b.GBs)), Math.max(...bwUse.map(b => b.GBs))] },
    shape, threads, tokens, maxOther, rounds: rounds.length, cleanRounds: kept.length, allDisturbed: kept.length === 0,
    otherShare: rounds.map(x => [x.torch.otherShare, x.fp32.otherShare, x.int8.otherShare].map(v => +v.toFixed(3))),
    torch: torchRes, engine,
    engineOverTorchDecode: fp32.decodeMsPerToken / torchRes.decode_ms_per_token,
    engineOverTorchFirstToken: fp32.coldFirstTokenMs / torchRes.first_token_ms,
  };
  console.log(JSON.stringify(result, null, 2));
  const rows = (['fp32', 'int8'] as const).map(n => {
    const e = engine[n] as Record<string, number>;
    return `| ${n} | ${(e.modelBytes / 2 ** 20).toFixed(0)} MiB | ${e.loadMs.toFixed(0)} | ${e.coldFirstTokenMs.toFixed(0)} | ${e.warmFirstTokenMs.toFixed(0)} (${e.warmOverCold.toFixed(2)}x) | ${e.decodeMsPerToken.toFixed(1)} | ${e.bandwidthBoundMsPerToken.toFixed(1)} (${e.overBound.toFixed(1)}x) |`;
  });
  console.error([
    `bloom-${shape}, ${threads} threads, prompt ${fp32.promptTokens} tokens, ${os.cpus()[0]?.model}, read bandwidth ${(bandwidth / 1e9).toFixed(1)} GB/s (median, ${threads} threads), ${kept.length} of ${rounds.length} rounds clean${kept.length ? '' : ' (ALL DISTURBED: figures below include them)'}`,
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

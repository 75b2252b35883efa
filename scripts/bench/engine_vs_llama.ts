// The completion engine against llama.cpp (node-llama-cpp, pinned in peer/) on the same weights: prefill and decode,
// engine/llama.cpp ratios, and decode against the 2-thread read-bandwidth bound. Not a test.
//
//   node --import tsx scripts/bench/engine_vs_llama.ts --dir <folder> [--shape 560m] [--threads 2]
//        [--prompt-tokens 128] [--tokens 32] [--rounds 6] [--max-other 0.10] [--wait-quiet 60] [--pair-minutes 8]
//
// <folder> holds (or gets) the project's exports fp32/ and int8/ and model-f32.gguf / model-q8_0.gguf of the same
// random weights (scripts/bench/bench_model.py, peer/write_gguf.py). Pairs: engine int8 vs llama.cpp Q8_0, engine
// fp32 vs llama.cpp F32, both loaded side by side and run in alternating legs, one prompt each (A, B, A, B ...;
// the order flips every round). Each leg records the CPU share other processes took (load.ts); legs above
// --max-other are disturbed: a round counts only when both of its legs are clean, and the bench keeps running
// rounds (up to 3x --rounds, none started after --pair-minutes) until --rounds clean ones are in. Before each round
// it waits up to --wait-quiet seconds for a second in which others took <= --max-other of the CPU, then takes a
// read-only bandwidth measurement (bandwidth.py, --threads threads). Prints one JSON object (stdout); progress on
// stderr. The next-token distribution after the prompt is compared once per pair (parity of GGUF and export).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CompletionEngine } from '../../src/inference/engine';
import { exportWeightBytes } from './engine';
import { cpuWindow, median, spread, startBandwidth, waitForQuiet } from './load';
import { ensurePeerInstalled, loadPeer, type PeerModel } from './peer/llama';

const ROOT = path.resolve(__dirname, '../..');
const PY = fs.existsSync(path.join(ROOT, '.venv/bin/python')) ? path.join(ROOT, '.venv/bin/python') : 'python3';
const GGUF_PY = 'gguf==0.19.0'; // bench-only, installed next to the cache (never into the trainer's environment)
const argv = process.argv.slice(2);
const opt = (name: string, dflt: string) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1]! : dflt; };
const dir = path.resolve(opt('dir', path.join(os.tmpdir(), 'bloom-peft-bench', 'peer-560m')));
const shape = opt('shape', '560m');
const threads = Number(opt('threads', '2'));
const promptTokens = Number(opt('prompt-tokens', '128'));
const newTokens = Number(opt('tokens', '32'));
const wantRounds = Number(opt('rounds', '6'));
const maxOther = Number(opt('max-other', '0.10'));
const waitQuietMs = Number(opt('wait-quiet', '60')) * 1000;
const pairBudgetMs = Number(opt('pair-minutes', '8')) * 60_000; // no new round after this, per pair
const log = (m: string) => console.error(`[engine_vs_llama ${new Date().toISOString().slice(11, 19)}] ${m}`);

/** GGUFs and exports of the bench model, written when missing (write_gguf.py; gguf pip-installed into the cache once). */
function ggufSite(): string {
  const site = path.join(path.dirname(dir), `python-${GGUF_PY.replace('==', '-')}`);
  if (!fs.existsSync(path.join(site, 'gguf'))) {
    log(`installing ${GGUF_PY} into ${site}`);
    // its other dependencies (numpy, pyyaml, tqdm, requests) are in the trainer's environment already
    const r = spawnSync(PY, ['-m', 'pip', 'install', '--quiet', '--no-deps', '--target', site, GGUF_PY], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`pip install ${GGUF_PY} failed (exit ${r.status})`);
  }
  return site;
}

function ensureFiles(): void {
  const have = ['fp32/manifest.json', 'int8/manifest.json', 'model-f32.gguf', 'model-q8_0.gguf'].every(f => fs.existsSync(path.join(dir, f)));
  const site = ggufSite();
  if (!have) log(`writing the exports and GGUFs of the ${shape} model into ${dir} (minutes the first time)`);
  const env = { ...process.env, PYTHONPATH: [path.join(ROOT, 'trainer/src'), __dirname, site].join(path.delimiter), OMP_NUM_THREADS: String(threads), TOKENIZERS_PARALLELISM: 'false' };
  const r = spawnSync(PY, [path.join(__dirname, 'peer/write_gguf.py'), '--shape', shape, '--out', dir, '--exports'], { env, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`write_gguf.py exited ${r.status}`);
}

/** A prompt of exactly `n` tokens of the engine's tokenizer: the longest prefix of the corpus text that has n. */
async function promptOf(engine: CompletionEngine, n: number): Promise<{ text: string; ids: number[] }> {
  const corpus = path.join(ROOT, 'examples/code-corpus');
  const text = fs.readdirSync(corpus).sort().map(f => fs.readFileSync(path.join(corpus, f), 'utf8')).join('\n');
  let lo = 1; let hi = Math.min(text.length, n * 12);
  while (lo < hi) { // largest prefix with <= n tokens
    const mid = (lo + hi + 1) >> 1;
    if ((await engine.tokenize(text.slice(0, mid))).length <= n) lo = mid; else hi = mid - 1;
  }
  const ids = await engine.tokenize(text.slice(0, lo));
  if (ids.length !== n) throw new Error(`no prefix of the corpus tokenizes to exactly ${n} tokens (got ${ids.length})`);
  return { text: text.slice(0, lo), ids };
}

interface Leg { prefillMs: number; decodeMsPerToken: number; tokens: number[]; otherShare: number }

async function engineLeg(engine: CompletionEngine, prompt: string): Promise<Leg> {
  const end = cpuWindow();
  // one token a run (draft: false), as llama.cpp's leg decodes: random weights repeat tokens, which drafts would take
  const r = await engine.generate(prompt, { maxTokens: newTokens, ignoreEos: true, reuseCache: false, draft: false });
  const w = end();
  // prefill as llama.cpp's is timed: from the caller's side, everything but the decode steps (tokenizing, the
  // worker round trip and the first token's sampling included)
  return { prefillMs: w.wallMs - r.timings.decodeMs, decodeMsPerToken: r.timings.decodeMs / Math.max(1, r.tokens.length - 1), tokens: r.tokens, otherShare: w.otherShare };
}

async function peerLeg(peer: PeerModel, ids: number[]): Promise<Leg> {
  const end = cpuWindow();
  const r = await peer.run(ids, newTokens);
  return { ...r, otherShare: end().otherShare };
}

/** Bytes llama.cpp reads per decoded token: every tensor but the token embedding (one row of it). */
async function ggufBytesPerToken(file: string): Promise<number> {
  const site = ggufSite();
  const code = 'import sys, gguf; r = gguf.GGUFReader(sys.argv[1]); print(sum(int(t.n_bytes) for t in r.tensors if t.name != "token_embd.weight"))';
  const r = spawnSync(PY, ['-c', code, file], { env: { ...process.env, PYTHONPATH: site }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`reading ${file}: ${r.stderr}`);
  return Number(r.stdout.trim());
}

/**
 * Are the GGUF and the export the same model? The next-token distribution after the prompt, both sides: the
 * engine's top 5 ids in llama.cpp's order, and the largest log-probability difference over them.
 */
async function firstStepParity(engine: CompletionEngine, peer: PeerModel, p: { text: string; ids: number[] }) {
  const { logits, ids } = await engine.logits(p.text);
  if (ids.join() !== p.ids.join()) throw new Error('the engine tokenized the prompt differently the second time');
  let max = -Infinity;
  for (const x of logits) if (x > max) max = x;
  let sum = 0;
  for (const x of logits) sum += Math.exp(x - max);
  const engineLogP = (id: number) => logits[id]! - max - Math.log(sum);
  const top = (xs: [number, number][]) => xs.sort((a, b) => b[1] - a[1]).slice(0, 5).map(x => x[0]);
  const engineTop = top([...logits].map((x, i) => [i, x] as [number, number]));
  const probs = await peer.probabilities(p.ids);
  const llamaTop = top([...probs.entries()]);
  const maxLogPDiff = Math.max(...engineTop.map(id => Math.abs(engineLogP(id) - Math.log(probs.get(id) ?? 1e-30))));
  return { engineTop5: engineTop, llamaTop5: llamaTop, sameTop5: engineTop.join() === llamaTop.join(), maxLogPDiffTop5: +maxLogPDiff.toFixed(4) };
}

async function main(): Promise<void> {
  const skip = ensurePeerInstalled();
  if (skip) throw new Error(skip);
  ensureFiles();
  const bw = await startBandwidth(PY, threads);
  const pairs = [['int8', 'q8_0'], ['fp32', 'f32']] as const;
  const out: Record<string, unknown> = {};
  const bandwidth: { GBs: number; otherShare: number }[] = [];
  let prompt: { text: string; ids: number[] } | undefined;
  try {
    for (const [eq, lq] of pairs) {
      log(`loading engine ${eq} and llama.cpp ${lq}`);
      const engine = await CompletionEngine.load(path.join(dir, eq), { threads });
      const peer = await loadPeer(path.join(dir, `model-${lq}.gguf`), threads, promptTokens + newTokens + 8);
      try {
        prompt ??= await promptOf(engine, promptTokens);
        const p = prompt;
        await engineLeg(engine, p.text); await peerLeg(peer, p.ids); // warm-up: weights paged in, caches sized
        const parity = await firstStepParity(engine, peer, p);
        log(`${eq}/${lq} next-token parity after the prompt: ${JSON.stringify(parity)}`);
        const rounds: { engine: Leg; llama: Leg; clean: boolean }[] = [];
        const started = performance.now();
        for (let r = 0; rounds.filter(x => x.clean).length < wantRounds && r < 3 * wantRounds && (r < 2 || performance.now() - started < pairBudgetMs); r++) {
          await waitForQuiet(maxOther, waitQuietMs);
          bandwidth.push(await bw.measure());
          const first = r % 2 === 0 ? 'engine' : 'llama';
          const legs: Partial<Record<'engine' | 'llama', Leg>> = {};
          for (const who of first === 'engine' ? ['engine', 'llama'] as const : ['llama', 'engine'] as const) {
            legs[who] = who === 'engine' ? await engineLeg(engine, p.text) : await peerLeg(peer, p.ids);
          }
          const clean = legs.engine!.otherShare <= maxOther && legs.llama!.otherShare <= maxOther;
          rounds.push({ engine: legs.engine!, llama: legs.llama!, clean });
          log(`${eq}/${lq} round ${r}: engine prefill ${legs.engine!.prefillMs.toFixed(0)} ms decode ${legs.engine!.decodeMsPerToken.toFixed(1)} ms/token (others ${(legs.engine!.otherShare * 100).toFixed(0)}%), llama.cpp ${legs.llama!.prefillMs.toFixed(0)} / ${legs.llama!.decodeMsPerToken.toFixed(1)} (others ${(legs.llama!.otherShare * 100).toFixed(0)}%)${clean ? '' : ' DISTURBED'}`);
        }
        const kept = rounds.filter(x => x.clean);
        const use = kept.length ? kept : rounds; // all disturbed: report them, flagged
        const same = rounds[0]!.engine.tokens.filter((t, i) => t === rounds[0]!.llama.tokens[i]).length;
        out[eq] = {
          peer: lq, rounds: rounds.length, clean: kept.length, allDisturbed: kept.length === 0,
          engine: { prefillMs: spread(use.map(x => x.engine.prefillMs)), decodeMsPerToken: spread(use.map(x => x.engine.decodeMsPerToken)), weightBytes: exportWeightBytes(path.join(dir, eq)) },
          llama: { prefillMs: spread(use.map(x => x.llama.prefillMs)), decodeMsPerToken: spread(use.map(x => x.llama.decodeMsPerToken)), weightBytes: await ggufBytesPerToken(path.join(dir, `model-${lq}.gguf`)) },
          // per-round ratios (both legs of a round ran within seconds of each other), then their median
          ratio: { prefill: spread(use.map(x => x.engine.prefillMs / x.llama.prefillMs)), decode: spread(use.map(x => x.engine.decodeMsPerToken / x.llama.decodeMsPerToken)) },
          parity,
          greedy: { engine: rounds[0]!.engine.tokens, llama: rounds[0]!.llama.tokens, sameTokens: same, of: newTokens },
          otherShare: rounds.map(x => [+x.engine.otherShare.toFixed(3), +x.llama.otherShare.toFixed(3)]),
        };
      } finally {
        await peer.dispose();
        await engine.dispose();
      }
    }
  } finally {
    bw.close();
  }
  const cleanBw = bandwidth.filter(b => b.otherShare <= maxOther);
  const bwUse = cleanBw.length ? cleanBw : bandwidth;
  const bwMedian = median(bwUse.map(b => b.GBs)) * 1e9;
  for (const eq of ['int8', 'fp32']) {
    const r = out[eq] as { engine: { decodeMsPerToken: { median: number }; weightBytes: number; boundMs?: number; overBound?: number }; llama: { decodeMsPerToken: { median: number }; weightBytes: number; boundMs?: number; overBound?: number } };
    for (const side of [r.engine, r.llama]) {
      side.boundMs = (side.weightBytes / bwMedian) * 1000;
      side.overBound = side.decodeMsPerToken.median / side.boundMs;
    }
  }
  console.log(JSON.stringify({
    shape, threads, promptTokens: prompt!.ids.length, newTokens, maxOther,
    machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30), loadAvg: os.loadavg() },
    bandwidth: { threads, bufferMiB: bw.bufferBytes / 2 ** 20, GBs: spread(bwUse.map(b => b.GBs)), clean: cleanBw.length, measured: bandwidth.length, all: bandwidth.map(b => [+b.GBs.toFixed(1), +b.otherShare.toFixed(3)]) },
    ...out,
  }, null, 1));
}

void main().catch(e => { console.error(e); process.exit(1); });

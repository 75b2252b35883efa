// Drafted greedy decoding (src/inference/draft.ts) against one token a run, on one export, in one process (not a
// test). Two parts, legs alternating:
//   step cost: a run of 1 + k new tokens (forwardDrafted, k = 1..3) against a one-token run (forwardGreedy) after the
//              same 128-token prompt;
//   decode:    per document (windows of examples/code-corpus, as the pipeline bench), the engine's decode loop
//              (Generator) with drafts from the text against the same loop with `draft: false` (one token a run);
//              ms per emitted token, tokens identical or not, drafts taken.
//
//   node --import tsx scripts/bench/draft_ab.ts --export DIR [--threads 2] [--tokens 32] [--rounds 3] [--docs 6]
//        [--prompts FILE.jsonl]   (prompts to decode instead of the code windows: one JSON string per line)
// Prints one JSON object on stdout.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DecoderModel } from '../../src/inference/decoder';
import { Generator } from '../../src/inference/generator';
import { type KvCache, truncateKv } from '../../src/inference/kv';
import { readManifest } from '../../src/inference/manifest';
import { TextTokenizer } from '../../src/inference/tokenizer';

const ROOT = path.resolve(__dirname, '../..');
const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const exportDir = path.resolve(arg('export', ''));
const threads = Number(arg('threads', '2'));
const tokens = Number(arg('tokens', '32'));
const rounds = Number(arg('rounds', '3'));
const docs = Number(arg('docs', '6'));
const promptsFile = arg('prompts', '');
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2 : NaN;
};
const log = (s: string) => process.stderr.write(`[draft bench] ${s}\n`);

function prompts(): string[] {
  if (promptsFile) return fs.readFileSync(promptsFile, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l) as string).slice(0, docs);
  const dir = path.join(ROOT, 'examples/code-corpus');
  return fs.readdirSync(dir).sort().slice(0, docs).map(f => {
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    const cut = text.indexOf('\n', Math.min(text.length - 1, 500));
    return text.slice(0, cut > 0 ? cut + 1 : text.length);
  });
}

async function main() {
  const { manifest, files } = readManifest(exportDir);
  const model = await DecoderModel.load(files, manifest, { threads });
  const tokenizer = TextTokenizer.fromFile(files.tokenizer, { vocabSize: manifest.vocab_size, manifest: files.manifest });
  const loadStart = os.loadavg();

  // step cost: the same past for every leg (runs write into free slots only; the past keeps its length)
  const prompt = Array.from({ length: 128 }, (_, i) => 100 + ((i * 37) % 5000));
  const reserve = manifest.prefix_length + 128 + 8;
  const past: KvCache = (await model.forward(prompt, model.prefix, reserve)).kv;
  const steps = 12;
  const cost: Record<string, number[]> = { 1: [], 2: [], 3: [], 4: [] };
  for (let r = 0; r < rounds * 2; r++) {
    for (const n of r % 2 ? [4, 3, 2, 1] : [1, 2, 3, 4]) {
      const ids = Array.from({ length: n }, (_, i) => 200 + i);
      const times: number[] = [];
      for (let s = 0; s < steps; s++) {
        const t = performance.now();
        if (n === 1) await model.forwardGreedy(ids, truncateKv(past, past.length), reserve);
        else await model.forwardDrafted(ids, truncateKv(past, past.length), reserve);
        times.push(performance.now() - t);
      }
      cost[n]!.push(median(times));
    }
  }
  const one = median(cost[1]!);
  const stepCost = Object.fromEntries(Object.entries(cost).map(([n, xs]) => [n, { ms: median(xs), vsOne: median(xs) / one, rounds: xs.map(x => +(x / one).toFixed(3)) }]));
  log(`step cost: ${Object.entries(stepCost).map(([n, c]) => `${n} tokens ${c.ms.toFixed(1)} ms (${c.vsOne.toFixed(2)}x)`).join(', ')}`);

  // decode: the engine's loop against one token a run
  let drafted = 0;
  let draftsTaken = 0;
  const forwardDrafted = model.forwardDrafted.bind(model);
  model.forwardDrafted = async (ids, kv, res) => {
    const out = await forwardDrafted(ids, kv, res);
    drafted++;
    let a = 0;
    while (a < ids.length - 1 && ids[a + 1] === out.nexts[a]) a++;
    draftsTaken += a;
    return out;
  };
  const perDoc = [];
  for (const [d, text] of prompts().entries()) {
    const ids = tokenizer.encode(text);
    const a: number[] = [];
    const b: number[] = [];
    let same = true;
    let runsB = 0;
    let takenB = 0;
    /** One leg: the decode loop on a cold cache, with or without drafts; ms per token and its tokens. */
    const decode = async (draft: boolean) => {
      drafted = 0;
      draftsTaken = 0;
      const res = await new Generator(model, tokenizer).generate(text, { maxTokens: tokens, ignoreEos: true, reuseCache: false, draft }, { aborted: () => false });
      return { ms: res.timings.decodeMs / tokens, tokens: res.tokens };
    };
    for (let r = 0; r < rounds; r++) {
      const legs: Record<string, { ms: number; tokens: number[] }> = {};
      for (const leg of r % 2 ? ['B', 'A'] : ['A', 'B']) {
        legs[leg] = await decode(leg === 'B');
        if (leg === 'B') [runsB, takenB] = [drafted, draftsTaken];
      }
      a.push(legs.A!.ms);
      b.push(legs.B!.ms);
      same &&= legs.A!.tokens.length === legs.B!.tokens.length && legs.A!.tokens.every((x, i) => x === legs.B!.tokens[i]);
    }
    const row = { doc: d, promptTokens: ids.length, oneTokenMsPerToken: median(a), draftedMsPerToken: median(b), ratio: median(b) / median(a), perRound: b.map((x, i) => +(x / a[i]!).toFixed(3)), sameTokens: same, draftedRuns: runsB, draftsTaken: takenB };
    log(`doc ${d}: ${row.oneTokenMsPerToken.toFixed(1)} -> ${row.draftedMsPerToken.toFixed(1)} ms/token (${row.ratio.toFixed(2)}x), ${runsB} drafted runs, ${takenB} drafts taken, same tokens: ${same}`);
    perDoc.push(row);
  }
  await model.release();
  const ratios = perDoc.map(r => r.ratio);
  console.log(JSON.stringify({ exportDir, threads, tokens, rounds, cpu: os.cpus()[0]?.model, loadavgStart: loadStart, loadavgEnd: os.loadavg(), stepCost, decode: { medianRatio: median(ratios), perDoc } }, null, 1));
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});

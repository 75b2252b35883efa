// How much drafted decoding could save on real code, without a model that writes real code (not a test): the engine's
// own decode loop (Generator, drafts from src/inference/draft.ts) runs against a scripted model that always answers
// with the file's true continuation, at many cut points of code files; a real model's greedy text follows its
// context less or more than the true text does, so this estimates acceptance, it does not measure it. Each model run
// is charged its measured cost (relative to a one-token run; --cost from draft_ab.ts's step cost on bloom-560m int8).
//
//   node --import tsx scripts/bench/draft_proxy.ts [--cost 1.16,1.44,1.35] [--every 97] [--mode singleLine|multiLine]
//        [files...]   (default: examples/code-corpus and src/**/*.ts)
// Prints one JSON object on stdout.
import fs from 'node:fs';
import path from 'node:path';
import type { DecoderModel } from '../../src/inference/decoder';
import { DRAFT_TOKENS } from '../../src/inference/draft';
import { Generator } from '../../src/inference/generator';
import { emptyKv, type KvCache } from '../../src/inference/kv';
import { TextTokenizer } from '../../src/inference/tokenizer';

const ROOT = path.resolve(__dirname, '../..');
const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
/** Cost of a run of 2, 3, 4 new tokens relative to one. */
const cost = [1, ...arg('cost', '1.16,1.44,1.35').split(',').map(Number)];
const every = Number(arg('every', '97'));
const mode = arg('mode', 'singleLine');
const given = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !all[i - 1]?.startsWith('--'));

function codeFiles(): string[] {
  if (given.length) return given;
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|py|js)$/.test(e.name)) out.push(p);
    }
  };
  walk(path.join(ROOT, 'examples/code-corpus'));
  walk(path.join(ROOT, 'src'));
  return out.sort();
}

const tokenizer = TextTokenizer.fromFile(path.join(ROOT, 'models/bloom-tiny/tokenizer.json'));

/** A model whose greedy token is always the script's next one; records the size of every decode run. */
function scripted(promptLength: number, script: number[], runs: number[]): DecoderModel {
  const at = (i: number) => script[i - promptLength] ?? 2;
  const grow = (past: KvCache, n: number): KvCache => ({ ...past, length: past.length + n });
  return {
    manifest: { prefix_length: 0, eos_token_id: 2, bos_token_id: 1, vocab_size: 1 << 20 },
    prefix: emptyKv(1, 'float32'),
    async forward(ids: readonly number[], past: KvCache) {
      return { logits: new Float32Array(1), next: at(past.length + ids.length), kv: grow(past, ids.length) };
    },
    async forwardGreedy(ids: readonly number[], past: KvCache) {
      runs.push(ids.length);
      return { next: at(past.length + ids.length), kv: grow(past, ids.length) };
    },
    async forwardDrafted(ids: readonly number[], past: KvCache) {
      runs.push(ids.length);
      return { nexts: ids.map((_, i) => at(past.length + i + 1)), kv: grow(past, ids.length) };
    },
  } as unknown as DecoderModel;
}

async function main() {
  let tokens = 0;
  let baselineRuns = 0;
  let charged = 0;
  let runCount = 0;
  const sizes: Record<number, number> = {};
  let cuts = 0;
  for (const file of codeFiles()) {
    const text = fs.readFileSync(file, 'utf8');
    // cut points inside lines with text on both sides (where a user waits for the rest of the line)
    for (let c = 200; c < text.length - 40; c += every) {
      if (text[c - 1] === '\n' || text[c] === '\n') continue;
      const prompt = text.slice(Math.max(0, c - 2000), c);
      const promptIds = tokenizer.encode(prompt);
      const script = tokenizer.encode(text.slice(c, c + 400));
      const runs: number[] = [];
      const res = await new Generator(scripted(promptIds.length, script, runs), tokenizer).generate(prompt, { maxTokens: 48, stopAtNewline: mode === 'singleLine' ? 'first' : undefined }, { aborted: () => false });
      cuts++;
      tokens += res.tokens.length;
      // one token a run: every emitted token but the last is run (the line's end or the 48th is not)
      baselineRuns += Math.max(0, res.tokens.length - 1);
      // decode runs only (the prompt's prefill chunks run through forwardGreedy too)
      const decode = runs.filter(n => n <= 1 + DRAFT_TOKENS);
      for (const n of decode) {
        sizes[n] = (sizes[n] ?? 0) + 1;
        charged += cost[n - 1] ?? cost.at(-1)!;
      }
      runCount += decode.length;
    }
  }
  const out = { mode, cost, files: codeFiles().length, cuts, tokens, baselineRuns, draftedRuns: runCount, runsBySize: sizes, runsPerToken: runCount / tokens, chargedOverBaseline: charged / baselineRuns };
  process.stderr.write(`[draft proxy] ${mode}: ${cuts} cut points, ${tokens} tokens; runs ${baselineRuns} -> ${runCount} (by size ${JSON.stringify(sizes)}); decode cost ${out.chargedOverBaseline.toFixed(2)}x of one token a run\n`);
  console.log(JSON.stringify(out));
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});

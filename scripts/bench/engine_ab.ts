// A/B of two exports (not a test): load time, cold first token, warm first token and decode ms/token, interleaved
// (A, B, A, B) so drift and a disturbed leg show. Engine variants are compared as exports (an export made by a
// variant of the exporter), or as engine builds through bench-owned worker entries (--worker-a, --worker-b: e.g. a
// copy of src/inference from another commit, for an export format the current engine no longer reads). An entry is
// the engine process's script and must speak this host's protocol: worker.ts from b96fba3 on (before it, the engine
// was a worker thread; scripts/bench/engine_process_ab.ts compares that engine with today's).
//
//   node --import tsx scripts/bench/engine_ab.ts --a <export dir> --b <export dir> [--worker-a <worker.ts>]
//        [--worker-b <worker.ts>] [--threads 2] [--tokens 16] [--rounds 2]
//
// Prints one JSON line per leg and round, then the B/A ratios of the medians.
import fs from 'node:fs';
import path from 'node:path';
import { benchEngine, type EngineBench } from './engine';

const argv = process.argv.slice(2);
const opt = (name: string, dflt?: string) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1]! : dflt; };
const a = opt('a');
const b = opt('b') ?? a;
const workerA = opt('worker-a');
const workerB = opt('worker-b');
const threads = Number(opt('threads', '2'));
const tokens = Number(opt('tokens', '16'));
const rounds = Number(opt('rounds', '2'));
const PROMPT = fs.readFileSync(path.resolve(__dirname, '../../examples/code-corpus/user_store.py'), 'utf8').slice(0, 600);
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1]!;

async function main(): Promise<void> {
  if (!a) throw new Error('give --a <export dir> (and --b <export dir> or --worker-b <worker entry>)');
  const legs = { A: { dir: path.resolve(a), workerEntry: workerA && path.resolve(workerA) }, B: { dir: path.resolve(b!), workerEntry: workerB && path.resolve(workerB) } };
  const seen: Record<'A' | 'B', EngineBench[]> = { A: [], B: [] };
  for (let round = 0; round < rounds; round++) {
    for (const leg of ['A', 'B'] as const) {
      const { dir, workerEntry } = legs[leg];
      const r = await benchEngine(dir, PROMPT, { threads, decodeTokens: tokens, repeats: 1, ...(workerEntry ? { workerEntry } : {}) });
      seen[leg].push(r);
      console.log(JSON.stringify({ leg, round, export: dir, workerEntry, loadMs: Math.round(r.loadMs), coldFirstTokenMs: Math.round(r.coldFirstTokenMs), warmFirstTokenMs: +r.warmFirstTokenMs.toFixed(1), decodeMsPerToken: +r.decodeMsPerToken.toFixed(2) }));
    }
  }
  const ratio = (k: keyof EngineBench) => +(median(seen.B.map(r => r[k] as number)) / median(seen.A.map(r => r[k] as number))).toFixed(3);
  console.log(JSON.stringify({ bOverA: { loadMs: ratio('loadMs'), coldFirstTokenMs: ratio('coldFirstTokenMs'), warmFirstTokenMs: ratio('warmFirstTokenMs'), decodeMsPerToken: ratio('decodeMsPerToken') } }));
}
void main().catch(e => { console.error(e); process.exit(1); });

// A/B of one boolean engine option (not a test): load time, cold first token, warm first token and decode ms/token
// of the same export with the option off and on, interleaved (off, on, off, on) so drift shows.
//
//   node --import tsx scripts/bench/engine_ab.ts --option prepack|slottedCache --export <dir> [--export <dir> ...]
//        [--threads 2] [--tokens 16]
//
// prepack: onnxruntime weight pre-packing (change 2 in docs/benchmarks.md); slottedCache: engine-owned KV slots,
// fetching only the new positions (change 3). Prints one JSON line per export and run.
import fs from 'node:fs';
import path from 'node:path';
import { benchEngine } from '../../src/inference/bench';

const argv = process.argv.slice(2);
const exports = argv.flatMap((a, i) => (a === '--export' ? [path.resolve(argv[i + 1]!)] : []));
const opt = (name: string, dflt: string) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1]! : dflt; };
const option = opt('option', 'prepack');
if (option !== 'prepack' && option !== 'slottedCache') throw new Error(`--option must be prepack or slottedCache, not ${option}`);
const threads = Number(opt('threads', '2'));
const tokens = Number(opt('tokens', '16'));
const PROMPT = fs.readFileSync(path.resolve(__dirname, '../../examples/code-corpus/user_store.py'), 'utf8').slice(0, 600);

async function main(): Promise<void> {
  if (!exports.length) throw new Error('give --export <dir>');
  for (const dir of exports) {
    for (const on of [false, true, false, true]) {
      const r = await benchEngine(dir, PROMPT, { threads, decodeTokens: tokens, repeats: 1, [option]: on });
      console.log(JSON.stringify({ export: dir, [option]: on, loadMs: Math.round(r.loadMs), coldFirstTokenMs: Math.round(r.coldFirstTokenMs), warmFirstTokenMs: +r.warmFirstTokenMs.toFixed(1), decodeMsPerToken: +r.decodeMsPerToken.toFixed(2) }));
    }
  }
}
void main().catch(e => { console.error(e); process.exit(1); });

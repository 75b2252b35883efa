// A/B of onnxruntime weight prepacking in the engine (not a test): load time, cold first token and decode
// ms/token of the same export with `session.disable_prepacking` 1 (the engine's default) and 0.
//
//   node --import tsx scripts/bench/prepack_ab.ts --export <export dir> [--export <dir> ...] [--threads 2] [--tokens 16]
//
// Prints one JSON line per export and run order (off, on, off, on: interleaved so drift shows).
import fs from 'node:fs';
import path from 'node:path';
import { benchEngine } from '../../src/inference/bench';

const argv = process.argv.slice(2);
const exports = argv.flatMap((a, i) => (a === '--export' ? [path.resolve(argv[i + 1]!)] : []));
const opt = (name: string, dflt: string) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1]! : dflt; };
const threads = Number(opt('threads', '2'));
const tokens = Number(opt('tokens', '16'));
const PROMPT = fs.readFileSync(path.resolve(__dirname, '../../examples/code-corpus/user_store.py'), 'utf8').slice(0, 600);

async function main(): Promise<void> {
  if (!exports.length) throw new Error('give --export <dir>');
  for (const dir of exports) {
    for (const prepack of [false, true, false, true]) {
      const r = await benchEngine(dir, PROMPT, { threads, decodeTokens: tokens, repeats: 1, prepack });
      console.log(JSON.stringify({ export: dir, prepack, loadMs: Math.round(r.loadMs), coldFirstTokenMs: Math.round(r.coldFirstTokenMs), decodeMsPerToken: +r.decodeMsPerToken.toFixed(1) }));
    }
  }
}
void main().catch(e => { console.error(e); process.exit(1); });

// Completion pipeline latency (not a test): keystroke -> ghost text through the headless pipeline
// (src/completion/headless.ts: same service, prefilter, debounce, cache, engine as the inline provider).
//
//   node --import tsx scripts/bench/pipeline.ts --export DIR [--threads 2] [--docs 6] [--keys 6]
//
// Cold: a document the engine has not seen (no reusable KV cache), typed at its end. Warm: the same document
// with one more character typed, right after the previous completion. Each keystroke is an automatic
// trigger, so the total includes the debounce (DEFAULT_SETTINGS.debounceMs); engineMs is the engine's share.
// Prints one JSON object on stdout.
import fs from 'node:fs';
import path from 'node:path';
import { createHeadlessCompletions } from '../../src/completion/headless';

const ROOT = path.resolve(__dirname, '../..');
const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const exportDir = path.resolve(arg('export', ''));
const threads = Number(arg('threads', '2'));
const docs = Number(arg('docs', '6'));
const keys = Number(arg('keys', '6'));

const pct = (xs: number[], p: number) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const stats = (xs: number[]) => ({ n: xs.length, p50: pct(xs, 50), p95: pct(xs, 95) });

// Documents: windows of the sample code files, cut at a line end so that nothing is mid-word.
function documents(): { text: string; languageId: string }[] {
  const dir = path.join(ROOT, 'examples/code-corpus');
  const lang: Record<string, string> = { '.py': 'python', '.js': 'javascript', '.ts': 'typescript' };
  const out: { text: string; languageId: string }[] = [];
  for (const f of fs.readdirSync(dir).sort()) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    const cut = text.indexOf('\n', Math.min(text.length - 1, 500));
    out.push({ text: text.slice(0, cut > 0 ? cut + 1 : text.length), languageId: lang[path.extname(f)] ?? 'plaintext' });
  }
  return out.slice(0, docs);
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const h = await createHeadlessCompletions(exportDir, {}, { threads });
  const loadMs = performance.now() - t0;
  const cold = { total: [] as number[], engine: [] as number[] };
  const warm = { total: [] as number[], engine: [] as number[] };
  let cached = 0;
  let empty = 0;
  // An empty answer (post-processing dropped it: random weights often start with a newline) still cost the user
  // the wait: its wall time counts in the total; the engine share is known only for shown completions.
  const record = (into: typeof cold, c: Awaited<ReturnType<typeof h.complete>>, wallMs: number) => {
    if (!c) {
      empty++;
      into.total.push(wallMs);
    } else if (c.cached) cached++;
    else (into.total.push(c.latencyMs), into.engine.push(c.engineMs));
  };
  try {
    // one throwaway completion: first-call costs (JIT, session warm-up) are not what a keystroke pays later
    await h.complete('def warmup():\n    ', { languageId: 'python' });
    for (const doc of documents()) {
      let text = doc.text + '    ';
      let t = performance.now();
      const c = await h.complete(text, { languageId: doc.languageId });
      record(cold, c, performance.now() - t);
      // type characters that start a new identifier, so each keystroke is a fresh request
      for (const ch of 'retval'.slice(0, keys)) {
        text += ch;
        t = performance.now();
        const w = await h.complete(text, { languageId: doc.languageId });
        record(warm, w, performance.now() - t);
      }
    }
  } finally {
    await h.dispose();
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(exportDir, 'manifest.json'), 'utf8'));
  const cp50 = pct(cold.total, 50);
  const wp50 = pct(warm.total, 50);
  console.log(JSON.stringify({
    exportDir, threads, loadMs, quantize: manifest.quantize ?? manifest.precision ?? null,
    cold: { total: stats(cold.total), engine: stats(cold.engine) },
    warm: { total: stats(warm.total), engine: stats(warm.engine) },
    warmOverColdEngineP50: pct(warm.engine, 50)! / pct(cold.engine, 50)!,
    warmOverColdTotalP50: wp50 !== null && cp50 !== null ? wp50 / cp50 : null,
    cacheHits: cached, emptyCompletions: empty,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
  }));
}

void main().catch(e => {
  console.error(e);
  process.exit(1);
});

// Completion pipeline latency (not a test): keystroke -> ghost text through the headless pipeline
// (src/completion/headless.ts: same service, prefilter, prefill, debounce, cache, engine as the inline provider),
// with the default settings (debounce 150 ms, adaptive; latency budget 300 ms; 48 tokens).
//
//   node --import tsx scripts/bench/pipeline.ts --export DIR [--threads 2] [--docs 6] [--keys 4]
//   node --import tsx scripts/bench/pipeline.ts --build-560m DIR ...   (random bloom-560m int8 weights, made there
//                                                                       when missing: 2-4 minutes; see ensure560m)
//   [--modes singleLine,multiLine] [--pause-ms 1100] [--rhythm-ms 200] [--before-rev REV | --no-before]
//   [--repo DIR]   (the git repository --before-rev is read from; default: this checkout)
//   [--vscode-delay-ms 50]   (VS Code asks the provider this long after the change: 1.100's InlineCompletionsDebounce)
//   [--before-files a,b]      (the files "before" takes from --before-rev; default BEFORE_FILES. For a before of the
//                              keystroke accounting (e70ebcf): src/completion/pipeline.ts,src/completion/debounce.ts,
//                              so both variants run today's engine and decode loop)
//
// Reuse a built model: --build-560m DIR only builds what DIR lacks (DIR/int8, DIR/int8-walk), so pointing it at an
// earlier build (or --export DIR/int8-walk) reuses it; an export of an older format must be built again (new DIR).
//
// Every time is keystroke -> ghost text as the user sees it: from the document change (the bench's keystroke) to the
// completion returned, for both variants. As in VS Code, the keystroke cancels the previous request at once and the
// provider is asked --vscode-delay-ms later, with the change's time (changedAt) that today's pipeline counts from.
// Cold: a document the engine has not seen (no reusable KV cache), typed at its end. Warm: the same document with
// one more character typed after a pause (the user stops and waits for ghost text; pauses over 1 s leave the
// adaptive debounce at its base). Rhythm: three characters typed at a steady rhythm (--rhythm-ms apart), the last one
// measured: the adaptive debounce then waits 1.5x the rhythm (at most 2x the base). As in VS Code, each keystroke
// cancels the previous request.
//
// Before/after in one run: "before" is the pipeline, debounce and decode loop of --before-rev (default: the commit
// before the latency work: no prefill during the debounce, no latency budget, no line-end stop in the engine, it
// waited for the engine's aborted step, and the adaptive debounce kept an old rhythm across pauses), loaded from a
// copy of today's src/ with those files taken from git (BEFORE_FILES), in its own engine; documents alternate which
// variant goes first. Prints one JSON object on stdout.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { HeadlessCompletions } from '../../src/completion/headless';
import { ownSeconds } from './load';

const ROOT = path.resolve(__dirname, '../..');
const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const build560m = arg('build-560m', '');
const exportDir = path.resolve(build560m ? path.join(build560m, 'int8-walk') : arg('export', ''));
const threads = Number(arg('threads', '2'));
const docs = Number(arg('docs', '6'));
const keys = Number(arg('keys', '4'));
const pauseMs = Number(arg('pause-ms', '1100'));
const rhythmMs = Number(arg('rhythm-ms', '200'));
const modes = arg('modes', 'singleLine,multiLine').split(',') as Array<'singleLine' | 'multiLine'>;
const vscodeDelayMs = Number(arg('vscode-delay-ms', '50'));
const beforeRev = process.argv.includes('--no-before') ? '' : arg('before-rev', '929ae37');
/** The files of the latency changes; "before" takes these from --before-rev, the rest of src/ is today's (the engine
 * included: both variants run the same engine code). */
const BEFORE_FILES = arg('before-files', 'src/completion/pipeline.ts,src/completion/debounce.ts,src/inference/generator.ts,src/inference/stop.ts').split(',');
/** The clock the pipeline's changedAt is on (src/inference/stop.ts wallClock). */
const wallClock = () => performance.timeOrigin + performance.now();

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));
const pct = (xs: number[], p: number) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const stats = (xs: number[]) => ({ n: xs.length, p50: pct(xs, 50), p95: pct(xs, 95) });

const PYTHON = fs.existsSync(path.join(ROOT, '.venv/bin/python')) ? path.join(ROOT, '.venv/bin/python') : 'python3';
const python = (code: string, ...args: string[]) =>
  execFileSync(PYTHON, ['-c', code, ...args], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, PYTHONPATH: path.join(ROOT, 'trainer/src'), TOKENIZERS_PARALLELISM: 'false' } });

/**
 * Random bloom-560m-shaped weights exported int8 by the project's exporter, as scripts/bench/engine_vs_torch.ts (bench_model.py) makes them
 * (DIR/int8), then DIR/int8-walk for this bench: greedy decoding of random tied weights repeats the prompt's last
 * token for ever ("rrrr…": the hidden state stays closest to its own input embedding), which would make every
 * completion one repeated word. int8-walk gives the vocabulary projection its own copy of the matrix with the
 * columns permuted (seeded), so greedy decoding walks through varied tokens: same shapes, same bytes read per step.
 * Its tokenizer is padded to the vocabulary (padTokenizer).
 */
function ensure560m(dir: string): void {
  if (!fs.existsSync(path.join(dir, 'int8', 'manifest.json'))) {
    python(`
import sys, time, torch
from pathlib import Path
sys.path.insert(0, "scripts/bench")
from bench_model import build_model, tokenizer_dir
from bloom_peft.export import export_model
from bloom_peft.model_loading import load_tokenizer
out = Path(sys.argv[1])
torch.set_num_threads(2)
tok = load_tokenizer(str(tokenizer_dir(out / "scratch")))
model = build_model("560m", out / "scratch")  # the engine and peer benches' weights (seed 0)
t = time.time()
export_model(model, tok, "full", out / "int8", base_model="random-560m", quantize="int8", verify=False)
print(f"exported int8 in {time.time() - t:.0f}s", file=sys.stderr)
`, dir);
  }
  const walk = path.join(dir, 'int8-walk');
  if (!fs.existsSync(path.join(walk, 'manifest.json'))) {
    python(`
import shutil, sys
from pathlib import Path
import numpy as np, onnx
from onnx import numpy_helper
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
m = onnx.load(str(src / "model.onnx"))
w = next(i for i in m.graph.initializer if i.name == "vocab_t_quantized")
arr = numpy_helper.to_array(w)
perm = np.random.default_rng(0).permutation(arr.shape[1])
m.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(arr[:, perm]), "vocab_t_quantized_walk"))
users = [n for n in m.graph.node if n.op_type == "MatMulInteger" and "vocab_t_quantized" in n.input]
assert len(users) == 1, [n.name for n in users]
users[0].input[list(users[0].input).index("vocab_t_quantized")] = "vocab_t_quantized_walk"
onnx.save_model(m, str(dst / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=1024)
for f in ("manifest.json", "tokenizer.json"):
    shutil.copy(src / f, dst / f)
`, path.join(dir, 'int8'), walk);
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(walk, 'manifest.json'), 'utf8'));
  padTokenizer(path.join(walk, 'tokenizer.json'), manifest.vocab_size);
}

/**
 * The embedded tokenizer has 7,148 tokens; a random 560m model samples from 250,880 ids, most of which would decode
 * to nothing (and the engine refuses such a pair). The padding adds synthetic byte-level entries for the missing ids,
 * without merges (encoding is unchanged): 1-7 letters, 45% with a leading space (about BLOOM's share), 0.3% holding a
 * line break, a few punctuation tokens. Deterministic; idempotent.
 */
export function padTokenizer(file: string, vocabSize: number): void {
  const json = JSON.parse(fs.readFileSync(file, 'utf8'));
  const vocab: Record<string, number> = json.model.vocab;
  const used = new Set<number>([...Object.values(vocab), ...(json.added_tokens ?? []).map((a: { id: number }) => a.id)]);
  if (used.size >= vocabSize) return;
  let seed = 12345;
  const rand = () => {
    // mulberry32: exact 32-bit integer steps (a float LCG loses precision and cycles)
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const letters = 'abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  const punct = ['(', ')', '.', ',', ':', '=', '_', '[', ']', '"', "'", '-', '+'];
  const piece = (): string => {
    const r = rand();
    if (r < 0.003) return `${rand() < 0.5 ? punct[Math.floor(rand() * punct.length)] : ''}Ċ${'Ġ'.repeat(Math.floor(rand() * 9))}`;
    if (r < 0.05) return (rand() < 0.45 ? 'Ġ' : '') + punct[Math.floor(rand() * punct.length)]! + (rand() < 0.3 ? punct[Math.floor(rand() * punct.length)] : '');
    let w = rand() < 0.45 ? 'Ġ' : '';
    const n = 1 + Math.floor(rand() * 7);
    for (let i = 0; i < n; i++) w += letters[Math.floor(rand() * letters.length)];
    return w;
  };
  for (let id = 0; id < vocabSize; id++) {
    if (used.has(id)) continue;
    let p = piece();
    while (p in vocab) p = piece() + letters[Math.floor(rand() * 26)];
    vocab[p] = id;
  }
  fs.writeFileSync(file, JSON.stringify(json));
}

/** Today's src/ with BEFORE_FILES from `rev`, beside links to node_modules (tsx and onnxruntime resolve) and schemas/. */
function beforeTree(rev: string): string {
  const dir = path.join(os.tmpdir(), 'bloom-peft-pipeline-before');
  fs.rmSync(path.join(dir, 'src'), { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.cpSync(path.join(ROOT, 'src'), path.join(dir, 'src'), { recursive: true });
  // what src/ reads from beside it (node_modules; the schemas the protocol types come from)
  for (const beside of ['node_modules', 'schemas']) if (!fs.existsSync(path.join(dir, beside))) fs.symlinkSync(path.join(ROOT, beside), path.join(dir, beside));
  for (const f of BEFORE_FILES) fs.writeFileSync(path.join(dir, f), execFileSync('git', ['show', `${rev}:${f}`], { cwd: arg('repo', ROOT) }));
  return dir;
}

/** CPU time of the whole machine and of this process and its descendants (the engine's process), for the others' share. */
function cpuSample() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3]! + (f[4] ?? 0);
  const total = f.reduce((a, b) => a + b, 0);
  return { busyS: (total - idle) / 100, totalS: total / 100, oursS: ownSeconds() };
}
function load(a: ReturnType<typeof cpuSample>, b: ReturnType<typeof cpuSample>) {
  const cores = os.cpus().length;
  const wallS = (b.totalS - a.totalS) / cores;
  const busy = (b.busyS - a.busyS) / (b.totalS - a.totalS);
  const ours = (b.oursS - a.oursS) / (wallS * cores);
  return { cores, busyPct: 100 * busy, oursPct: 100 * ours, othersPct: Math.max(0, 100 * (busy - ours)) };
}

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

type Kind = 'cold' | 'warm' | 'rhythm';
interface Sample {
  variant: string;
  mode: string;
  kind: Kind;
  totalMs: number;
  engineMs?: number;
  shown: boolean;
  cached: boolean;
  /** Tokens decoded, and (today's pipeline) how many the shown text holds whole. */
  tokensDecoded?: number;
  tokensShown?: number;
  chars: number;
  end?: string;
  /** Share of the machine's CPU other processes used during this keystroke's wait. */
  othersPct: number;
  /** Today's pipeline: ms past the budget it was returned (0 = on time), and the hand-off it planned with. */
  lateMs?: number;
  handoffMs?: number;
}

async function main(): Promise<void> {
  if (build560m) ensure560m(path.resolve(build560m));
  const variants: Array<{ name: string; h: HeadlessCompletions }> = [];
  const loadMs: Record<string, number> = {};
  const open = async (name: string, srcRoot: string) => {
    const mod = (await import(path.join(srcRoot, 'src/completion/headless.ts'))) as typeof import('../../src/completion/headless');
    const t0 = performance.now();
    const h = await mod.createHeadlessCompletions(exportDir, {}, { threads });
    loadMs[name] = performance.now() - t0;
    variants.push({ name, h });
  };
  await open('after', ROOT);
  if (beforeRev) await open('before', beforeTree(beforeRev));

  const samples: Sample[] = [];
  let prev: AbortController | undefined;
  /** One keystroke: cancels the previous request (as VS Code does on a change), asks --vscode-delay-ms later with the
   * change's time, returns the result and the wall time from the keystroke. */
  const keystroke = async (h: HeadlessCompletions, text: string, languageId: string) => {
    prev?.abort();
    const ctl = new AbortController();
    prev = ctl;
    const t = performance.now();
    const changedAt = wallClock();
    const cpu = cpuSample();
    // the editor's change event: today's pipeline prefills the new text at once (the before variant has no such step)
    if (typeof h.changed === 'function' && (h.service.pipeline as { prefillAtChange?: unknown }).prefillAtChange) h.changed(text, { languageId, changedAt });
    if (vscodeDelayMs > 0) await sleep(vscodeDelayMs);
    if (ctl.signal.aborted) return { c: undefined, wallMs: performance.now() - t, othersPct: load(cpu, cpuSample()).othersPct };
    const c = await h.complete(text, { languageId, signal: ctl.signal, changedAt });
    return { c, wallMs: performance.now() - t, othersPct: load(cpu, cpuSample()).othersPct };
  };
  const record = (v: { name: string; h: HeadlessCompletions }, mode: string, kind: Kind, r: Awaited<ReturnType<typeof keystroke>>) => {
    const c = r.c;
    const stats = v.h.service.pipeline.stats as { lastEnd?: string; lastTokens?: { streamed: number; shown: number }; lastLateMs?: number; lastHandoffMs?: number };
    const generated = c && !c.cached;
    samples.push({
      variant: v.name, mode, kind,
      // From the keystroke, as the user sees it (the before variant counts its latencyMs from the call); an empty
      // answer (post-processing dropped it) still cost the user the wait.
      totalMs: r.wallMs,
      engineMs: c && !c.cached ? c.engineMs : undefined,
      shown: !!c, cached: !!c?.cached,
      tokensDecoded: generated ? (stats.lastTokens?.streamed ?? c.timings?.generatedTokens) : undefined,
      tokensShown: generated ? stats.lastTokens?.shown : undefined,
      chars: c ? c.insertText.length : 0,
      end: stats.lastEnd,
      othersPct: r.othersPct,
      lateMs: generated ? stats.lastLateMs : undefined,
      handoffMs: generated ? stats.lastHandoffMs : undefined,
    });
  };

  const cpu0 = cpuSample();
  const load0 = os.loadavg();
  const loadByMode: Record<string, ReturnType<typeof load>> = {};
  try {
    for (const v of variants) await v.h.complete('def warmup():\n    ', { languageId: 'python', invoke: true });
    for (const mode of modes) {
      const m0 = cpuSample();
      for (const v of variants) {
        v.h.settings.mode = mode;
        await v.h.service.settingsChanged();
      }
      const ds = documents();
      for (let d = 0; d < ds.length; d++) {
        const doc = ds[d]!;
        console.error(`[pipeline bench] ${mode}: document ${d + 1}/${ds.length}`);
        for (const v of d % 2 ? [...variants].reverse() : variants) {
          Object.assign(v.h.service.pipeline.stats, { lastEnd: undefined, lastTokens: undefined, lastLateMs: undefined, lastHandoffMs: undefined });
          let text = `${doc.text}    `;
          await sleep(pauseMs);
          record(v, mode, 'cold', await keystroke(v.h, text, doc.languageId));
          // characters that start a new identifier, so each keystroke is a fresh request
          for (const ch of 'retval'.slice(0, keys)) {
            await sleep(pauseMs);
            text += ch;
            record(v, mode, 'warm', await keystroke(v.h, text, doc.languageId));
          }
          if (rhythmMs > 0) {
            await sleep(pauseMs);
            const burst = ' = ';
            for (let i = 0; i < burst.length; i++) {
              text += burst[i];
              const r = keystroke(v.h, text, doc.languageId);
              if (i === burst.length - 1) record(v, mode, 'rhythm', await r);
              else await sleep(rhythmMs); // the next keystroke cancels this request
            }
          }
        }
      }
      loadByMode[mode] = load(m0, cpuSample());
    }
  } finally {
    for (const v of variants) await v.h.dispose();
  }
  const cpu1 = cpuSample();

  const summary: Record<string, unknown> = {};
  for (const v of variants) {
    for (const mode of modes) {
      const row: Record<string, unknown> = {};
      for (const kind of ['cold', 'warm', 'rhythm'] as Kind[]) {
        const xs = samples.filter(s => s.variant === v.name && s.mode === mode && s.kind === kind);
        if (!xs.length) continue;
        const shown = xs.filter(s => s.shown && !s.cached);
        const ends: Record<string, number> = {};
        for (const s of shown) if (s.end) ends[s.end] = (ends[s.end] ?? 0) + 1;
        row[kind] = {
          total: stats(xs.map(s => s.totalMs)),
          engine: stats(shown.map(s => s.engineMs!)),
          tokensDecoded: stats(shown.flatMap(s => (s.tokensDecoded === undefined ? [] : [s.tokensDecoded]))),
          tokensShown: stats(shown.flatMap(s => (s.tokensShown === undefined ? [] : [s.tokensShown]))),
          charsShown: stats(shown.map(s => s.chars)),
          othersPct: stats(xs.map(s => s.othersPct)),
          // samples during which other processes took under 25% of the CPU
          quietTotal: stats(xs.filter(s => s.othersPct < 25).map(s => s.totalMs)),
          shown: shown.length, cached: xs.filter(s => s.cached).length, empty: xs.filter(s => !s.shown).length,
          ends,
          // today's pipeline: completions returned after the budget, and by how much
          late: shown.filter(s => (s.lateMs ?? 0) > 0).length,
          lateMs: stats(shown.flatMap(s => ((s.lateMs ?? 0) > 0 ? [s.lateMs!] : []))),
          handoffMs: stats(shown.flatMap(s => (s.handoffMs === undefined ? [] : [s.handoffMs]))),
        };
      }
      summary[`${v.name}/${mode}`] = row;
    }
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(exportDir, 'manifest.json'), 'utf8'));
  // The fields scripts/bench/run.mjs reads: today's pipeline in the first mode (single-line by default).
  const today = samples.filter(s => s.variant === 'after' && s.mode === modes[0]);
  const of = (kind: Kind) => today.filter(s => s.kind === kind);
  const engineP50 = (kind: Kind) => pct(of(kind).filter(s => s.shown && !s.cached).map(s => s.engineMs!), 50);
  console.log(JSON.stringify({
    exportDir, threads, quantize: manifest.quantization ?? manifest.quantize ?? null, beforeRev: beforeRev || null, beforeFiles: beforeRev ? BEFORE_FILES : null,
    docs, keys, pauseMs, rhythmMs, vscodeDelayMs,
    loadMs: loadMs.after, loadMsByVariant: loadMs,
    cold: { total: stats(of('cold').map(s => s.totalMs)), engine: stats(of('cold').filter(s => s.shown && !s.cached).map(s => s.engineMs!)) },
    warm: { total: stats(of('warm').map(s => s.totalMs)), engine: stats(of('warm').filter(s => s.shown && !s.cached).map(s => s.engineMs!)) },
    warmOverColdEngineP50: (engineP50('warm') ?? Number.NaN) / (engineP50('cold') ?? Number.NaN),
    cacheHits: today.filter(s => s.cached).length, emptyCompletions: today.filter(s => !s.shown).length,
    summary,
    load: { ...load(cpu0, cpu1), loadavgStart: load0, loadavgEnd: os.loadavg(), byMode: loadByMode },
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    samples,
  }));
}

void main().catch(e => {
  console.error(e);
  process.exit(1);
});

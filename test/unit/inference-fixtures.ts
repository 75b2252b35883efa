// Fixtures for the engine tests: exports made by the project's exporter (test/unit/inference_fixtures.py),
// cached in the temp folder under a key that changes whenever the exporter, the fixture script or the
// embedded model changes, so a test run builds them once and later test files reuse them.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as esbuild from 'esbuild';
import { buildFixtureOnce } from './fixture-build';

export const ROOT = path.resolve(__dirname, '..', '..');
export const PYTHON = path.join(ROOT, '.venv', 'bin', 'python');

export const PY_ENV = {
  ...process.env,
  PYTHONPATH: path.join(ROOT, 'trainer', 'src'),
  TORCH_NUM_THREADS: '2',
  OMP_NUM_THREADS: '2',
  TOKENIZERS_PARALLELISM: 'false',
  PYTHONUNBUFFERED: '1',
  // the exporter's base cache (docs/export.md) in the temp folder, not the user's cache
  BLOOM_PEFT_EXPORT_CACHE: path.join(os.tmpdir(), 'bloom-peft-engine-fixtures', 'export-cache'),
};

function cacheKey(): string {
  const h = crypto.createHash('sha1');
  const files = [
    'test/unit/inference_fixtures.py',
    'trainer/src/bloom_peft/export.py',
    'trainer/src/bloom_peft/export_cache.py',
    'trainer/src/bloom_peft/methods.py',
    'trainer/src/bloom_peft/model_loading.py',
    ...['testing'].flatMap(d => {
      const dir = path.join(ROOT, 'trainer/src/bloom_peft', d);
      return fs.existsSync(dir) ? fs.readdirSync(dir).filter(f => f.endsWith('.py')).map(f => `trainer/src/bloom_peft/${d}/${f}`) : [];
    }),
  ];
  for (const f of files) {
    const p = path.join(ROOT, f);
    h.update(f).update(fs.existsSync(p) ? fs.readFileSync(p) : '');
  }
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) {
    const p = path.join(ROOT, 'models', 'bloom-tiny', f);
    if (fs.existsSync(p)) h.update(f + fs.statSync(p).size + ':' + fs.statSync(p).mtimeMs);
  }
  return h.digest('hex').slice(0, 16);
}

/** Folder holding the requested fixture parts (see inference_fixtures.py), built on first use. */
export function fixtures(...parts: ('parity' | 'fp16' | 'big' | 'int4')[]): string {
  const root = path.join(os.tmpdir(), 'bloom-peft-engine-fixtures', cacheKey());
  const missing = () => parts.filter(p => !fs.existsSync(path.join(root, p, 'done')));
  buildFixtureOnce({
    what: `engine fixtures (${parts.join(', ')})`,
    dir: root,
    done: () => missing().length === 0,
    command: PYTHON,
    args: [path.join(ROOT, 'test/unit/inference_fixtures.py'), root, ...parts], // parts already done are skipped
    env: PY_ENV,
  });
  return root;
}

/** reference.json of bloom_peft.testing.ts_fixtures (docs/export.md, "Fixtures"). */
export interface ParityReference {
  variant: string;
  method: string;
  prompts: string[];
  input_ids: number[][];
  /** The first logits of the last prompt position (a head of the vocabulary). */
  last_logits: number[][];
  last_argmax: number[];
  greedy_ids: number[][];
  greedy_steps: number;
  tolerance: number | null;
}

export function parityExports(part: 'parity' | 'fp16' = 'parity'): { variant: string; dir: string; ref: ParityReference & { python_onnxruntime_greedy_ids: number[] } }[] {
  const root = path.join(fixtures(part), part);
  return fs
    .readdirSync(root)
    .filter(d => fs.existsSync(path.join(root, d, 'reference.json')))
    .sort()
    .map(d => ({ variant: d, dir: path.join(root, d, 'export'), ref: JSON.parse(fs.readFileSync(path.join(root, d, 'reference.json'), 'utf8')) }));
}

/**
 * The worker bundled as the extension ships it (dist/inference-worker.js), built into the ignored
 * .cache/ folder: inside the repo, so its require('onnxruntime-node') resolves like dist/'s does.
 */
export async function bundledWorker(): Promise<string> {
  const out = path.join(ROOT, '.cache', 'engine-tests', `worker-${process.pid}`, 'inference-worker.js');
  process.once('exit', () => fs.rmSync(path.dirname(out), { recursive: true, force: true }));
  await esbuild.build({
    entryPoints: [path.join(ROOT, 'src/inference/worker.ts')], bundle: true, platform: 'node', format: 'cjs', target: 'node20',
    external: ['onnxruntime-node'], outfile: out, logLevel: 'error',
  });
  return out;
}

/** A writable copy of an export, to break on purpose. */
export function copyExport(src: string): string {
  const dst = fs.mkdtempSync(path.join(os.tmpdir(), 'bloom-engine-bad-'));
  for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dst, f));
  return dst;
}

export function editManifest(dir: string, patch: (m: Record<string, any>) => void): void {
  const p = path.join(dir, 'manifest.json');
  const m = JSON.parse(fs.readFileSync(p, 'utf8'));
  patch(m);
  fs.writeFileSync(p, JSON.stringify(m));
}

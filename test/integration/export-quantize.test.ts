// `bloom-peft export --quantize` with the real trainer: a run trained (4 steps, the embedded model, its config
// asking for no quantization) is exported in int4 from the command line: the manifest says int4 and the engine
// serves it. Bad values and --quantize with --hf are usage errors (exit 64) that name the choices.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { CompletionEngine } from '../../src/inference';
import { ENV, newService, recorder, ROOT, tempDir, tinyConfig } from './training-fixture';

const TSX = pathToFileURL(require.resolve('tsx')).href;
const services: ReturnType<typeof newService>[] = [];
after(() => { for (const s of services) s.disposeSync('test teardown'); });

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', TSX, path.join(ROOT, 'src', 'cli', 'main.ts'), ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', d => (stdout += d));
  child.stderr.on('data', d => (stderr += d));
  return new Promise(resolve => child.on('close', code => resolve({ code, stdout, stderr })));
}

test('bloom-peft export --quantize int4 writes a 4-bit export the engine serves; bad values are usage errors', { timeout: 240_000 }, async () => {
  const work = tempDir('export-quantize');
  const runs = path.join(work, 'runs');
  // the exporter's base cache in the scratch folder, not the user's
  const env = { ...ENV, BLOOM_PEFT_EXPORT_CACHE: path.join(work, 'export-cache') };
  const service = newService(runs, env);
  services.push(service);
  const ended = recorder(service).ended();
  const info = await service.start(tinyConfig(), { name: 'q' });
  assert.equal((await ended).outcome, 'completed');

  const bad = await cli(['export', '--runs-dir', runs, '--quantize', 'int3', info.id], env);
  assert.equal(bad.code, 64, bad.stderr);
  assert.match(bad.stderr + bad.stdout, /--quantize must be one of none, int8, int4/);
  const hf = await cli(['export', '--runs-dir', runs, '--quantize', 'int4', '--hf', info.id], env);
  assert.equal(hf.code, 64, hf.stderr);

  const r = await cli(['export', '--runs-dir', runs, '--quantize', 'int4', info.id], env);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const dir = r.stdout.trim().split('\n').at(-1)!;
  assert.equal(dir, path.join(info.dir, 'export'));
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  assert.equal(manifest.quantization, 'int4');
  const engine = await CompletionEngine.load(dir, { threads: 1 });
  try {
    assert.equal(engine.manifest.quantization, 'int4');
    const out = await engine.generate('def add(a, b):', { maxTokens: 4, ignoreEos: true });
    assert.equal(out.tokens.length, 4);
  } finally {
    await engine.dispose();
  }
});

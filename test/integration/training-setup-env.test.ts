// The core of "Set Up Training Environment" for real: setupManagedEnv creates a virtual environment and installs
// trainer/requirements.lock through pip as configured on the machine (an offline index here, as for a user behind a
// mirror); the Python lookup then picks that environment as ready and the trainer runs in it. Cancelling while pip
// installs rejects with AbortError and leaves no pip process behind.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { hasTrainerPackages, resolvePython, runTrainerJson, setupManagedEnv, venvPython } from '../../src/training';
import { tempDir } from './training-fixture';

/** Processes whose command line mentions `dir` (pip, python -m venv) */
function processesUsing(dir: string): string[] {
  return execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' }).split('\n').filter(l => l.includes(dir) && !l.includes('ps -eo'));
}

test('setupManagedEnv creates the managed venv with the pinned packages; the lookup picks it; the trainer runs in it', { timeout: 900_000 }, async t => {
  const venv = path.join(tempDir('managed-env'), 'env');
  const progress: string[] = [];
  const t0 = performance.now();
  const py = await setupManagedEnv(venv, { onProgress: m => progress.push(m) });
  t.diagnostic(`created and installed in ${((performance.now() - t0) / 1000).toFixed(0)} s; progress: ${progress.slice(0, 3).join(' | ')} ... ${progress.at(-1)}`);
  assert.equal(py, venvPython(venv));
  assert.ok(progress.some(m => /Creating the virtual environment/.test(m)), progress.join('\n'));
  assert.ok(progress.some(m => /Successfully installed|Installing collected packages/.test(m)), progress.join('\n'));

  const choice = await resolvePython({ env: {}, managedVenv: venv, projectRoot: path.join(venv, 'no-project') });
  assert.deepEqual([choice.source, choice.ready, choice.path], ['managed', true, py]);
  const report = await runTrainerJson<{ python_executable?: string; packages?: Record<string, string | null> }>(py, ['check'], { timeoutMs: 180_000 });
  assert.ok(report.python_executable?.startsWith(venv), `check ran in ${report.python_executable}, not in ${venv}`);
  assert.ok(report.packages?.torch && report.packages?.peft, `check in the managed venv reports torch and peft: ${JSON.stringify(report.packages)}`);

  // a second setup of the same folder only re-checks the pins (no new venv)
  const again: string[] = [];
  await setupManagedEnv(venv, { onProgress: m => again.push(m) });
  assert.ok(!again.some(m => /Creating the virtual environment/.test(m)), again.join('\n'));
});

test('cancelling the setup while pip installs rejects with AbortError and leaves no process behind', { timeout: 600_000 }, async () => {
  const venv = path.join(tempDir('managed-env-cancel'), 'env');
  const abort = new AbortController();
  const setup = setupManagedEnv(venv, {
    signal: abort.signal,
    onProgress: m => { if (/Installing the trainer/.test(m)) setTimeout(() => abort.abort(), 1500); },
  });
  await assert.rejects(setup, (e: Error) => e.name === 'AbortError');
  const deadline = Date.now() + 10_000;
  while (processesUsing(venv).length && Date.now() < deadline) await new Promise(r => setTimeout(r, 200));
  assert.deepEqual(processesUsing(venv), []);
  assert.ok(fs.existsSync(venvPython(venv)), 'the venv itself was created before the cancel');
  assert.equal(await hasTrainerPackages(venvPython(venv)), false, 'a cancelled install is not reported ready');
});

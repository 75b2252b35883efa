// The resident query service against a real `python -m bloom_peft serve`: answers, field-naming errors, a crash of
// its process (kill -9), a change of interpreter, idle stop and dispose.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { QueryService } from '../../src/training/queryService';
import type { TrainingError } from '../../src/training/types';
import { PYTHON } from './inference-fixtures';

const LORA = { model: { name_or_path: 'embedded' }, method: { name: 'lora' } };
const env = { ...process.env, TORCH_NUM_THREADS: '1', OMP_NUM_THREADS: '1' };
// the first answer imports torch: minutes on a loaded 2-core machine (this checks outcomes, not speed)
const LOADED_MACHINE_MS = 900_000;

const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
/** Polls until the process is gone; generous: the machine may be loaded, this asserts an outcome, not a speed. */
async function gone(pid: number, withinMs = 60_000): Promise<boolean> {
  for (const end = Date.now() + withinMs; Date.now() < end;) {
    if (!alive(pid)) return true;
    await new Promise(r => setTimeout(r, 50));
  }
  return !alive(pid);
}

test('answers params, preview and check from one resident process; bad input gets the field-naming error', async () => {
  const q = new QueryService({ python: async () => PYTHON, env, timeoutMs: LOADED_MACHINE_MS });
  try {
    const counted = await q.request<{ trainable: number; total: number; method: string }>('params', { config: LORA });
    assert.ok(counted.trainable > 0 && counted.total > counted.trainable && counted.method === 'lora');
    const pid = q.pid!;
    const data = { format: 'instruction', train_file: path.resolve('examples/code-tasks/train.jsonl') };
    const shown = await q.request<{ rows: { text: string }[]; train_rows: number }>('preview', { config: { ...LORA, data }, rows: 1 });
    assert.equal(shown.rows.length, 1);
    assert.ok(shown.train_rows > 0);
    await assert.rejects(q.request('params', { config: { ...LORA, method: { name: 'nope' } } }), (e: TrainingError) => {
      assert.equal(e.code, 'invalid_config');
      assert.equal(e.issues[0]?.path, '/method/name');
      assert.ok(e.hint);
      return true;
    });
    const report = await q.request<{ packages: Record<string, string | null> }>('check');
    assert.ok(report.packages.torch);
    assert.equal(q.pid, pid, 'every answer came from the same process');
  } finally {
    q.dispose();
  }
});

test('a killed process is replaced by the next query; a new interpreter restarts it; dispose stops it', async () => {
  // the same environment under another name (a venv's python3 next to its python): a change of Python to the service
  const other = path.join(path.dirname(PYTHON), 'python3');
  let python = PYTHON;
  const q = new QueryService({ python: async () => python, env, timeoutMs: LOADED_MACHINE_MS });
  try {
    await q.request('params', { config: LORA });
    const first = q.pid!;
    process.kill(first, 'SIGKILL');
    assert.ok(await gone(first));
    const again = await q.request<{ trainable: number }>('params', { config: LORA });
    assert.ok(again.trainable > 0);
    assert.ok(q.pid && q.pid !== first, 'a fresh process answered');

    const second = q.pid!;
    python = other;
    await q.request('params', { config: LORA });
    assert.ok(q.pid && q.pid !== second, 'the new interpreter runs the queries');
    assert.ok(await gone(second), 'the old interpreter\'s process was stopped');

    const last = q.pid!;
    q.dispose();
    assert.ok(await gone(last), 'dispose stops the process');
    await assert.rejects(q.request('params', { config: LORA }), (e: TrainingError) => e.code === 'disposed');
  } finally {
    q.dispose();
  }
});

test('a query in flight when the process is killed is answered by a fresh one; an idle process stops', async () => {
  const q = new QueryService({ python: async () => PYTHON, env, idleMs: 500, timeoutMs: LOADED_MACHINE_MS });
  try {
    await q.request('check');
    const first = q.pid!;
    const inFlight = q.request<{ trainable: number }>('params', { config: LORA });
    process.kill(first, 'SIGKILL');
    assert.ok((await inFlight).trainable > 0);
    const second = q.pid!;
    assert.notEqual(second, first);
    assert.ok(await gone(second), 'stopped after idleMs without queries');
    assert.equal(q.pid, undefined);
  } finally {
    q.dispose();
  }
});

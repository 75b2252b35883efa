// A disk that fills up, through the real TrainingService and trainer: runs live on a 24 MiB tmpfs, where one
// checkpoint of full fine-tuning of the embedded model fits and a second does not. The user must see disk_full (not
// "internal"), the run's end must be recorded (run.json, its error) with no stray run.json.<pid>.tmp, the complete
// checkpoint must survive, and a disk that is full from the start must refuse the run before anything starts.
// Needs root to mount the tmpfs; skipped with that reason elsewhere. (The case table: docs/reliability.md.)
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import type { RunEnd } from '../../src/training';
import { newService, ROOT, tempDir, tinyConfig } from './training-fixture';

const disk = tempDir('disk-full');
const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', disk]).status === 0;
const skip = mounted ? false : 'cannot mount a small tmpfs here (needs root): the disk-full cases are not run';
after(() => { if (mounted) spawnSync('umount', ['-l', disk]); });
const T = { timeout: 600_000, skip };

const runsDir = path.join(disk, 'runs');
const DATA = path.join(ROOT, 'test', 'fixtures', 'faults', 'data', 'u2028-in-string.jsonl');

test('disk full mid-run: disk_full, the end recorded, the complete checkpoint kept, nothing stray', T, async () => {
  const service = newService(runsDir);
  try {
    const config = tinyConfig({ method: { name: 'full' }, training: { max_steps: 6, save_every: 1, batch_size: 2, max_length: 32, eval_every: 0, log_every: 1 } });
    config.data = { format: 'instruction', train_file: DATA, eval_split: 0 };
    const ended = new Promise<RunEnd>(resolve => service.onRunEnded(resolve));
    const info = await service.start(config);
    const end = await ended;
    assert.equal(end.outcome, 'failed', end.message);
    assert.equal(end.error?.code, 'disk_full', end.message);
    assert.match(end.message, /the disk is full/);
    const files = fs.readdirSync(info.dir);
    assert.deepEqual(files.filter(f => f.endsWith('.tmp')), [], 'no run.json.<pid>.tmp left behind');
    const record = JSON.parse(fs.readFileSync(path.join(info.dir, 'run.json'), 'utf8'));
    assert.equal(record.outcome, 'failed');
    assert.equal(record.error?.code, 'disk_full');
    const summary = (await service.listRuns()).find(r => r.id === info.id)!;
    assert.equal(summary.status, 'failed');
    assert.equal(summary.error?.code, 'disk_full');
    assert.ok((summary.lastCheckpointStep ?? 0) >= 1, 'the checkpoint written before the disk filled is kept');
  } finally {
    service.dispose();
  }
});

test('disk full from the start: the run is refused before anything starts', T, async () => {
  const filler = path.join(disk, 'filler');
  fs.mkdirSync(runsDir, { recursive: true });
  try {
    execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=1M', 'count=64'], { stdio: 'ignore' });
  } catch { /* dd stops at ENOSPC: the disk is full now */ }
  const service = newService(runsDir);
  try {
    const before = fs.readdirSync(runsDir);
    await assert.rejects(service.start(tinyConfig()), (e: Error & { code?: string; hint?: string }) =>
      e.code === 'disk_full' && /is full/.test(e.message) && !!e.hint);
    assert.deepEqual(fs.readdirSync(runsDir), before, 'no run folder was created');
  } finally {
    service.dispose();
    fs.rmSync(filler, { force: true });
  }
});

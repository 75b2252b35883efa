// The training core with the real trainer and the embedded model: start -> events -> done, graceful stop
// within the deadline and resume, kill -9 reported with the stderr tail, synchronous kill on deactivate,
// and no process left behind in any of these (checked by process group and by the pids seen).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { groupMembers, isAlive, waitGroupGone } from '../../src/training/processes';
import { after } from 'node:test';
import { newService as makeService, recorder, tempDir, tinyConfig, withFaults } from './training-fixture';

// whatever a failed assertion leaves running is killed at the end
const services: ReturnType<typeof makeService>[] = [];
const newService = (...args: Parameters<typeof makeService>) => { const s = makeService(...args); services.push(s); return s; };
after(() => { for (const s of services) s.disposeSync('test teardown'); });
const T = { timeout: 240_000 };

/** every pid in the trainer's process group right now (leader + DataLoader workers...) */
function tree(pid: number): number[] {
  return groupMembers(pid);
}

function readJsonl(file: string): unknown[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l));
}

test('start -> events -> done: every event persisted, run listed as completed, nothing left running', T, async () => {
  const runs = tempDir('runs');
  const service = newService(runs);
  const rec = recorder(service);
  const ended = rec.ended();
  const info = await service.start(tinyConfig({ training: { max_steps: 4 } }), { name: 'smoke' });
  assert.match(info.id, /^\d{8}-\d{6}-lora-smoke$/);
  assert.equal(service.current()?.id, info.id);
  assert.ok(info.pid > 0);
  const end = await ended;
  assert.equal(end.outcome, 'completed', end.message);
  assert.equal(service.current(), undefined);

  const types = rec.events.map(e => e.event.type);
  assert.equal(types.filter(t => t !== 'log')[0], 'started');
  assert.equal(types.at(-1), 'done');
  assert.equal(types.filter(t => t === 'progress').length, 4);
  assert.ok(rec.events.every(e => e.runId === info.id));
  // events.jsonl holds exactly what listeners saw, in order
  assert.deepEqual(readJsonl(path.join(info.dir, 'events.jsonl')), rec.events.map(e => e.event));
  assert.deepEqual(await service.readEvents(info.id), rec.events.map(e => e.event));
  assert.match(fs.readFileSync(path.join(info.dir, 'trainer.log'), 'utf8'), /=== .* train pid \d+/);

  const [summary] = await service.listRuns();
  assert.equal(summary.id, info.id);
  assert.equal(summary.status, 'completed');
  assert.equal(summary.method, 'lora');
  assert.equal(summary.step, 4);
  assert.equal(summary.totalSteps, 4);
  assert.ok(summary.trainablePercent! > 0 && summary.trainablePercent! < 100);
  assert.equal(typeof summary.finalTrainLoss, 'number');
  assert.ok(summary.adapterDir && fs.existsSync(summary.adapterDir));
  assert.equal(summary.exportDir, undefined, 'this config exports nothing at the end');
  assert.equal(summary.resumable, false);
  assert.deepEqual(await waitGroupGone(info.pid, 3000), [], 'no process of the trainer group may be left');

  // export on demand (the Export Adapter command) goes through the same trainer CLI
  const exported = await service.exportRun(info.id);
  assert.ok(fs.existsSync(path.join(exported, 'model.onnx')));
  assert.equal((await service.listRuns())[0].exportDir, exported);
  service.dispose();
});

test('graceful stop lands within the deadline, kills the DataLoader workers too, and the run resumes to the end', T, async () => {
  const runs = tempDir('runs');
  // a steady pace (test hook: sleep per step) and a DataLoader worker process in the tree
  const service = newService(runs, withFaults({ step_delay: 0.5 }), 20_000);
  const rec = recorder(service);
  const ended = rec.ended();
  const info = await service.start(tinyConfig({ training: { max_steps: 10, save_every: 0, num_workers: 1 } }));
  await rec.waitFor(e => e.type === 'progress');
  const seen = tree(info.pid);
  assert.ok(seen.length >= 2, `expected the trainer and its DataLoader worker, saw ${seen.join(',')}`);

  const t0 = Date.now();
  await service.stop();
  const end = await ended;
  const took = Date.now() - t0;
  assert.equal(end.outcome, 'stopped', end.message);
  assert.equal(end.killedAfterDeadline, false, 'done (stopped) arrived within the deadline');
  assert.ok(took < 21_000, `the process tree was gone ${took} ms after the stop request`);
  const done = rec.events.map(e => e.event).find(e => e.type === 'done');
  assert.equal(done && done.type === 'done' && done.status, 'stopped');
  assert.ok(rec.events.some(e => e.event.type === 'checkpoint'), 'a stop saves a checkpoint');
  assert.deepEqual(await waitGroupGone(info.pid, 3000), []);
  for (const pid of seen) assert.equal(isAlive(pid), false, `pid ${pid} survived the stop`);

  const stopped = (await service.listRuns())[0];
  assert.equal(stopped.status, 'stopped');
  assert.equal(stopped.resumable, true);
  const stoppedAt = stopped.step;
  assert.ok(stoppedAt >= 1 && stoppedAt < 10);

  // resume in the same folder: events.jsonl grows, the run completes all 10 steps
  const fast = newService(runs);
  const rec2 = recorder(fast);
  const ended2 = rec2.ended();
  const resumed = await fast.resume(info.id.slice(-12)); // a unique suffix is enough
  assert.equal(resumed.id, info.id);
  assert.equal(resumed.resumed, true);
  const end2 = await ended2;
  assert.equal(end2.outcome, 'completed', end2.message);
  const started2 = rec2.events.find(e => e.event.type === 'started')!.event;
  assert.equal(started2.type === 'started' && started2.resumed_from_step, stoppedAt);
  const final = (await fast.listRuns())[0];
  assert.equal(final.status, 'completed');
  assert.equal(final.step, 10);
  assert.equal((await fast.readEvents(info.id)).filter(e => e.type === 'started').length, 2);
  service.dispose();
  fast.dispose();
});

test('kill -9 of the trainer: reported as failed with exit signal and stderr tail, persisted, orphans killed', T, async () => {
  const runs = tempDir('runs');
  const service = newService(runs, withFaults({ step_delay: 0.5 }));
  const rec = recorder(service);
  const ended = rec.ended();
  const info = await service.start(tinyConfig({ training: { max_steps: 50, num_workers: 1 } }));
  await rec.waitFor(e => e.type === 'progress');
  const seen = tree(info.pid);
  process.kill(info.pid, 'SIGKILL'); // the leader only, like the OOM killer: its worker becomes an orphan
  const end = await ended;
  assert.equal(end.outcome, 'failed');
  assert.equal(end.signal, 'SIGKILL');
  assert.ok(end.stderrTail.length > 0, 'the stderr tail is kept');
  assert.match(end.message, /killed by SIGKILL/);
  assert.ok(end.message.includes(end.stderrTail.split('\n').at(-1)!), 'the message carries the last stderr line');
  assert.deepEqual(await waitGroupGone(info.pid, 3000), []);
  for (const pid of seen) assert.equal(isAlive(pid), false, `pid ${pid} survived`);

  const events = await service.readEvents(info.id);
  const last = events.at(-1)!;
  assert.equal(last.type, 'error');
  assert.equal(last.type === 'error' && last.code, 'trainer_exited');
  const [summary] = await service.listRuns();
  assert.equal(summary.status, 'failed');
  assert.equal(summary.resumable, true);
  assert.match(summary.error!.message, /SIGKILL/);
  service.dispose();
});

test('deactivate kills the process tree synchronously; the run is listed as interrupted and resumable', T, async () => {
  const runs = tempDir('runs');
  const service = newService(runs, withFaults({ step_delay: 0.5 }));
  const rec = recorder(service);
  const info = await service.start(tinyConfig({ training: { max_steps: 50, num_workers: 1 } }));
  await rec.waitFor(e => e.type === 'progress');
  const seen = tree(info.pid);
  service.disposeSync('test deactivate');
  // SIGKILL was sent before disposeSync returned; the kernel needs a moment to tear the processes down
  assert.deepEqual(await waitGroupGone(info.pid, 2000), []);
  for (const pid of seen) assert.equal(isAlive(pid), false, `pid ${pid} survived deactivate`);
  const later = newService(runs);
  const [summary] = await later.listRuns();
  assert.equal(summary.status, 'interrupted');
  assert.equal(summary.resumable, true);
  assert.equal((await later.readEvents(info.id)).at(-1)!.type, 'warning');
  later.dispose();
});

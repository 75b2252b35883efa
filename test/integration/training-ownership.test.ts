// Who owns a trainer, with real processes (the embedded model, the real CLI and run supervisor):
// - a run started the VS Code way (detached run supervisor) outlives the service that started it (a window reload)
//   and is followed, then stopped, by a new service;
// - kill -9 of the owner (the CLI, the run supervisor) while a step computes: the trainer abandons that step and
//   stops within 10 s of the kill with a checkpoint of the last complete one, and the run reads "interrupted",
//   resumable from that checkpoint;
// - two concurrent resumes: one trainer, the other refused with "in use by pid N", run.json names the live one;
// - signals only to a verified process: a run.json naming a foreign process is refused, the process lives.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { groupMembers, isAlive, processStartToken, waitGroupGone } from '../../src/training/processes';
import { newestCheckpoint, RunStore } from '../../src/training/runStore';
import { TrainingService } from '../../src/training/service';
import { TrainingError, type RunEnd } from '../../src/training/types';
import { ENV, PYTHON, ROOT, tempDir, tinyConfig, withFaults } from './training-fixture';

const TSX = pathToFileURL(require.resolve('tsx')).href;
const SUPERVISOR = { command: process.execPath, args: ['--import', TSX, path.join(ROOT, 'src', 'training', 'runSupervisorMain.ts')] };
const SLOW = withFaults({ step_delay: 0.5 });
/** Steps 1 and 2 at full speed, then every step computes for 60 s: an owner killed after step 2 is killed mid-step. */
const LONG_STEPS = withFaults({ step_delay: 60, delay_from_step: 3 });

const pids = new Set<number>();
const runsDirs = new Set<string>();
/** Runs outlive their window by design: whatever a failed test left running (trainer and owner) ends here. */
after(() => {
  for (const runs of runsDirs) {
    const store = new RunStore(runs);
    for (const id of store.ids()) {
      const record = store.readRecord(id);
      for (const pid of [record?.pid, record?.ownerPid, store.readLock(id)?.pid]) if (pid) pids.add(pid);
    }
  }
  for (const pid of pids) try { process.kill(-pid, 'SIGKILL'); } catch { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
});

function windowService(runsDir: string, opts: { stopWhenWindowsClose?: boolean; lastWindowGraceMs?: number; env?: NodeJS.ProcessEnv } = {}): TrainingService {
  runsDirs.add(runsDir);
  return new TrainingService({
    runsDir: () => runsDir, env: opts.env ?? SLOW, stopTimeoutMs: () => 30_000,
    python: async () => ({ path: PYTHON, source: 'env', ready: true }),
    detachedSupervisor: () => SUPERVISOR,
    stopWhenWindowsClose: () => opts.stopWhenWindowsClose ?? false,
    lastWindowGraceMs: opts.lastWindowGraceMs,
  });
}

async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs = 180_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 200));
  }
}

/** The service polls with unref'd timers (a window never waits on them): keep the test's loop alive meanwhile. */
async function held<T>(p: Promise<T>): Promise<T> {
  const timer = setInterval(() => {}, 1000);
  try { return await p; } finally { clearInterval(timer); }
}

/**
 * The trainer whose owner was killed during step 3 (60 s of compute, LONG_STEPS) abandons that step and ends within
 * 10 s of the kill, with a checkpoint of step 2. Returns the figure.
 */
async function assertEndsPromptly(store: RunStore, id: string, pid: number, killedAt: number): Promise<string> {
  assert.deepEqual(await waitGroupGone(pid, 180_000), [], 'the trainer ended');
  const fromKill = Date.now() - killedAt;
  assert.ok(fromKill <= 10_000, `the trainer ended ${fromKill} ms after its owner was killed (bound 10 s)`);
  assert.deepEqual(progressSteps(store, id), [1, 2], 'step 3 was abandoned, not finished');
  assert.equal(newestCheckpoint(store.dir(id))?.step, 2, 'the checkpoint is the last complete step');
  return `gone ${fromKill} ms after the kill (mid-step: step 3 computes for 60 s)`;
}

const progressSteps = (store: RunStore, id: string) => store.readEvents(id).flatMap(e => (e.type === 'progress' ? [e.step] : []));

test('a run started by a window outlives it: a new service follows the same trainer and stops it', { timeout: 400_000 }, async () => {
  const runs = path.join(tempDir('own-reload'), 'runs');
  const first = windowService(runs);
  const info = await first.start(tinyConfig({ training: { max_steps: 400, save_every: 2 } }), { name: 'reload' });
  const store = new RunStore(runs);
  const record = store.readRecord(info.id)!;
  pids.add(record.pid);
  pids.add(record.ownerPid);
  assert.equal(record.owner, 'detached');
  assert.notEqual(record.ownerPid, process.pid);
  await until('progress', () => progressSteps(store, info.id).length > 0);

  first.disposeSync('reload'); // what deactivate() does on a window reload
  const stepAtReload = Math.max(...progressSteps(store, info.id));
  await until('steps after the reload', () => Math.max(...progressSteps(store, info.id)) >= stepAtReload + 2);
  assert.ok(isAlive(record.pid), 'the trainer lives on');

  const second = windowService(runs);
  const attached = await second.reattach();
  assert.deepEqual(attached.map(r => r.id), [info.id]);
  assert.equal(second.current()?.pid, record.pid, 'the same trainer process');
  const live: number[] = [];
  second.onEvent((_id, e) => { if (e.type === 'progress') live.push(e.step); });
  await until('live progress in the new service', () => live.length >= 2);
  assert.ok(live[0] > stepAtReload);

  const ended = new Promise<RunEnd>(resolve => second.onRunEnded(resolve));
  await second.stop(info.id);
  const end = await held(ended);
  assert.equal(end.outcome, 'stopped');
  assert.deepEqual(await waitGroupGone(record.pid, 10_000), []);
  assert.ok(!isAlive(record.ownerPid), 'the supervisor ended with its trainer');
  const after = store.readRecord(info.id)!;
  assert.equal(after.outcome, 'stopped');
  assert.ok(newestCheckpoint(store.dir(info.id))!.step >= live.at(-1)!);
  second.dispose();
});

test('kill -9 of the run supervisor mid-step: the trainer abandons the step and stops within 10 s with a checkpoint; the run reads interrupted', { timeout: 400_000 }, async () => {
  const runs = path.join(tempDir('own-kill-sup'), 'runs');
  const service = windowService(runs, { env: LONG_STEPS });
  const info = await service.start(tinyConfig({ training: { max_steps: 400, save_every: 0 } }), { name: 'kill-sup' });
  const store = new RunStore(runs);
  const record = store.readRecord(info.id)!;
  pids.add(record.pid);
  const ended = new Promise<RunEnd>(resolve => service.onRunEnded(resolve));
  await until('two steps', () => progressSteps(store, info.id).length >= 2);
  const killedAt = Date.now();
  process.kill(record.ownerPid, 'SIGKILL');
  const took = await assertEndsPromptly(store, info.id, record.pid, killedAt);
  const checkpoint = newestCheckpoint(store.dir(info.id));
  assert.ok(checkpoint, 'a checkpoint was written on the way out (save_every is 0: only the stop writes one)');
  const end = await held(ended);
  assert.equal(end.outcome, 'interrupted');
  const summary = store.summary(info.id);
  assert.equal(summary.status, 'interrupted');
  assert.equal(summary.lastCheckpointStep, checkpoint.step);
  assert.ok(summary.resumable);
  console.log(`kill -9 of the run supervisor: trainer ${took}; checkpoint step ${checkpoint.step}`);
  service.dispose();
});

test('kill -9 of the CLI mid-step: its trainer abandons the step and stops within 10 s with a checkpoint', { timeout: 400_000 }, async () => {
  const work = tempDir('own-kill-cli');
  const runs = path.join(work, 'runs');
  const configFile = path.join(work, 'config.json');
  fs.writeFileSync(configFile, JSON.stringify(tinyConfig({ training: { max_steps: 400, save_every: 0 } })));
  const cli = spawn(process.execPath, ['--import', TSX, path.join(ROOT, 'src', 'cli', 'main.ts'), 'train', '--config', configFile, '--runs-dir', runs],
    { cwd: work, env: LONG_STEPS, stdio: ['ignore', 'ignore', 'ignore'] });
  pids.add(cli.pid!);
  const store = new RunStore(runs);
  const id = await until('the CLI run', () => store.ids()[0], 120_000);
  const record = await until('run.json', () => store.readRecord(id));
  pids.add(record.pid);
  assert.equal(record.ownerPid, cli.pid);
  await until('two steps', () => progressSteps(store, id).length >= 2);
  const killedAt = Date.now();
  cli.kill('SIGKILL');
  const took = await assertEndsPromptly(store, id, record.pid, killedAt);
  console.log(`kill -9 of the CLI: trainer ${took}`);
  assert.ok(newestCheckpoint(store.dir(id)), 'a checkpoint was written on the way out');
  const events = store.readEvents(id);
  const done = [...events].reverse().find(e => e.type === 'done');
  assert.equal(done?.type === 'done' && done.status, 'stopped', 'the trainer recorded its own end in events.jsonl');
  assert.equal(store.summary(id).status, 'interrupted');
});

test('two concurrent resumes: one trains, the other is refused naming its pid; run.json names the live trainer', { timeout: 400_000 }, async () => {
  const runs = path.join(tempDir('own-resume'), 'runs');
  const a = windowService(runs);
  const info = await a.start(tinyConfig({ training: { max_steps: 400, save_every: 2 } }), { name: 'twice' });
  const store = new RunStore(runs);
  await until('a checkpoint', () => newestCheckpoint(store.dir(info.id)));
  await a.stop(info.id);
  await until('the end', () => !store.isRunning(info.id));
  a.dispose();

  const b = windowService(runs);
  const c = windowService(runs);
  const results = await Promise.allSettled([b.resume(info.id), c.resume(info.id)]);
  // one trains; the other is refused, by the host (the lock was taken when it looked) or by its trainer (both
  // looked at once: the run supervisor answers only once its trainer holds the lock, else with the refusal)
  assert.equal(results.filter(r => r.status === 'fulfilled').length, 1, JSON.stringify(results));
  const rejected = results.find(r => r.status === 'rejected') as PromiseRejectedResult;
  assert.ok(rejected.reason instanceof TrainingError && ['run_in_use', 'run_active'].includes(rejected.reason.code), String(rejected.reason));
  const refusal = rejected.reason.message;
  const holder = await until('the lock holder', () => store.lockHolder(info.id));
  pids.add(holder.pid);
  assert.match(refusal, new RegExp(`in use by pid ${holder.pid}|is still training`));
  const record = await until('run.json naming the lock holder', () => { const r = store.readRecord(info.id); return r?.pid === holder.pid && r.endedAt === undefined && r; }, 30_000);
  assert.ok(store.isRunning(info.id, record));
  const before = progressSteps(store, info.id).length;
  await until('the live resume to keep training', () => progressSteps(store, info.id).length >= before + 2);
  assert.ok(!store.readEvents(info.id).some(e => e.type === 'error'), 'the refusal is not written into the live run');
  await b.stop(info.id);
  await until('the end', () => !store.isRunning(info.id));
  for (const s of [b, c]) s.dispose();
});

test('stop signals only a verified trainer: a run.json naming a foreign process is refused and the process lives', { timeout: 120_000 }, async () => {
  const runs = path.join(tempDir('own-foreign'), 'runs');
  const store = new RunStore(runs);
  const { id } = store.create(tinyConfig(), 'foreign');
  // a foreign process group: bash with a child, like the one the audit saw killed
  const foreign = spawn('bash', ['-c', 'sleep 300 & wait'], { detached: true, stdio: 'ignore' });
  pids.add(foreign.pid!);
  // bash forks its child after it starts: wait for both, or the group's count below races the fork
  await until('the foreign process and its child', () => processStartToken(foreign.pid!) && groupMembers(foreign.pid!).length === 2);
  const service = new TrainingService({ runsDir: () => runs, env: ENV, stopTimeoutMs: () => 2_000, follow: false });
  const base = { version: 1 as const, id, command: 'train' as const, pid: foreign.pid!, host: (await import('node:os')).hostname(), ownerPid: 999_999_999, startedAt: Date.now() };

  store.writeRecord(base); // no pidToken
  await assert.rejects(service.stop(id), (e: TrainingError) => e.code === 'unverified_process' && /no process identity token/.test(e.message));
  assert.ok(isAlive(foreign.pid!), 'a run.json without a token never gets its pid signalled');

  store.writeRecord({ ...base, pidToken: processStartToken(foreign.pid!) }); // the right token, but not a trainer
  await assert.rejects(service.stop(id), (e: TrainingError) => e.code === 'unverified_process' && /not this run's process/.test(e.message));
  assert.ok(isAlive(foreign.pid!), 'a foreign process with a valid token is not signalled either');
  assert.deepEqual(groupMembers(foreign.pid!).length, 2, 'bash and its child both live');
  process.kill(-foreign.pid!, 'SIGKILL');
});

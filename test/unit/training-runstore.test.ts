// Run store and service checks that need no trainer: summaries from the shared event transcripts, status
// rules (running / interrupted / failed / stopped), naming, lookup, config paths, tailing a growing
// events.jsonl, process-group kill, Python lookup order, and start() refusing bad input before spawning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TrainerEvent, TrainingConfig } from '../../src/protocol';
import { groupMembers, isAlive, killGroupSync, processStartToken, waitGroupGone } from '../../src/training/processes';
import { resolvePython } from '../../src/training/python';
import { EventsTail, newestCheckpoint, resolveConfigPaths, RunStore, summarize } from '../../src/training/runStore';
import { TrainingService } from '../../src/training/service';
import type { TrainingError } from '../../src/training/types';

const ROOT = path.resolve(__dirname, '..', '..');
const vectors = JSON.parse(fs.readFileSync(path.join(ROOT, 'schemas/vectors/events.json'), 'utf8'));
const completed: TrainerEvent[] = vectors.transcripts['completed-run'];
const temps: string[] = [];
process.on('exit', () => { for (const d of temps) fs.rmSync(d, { recursive: true, force: true }); });
const tmp = (name: string) => { const d = fs.mkdtempSync(path.join(os.tmpdir(), `bloom-peft-${name}-`)); temps.push(d); return d; };
const config = (over: Partial<TrainingConfig> = {}): TrainingConfig => ({
  model: { name_or_path: 'embedded' }, method: { name: 'lora' }, data: { format: 'instruction', train_file: 'data/train.jsonl' }, ...over,
});

test('summarize: the completed transcript gives status, trainable %, losses, steps', () => {
  const s = summarize(completed, { running: false });
  assert.equal(s.status, 'completed');
  const started = completed.find(e => e.type === 'started')!;
  const done = completed.find(e => e.type === 'done')!;
  assert.ok(started.type === 'started' && done.type === 'done');
  assert.equal(s.trainableParams, started.trainable_params);
  assert.ok(Math.abs(s.trainablePercent! - (100 * started.trainable_params) / started.total_params) < 1e-9);
  assert.equal(s.step, done.step);
  assert.equal(s.finalTrainLoss, done.metrics.train_loss ?? s.lastLoss);
  assert.equal(s.adapterDir, done.adapter_dir);
  assert.equal(s.startedAt, started.time * 1000);
});

test('summarize: status rules for runs without a done event', () => {
  const partial = completed.filter(e => e.type !== 'done');
  assert.equal(summarize(partial, { running: true }).status, 'running');
  // the supervising window died (no exit record): interrupted, resumable
  assert.equal(summarize(partial, { running: false }).status, 'interrupted');
  assert.equal(summarize(partial, { running: false, record: rec({ outcome: 'interrupted', signal: 'SIGKILL' }) }).status, 'interrupted');
  assert.equal(summarize(partial, { running: false, record: rec({ exitCode: null, signal: 'SIGKILL' }) }).status, 'failed');
  assert.equal(summarize(partial, { running: false, stopRequested: true, record: rec({ signal: 'SIGKILL' }) }).status, 'stopped');
  const nan = summarize(vectors.transcripts['nan-error'], { running: false, record: rec({ exitCode: 3 }) });
  assert.equal(nan.status, 'failed');
  assert.ok(nan.error?.message);
  // a resume after a failure starts a new attempt: the old error no longer decides
  const resumed = [...vectors.transcripts['nan-error'], ...completed];
  assert.equal(summarize(resumed, { running: false }).status, 'completed');
  assert.equal(summarize(resumed, { running: false }).error, undefined);
});

function rec(over: Record<string, unknown>) {
  return { version: 1 as const, id: 'x', command: 'train' as const, pid: 1, host: os.hostname(), ownerPid: 1, startedAt: 0, endedAt: 1, ...over };
}

test('run store: timestamped names, clashes, lookup by prefix/suffix/folder, delete, summary from disk', () => {
  const store = new RunStore(path.join(tmp('store'), 'runs'));
  const when = new Date(2025, 0, 2, 3, 4, 5);
  const a = store.create(config(), undefined, when);
  const b = store.create(config(), undefined, when);
  const c = store.create(config({ method: { name: 'ia3' } }), 'my run!', when);
  assert.equal(a.id, '20250102-030405-lora');
  assert.equal(b.id, '20250102-030405-lora-2');
  assert.equal(c.id, '20250102-030405-ia3-my-run-');
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(a.dir, 'config.json'), 'utf8')), config());
  assert.equal(store.resolve('lora-2'), b.id);
  assert.equal(store.resolve('latest'), c.id, 'the run created last, even within the same second');
  assert.equal(store.resolve(c.dir), c.id);
  assert.throws(() => store.resolve('20250102'), (e: TrainingError) => e.code === 'ambiguous_run');
  assert.throws(() => store.resolve('nope'), (e: TrainingError) => e.code === 'no_run' && /bloom-peft runs/.test(e.hint!));
  assert.throws(() => store.dir('../etc'), (e: TrainingError) => e.code === 'bad_run_id');

  fs.writeFileSync(path.join(a.dir, 'events.jsonl'), completed.map(e => JSON.stringify(e)).join('\n') + '\n{"v":1,"type":"prog'); // torn last line
  const s = store.summary(a.id);
  assert.equal(s.status, 'completed');
  assert.equal(s.method, 'lora');
  assert.equal(s.resumable, false);
  assert.equal(store.readEvents(a.id).length, completed.length);
  // a run whose trainer pid is this very process counts as running, and cannot be deleted
  store.writeRecord({ ...rec({ endedAt: undefined }), id: b.id, pid: process.pid, pidToken: processStartToken(process.pid) });
  assert.equal(store.summary(b.id).status, 'running');
  assert.throws(() => store.delete(b.id), (e: TrainingError) => e.code === 'run_active');
  // the same pid with another start token is a different process (pid reuse): not running
  store.writeRecord({ ...rec({ endedAt: undefined }), id: b.id, pid: process.pid, pidToken: 'linux:1' });
  assert.equal(store.summary(b.id).status, 'interrupted');
  store.delete(b.id);
  assert.deepEqual(store.ids(), [a.id, c.id].sort());
});

test('newest complete checkpoint skips partial ones', () => {
  const dir = tmp('ckpt');
  for (const [name, files] of [['step-4', ['model.safetensors', 'COMPLETE']], ['step-8', ['model.safetensors', 'state.tmp']], ['step-x', ['a']]] as const) {
    fs.mkdirSync(path.join(dir, 'checkpoints', name), { recursive: true });
    for (const f of files) fs.writeFileSync(path.join(dir, 'checkpoints', name, f), '');
  }
  fs.mkdirSync(path.join(dir, 'checkpoints', 'step-12')); // empty: being written
  assert.equal(newestCheckpoint(dir)?.step, 4);
});

test('relative config paths resolve against the base folder; embedded and hub ids stay', () => {
  const base = tmp('base');
  fs.mkdirSync(path.join(base, 'models', 'mine'), { recursive: true });
  fs.writeFileSync(path.join(base, 'models', 'mine', 'config.json'), '{}');
  const c = resolveConfigPaths(config({ data: { format: 'instruction', train_file: 'data/t.jsonl', eval_file: '/abs/e.jsonl' } }), base);
  assert.equal(c.data.train_file, path.join(base, 'data', 't.jsonl'));
  assert.equal(c.data.eval_file, '/abs/e.jsonl');
  assert.equal(c.model.name_or_path, 'embedded');
  assert.equal(resolveConfigPaths(config({ model: { name_or_path: 'bigscience/bloom-560m' } }), base).model.name_or_path, 'bigscience/bloom-560m');
  assert.equal(resolveConfigPaths(config({ model: { name_or_path: 'models/mine' } }), base).model.name_or_path, path.join(base, 'models', 'mine'));
  assert.equal(resolveConfigPaths(config({ model: { name_or_path: './elsewhere' } }), base).model.name_or_path, path.join(base, 'elsewhere'));
});

test('EventsTail follows appends, including a line written in two pieces', () => {
  const file = path.join(tmp('tail'), 'events.jsonl');
  fs.writeFileSync(file, JSON.stringify(completed[0]) + '\n');
  const seen: TrainerEvent[] = [];
  const t = new EventsTail(file, e => seen.push(e)); // starts at the end: only new events
  const line = JSON.stringify(completed[1]);
  fs.appendFileSync(file, line.slice(0, 10));
  assert.deepEqual(t.poll(), []);
  fs.appendFileSync(file, line.slice(10) + '\njunk\n' + JSON.stringify(completed[2]) + '\n');
  t.poll();
  assert.deepEqual(seen, [completed[1], completed[2]]);
  t.dispose();
});

test('process groups: every member is found and killed, nothing survives', async () => {
  const child = spawn('sh', ['-c', 'sleep 30 & sleep 30 & wait'], { detached: true, stdio: 'ignore' });
  await new Promise(r => child.once('spawn', r));
  let members: number[] = [];
  for (const t0 = Date.now(); members.length < 3 && Date.now() - t0 < 20_000;) { members = groupMembers(child.pid!); if (members.length < 3) await new Promise(r => setTimeout(r, 20)); }
  assert.equal(members.length, 3, `sh + 2 sleeps, saw ${members}`);
  killGroupSync(child.pid!);
  assert.deepEqual(await waitGroupGone(child.pid!, 2000), []);
  for (const pid of members) assert.equal(isAlive(pid), false);
  assert.equal(isAlive(-1), false);
});

test('Python lookup: env var > setting > managed venv > project .venv; readiness is checked, not assumed', async () => {
  const projectPy = path.join(ROOT, '.venv', 'bin', 'python');
  const project = await resolvePython({ env: {}, projectRoot: ROOT });
  assert.deepEqual(project, { path: projectPy, source: 'project', ready: true });
  assert.equal((await resolvePython({ env: { BLOOM_PEFT_PYTHON: projectPy }, setting: '/nope/python' })).source, 'env');
  const setting = await resolvePython({ env: {}, setting: '/nope/python', projectRoot: ROOT });
  assert.deepEqual(setting, { path: '/nope/python', source: 'setting', ready: false });
  // a managed venv without the packages (a bare interpreter link) wins over the project's, but is not ready
  const managed = tmp('venv');
  fs.mkdirSync(path.join(managed, 'bin'));
  fs.symlinkSync(fs.realpathSync(projectPy), path.join(managed, 'bin', 'python'));
  const m = await resolvePython({ env: {}, managedVenv: managed, projectRoot: ROOT });
  assert.equal(m.source, 'managed');
  assert.equal(m.ready, false);
  // the Python extension's interpreter is used only when it already has the trainer's packages
  const ext = await resolvePython({ env: {}, pythonExtension: async () => projectPy, managedVenv: managed, projectRoot: ROOT });
  assert.equal(ext.source, 'python-extension');
  const extBare = await resolvePython({ env: {}, pythonExtension: async () => path.join(managed, 'bin', 'python'), projectRoot: ROOT });
  assert.equal(extBare.source, 'project');
  const extBroken = await resolvePython({ env: {}, pythonExtension: async () => { throw new Error('ms-python missing'); }, projectRoot: ROOT });
  assert.equal(extBroken.source, 'project');
});

test('start() refuses bad input with field-naming errors and spawns nothing', async () => {
  const runs = tmp('runs');
  const svc = new TrainingService({ runsDir: () => runs, baseDir: () => ROOT, python: async () => ({ path: '/nope/python', source: 'setting', ready: false }) });
  await assert.rejects(svc.start({ ...config(), method: { name: 'lora', r: 0 } } as TrainingConfig),
    (e: TrainingError) => e.code === 'invalid_config' && e.issues.some(i => i.path === '/method/r') && !!e.hint);
  await assert.rejects(svc.start(config({ data: { format: 'instruction', train_file: 'missing/nothing.jsonl' } })),
    (e: TrainingError) => e.code === 'missing_file' && e.message.startsWith('/data/train_file') && e.message.includes(path.join(ROOT, 'missing')));
  await assert.rejects(svc.start(config({ data: { format: 'instruction', train_file: 'examples/code-tasks/train.jsonl' } })),
    (e: TrainingError) => e.code === 'python_not_ready' && /Set Up Training Environment/.test(e.hint!));
  assert.deepEqual(fs.readdirSync(runs), []);
  assert.equal(svc.current(), undefined);
  await assert.rejects(svc.resume('nothing-here'), (e: TrainingError) => e.code === 'no_run');
  svc.dispose();
});

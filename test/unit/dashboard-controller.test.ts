// The dashboard's host side (DashboardController) through its message interface: the picks-only path rule,
// counts before a dataset exists, the modal delete, the compare-methods queue, re-attach after a reload, the
// playground stream. The training service and the native dialogs are stubbed at their edges (test/browser/harness).
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { DashboardController, toPreviewRow } from '../../src/dashboard/controller';
import type { CompareJob, DashboardSnapshot, HostToWebview } from '../../src/protocol/messages';
import { echoEngine, FakeHost, FakeTraining, progress, ROOT } from '../browser/fakes';

const TRAIN = path.join(ROOT, 'examples', 'code-tasks', 'train.jsonl');
const log = { trace() {}, info() {}, warn() {}, error() {} };

function setup(training = new FakeTraining(), host = new FakeHost({ file: TRAIN, folder: path.join(ROOT, 'examples', 'code-corpus') })) {
  const controller = new DashboardController(training, host, log, echoEngine);
  const sent: HostToWebview[] = [];
  controller.attach(m => sent.push(JSON.parse(JSON.stringify(m)))); // serialized, as postMessage does
  let id = 0;
  const call = async (method: string, params: unknown = {}) => {
    const myId = ++id;
    await controller.handle({ kind: 'request', id: myId, method, params });
    const r = sent.find(m => m.kind === 'response' && m.id === myId) as Extract<HostToWebview, { kind: 'response' }>;
    if (!r.ok) throw Object.assign(new Error(r.error.message), r.error);
    return r.result as any;
  };
  const notes = (method: string) => sent.filter(m => m.kind === 'notify' && m.method === method).map(m => (m as { params: unknown }).params);
  return { controller, training, host, sent, call, notes };
}
const cfg = (data: Record<string, unknown>, method: Record<string, unknown> = { name: 'lora' }, model = 'embedded') =>
  ({ model: { name_or_path: model }, method, data: { format: 'instruction', ...data } });
const until = async (cond: () => boolean) => { for (const t0 = Date.now(); !cond() && Date.now() - t0 < 20_000;) await new Promise(r => setTimeout(r, 10)); assert.ok(cond(), 'condition not met'); };

test('only paths chosen with a host picker reach the trainer; hub ids and "embedded" pass', async () => {
  const { call, training } = setup();
  await assert.rejects(call('start', { config: cfg({ train_file: TRAIN }) }), /was not chosen with the file picker/);
  const picked = await call('pickDataset', { kind: 'file', role: 'train' });
  assert.deepEqual(picked, { path: TRAIN, label: 'train.jsonl' });
  await assert.rejects(call('start', { config: cfg({ train_file: TRAIN, eval_file: '/etc/passwd' }) }), (e: Error & { issues?: unknown }) =>
    /eval_file "\/etc\/passwd" was not chosen/.test(e.message) && JSON.stringify(e.issues).includes('/data/eval_file'));
  for (const bad of ['../models', '/abs/model', './m', 'a/../../b']) {
    await assert.rejects(call('start', { config: cfg({ train_file: TRAIN }, undefined, bad) }), /neither a hub id nor a folder chosen/, bad);
  }
  await assert.rejects(call('start', { config: cfg({ train_file: TRAIN }, { name: 'lora', r: 0 }) }), (e: Error & { issues?: Array<{ path: string }> }) =>
    /configuration is invalid/.test(e.message) && e.issues!.some(i => i.path === '/method/r'));
  const row = await call('start', { config: cfg({ train_file: TRAIN }, undefined, 'bigscience/bloom-560m') });
  assert.equal(row.status, 'running');
  assert.equal(training.started.length, 1);
});

test('data.hub_id must be a hub id: a path-like one cannot bypass the picker rule', async () => {
  const { call, training } = setup();
  const hub = (hub_id: string) => ({ model: { name_or_path: 'embedded' }, method: { name: 'lora' }, data: { format: 'hub', hub_id } });
  for (const bad of ['/etc/ssl', '../secrets', './data', 'a/../../etc', '~/data', 'org/name/deeper', '.hidden/x']) {
    await assert.rejects(call('start', { config: hub(bad) }), (e: Error & { issues?: Array<{ path: string }> }) =>
      /data.hub_id ".*" is neither a hub dataset id/.test(e.message) && e.issues!.some(i => i.path === '/data/hub_id'), bad);
    await assert.rejects(call('preview', { config: hub(bad) }), /is neither a hub dataset id/, bad);
  }
  assert.equal(training.started.length, 0);
  await call('start', { config: hub('tatsu-lab/alpaca') });
  assert.equal(training.started.length, 1);
});

test('a picked model folder is allowed, and picks survive a new controller (window reload)', async () => {
  const first = setup();
  const folder = await first.call('pickModelFolder');
  const second = setup(first.training, first.host);
  await second.call('pickDataset', { kind: 'file', role: 'train' });
  await second.call('start', { config: cfg({ train_file: TRAIN }, undefined, folder.path) });
  assert.equal(second.training.started[0].model.name_or_path, folder.path);
});

test('parameter counts need no dataset (the trainer gets its placeholder data)', async () => {
  const { call, training } = setup();
  const lora = await call('params', { config: cfg({}) });
  const ia3 = await call('params', { config: cfg({}, { name: 'ia3' }) });
  assert.ok(lora.trainable > 0 && ia3.trainable > 0 && lora.trainable !== ia3.trainable);
  assert.deepEqual(training.paramsCalls[0].data, { format: 'text', train_file: '.' });
});

test('delete asks the host for confirmation; a running run cannot be deleted', async () => {
  const { call, training, host } = setup();
  await call('pickDataset', { kind: 'file', role: 'train' });
  const run = await call('start', { config: cfg({ train_file: TRAIN }) });
  await assert.rejects(call('deleteRun', { runId: run.id }), /running run cannot be deleted/);
  training.finish();
  host.confirmAnswers = [false];
  assert.equal(await call('deleteRun', { runId: run.id }), false);
  assert.deepEqual(training.deleted, []);
  host.confirmAnswers = [true];
  assert.equal(await call('deleteRun', { runId: run.id }), true);
  assert.deepEqual(training.deleted, [run.id]);
  assert.match(host.confirmations[0], /Delete run/);
  await assert.rejects(call('deleteRun', { runId: run.id }), /No run/);
});

test('compare methods runs the same data through each method in turn and tabulates the results', async () => {
  const { call, training, notes } = setup();
  await call('pickDataset', { kind: 'file', role: 'train' });
  const job: CompareJob = await call('compareMethods', { config: cfg({ train_file: TRAIN, max_samples: 10 }), methods: ['lora', 'ia3', 'bitfit'] });
  assert.deepEqual(job.entries.map(e => e.method), ['lora', 'ia3', 'bitfit']);
  for (let i = 0; i < 3; i++) {
    await until(() => training.started.length === i + 1 && training.current() !== undefined);
    const id = training.current()!.id;
    training.emit(id, progress(1));
    training.emit(id, { v: 1, type: 'eval', time: 1, step: 1, eval_loss: 1 + i });
    training.finish();
  }
  await until(() => (notes('compare').at(-1) as CompareJob).state === 'done');
  const final = notes('compare').at(-1) as CompareJob;
  assert.deepEqual(training.started.map(c => c.method.name), ['lora', 'ia3', 'bitfit']);
  assert.ok(training.started.every(c => c.data.max_samples === 10 && c.data.train_file === TRAIN));
  assert.deepEqual(final.entries.map(e => [e.method, e.status, e.evalLoss]), [['lora', 'completed', 1], ['ia3', 'completed', 2], ['bitfit', 'completed', 3]]);
  assert.ok(final.entries.every(e => typeof e.trainablePercent === 'number' && e.runId));
  // each comparison run became the watched run in turn
  assert.equal(notes('current').length, 3);
});

test('cancelling a comparison stops the current run and skips the rest', async () => {
  const { call, training, notes } = setup();
  await call('pickDataset', { kind: 'file', role: 'train' });
  await call('compareMethods', { config: cfg({ train_file: TRAIN }), methods: ['lora', 'ia3'] });
  await until(() => training.current() !== undefined);
  await assert.rejects(call('compareMethods', { config: cfg({ train_file: TRAIN }), methods: ['full'] }), /already running/);
  await call('cancelCompare');
  await until(() => (notes('compare').at(-1) as CompareJob).entries[0].status === 'stopped');
  const job = notes('compare').at(-1) as CompareJob;
  assert.equal(job.state, 'cancelled');
  assert.deepEqual(job.entries.map(e => e.status), ['stopped', 'stopped']);
  assert.equal(training.started.length, 1);
});

test('after a reload the snapshot re-attaches the watched run with its events', async () => {
  const a = setup();
  await a.call('pickDataset', { kind: 'file', role: 'train' });
  const run = await a.call('start', { config: cfg({ train_file: TRAIN }) });
  for (let s = 1; s <= 7; s++) a.training.emit(run.id, progress(s));
  assert.equal(a.notes('event').length, 8); // started + 7 progress, forwarded live
  // a fresh controller (new window) over the same runs and workspace state
  const b = setup(a.training, a.host);
  await b.controller.handle({ kind: 'notify', method: 'ready' });
  const snap = b.notes('init')[0] as DashboardSnapshot;
  assert.equal(snap.current?.id, run.id);
  assert.equal(snap.currentEvents.filter(e => e.type === 'progress').length, 7);
  assert.equal(snap.runs.length, 1);
  assert.deepEqual(snap.picks.map(p => p.path), [TRAIN]);
  // the run finished while nobody watched: the next snapshot still shows it (watched id persisted)
  a.training.finish();
  const c = setup(a.training, a.host);
  await c.controller.handle({ kind: 'notify', method: 'ready' });
  const later = c.notes('init')[0] as DashboardSnapshot;
  assert.equal(later.current?.status, 'completed');
  assert.equal(later.currentEvents.at(-1)?.type, 'done');
});

test('the playground streams tokens and can be cancelled; runs without an export are refused', async () => {
  const { call, training, notes } = setup();
  await call('pickDataset', { kind: 'file', role: 'train' });
  const run = await call('start', { config: cfg({ train_file: TRAIN }) });
  training.finish('stopped'); // stopped: adapter but no export
  await assert.rejects(call('generate', { runId: run.id, prompt: 'x' }), /has no ONNX export/);
  await call('exportRun', { runId: run.id });
  const { genId } = await call('generate', { runId: run.id, prompt: 'reverse', maxTokens: 50 });
  await until(() => notes('generation').some((g: any) => g.genId === genId && g.done));
  const text = notes('generation').filter((g: any) => g.genId === genId).map((g: any) => g.delta ?? '').join('');
  assert.match(text, /^def reverse\(s\):/);
  const second = await call('generate', { runId: run.id, prompt: 'reverse', maxTokens: 50 });
  await call('cancelGenerate', { genId: second.genId });
  await until(() => notes('generation').some((g: any) => g.genId === second.genId && g.done));
  const partial = notes('generation').filter((g: any) => g.genId === second.genId).map((g: any) => g.delta ?? '').join('');
  assert.ok(partial.length < text.length);
});

test('a valid draft becomes the palette command\'s config; an unfinished one does not', async () => {
  const { controller, call } = setup();
  await controller.handle({ kind: 'notify', method: 'draft', params: { config: cfg({ train_file: TRAIN }) } });
  const draft = () => controller.draftConfig; // (a getter: assert.equal would narrow the field to undefined)
  assert.equal(draft(), undefined); // not picked yet
  await call('pickDataset', { kind: 'file', role: 'train' });
  await controller.handle({ kind: 'notify', method: 'draft', params: { config: cfg({ train_file: TRAIN }) } });
  assert.equal(draft()?.data.train_file, TRAIN);
});

test('preview rows from the trainer map onto the dashboard\'s rows', () => {
  // the shape `python -m bloom_peft preview` prints (trainer/src/bloom_peft/preview.py)
  const row = toPreviewRow({ text: 'Human: a\nb\n\nAssistant: c</s>', prompt: 'Human: a\nb\n\nAssistant: ', response: 'c', tokens: 12, prompt_tokens: 9, truncated: false });
  assert.deepEqual(row, { text: 'Human: a\nb\n\nAssistant: c</s>', prompt: 'Human: a\nb\n\nAssistant: ', tokens: 12, promptTokens: 9, truncated: false });
});

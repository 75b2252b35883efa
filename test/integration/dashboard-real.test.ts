// The dashboard's host side against the real TrainingService and the real trainer (project .venv, the
// embedded model or the fixture's tiny BLOOM): parameter counts and the preview come from `bloom_peft
// params/preview`, a short real run streams through the message protocol, a fresh controller (a window
// reload) re-attaches to it from its events.jsonl, and the playground streams from the run's real ONNX export
// through the completion service.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { engineLoader } from '../../src/completion/engine';
import { CompletionService } from '../../src/completion/service';
import { DEFAULT_SETTINGS } from '../../src/completion/types';
import { DashboardController } from '../../src/dashboard/controller';
import { Playground } from '../../src/dashboard/playground';
import type { DashboardSnapshot, HostToWebview, ParamCounts, PreviewRow, RunRow } from '../../src/protocol/messages';
import { FakeHost } from '../browser/fakes';
import { baseModel, newService, tempDir, TRAIN_FILE } from './training-fixture';

const T = { timeout: 240_000 };
const runsDir = tempDir('dashboard-runs');
const service = newService(runsDir);
const completions = new CompletionService({ loadEngine: engineLoader(), settings: () => ({ ...DEFAULT_SETTINGS, adapter: '' }), runs: service });
const playground = new Playground(engineLoader(), completions);
after(async () => { await completions.dispose(); await playground.dispose(); service.dispose(); fs.rmSync(runsDir, { recursive: true, force: true }); });

const log = { trace() {}, info() {}, warn() {}, error() {} };
function connect(host: FakeHost) {
  const controller = new DashboardController(service, host, log, playground);
  const sent: HostToWebview[] = [];
  controller.attach(m => sent.push(JSON.parse(JSON.stringify(m))));
  let id = 0;
  const call = async <R>(method: string, params: unknown = {}): Promise<R> => {
    const myId = ++id;
    await controller.handle({ kind: 'request', id: myId, method, params });
    const r = sent.find(m => m.kind === 'response' && m.id === myId) as Extract<HostToWebview, { kind: 'response' }>;
    if (!r.ok) throw Object.assign(new Error(`${r.error.message} ${r.error.hint ?? ''}`), r.error);
    return r.result as R;
  };
  const notes = (method: string) => sent.filter(m => m.kind === 'notify' && m.method === method).map(m => (m as { params: any }).params);
  return { controller, call, notes };
}

const model = baseModel();
const host = new FakeHost({ file: TRAIN_FILE, folder: model === 'embedded' ? undefined : model });

async function modelName(call: <R>(m: string, p?: unknown) => Promise<R>): Promise<string> {
  if (model === 'embedded') return model;
  return (await call<{ path: string }>('pickModelFolder')).path; // a local folder only counts when picked
}

test('parameter counts and the preview come from the trainer', T, async () => {
  const { call } = connect(host);
  const name = await modelName(call);
  const cfg = (method: Record<string, unknown>) => ({ model: { name_or_path: name }, method, data: { format: 'instruction' } });
  // each count is one trainer process (torch import): two are enough to see them follow the method
  const lora = await call<ParamCounts>('params', { config: cfg({ name: 'lora', r: 8 }) });
  const prefix = await call<ParamCounts>('params', { config: cfg({ name: 'prefix_tuning', num_virtual_tokens: 5 }) });
  for (const c of [lora, prefix]) assert.ok(c.trainable > 0 && c.percent > 0 && c.percent < 100 && c.total > c.trainable, JSON.stringify(c));
  assert.notEqual(lora.trainable, prefix.trainable);
  assert.ok(Math.abs(lora.percent - (100 * lora.trainable) / lora.total) < 1e-6);

  await call('pickDataset', { kind: 'file', role: 'train' });
  const { rows } = await call<{ rows: PreviewRow[] }>('preview', { config: { ...cfg({ name: 'lora' }), data: { format: 'instruction', train_file: TRAIN_FILE }, training: { max_length: 64 } }, rows: 2 });
  assert.equal(rows.length, 2);
  const first = JSON.parse(fs.readFileSync(TRAIN_FILE, 'utf8').split('\n')[0]);
  assert.ok(rows[0].text.startsWith('Human: '), rows[0].text);
  assert.ok(rows[0].text.includes(first.output), rows[0].text);
  assert.ok(rows[0].tokens > (rows[0].promptTokens ?? 0) && (rows[0].promptTokens ?? 0) > 0, JSON.stringify(rows[0]));
});

test('a real run streams to the dashboard, re-attaches after a reload, and serves the playground', T, async () => {
  const a = connect(host);
  const name = await modelName(a.call);
  await a.call('pickDataset', { kind: 'file', role: 'train' });
  const ended = new Promise<void>(resolve => { const d = service.onRunEnded(() => { d.dispose(); resolve(); }); });
  const config = {
    run_name: 'dash-real', model: { name_or_path: name }, method: { name: 'lora', r: 4 },
    data: { format: 'instruction', train_file: TRAIN_FILE, max_samples: 24, eval_split: 0.2 },
    training: { max_steps: 3, batch_size: 4, max_length: 48, eval_every: 0, save_every: 0, log_every: 1, seed: 1 },
    export: { onnx: true },
  };
  const row = await a.call<RunRow>('start', { config });
  assert.equal(row.status, 'running');
  assert.equal(a.notes('current').at(-1).run.id, row.id);
  await ended;
  const live = a.notes('event').filter(n => n.runId === row.id).map(n => n.event);
  const progress = live.filter(e => e.type === 'progress');
  assert.equal(progress.length, 3, JSON.stringify(live.map(e => e.type)));
  assert.equal(live.at(-1).type, 'done');

  // a new window: the controller starts from nothing but workspace state and the runs folder
  const b = connect(host);
  await b.controller.handle({ kind: 'notify', method: 'ready' });
  const snap = b.notes('init')[0] as DashboardSnapshot;
  assert.equal(snap.current?.id, row.id);
  assert.equal(snap.current?.status, 'completed');
  assert.ok(snap.current?.adapterDir && fs.existsSync(snap.current.adapterDir), snap.current?.adapterDir ?? 'no adapter dir');
  assert.deepEqual(snap.currentEvents.filter(e => e.type === 'progress').map(e => (e as { step: number }).step), [1, 2, 3]);
  assert.equal(snap.currentEvents.length, live.length);
  assert.ok(typeof snap.current?.trainLoss === 'number');
  // open folder goes to the host with the run's own path, never one from the webview
  await b.call('openFolder', { runId: row.id, which: 'adapter' });
  assert.equal(host.revealed.at(-1), snap.current!.adapterDir);
  assert.ok(path.isAbsolute(host.revealed.at(-1)!));

  // the playground: greedy generation from the run's ONNX export, streamed as 'generation' notifications
  assert.ok(snap.current?.exportDir, 'the run exported ONNX');
  const { genId } = await b.call<{ genId: string }>('generate', { runId: row.id, prompt: 'Convert to snake_case', maxTokens: 6, template: true });
  const deadline = Date.now() + 120_000;
  while (!b.notes('generation').some(g => g.genId === genId && g.done) && Date.now() < deadline) await new Promise(r => setTimeout(r, 50));
  const gen = b.notes('generation').filter(g => g.genId === genId);
  const done = gen.find(g => g.done);
  assert.ok(done, 'generation finished');
  assert.equal(done.error, undefined, done.error);
  assert.ok(gen.filter(g => g.delta).length >= 1, JSON.stringify(gen));
});

// The controller serving two dashboards at once (the sidebar and "Open in Editor"): each view gets its own
// responses and snapshot, both get notifications. And the requests behind the first run and data problems:
// environment / setupEnvironment, openFile and datasetFields (picked files only), the answer deadline.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { DashboardController } from '../../src/dashboard/controller';
import type { HostToWebview } from '../../src/protocol/messages';
import { echoEngine, FakeHost, FakeTraining, ROOT } from '../browser/fakes';

const TRAIN = path.join(ROOT, 'examples', 'code-tasks', 'train.jsonl');
const log = { trace() {}, info() {}, warn() {}, error() {} };

function view(controller: DashboardController) {
  const got: HostToWebview[] = [];
  const post = (m: HostToWebview) => got.push(JSON.parse(JSON.stringify(m)));
  controller.attach(post);
  const call = async (id: number, method: string, params: unknown = {}) => {
    await controller.handle({ kind: 'request', id, method, params }, post);
    const r = got.find(m => m.kind === 'response' && m.id === id) as Extract<HostToWebview, { kind: 'response' }>;
    if (!r.ok) throw Object.assign(new Error(r.error.message), r.error);
    return r.result as any;
  };
  return { got, post, call };
}

test('two views: responses and snapshots go to the view that asked, notifications to both', async () => {
  const host = new FakeHost({ file: TRAIN });
  const controller = new DashboardController(new FakeTraining(), host, log, echoEngine);
  const a = view(controller), b = view(controller);
  // both number their requests from 1: each gets exactly its own answer
  assert.deepEqual(await a.call(1, 'pickDataset', { kind: 'file', role: 'train' }), { path: TRAIN, label: 'train.jsonl' });
  assert.deepEqual(await b.call(1, 'listRuns'), []);
  assert.equal(a.got.filter(m => m.kind === 'response').length, 1);
  assert.equal(b.got.filter(m => m.kind === 'response').length, 1);
  await controller.handle({ kind: 'notify', method: 'ready' }, b.post);
  assert.equal(a.got.some(m => m.kind === 'notify' && m.method === 'init'), false);
  assert.equal(b.got.some(m => m.kind === 'notify' && m.method === 'init'), true);
  controller.environmentChanged();
  for (const v of [a, b]) assert.ok(v.got.some(m => m.kind === 'notify' && m.method === 'environment'));
  controller.dispose();
});

test('environment, setup, and files: only picked files are opened or read', async () => {
  const host = new FakeHost({ file: TRAIN });
  host.environmentReady = false;
  const controller = new DashboardController(new FakeTraining(), host, log, echoEngine);
  const v = view(controller);
  assert.deepEqual(await v.call(1, 'environment'), { ready: false, python: '/usr/bin/python3', source: 'system' });
  assert.equal((await v.call(2, 'setupEnvironment')).ready, true);
  assert.equal(host.setups, 1);
  assert.ok(v.got.some(m => m.kind === 'notify' && m.method === 'environment'), 'the views ask for counts again');
  await assert.rejects(v.call(3, 'openFile', { path: '/etc/passwd', line: 1 }), /was not chosen with a picker/);
  await assert.rejects(v.call(4, 'datasetFields', { path: '/etc/passwd' }), /was not chosen with a picker/);
  await v.call(5, 'pickDataset', { kind: 'file', role: 'train' });
  await v.call(6, 'openFile', { path: TRAIN, line: 3 });
  assert.deepEqual(host.opened, [{ path: TRAIN, line: 3 }]);
  assert.deepEqual(await v.call(7, 'datasetFields', { path: TRAIN }), ['instruction', 'input', 'output']);
  controller.dispose();
});

test('a count that never answers fails after the deadline with a message that says so', async () => {
  const training = new FakeTraining();
  training.paramsHang = true;
  const controller = new DashboardController(training, new FakeHost({}), log, echoEngine, 50);
  const v = view(controller);
  await assert.rejects(v.call(1, 'params', { config: { model: { name_or_path: 'embedded' }, method: { name: 'lora' } } }),
    (e: Error & { code?: string }) => /Counting parameters got no answer from the trainer's Python within 0 s/.test(e.message) && e.code === 'timeout');
  controller.dispose();
});

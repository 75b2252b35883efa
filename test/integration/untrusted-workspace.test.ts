// An untrusted workspace at the host level: the real TrainingService, the real completion service and engine
// loader, a runs folder that a cloned repository could bring (a finished run with an ONNX export). Only the
// vscode workspace-trust edge is faked (FakeHost.isTrusted / CompletionService's `trusted`). Nothing may spawn
// Python or load the workspace's model until trust is granted; then the same calls work.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { engineLoader } from '../../src/completion/engine';
import type { EngineLoader } from '../../src/completion/engineHost';
import { CompletionService } from '../../src/completion/service';
import { DEFAULT_SETTINGS } from '../../src/completion/types';
import { DashboardController } from '../../src/dashboard/controller';
import { Playground } from '../../src/dashboard/playground';
import type { HostToWebview } from '../../src/protocol/messages';
import { TrainingService } from '../../src/training/service';
import { FakeHost } from '../browser/fakes';
import { completionFixture } from '../unit/completion-fixture';
import { ENV, PYTHON, tempDir, tinyConfig, TRAIN_FILE } from './training-fixture';

const runsDir = tempDir('untrusted-runs');
const runId = '20260101-000000-cloned';
const runDir = path.join(runsDir, runId);
fs.mkdirSync(runDir, { recursive: true });
fs.cpSync(path.join(completionFixture().instr, 'export'), path.join(runDir, 'export'), { recursive: true });
fs.writeFileSync(path.join(runDir, 'config.json'), JSON.stringify(tinyConfig()));
fs.writeFileSync(path.join(runDir, 'events.jsonl'), JSON.stringify({ v: 1, type: 'done', time: 1, status: 'completed', step: 4, adapter_dir: null, export_dir: path.join(runDir, 'export'), metrics: {} }) + '\n');

let trusted = false;
let pythonLookups = 0;
const training = new TrainingService({
  runsDir: () => runsDir, env: ENV, stopTimeoutMs: () => 30_000, follow: false,
  python: async () => { pythonLookups++; return { path: PYTHON, source: 'env', ready: true }; },
});
const loads: string[] = [];
const realLoader = engineLoader();
const loader: EngineLoader = dir => { loads.push(dir); return realLoader(dir); };
const completions = new CompletionService({
  loadEngine: loader, settings: () => ({ ...DEFAULT_SETTINGS, debounceMs: 0, adapter: '' }), runs: training, trusted: () => trusted,
});
const playground = new Playground(loader, completions);
after(async () => { await completions.dispose(); await playground.dispose(); training.dispose(); });

class TrustHost extends FakeHost { override isTrusted(): boolean { return trusted; } }
const host = new TrustHost({ file: TRAIN_FILE });
const controller = new DashboardController(training, host, { trace() {}, info() {}, warn() {}, error() {} }, playground);
const sent: HostToWebview[] = [];
controller.attach(m => sent.push(JSON.parse(JSON.stringify(m))));
let seq = 0;
async function call(method: string, params: unknown = {}): Promise<unknown> {
  const id = ++seq;
  await controller.handle({ kind: 'request', id, method, params });
  const r = sent.find(m => m.kind === 'response' && m.id === id) as Extract<HostToWebview, { kind: 'response' }>;
  if (!r.ok) throw Object.assign(new Error(r.error.message), r.error);
  return r.result;
}

test('untrusted: every dashboard request that runs Python or loads a model is refused, and nothing runs', async () => {
  await call('pickDataset', { kind: 'file', role: 'train' });
  const config = { ...tinyConfig(), export: { onnx: false } };
  const requests: Array<[string, unknown]> = [
    ['params', { config }], ['preview', { config }], ['start', { config }], ['resume', { runId }],
    ['exportRun', { runId }], ['generate', { runId, prompt: 'x' }], ['useAdapter', { runId }],
    ['compareMethods', { config, methods: ['lora', 'ia3'] }],
  ];
  for (const [method, params] of requests) {
    await assert.rejects(call(method, params), (e: Error & { hint?: string }) =>
      /disabled in an untrusted workspace/.test(e.message) && /Trust the workspace/.test(e.hint ?? ''), method);
  }
  assert.equal(pythonLookups, 0, 'no Python was looked up or spawned');
  assert.deepEqual(host.used, [], 'no adapter was handed to completions');
  // reading what is on disk stays possible
  assert.equal(((await call('listRuns')) as Array<{ id: string }>)[0]!.id, runId);
});

test('untrusted: an empty adapter setting never auto-loads the workspace\'s newest run; trust turns it on', async () => {
  const req = { uri: 'file:///t.txt', languageId: 'plaintext', prefix: 'Convert to snake_case\nReset User', suffix: '' };
  await completions.refresh();
  assert.equal(await completions.complete(req), undefined);
  assert.equal(completions.status().state, 'no-adapter');
  const active = () => completions.activeAdapter; // read anew: the assertion below must not narrow it for later
  assert.equal(active(), undefined);
  assert.deepEqual(loads, [], 'the workspace\'s ONNX model was not loaded');

  trusted = true; // onDidGrantWorkspaceTrust → refresh (src/completion/register.ts)
  await completions.refresh();
  assert.equal(active()?.runId, runId);
  const c = await completions.complete(req);
  assert.equal(c?.insertText, '\nreset_user', JSON.stringify(completions.status().problem));
  assert.deepEqual(loads, [path.join(runDir, 'export')]);
  assert.ok(Number(((await call('params', { config: { ...tinyConfig(), data: undefined } })) as { trainable: number }).trainable) > 0, 'trusted: params run');
  assert.equal(pythonLookups > 0, true);
});

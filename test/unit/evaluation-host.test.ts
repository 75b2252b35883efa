// The evaluation on the host side: a run's summary carries the newest evaluation of the adapter at its step (a
// resumed run that trained further drops the older one), and the dashboard's evaluateRun answers with the event and
// shows it in the run rows; the playground request carries history, top-p and seed to the engine.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { DashboardController } from '../../src/dashboard/controller';
import type { PlaygroundEngine } from '../../src/dashboard/ports';
import type { EvaluationEvent, TrainerEvent } from '../../src/protocol';
import type { HostToWebview } from '../../src/protocol/messages';
import { summarize } from '../../src/training/runStore';
import { FakeHost, FakeTraining, ROOT } from '../browser/fakes';

const vectors = JSON.parse(fs.readFileSync(path.join(ROOT, 'schemas/vectors/events.json'), 'utf8'));
const completed: TrainerEvent[] = vectors.transcripts['completed-run'];
const log = { trace() {}, info() {}, warn() {}, error() {} };

test('a summary shows the newest evaluation of the adapter at the run\'s step', () => {
  const s = summarize(completed, { running: false });
  assert.equal(s.evaluation?.exact, 3);
  assert.equal(s.evaluation?.verdict, 'ok');
  // an on-demand evaluation appended after `done` replaces it
  const again: EvaluationEvent = { ...(s.evaluation as EvaluationEvent), time: 2e9, trigger: 'on_demand', exact: 4, exact_match: 1 };
  assert.equal(summarize([...completed, again], { running: false }).evaluation?.exact, 4);
  // resumed with more steps and stopped: the old evaluation is of another adapter
  const started = completed.find(e => e.type === 'started')!;
  const resumed = [...completed, { ...started, resumed_from_step: 3, total_steps: 6 }, { v: 1, type: 'done', time: 3e9, status: 'stopped', step: 5, adapter_dir: '/a', metrics: {} }] as TrainerEvent[];
  assert.equal(summarize(resumed, { running: false }).evaluation, undefined);
});

test('evaluateRun answers with the event and the run rows carry it; generate passes history, top-p and seed', async () => {
  const training = new FakeTraining();
  const seen: Parameters<PlaygroundEngine['generate']>[2][] = [];
  const engine: PlaygroundEngine = { async generate(_d, _p, o) { seen.push(o); o.onToken?.('好'); return { text: '好', finishReason: 'eos' }; } };
  const controller = new DashboardController(training, new FakeHost({ file: path.join(ROOT, 'examples', 'code-tasks', 'train.jsonl') }), log, engine);
  const sent: HostToWebview[] = [];
  controller.attach(m => sent.push(JSON.parse(JSON.stringify(m))));
  let id = 0;
  const call = async (method: string, params: unknown) => {
    const myId = ++id;
    await controller.handle({ kind: 'request', id: myId, method, params });
    const r = sent.find(m => m.kind === 'response' && m.id === myId) as Extract<HostToWebview, { kind: 'response' }>;
    if (!r.ok) throw Object.assign(new Error(r.error.message), r.error);
    return r.result as any;
  };
  const run = await training.start({ run_name: 'zh', model: { name_or_path: 'embedded' }, method: { name: 'prefix_tuning' }, data: { format: 'instruction', train_file: 'x' } } as never);
  training.finish('completed');
  training.evaluationFigures = { exact: 0, rouge_l: 0.3, base: { exact: 0, exact_match: 0, rouge_l: 0.1 } };
  const ev = await call('evaluateRun', { runId: run.id }) as EvaluationEvent;
  assert.equal(ev.verdict, 'no_exact_answers');
  const rows = await call('listRuns', {});
  assert.equal(rows.find((r: { id: string }) => r.id === run.id).evaluation.verdict, 'no_exact_answers');
  assert.ok(sent.some(m => m.kind === 'notify' && m.method === 'event' && (m.params as { event: TrainerEvent }).event.type === 'evaluation'), 'the live event reaches the webview');
  await assert.rejects(call('evaluateRun', { runId: 'nope' }), /No run "nope"/);

  await call('generate', { runId: run.id, prompt: '再来', temperature: 0.7, topP: 0.9, seed: 3, template: true, history: [{ user: '你好', assistant: '你好！' }] });
  for (const t0 = Date.now(); !seen.length && Date.now() - t0 < 20_000;) await new Promise(r => setTimeout(r, 10));
  assert.deepEqual({ ...seen[0], signal: undefined, onToken: undefined }, { maxTokens: 64, temperature: 0.7, topP: 0.9, seed: 3, template: true, history: [{ user: '你好', assistant: '你好！' }], signal: undefined, onToken: undefined });
  controller.dispose();
});

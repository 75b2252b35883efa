// The completion pipeline and service on the real ONNX engine (worker thread, onnxruntime-node, tokenizer) with
// exports of a model fine-tuned for the test (completion-fixture.ts): a plain one and an instruction-tuned one.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CompletionEngine } from '../../src/inference';
import { createHeadlessCompletions } from '../../src/completion/headless';
import type { RunSource } from '../../src/completion/adapters';
import type { EngineLike } from '../../src/completion/engineHost';
import { CompletionService, type ServiceSettings } from '../../src/completion/service';
import { Playground } from '../../src/dashboard/playground';
import { DEFAULT_SETTINGS, type CompletionRequest } from '../../src/completion/types';
import type { RunSummary } from '../../src/training/types';
import { completionFixture } from './completion-fixture';

let dir: string; // scratch for folders the tests make
let PLAIN: string; // run-like folders holding export/ (read-only: shared with other test files)
let INSTR: string;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'completion-engine-'));
  ({ plain: PLAIN, instr: INSTR } = completionFixture());
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

// No latency budget: on a loaded machine it would cut these exact answers at a word (its own tests: completion-latency).
const settings = (over: Partial<ServiceSettings> = {}): ServiceSettings => ({ ...DEFAULT_SETTINGS, debounceMs: 0, latencyBudgetMs: 0, adapter: '', ...over });
const req = (prefix: string, suffix = ''): CompletionRequest => ({ uri: 'file:///t.py', languageId: 'python', prefix, suffix });

/** The real loader, counting loads and keeping the engines (to break one from under the service). */
function countingLoader() {
  const engines: EngineLike[] = [];
  return {
    engines,
    load: async (d: string) => {
      const e = await CompletionEngine.load(d, { threads: 1 });
      engines.push(e);
      return e;
    },
  };
}

test('real engine: the tuned model completes code through the pipeline; typing through uses the cache', async () => {
  const h = await createHeadlessCompletions(PLAIN, { debounceMs: 0, latencyBudgetMs: 0 }, { threads: 1 });
  try {
    const c = await h.complete('def add(a, b):\n    return ', { languageId: 'python' });
    assert.equal(c?.insertText, 'a + b');
    assert.equal(c?.cached, false);
    assert.ok(c!.timings!.generatedTokens! >= 1);
    // Next line after a finished line (single-line mode shows that one line).
    const n = await h.complete('def add(a, b):', { languageId: 'python' });
    assert.equal(n?.insertText, '\n    return a + b');
    // The user types "a + " of the suggestion: the rest comes from the cache, no generation.
    const before = h.service.pipeline.stats.generations;
    const t = await h.complete('def add(a, b):\n    return a + ', { languageId: 'python' });
    assert.equal(t?.insertText, 'b');
    assert.equal(t?.cached, true);
    assert.equal(h.service.pipeline.stats.generations, before);
    // Further down the same text: a real generation whose prompt starts like the last one (KV reuse).
    const m = await h.complete('def add(a, b):\n    return a + b\n\ndef add(a, b):\n    return ', { languageId: 'python', invoke: true });
    assert.equal(m?.cached, false);
    assert.equal(m?.insertText, 'a + b');
    assert.ok(m!.timings!.reusedTokens! > 0, `reused ${m!.timings!.reusedTokens} prompt tokens`);
  } finally {
    await h.dispose();
  }
});

test('real engine: an instruction-tuned export answers through its training template', async () => {
  const h = await createHeadlessCompletions(INSTR, { debounceMs: 0, latencyBudgetMs: 0 }, { threads: 1 });
  try {
    assert.equal((await h.complete('Notes\n\nConvert to snake_case\nReset User'))?.insertText, '\nreset_user');
    assert.equal((await h.complete('Human: Write a TODO comment\nremove the title'))?.insertText, '\n\nAssistant: # TODO: remove the title');
    const c = await h.complete('Human: Convert to snake_case\nReset User\n\nAssistant: ');
    assert.equal(c?.insertText, 'reset_user');
    assert.equal(c?.prompt, 'Human: Convert to snake_case\nReset User\n\nAssistant: ');
  } finally {
    await h.dispose();
  }
});

test('real engine: a burst of 20 keystrokes causes one generation; cancellation discards the result', async () => {
  const h = await createHeadlessCompletions(PLAIN, { debounceMs: 60, latencyBudgetMs: 0 }, { threads: 1 });
  try {
    const text = 'def add(a, b):\n    return ';
    const pending = [];
    // typing the last 20 chars, all in one turn of the event loop: no debounce timer can fire in between
    for (let i = 19; i >= 0; i--) pending.push(h.complete(text.slice(0, text.length - i), { languageId: 'python' }));
    const out = await Promise.all(pending);
    assert.equal(h.service.pipeline.stats.generations, 1);
    assert.deepEqual(out.map(c => c?.insertText ?? null), [...Array(19).fill(null), 'a + b']);

    const ctl = new AbortController();
    const p = h.complete('def add(a, b):\n', { languageId: 'python', invoke: true, signal: ctl.signal });
    ctl.abort();
    assert.equal(await p, undefined);
    assert.equal(h.service.pipeline.stats.lastSkip, 'aborted');
  } finally {
    await h.dispose();
  }
});

test('switching adapters reloads the same engine (worker recycled), no new engine, no window reload', async () => {
  const l = countingLoader();
  const s = settings({ adapter: PLAIN });
  const svc = new CompletionService({ loadEngine: l.load, settings: () => s });
  const playground = new Playground(l.load, svc);
  const states: string[] = [];
  svc.onDidChange(st => states.push(st.state));
  try {
    assert.equal((await svc.complete(req('def add(a, b):\n    return ')))?.insertText, 'a + b'); // lazy load
    assert.equal(svc.activeAdapter?.exportDir, path.join(PLAIN, 'export'));
    s.adapter = INSTR;
    await svc.settingsChanged();
    assert.equal(svc.activeAdapter?.exportDir, path.join(INSTR, 'export'));
    assert.equal((await svc.complete(req('Convert to snake_case\nReset User')))?.insertText, '\nreset_user');
    assert.equal(l.engines.length, 1, 'one engine, reloaded');
    assert.equal(l.engines[0]!.exportDir, path.join(INSTR, 'export'));
    assert.deepEqual(states.filter((x, i) => x !== 'no-adapter' && x !== states[i - 1]), ['loading', 'ready', 'loading', 'ready']);
    // Other settings only drop the cache.
    s.maxTokens = 8;
    await svc.settingsChanged();
    assert.equal(svc.status().state, 'ready');
    // Off and on again: the same engine serves on (no second worker, no reload of the same export).
    s.enabled = false;
    await svc.settingsChanged();
    assert.equal(svc.status().state, 'disabled');
    assert.equal(await svc.complete(req('def add(a, b):\n    return ')), undefined);
    s.enabled = true;
    await svc.settingsChanged();
    assert.equal(svc.status().state, 'ready');
    assert.equal(l.engines.length, 1);
    // The playground generates with any run's export, streamed, the template applied on request.
    const tokens: string[] = [];
    const g = await playground.generate(path.join(PLAIN, 'export'), 'Convert to snake_case\nReset User', { template: false, maxTokens: 4, temperature: 0, onToken: t => tokens.push(t) });
    assert.ok(g.text.length > 0 && tokens.join('') === g.text);
    const a = await playground.generate(svc.activeAdapter!.exportDir, 'Human: Write a TODO comment\nremove the title\n\nAssistant: ', { maxTokens: 16, temperature: 0 });
    assert.equal(a.text, '# TODO: remove the title');
    assert.equal(l.engines.length, 2, 'the playground got its own engine for the other export');
  } finally {
    await svc.dispose();
    await playground.dispose();
  }
});

test('errors show once with an action, then completion stays quiet until the adapter changes', async () => {
  const l = countingLoader();
  const broken = path.join(dir, 'broken');
  fs.mkdirSync(path.join(broken, 'export'), { recursive: true });
  fs.writeFileSync(path.join(broken, 'export', 'manifest.json'), '{"format_version": 6}');
  const s = settings({ adapter: broken });
  const svc = new CompletionService({ loadEngine: l.load, settings: () => s });
  const problems: Array<{ code: string; actions: string[] }> = [];
  svc.onProblem(p => problems.push(p));
  try {
    for (let i = 0; i < 5; i++) assert.equal(await svc.complete(req('x = ')), undefined);
    assert.equal(problems.length, 1);
    assert.equal(problems[0]!.code, 'MANIFEST_INVALID');
    assert.equal(svc.status().state, 'error');
    assert.equal(svc.pipeline.stats.generations, 0);

    // A folder without an export: "Export Adapter" is offered.
    const noExport = path.join(dir, 'not-exported');
    fs.mkdirSync(noExport, { recursive: true });
    s.adapter = noExport;
    await svc.settingsChanged();
    assert.equal(problems.length, 2);
    assert.equal(problems[1]!.code, 'EXPORT_MISSING');

    // A good adapter: back to work.
    s.adapter = PLAIN;
    await svc.settingsChanged();
    assert.equal((await svc.complete(req('def add(a, b):\n    return ')))?.insertText, 'a + b');

    // The engine dies under the service: reported once, then no retry loop.
    await l.engines[0]!.dispose();
    for (let i = 0; i < 4; i++) assert.equal(await svc.complete(req(`y${i} = `)), undefined);
    assert.equal(problems.length, 3);
    assert.equal(problems[2]!.code, 'DISPOSED');
    assert.ok(problems[2]!.actions.includes('Reload Adapter'));
    assert.equal(svc.status().state, 'error');
  } finally {
    await svc.dispose();
  }
});

test('runs: empty setting follows the newest run with an export; exporting a run clears its problem', async () => {
  const l = countingLoader();
  const runDir = path.join(dir, 'run-late');
  fs.mkdirSync(runDir, { recursive: true });
  const summary = (id: string, d: string, endedAt: number, exportDir?: string): RunSummary => ({ id, dir: d, name: id, method: 'full', status: 'completed', endedAt, step: 1, owned: false, resumable: false, exportDir });
  let runs: RunSummary[] = [summary('old', PLAIN, 1, path.join(PLAIN, 'export')), summary('late', runDir, 2)];
  const listeners = new Set<() => void>();
  const source: RunSource = { listRuns: async () => runs, onRunsChanged: f => (listeners.add(f), { dispose: () => listeners.delete(f) }) };
  const s = settings();
  const svc = new CompletionService({ loadEngine: l.load, settings: () => s, runs: source });
  const problems: Array<{ code: string; actions: string[]; runId?: string }> = [];
  svc.onProblem(p => problems.push(p));
  try {
    // Newest run with an export ("late" has none yet).
    assert.equal((await svc.complete(req('def add(a, b):\n    return ')))?.insertText, 'a + b');
    assert.deepEqual([svc.activeAdapter?.runId, svc.activeAdapter?.auto], ['old', true]);

    // Chosen by id, but not exported: Export Adapter is offered for that run.
    await svc.useAdapter('late');
    assert.deepEqual(problems.map(p => [p.code, p.runId, p.actions[0]]), [['EXPORT_MISSING', 'late', 'Export Adapter']]);
    // The export lands (here: copied) and the run store says runs changed: completions come back by themselves.
    fs.cpSync(path.join(INSTR, 'export'), path.join(runDir, 'export'), { recursive: true });
    runs = [runs[0]!, summary('late', runDir, 2, path.join(runDir, 'export'))];
    s.adapter = 'late';
    for (const f of listeners) f();
    // the listener starts the load without awaiting it: poll for the outcome (no timer races an assertion)
    for (const t0 = Date.now(); svc.status().state !== 'ready' && Date.now() - t0 < 30_000;) await new Promise(r => setTimeout(r, 20));
    assert.equal(svc.status().state, 'ready');
    assert.equal(svc.activeAdapter?.runId, 'late');
    assert.equal((await svc.complete(req('Convert to snake_case\nReset User')))?.insertText, '\nreset_user');
    assert.equal(problems.length, 1);
  } finally {
    await svc.dispose();
  }
});

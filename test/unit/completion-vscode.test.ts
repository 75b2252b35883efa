// The VS Code edge of the completions (register.ts, provider.ts, statusbar.ts) against a small stand-in of the
// `vscode` API module (the one true edge here; the real editor is exercised by the e2e test), with the real
// service, pipeline and ONNX engine on the fixture exports: commands, settings, status bar, notifications, and the
// provider's request/cancellation handling.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import Module from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type { RunSummary } from '../../src/training/types';
import { completionFixture } from './completion-fixture';

// ---- the vscode stand-in

type Listener<T> = (e: T) => void;
class Emitter<T> {
  private ls = new Set<Listener<T>>();
  event = (l: Listener<T>) => (this.ls.add(l), { dispose: () => this.ls.delete(l) });
  fire(e: T): void { for (const l of [...this.ls]) l(e); }
}
class Position { constructor(readonly line: number, readonly character: number) {} }
class Range { constructor(readonly start: Position, readonly end: Position) {} }
class InlineCompletionItem { constructor(readonly insertText: string, readonly range: Range) {} }
class MarkdownString { constructor(readonly value: string) {} }
class ThemeColor { constructor(readonly id: string) {} }

const config = new Map<string, unknown>();
// No latency budget: on a loaded machine it would cut the exact answers below at a word (see completion-latency).
config.set('bloomPeft.completions.latencyBudgetMs', 0);
const configChanged = new Emitter<{ affectsConfiguration(s: string): boolean }>();
const docChanged = new Emitter<{ document: unknown; contentChanges: Array<{ rangeOffset: number; rangeLength: number; text: string }> }>();
const commands = new Map<string, (...a: unknown[]) => unknown>();
const executed: unknown[][] = [];
const warnings: Array<{ message: string; actions: string[] }> = [];
const infos: Array<{ message: string; actions: string[] }> = [];
let warningAnswer: string | undefined;
let quickPickAnswer: ((items: Array<{ label: string; run?: RunSummary; action?: string }>) => unknown) | undefined;
let lastQuickPick: Array<{ label: string }> = [];
const statusItems: Array<{ text: string; tooltip?: MarkdownString; command?: string; backgroundColor?: ThemeColor }> = [];
let provider: { provideInlineCompletionItems: (...a: unknown[]) => Promise<InlineCompletionItem[] | undefined> } | undefined;

const vscodeStub = {
  Position, Range, InlineCompletionItem, MarkdownString, ThemeColor,
  StatusBarAlignment: { Left: 1, Right: 2 },
  ConfigurationTarget: { Global: 1, Workspace: 2, WorkspaceFolder: 3 },
  QuickPickItemKind: { Separator: -1, Default: 0 },
  InlineCompletionTriggerKind: { Invoke: 0, Automatic: 1 },
  EndOfLine: { LF: 1, CRLF: 2 },
  workspace: {
    workspaceFolders: undefined as unknown,
    getConfiguration: (section: string) => ({
      get: (k: string, d?: unknown) => (config.has(`${section}.${k}`) ? config.get(`${section}.${k}`) : d),
      inspect: (k: string) => ({ globalValue: config.get(`${section}.${k}`) }),
      update: async (k: string, v: unknown) => {
        config.set(`${section}.${k}`, v);
        configChanged.fire({ affectsConfiguration: s => `${section}.${k}`.startsWith(s) });
      },
    }),
    onDidChangeConfiguration: configChanged.event,
    onDidChangeTextDocument: docChanged.event,
    isTrusted: true,
    onDidGrantWorkspaceTrust: () => ({ dispose() {} }),
  },
  window: {
    activeTextEditor: undefined as unknown,
    createStatusBarItem: () => {
      const item = { text: '', command: undefined, show() {}, dispose() {} };
      statusItems.push(item);
      return item;
    },
    showWarningMessage: async (message: string, ...actions: string[]) => (warnings.push({ message, actions }), warningAnswer),
    showInformationMessage: async (message: string, ...actions: string[]) => (infos.push({ message, actions }), undefined),
    showQuickPick: async (items: Array<{ label: string }>) => ((lastQuickPick = items), quickPickAnswer?.(items)),
    showOpenDialog: async () => undefined,
    setStatusBarMessage: () => ({ dispose() {} }),
  },
  languages: {
    registerInlineCompletionItemProvider: (_sel: unknown, p: typeof provider) => ((provider = p), { dispose() {} }),
  },
  commands: {
    registerCommand: (id: string, fn: (...a: unknown[]) => unknown) => (commands.set(id, fn), { dispose: () => commands.delete(id) }),
    executeCommand: async (id: string, ...args: unknown[]) => (executed.push([id, ...args]), commands.get(id)?.(...args)),
  },
};

// `import * as vscode from 'vscode'` in the code under test resolves to the stand-in.
const M = Module as unknown as { _resolveFilename: (r: string, ...a: unknown[]) => string };
const resolve = M._resolveFilename;
M._resolveFilename = function (request: string, ...rest: unknown[]) {
  return request === 'vscode' ? 'vscode-stub' : resolve.call(this, request, ...rest);
};
require.cache['vscode-stub'] = { id: 'vscode-stub', filename: 'vscode-stub', loaded: true, exports: vscodeStub } as unknown as NodeJS.Module;

/** A TextDocument over a string (the parts provider.ts uses). */
function doc(text: string, languageId = 'python') {
  const lines = text.split('\n');
  const offsetAt = (p: Position) => lines.slice(0, p.line).reduce((n, l) => n + l.length + 1, 0) + p.character;
  const positionAt = (o: number) => {
    let line = 0;
    while (line < lines.length - 1 && o > lines[line]!.length) o -= lines[line++]!.length + 1;
    return new Position(line, o);
  };
  return {
    uri: { scheme: 'file', toString: () => 'file:///w/t.py' }, languageId, eol: 1, lineCount: lines.length,
    lineAt: (i: number) => ({ range: new Range(new Position(i, 0), new Position(i, lines[i]!.length)) }),
    offsetAt, positionAt,
    getText: (r: Range) => text.slice(offsetAt(r.start), offsetAt(r.end)),
    end: positionAt(text.length),
  };
}
function token() {
  const e = new Emitter<void>();
  const t = { isCancellationRequested: false, onCancellationRequested: e.event, cancel: () => ((t.isCancellationRequested = true), e.fire()) };
  return t;
}
const ctx = (over = {}) => ({ triggerKind: 1, selectedCompletionInfo: undefined, ...over });

// ---- fixture runs

let scratch: string;
let runs: RunSummary[] = [];
const runsChanged = new Emitter<void>();
const disposables: Array<{ dispose(): unknown }> = [];
let service: import('../../src/completion/service').CompletionService;
const logged: string[] = [];

before(async () => {
  const fx = completionFixture();
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'completion-vscode-'));
  fs.mkdirSync(path.join(scratch, 'no-export'));
  const run = (id: string, dir: string, endedAt: number, exportDir?: string): RunSummary => ({ id, dir, name: id, method: 'full', status: 'completed', endedAt, step: 40, owned: false, resumable: false, exportDir, finalTrainLoss: 0.01 });
  runs = [run('code-run', fx.plain, 1, path.join(fx.plain, 'export')), run('instr-run', fx.instr, 2, path.join(fx.instr, 'export')), run('fresh-run', path.join(scratch, 'no-export'), 3)];
  const { registerCompletions } = await import('../../src/completion/register');
  const state = new Map<string, unknown>();
  const context = { subscriptions: disposables, globalState: { get: (k: string) => state.get(k), update: async (k: string, v: unknown) => void state.set(k, v) } };
  const log = { info: (m: string) => logged.push(m), warn: (m: string) => logged.push(m), error: (m: string) => logged.push(m), show() {}, trace() {} };
  service = registerCompletions(context as never, {
    training: { listRuns: async () => runs, onRunsChanged: l => runsChanged.event(l) },
    log: log as never,
  });
});

after(async () => {
  for (const d of disposables.reverse()) await d.dispose();
  await service.dispose();
  fs.rmSync(scratch, { recursive: true, force: true });
});

const bar = () => statusItems[0]!;
const until = async (cond: () => boolean, ms = 20000) => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise(r => setTimeout(r, 10));
  }
};

test('registration: provider, both commands, a status bar item naming the newest exported run', async () => {
  assert.ok(provider);
  assert.ok(commands.has('bloomPeft.useAdapter') && commands.has('bloomPeft.toggleCompletions'));
  assert.equal(bar().command, 'bloomPeft.useAdapter');
  await until(() => bar().text.includes('instr-run'));
  assert.equal(bar().text, '$(sparkle) instr-run (newest)');
});

test('the provider answers with an InlineCompletionItem at the cursor; the status bar shows the latency', async () => {
  config.set('bloomPeft.completions.debounceMs', 0);
  configChanged.fire({ affectsConfiguration: s => 'bloomPeft.completions.debounceMs'.startsWith(s) });
  const d = doc('Notes\n\nConvert to snake_case\nReset User\n\nmore');
  const pos = new Position(3, 10);
  const items = await provider!.provideInlineCompletionItems(d, pos, ctx(), token());
  assert.equal(items?.[0]?.insertText, '\nreset_user');
  assert.deepEqual(items?.[0]?.range, new Range(pos, pos));
  assert.match(bar().text, /^\$\(sparkle\) instr-run \(newest\) · \d+ ms$/);
});

test('the suggest widget is open: the item replaces the selected item\'s range and extends its text', async () => {
  const d = doc('Notes\n\nConvert to snake_case\nReset Us\n\nmore');
  const pos = new Position(3, 8);
  // word-based suggestions offer "User" for "Us": the answer is the one for "Reset User" (cached: no generation)
  const range = new Range(new Position(3, 6), pos);
  const items = await provider!.provideInlineCompletionItems(d, pos, ctx({ selectedCompletionInfo: { range, text: 'User' } }), token());
  assert.equal(items?.[0]?.insertText, 'User\nreset_user');
  assert.equal(items?.[0]?.range, range);
  assert.equal(service.pipeline.stats.cacheHits > 0, true);
  // a selected item on another line than the cursor is no word completion: nothing
  const other = new Range(new Position(2, 0), new Position(2, 7));
  assert.equal(await provider!.provideInlineCompletionItems(d, pos, ctx({ selectedCompletionInfo: { range: other, text: 'Convert' } }), token()), undefined);
});

test('the first ghost text brings a one-time hint for the manual trigger (Alt+\\)', async () => {
  // the tests above showed ghost text already: exactly one hint, with a way to change the shortcut
  assert.equal(infos.length, 1);
  assert.match(infos[0]!.message, /Alt\+\\.*Trigger Inline Suggestion/);
  assert.deepEqual(infos[0]!.actions, ['Change Shortcut']);
});

test('a cancelled token discards the result', async () => {
  const t = token();
  const p = provider!.provideInlineCompletionItems(doc('Write a TODO comment\nremove the title'), new Position(1, 16), ctx(), t);
  t.cancel();
  assert.equal(await p, undefined);
});

test('useAdapter(runId, runDir) from the host: stored in the setting, switched without a window reload', async () => {
  const code = runs[0]!;
  const exportDir = await commands.get('bloomPeft.useAdapter')!('code-run', code.dir);
  assert.equal(exportDir, code.exportDir);
  assert.equal(config.get('bloomPeft.completions.adapter'), code.dir);
  assert.equal(service.activeAdapter?.runId, 'code-run');
  const text = 'def add(a, b):\n    return ';
  const items = await provider!.provideInlineCompletionItems(doc(text), new Position(1, 11), ctx(), token());
  assert.equal(items?.[0]?.insertText, 'a + b');
  assert.equal(bar().text.startsWith('$(sparkle) code-run · '), true);
});

test('useAdapter without arguments: a quick pick of runs with an export, plus follow-newest and the toggle', async () => {
  quickPickAnswer = items => items.find(i => i.run?.id === 'instr-run');
  await commands.get('bloomPeft.useAdapter')!();
  const labels = lastQuickPick.map(i => i.label);
  assert.ok(labels.some(l => l.includes('code-run')) && labels.some(l => l.includes('instr-run')));
  assert.ok(!labels.some(l => l.includes('fresh-run')), 'runs without an export are not offered');
  assert.ok(labels.some(l => l.includes('Follow the newest run')) && labels.some(l => l.includes('Turn inline completions off')));
  assert.equal(service.activeAdapter?.runId, 'instr-run');
  assert.equal(config.get('bloomPeft.completions.adapter'), runs[1]!.dir);
});

test('a run without an export: one warning with "Export Adapter", which runs the host command for that run', async () => {
  warnings.length = 0;
  executed.length = 0;
  warningAnswer = 'Export Adapter';
  await commands.get('bloomPeft.useAdapter')!('fresh-run');
  await until(() => executed.some(e => e[0] === 'bloomPeft.exportAdapter'));
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!.message, /fresh-run.*no ONNX export/);
  assert.deepEqual(warnings[0]!.actions, ['Export Adapter', 'Choose Adapter']);
  assert.deepEqual(executed.find(e => e[0] === 'bloomPeft.exportAdapter'), ['bloomPeft.exportAdapter', 'fresh-run']);
  assert.equal(bar().text, '$(error) fresh-run');
  assert.deepEqual(bar().backgroundColor, new ThemeColor('statusBarItem.errorBackground'));
  // Typing on: quiet, no second warning.
  for (let i = 0; i < 3; i++) assert.equal(await provider!.provideInlineCompletionItems(doc(`x${i} = `), new Position(0, 5), ctx(), token()), undefined);
  assert.equal(warnings.length, 1);
  warningAnswer = undefined;
});

test('toggleCompletions turns completions off and on', async () => {
  await commands.get('bloomPeft.useAdapter')!('code-run', runs[0]!.dir);
  await commands.get('bloomPeft.toggleCompletions')!();
  assert.equal(config.get('bloomPeft.completions.enabled'), false);
  await until(() => bar().text === '$(circle-slash) Bloom');
  assert.equal(await provider!.provideInlineCompletionItems(doc('def add(a, b):\n    return '), new Position(1, 11), ctx(), token()), undefined);
  await commands.get('bloomPeft.toggleCompletions')!();
  await until(() => bar().text.startsWith('$(sparkle) code-run'));
  const items = await provider!.provideInlineCompletionItems(doc('def add(a, b):\n    return '), new Position(1, 11), ctx(), token());
  assert.equal(items?.[0]?.insertText, 'a + b');
});

test('the latency counts from the document change the request answers (VS Code asks ~50 ms after it)', async () => {
  const d = { ...doc('def add(a, b):\n    return '), version: 7 };
  docChanged.fire({ document: d, contentChanges: [{ rangeOffset: 0, rangeLength: 0, text: 'd' }] });
  await new Promise(r => setTimeout(r, 300));
  // another maxTokens drops the cached answer: this one is generated
  config.set('bloomPeft.completions.maxTokens', 47);
  configChanged.fire({ affectsConfiguration: s => 'bloomPeft.completions.maxTokens'.startsWith(s) });
  const items = await provider!.provideInlineCompletionItems(d, new Position(1, 11), ctx(), token());
  assert.equal(items?.[0]?.insertText, 'a + b');
  assert.ok(service.status().lastLatencyMs! >= 300, `counted from the change: ${service.status().lastLatencyMs} ms`);
  // VS Code asks again for the same version (the suggest widget's selection moved): from that call
  const seen: Array<number | undefined> = [];
  const complete = service.complete.bind(service);
  service.complete = (req, signal) => {
    seen.push(req.changedAt);
    return complete(req, signal);
  };
  await provider!.provideInlineCompletionItems(d, new Position(1, 11), ctx(), token());
  service.complete = complete;
  assert.deepEqual(seen, [undefined]);
  config.delete('bloomPeft.completions.maxTokens');
  configChanged.fire({ affectsConfiguration: s => 'bloomPeft.completions.maxTokens'.startsWith(s) });
});

test('a keystroke in the active editor is prefilled at once; the request VS Code sends after it reuses that prefill', async () => {
  config.set('bloomPeft.completions.debounceMs', 150);
  configChanged.fire({ affectsConfiguration: s => 'bloomPeft.completions.debounceMs'.startsWith(s) });
  const text = 'def sub(a, b):\n    return a - b\n\ndef mul(a, b):\n    return ';
  const d = { ...doc(text), version: 9 };
  const typed = { rangeOffset: text.length - 1, rangeLength: 0, text: ' ' };
  const prefills = service.pipeline.stats.prefills;
  docChanged.fire({ document: d, contentChanges: [typed] });
  assert.equal(service.pipeline.stats.prefills, prefills, 'not the active editor: nothing');
  vscodeStub.window.activeTextEditor = { document: d };
  docChanged.fire({ document: d, contentChanges: [typed] });
  assert.equal(service.pipeline.stats.prefills, prefills + 1, 'sent at the change');
  await provider!.provideInlineCompletionItems(d, d.positionAt(text.length), ctx(), token());
  assert.equal(service.pipeline.stats.prefills, prefills + 1, 'the request found its prompt prefilled (or under way)');
  vscodeStub.window.activeTextEditor = undefined;
  config.set('bloomPeft.completions.debounceMs', 0);
  configChanged.fire({ affectsConfiguration: s => 'bloomPeft.completions.debounceMs'.startsWith(s) });
});

// Browser-test harness for the dashboard webview: serves the exact HTML the extension serves (same CSP, fresh
// nonce, dist/webview.js + dist/webview.css), fakes only acquireVsCodeApi (state in sessionStorage, so it
// survives a reload like VS Code's) and bridges the page to the real DashboardController, which speaks the
// real message protocol. The training service and the host's native dialogs are the stubbed edges.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { TrainingConfig } from '../../src/protocol/config';
import type { TrainerEvent } from '../../src/protocol/events';
import type { HostToWebview } from '../../src/protocol/messages';
import { DashboardController } from '../../src/dashboard/controller';
import { makeNonce, renderDashboardHtml } from '../../src/dashboard/html';
import type { DashboardHost, PlaygroundEngine } from '../../src/dashboard/ports';
import type {
  CheckReport, Disposable, EventListener, ParamsResult, PreviewRow, RunEnd, RunInfo, RunSummary, TrainingServiceApi,
} from '../../src/training/types';

export const ROOT = path.resolve(__dirname, '../..');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const SCREENSHOTS = path.join(ROOT, 'test-results', 'screenshots');

// ---------------------------------------------------------------------------------------------------------
// bundle: rebuilt only when a webview source is newer than dist/webview.js (npm test builds it in setup)

export function ensureBundle(): void {
  const out = path.join(ROOT, 'dist', 'webview.js');
  const newest = (dir: string): number => fs.readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
    const p = path.join(dir, e.name);
    return Math.max(m, e.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs);
  }, 0);
  const sources = Math.max(newest(path.join(ROOT, 'webview')), newest(path.join(ROOT, 'src', 'protocol')), newest(path.join(ROOT, 'schemas')));
  if (fs.existsSync(out) && fs.existsSync(path.join(ROOT, 'dist', 'webview.css')) && fs.statSync(out).mtimeMs >= sources) return;
  const r = spawnSync(process.execPath, ['esbuild.mjs'], { cwd: ROOT, encoding: 'utf8' });
  if (!fs.existsSync(out) || fs.statSync(out).mtimeMs < sources) throw new Error(`building dist/webview.js failed:\n${r.stderr}`);
}

// ---------------------------------------------------------------------------------------------------------
// the page server

export interface Served { url: string; close(): Promise<void> }

export async function serve(): Promise<Served> {
  const files: Record<string, string> = {
    '/dist/webview.js': 'application/javascript', '/dist/webview.css': 'text/css',
    '/dist/webview.js.map': 'application/json', '/dist/webview.css.map': 'application/json',
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/favicon.ico') { res.writeHead(204).end(); return; }
    if (url.pathname === '/') {
      const origin = `http://${req.headers.host}`;
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(renderDashboardHtml({ cspSource: origin, nonce: makeNonce(), scriptUri: `${origin}/dist/webview.js`, styleUri: `${origin}/dist/webview.css` }));
      return;
    }
    const type = files[url.pathname];
    if (!type) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': type });
    fs.createReadStream(path.join(ROOT, url.pathname)).pipe(res);
  });
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise(r => { server.closeAllConnections(); server.close(() => r()); }) };
}

export async function launch(): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/setup.sh (apt-get install chromium), or set CHROMIUM_PATH`);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

// ---------------------------------------------------------------------------------------------------------
// VS Code theme variables (a subset of what VS Code sets on <html>): enough for the toolkit and the charts

const common = { '--vscode-font-family': 'system-ui, "Segoe UI", Ubuntu, sans-serif', '--vscode-font-size': '13px', '--vscode-font-weight': 'normal', '--vscode-editor-font-family': 'monospace', '--vscode-editor-font-size': '12px' };
export const THEMES = {
  light: {
    kind: 'vscode-light',
    vars: {
      ...common, '--vscode-foreground': '#3b3b3b', '--vscode-descriptionForeground': '#717171', '--vscode-errorForeground': '#e51400',
      '--vscode-sideBar-background': '#f8f8f8', '--vscode-editor-background': '#ffffff', '--vscode-focusBorder': '#005fb8',
      '--vscode-button-background': '#005fb8', '--vscode-button-foreground': '#ffffff', '--vscode-button-hoverBackground': '#0258a8',
      '--vscode-button-secondaryBackground': '#e5e5e5', '--vscode-button-secondaryForeground': '#3b3b3b', '--vscode-button-secondaryHoverBackground': '#cccccc',
      '--vscode-button-border': 'transparent', '--vscode-input-background': '#ffffff', '--vscode-input-foreground': '#3b3b3b',
      '--vscode-input-placeholderForeground': '#767676', '--vscode-input-border': '#cecece', '--vscode-dropdown-background': '#ffffff',
      '--vscode-dropdown-foreground': '#3b3b3b', '--vscode-dropdown-border': '#cecece', '--vscode-checkbox-background': '#f8f8f8',
      '--vscode-checkbox-border': '#cecece', '--vscode-checkbox-foreground': '#3b3b3b', '--vscode-panel-background': '#f8f8f8',
      '--vscode-panel-border': '#e5e5e5', '--vscode-panelTitle-activeBorder': '#005fb8', '--vscode-panelTitle-activeForeground': '#3b3b3b',
      '--vscode-panelTitle-inactiveForeground': '#3b3b3b', '--vscode-badge-background': '#cccccc', '--vscode-badge-foreground': '#3b3b3b',
      '--vscode-progressBar-background': '#005fb8', '--vscode-list-hoverBackground': '#f2f2f2', '--vscode-list-activeSelectionBackground': '#e8e8e8',
      '--vscode-list-activeSelectionForeground': '#000000', '--vscode-widget-border': '#e5e5e5', '--vscode-textLink-foreground': '#005fb8',
      '--vscode-textCodeBlock-background': '#f0f0f0', '--vscode-inputValidation-errorBorder': '#be1100', '--vscode-inputValidation-errorBackground': '#f2dede',
      '--vscode-charts-blue': '#1a85ff', '--vscode-charts-orange': '#d18616', '--vscode-charts-green': '#388a34', '--vscode-charts-purple': '#652d90',
      '--vscode-charts-red': '#e51400', '--vscode-charts-yellow': '#bf8803', '--vscode-charts-lines': 'rgba(59,59,59,0.25)',
      '--vscode-scrollbarSlider-background': 'rgba(100,100,100,0.4)', '--vscode-settings-dropdownListBorder': '#cecece',
    },
  },
  dark: {
    kind: 'vscode-dark',
    vars: {
      ...common, '--vscode-foreground': '#cccccc', '--vscode-descriptionForeground': '#9d9d9d', '--vscode-errorForeground': '#f85149',
      '--vscode-sideBar-background': '#181818', '--vscode-editor-background': '#1f1f1f', '--vscode-focusBorder': '#0078d4',
      '--vscode-button-background': '#0078d4', '--vscode-button-foreground': '#ffffff', '--vscode-button-hoverBackground': '#026ec1',
      '--vscode-button-secondaryBackground': '#313131', '--vscode-button-secondaryForeground': '#cccccc', '--vscode-button-secondaryHoverBackground': '#3c3c3c',
      '--vscode-button-border': 'rgba(255,255,255,0.07)', '--vscode-input-background': '#313131', '--vscode-input-foreground': '#cccccc',
      '--vscode-input-placeholderForeground': '#989898', '--vscode-input-border': '#3c3c3c', '--vscode-dropdown-background': '#313131',
      '--vscode-dropdown-foreground': '#cccccc', '--vscode-dropdown-border': '#3c3c3c', '--vscode-checkbox-background': '#313131',
      '--vscode-checkbox-border': '#3c3c3c', '--vscode-checkbox-foreground': '#cccccc', '--vscode-panel-background': '#181818',
      '--vscode-panel-border': '#2b2b2b', '--vscode-panelTitle-activeBorder': '#0078d4', '--vscode-panelTitle-activeForeground': '#cccccc',
      '--vscode-panelTitle-inactiveForeground': '#9d9d9d', '--vscode-badge-background': '#616161', '--vscode-badge-foreground': '#f8f8f8',
      '--vscode-progressBar-background': '#0078d4', '--vscode-list-hoverBackground': '#2a2d2e', '--vscode-list-activeSelectionBackground': '#04395e',
      '--vscode-list-activeSelectionForeground': '#ffffff', '--vscode-widget-border': '#313131', '--vscode-textLink-foreground': '#4daafc',
      '--vscode-textCodeBlock-background': '#2b2b2b', '--vscode-inputValidation-errorBorder': '#be1100', '--vscode-inputValidation-errorBackground': '#5a1d1d',
      '--vscode-charts-blue': '#3794ff', '--vscode-charts-orange': '#d18616', '--vscode-charts-green': '#89d185', '--vscode-charts-purple': '#b180d7',
      '--vscode-charts-red': '#f14c4c', '--vscode-charts-yellow': '#cca700', '--vscode-charts-lines': 'rgba(204,204,204,0.25)',
      '--vscode-scrollbarSlider-background': 'rgba(121,121,121,0.4)', '--vscode-settings-dropdownListBorder': '#454545',
    },
  },
  'high-contrast': {
    kind: 'vscode-high-contrast',
    vars: {
      ...common, '--vscode-foreground': '#ffffff', '--vscode-descriptionForeground': '#ffffff', '--vscode-errorForeground': '#f48771',
      '--vscode-sideBar-background': '#000000', '--vscode-editor-background': '#000000', '--vscode-focusBorder': '#f38518',
      '--vscode-contrastBorder': '#6fc3df', '--vscode-contrastActiveBorder': '#f38518', '--vscode-button-background': '#000000',
      '--vscode-button-foreground': '#ffffff', '--vscode-button-border': '#6fc3df', '--vscode-input-background': '#000000',
      '--vscode-input-foreground': '#ffffff', '--vscode-input-border': '#6fc3df', '--vscode-dropdown-background': '#000000',
      '--vscode-dropdown-foreground': '#ffffff', '--vscode-dropdown-border': '#6fc3df', '--vscode-checkbox-background': '#000000',
      '--vscode-checkbox-border': '#6fc3df', '--vscode-panelTitle-activeBorder': '#f38518', '--vscode-panelTitle-activeForeground': '#ffffff',
      '--vscode-panelTitle-inactiveForeground': '#ffffff', '--vscode-badge-background': '#000000', '--vscode-badge-foreground': '#ffffff',
      '--vscode-progressBar-background': '#6fc3df', '--vscode-textLink-foreground': '#21a6ff', '--vscode-charts-blue': '#3794ff',
      '--vscode-charts-orange': '#d18616', '--vscode-charts-green': '#89d185', '--vscode-charts-lines': 'rgba(255,255,255,0.4)',
    },
  },
} as const;
export type ThemeName = keyof typeof THEMES;

// ---------------------------------------------------------------------------------------------------------
// the stubbed edges: training service (events driven by the test) and host dialogs

const TINY = { vocab: 2048, hidden: 64, layers: 2 };

/** Parameter counts of a tiny BLOOM by the usual formulas (the real numbers come from `bloom_peft params`). */
export function tinyParams(config: TrainingConfig): ParamsResult {
  const { vocab: V, hidden: h, layers: L } = TINY;
  const layer = 2 * h + (3 * h * h + 3 * h) + (h * h + h) + 2 * h + (4 * h * h + 4 * h) + (4 * h * h + h);
  const base = V * h + 2 * h + L * layer + 2 * h;
  const m = config.method as Record<string, unknown> & { name: string };
  const n = (m.num_virtual_tokens as number | undefined) ?? 20;
  let trainable: number;
  switch (m.name) {
    case 'full': trainable = base; break;
    case 'bitfit': trainable = 2 * h + L * (2 * h + 3 * h + h + 2 * h + 4 * h + h) + 2 * h; break;
    case 'lora': trainable = L * ((m.r as number | undefined) ?? 8) * (h + 3 * h); break;
    case 'ia3': trainable = L * (2 * h + 4 * h); break;
    case 'prompt_tuning': trainable = n * h; break;
    case 'p_tuning': { const e = (m.encoder_hidden_size as number | undefined) ?? 128; trainable = n * h + h * e + e + e * e + e + e * h + h; break; }
    case 'prefix_tuning': trainable = n * L * 2 * h; break;
    default: trainable = 0;
  }
  const total = m.name === 'full' || m.name === 'bitfit' ? base : base + trainable;
  return { trainable, total, percent: (trainable / total) * 100 };
}

class Emitter<T extends unknown[]> {
  private readonly ls = new Set<(...a: T) => void>();
  on(l: (...a: T) => void): Disposable { this.ls.add(l); return { dispose: () => this.ls.delete(l) }; }
  fire(...a: T): void { for (const l of [...this.ls]) l(...a); }
}

export class FakeTraining implements TrainingServiceApi {
  draftConfig: TrainingConfig | undefined;
  readonly runs = new Map<string, RunSummary>();
  readonly events = new Map<string, TrainerEvent[]>();
  readonly paramsCalls: TrainingConfig[] = [];
  readonly started: TrainingConfig[] = [];
  readonly deleted: string[] = [];
  private active: RunInfo | undefined;
  private seq = 0;
  private readonly ev = new Emitter<[string, TrainerEvent]>();
  private readonly changed = new Emitter<[]>();
  private readonly ended = new Emitter<[RunEnd]>();
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bloom-dash-'));

  onEvent(l: EventListener): Disposable { return this.ev.on(l); }
  onRunsChanged(l: () => void): Disposable { return this.changed.on(l); }
  onRunEnded(l: (end: RunEnd) => void): Disposable { return this.ended.on(l); }
  current(): RunInfo | undefined { return this.active; }

  async start(config: TrainingConfig): Promise<RunInfo> {
    if (this.active) throw Object.assign(new Error(`run ${this.active.id} is in progress`), { hint: 'Stop it first.' });
    this.started.push(config);
    const id = `${config.run_name ?? config.method.name}-${++this.seq}`;
    const dir = path.join(this.dir, id);
    const now = Date.now();
    this.runs.set(id, { id, dir, name: config.run_name ?? id, method: config.method.name, status: 'running', startedAt: now, step: 0, totalSteps: 40, trainablePercent: tinyParams(config).percent, owned: true, resumable: false });
    this.events.set(id, []);
    this.active = { id, dir, config, pid: 1, state: 'running', owned: true, resumed: false, startedAt: now, step: 0, totalSteps: 40 };
    const p = tinyParams(config);
    this.emit(id, { v: 1, type: 'started', time: now / 1000, config, device: 'cpu', world_size: 1, trainable_params: p.trainable, total_params: p.total, total_steps: 40, train_rows: 360, eval_rows: 40 });
    this.changed.fire();
    return this.active;
  }

  /** Appends an event to the run (as events.jsonl would) and broadcasts it. */
  emit(runId: string, event: TrainerEvent): void {
    this.events.get(runId)!.push(event);
    const s = this.runs.get(runId)!;
    if (event.type === 'progress') { s.step = event.step; s.lastLoss = event.loss; s.tokensPerS = event.tokens_per_s; }
    if (event.type === 'eval') s.finalEvalLoss = event.eval_loss;
    this.ev.fire(runId, event);
  }

  /** Ends the active run the way the trainer does: done event, adapter + export folders, run-ended. */
  finish(status: 'completed' | 'stopped' = 'completed'): RunSummary {
    const info = this.active!;
    const s = this.runs.get(info.id)!;
    const adapterDir = path.join(info.dir, 'adapter');
    const exportDir = status === 'completed' ? path.join(info.dir, 'export') : undefined;
    this.emit(info.id, { v: 1, type: 'done', time: Date.now() / 1000, status, step: s.step, adapter_dir: adapterDir, export_dir: exportDir ?? null, metrics: { train_loss: s.lastLoss ?? null, eval_loss: s.finalEvalLoss ?? null, runtime_s: 12.5, tokens_per_s: s.tokensPerS ?? null } });
    Object.assign(s, { status, endedAt: Date.now(), adapterDir, exportDir, finalTrainLoss: s.lastLoss, resumable: status !== 'completed' });
    this.active = undefined;
    this.ended.fire({ runId: info.id, dir: info.dir, outcome: status, exitCode: 0, signal: null, stderrTail: '', message: status, killedAfterDeadline: false, adapterDir, exportDir });
    this.changed.fire();
    return s;
  }

  async stop(): Promise<void> { if (this.active) this.finish('stopped'); }
  async resume(runId: string): Promise<RunInfo> { throw new Error(`resume ${runId}: not used by these tests`); }
  async listRuns(): Promise<RunSummary[]> { return [...this.runs.values()].sort((a, b) => (b.startedAt ?? 0) - (a.startedAt ?? 0)); }
  async readEvents(runId: string): Promise<TrainerEvent[]> { return [...(this.events.get(runId) ?? [])]; }
  async deleteRun(runId: string): Promise<void> { this.deleted.push(runId); this.runs.delete(runId); this.events.delete(runId); this.changed.fire(); }
  async exportRun(runId: string): Promise<string> { const s = this.runs.get(runId)!; s.exportDir = path.join(s.dir, 'export'); this.changed.fire(); return s.exportDir; }
  async params(config: TrainingConfig): Promise<ParamsResult> { this.paramsCalls.push(config); return tinyParams(config); }
  async preview(config: TrainingConfig, rows = 3): Promise<PreviewRow[]> {
    // the template applied to the real file's first rows; "tokens" approximated by words and symbols
    const lines = fs.readFileSync(config.data.train_file!, 'utf8').split('\n').filter(Boolean).slice(0, rows);
    const t = { prompt: 'Human: {instruction}\n{input}', response_prefix: '\n\nAssistant: ', ...config.template };
    const count = (s: string) => (s.match(/\w+|[^\s\w]/g) ?? []).length;
    return lines.map(l => {
      const r = JSON.parse(l) as Record<string, string>;
      const prompt = t.prompt.replace('{instruction}', r.instruction).replace('{input}', r.input).trim() + t.response_prefix;
      const text = prompt + r.output;
      return { text, prompt, tokens: count(text) + 1, prompt_tokens: count(prompt) };
    });
  }
  async check(): Promise<CheckReport> { return { python: '3', torch: '2.13.0', problems: [] }; }
}

export class FakeHost implements DashboardHost {
  readonly store = new Map<string, unknown>();
  readonly revealed: string[] = [];
  readonly used: string[] = [];
  confirmAnswers: boolean[] = [];
  confirmations: string[] = [];
  constructor(readonly files: { file?: string; folder?: string } = {}) {}
  async pickFolder(): Promise<string | undefined> { return this.files.folder; }
  async pickFile(): Promise<string | undefined> { return this.files.file; }
  async confirm(message: string): Promise<boolean> { this.confirmations.push(message); return this.confirmAnswers.shift() ?? false; }
  async revealInOS(p: string): Promise<void> { this.revealed.push(p); }
  async useAdapter(runId: string): Promise<void> { this.used.push(runId); }
  completionsRunId(): string | null { return this.used.at(-1) ?? null; }
  isTrusted(): boolean { return true; }
  state = {
    get: <T>(key: string): T | undefined => this.store.get(key) as T | undefined,
    update: async (key: string, value: unknown): Promise<void> => { this.store.set(key, value); },
  };
}

/** Streams a fixed reply word by word (the ONNX engine is the edge here). */
export const echoEngine: PlaygroundEngine = {
  async generate(_dir, prompt, o) {
    const words = `def reverse(s):\n    return s[::-1]  # for: ${prompt.slice(0, 20)}`.split(/(?<= )/);
    let text = '';
    for (const w of words.slice(0, o.maxTokens)) {
      if (o.signal?.aborted) return { text, finishReason: 'aborted' };
      await new Promise(r => setTimeout(r, 5));
      text += w;
      o.onToken?.(w);
    }
    return { text, finishReason: 'length' };
  },
};

// ---------------------------------------------------------------------------------------------------------
// a dashboard page wired to a controller

export interface Dashboard {
  page: Page;
  controller: DashboardController;
  training: FakeTraining;
  host: FakeHost;
  /** CSP violations and uncaught page errors seen so far */
  problems: string[];
  setTheme(name: ThemeName): Promise<void>;
  screenshot(name: string): Promise<string>;
  close(): Promise<void>;
}

/** Runs in the page before the bundle: the fake acquireVsCodeApi, the theme switcher, a CSP violation log. */
const INIT_SCRIPT = String.raw`function (kind, vars) {
  var w = window, acquired = false, KEY = 'vscode-state';
  w.acquireVsCodeApi = function () {
    if (acquired) throw new Error('An instance of the VS Code API has already been acquired');
    acquired = true;
    return Object.freeze({
      // VS Code serializes messages: so do we
      postMessage: function (msg) { w.__toHost(JSON.parse(JSON.stringify(msg))); },
      getState: function () { var s = sessionStorage.getItem(KEY); return s ? JSON.parse(s) : undefined; },
      setState: function (s) { sessionStorage.setItem(KEY, JSON.stringify(s)); return s; },
    });
  };
  w.__applyTheme = function (k, v) {
    var root = document.documentElement;
    root.removeAttribute('style');
    for (var name in v) root.style.setProperty(name, v[name]);
    document.body.setAttribute('data-vscode-theme-kind', k);
    document.body.className = k;
  };
  // tests post raw messages as a compromised webview could, and wait for the host's response
  w.__rawRequest = function (m) {
    return new Promise(function (resolve) {
      window.addEventListener('message', function onMessage(e) {
        if (e.data && e.data.kind === 'response' && e.data.id === m.id) { window.removeEventListener('message', onMessage); resolve(e.data); }
      });
      w.__toHost(m);
    });
  };
  w.__csp = [];
  document.addEventListener('securitypolicyviolation', function (e) { w.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile + ':' + e.lineNumber); });
  function apply() { if (!document.body) return false; w.__applyTheme(kind, vars); return true; }
  if (!apply()) {
    var mo = new MutationObserver(function () { if (apply()) mo.disconnect(); });
    mo.observe(document, { childList: true, subtree: true });
  }
}`;

const silentLog = { trace() {}, info() {}, warn() {}, error() {} };

export async function openDashboard(browser: Browser, url: string, o: { theme?: ThemeName; training?: FakeTraining; host?: FakeHost; engine?: PlaygroundEngine } = {}): Promise<Dashboard> {
  const training = o.training ?? new FakeTraining();
  const host = o.host ?? new FakeHost({ file: path.join(ROOT, 'examples', 'code-tasks', 'train.jsonl') });
  const warnings: string[] = [];
  const controller = new DashboardController(training, host, { ...silentLog, warn: m => warnings.push(m) }, o.engine ?? echoEngine);
  const context = await browser.newContext({ viewport: { width: 420, height: 1100 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', e => problems.push(`pageerror: ${e.message}`));
  page.on('console', m => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  await page.exposeBinding('__toHost', (_src, msg: unknown) => { void controller.handle(msg); });
  const theme = THEMES[o.theme ?? 'light'];
  // a string, not a function: tsx's keepNames helpers (__name) do not exist in the page
  await page.addInitScript({ content: `(${INIT_SCRIPT})(${JSON.stringify(theme.kind)}, ${JSON.stringify(theme.vars)});` });

  // host -> webview, in order
  let chain = Promise.resolve();
  const attached = controller.attach((msg: HostToWebview) => {
    chain = chain.then(() => page.evaluate(m => window.postMessage(m, '*'), msg as unknown)).catch(() => undefined);
  });
  await page.goto(url);
  await page.waitForFunction(() => document.body.dataset.ready === 'true');

  return {
    page, controller, training, host, problems,
    async setTheme(name) {
      const t = THEMES[name];
      await page.evaluate(`window.__applyTheme(${JSON.stringify(t.kind)}, ${JSON.stringify(t.vars)})`);
      await page.waitForTimeout(50);
    },
    async screenshot(name) {
      fs.mkdirSync(SCREENSHOTS, { recursive: true });
      const file = path.join(SCREENSHOTS, `dashboard-${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      return file;
    },
    async close() {
      const csp = await page.evaluate(() => (window as unknown as { __csp: string[] }).__csp).catch(() => [] as string[]);
      problems.push(...csp.map(c => `csp: ${c}`));
      attached.dispose();
      controller.dispose();
      await context.close();
      fs.rmSync(training.dir, { recursive: true, force: true });
      if (warnings.length) problems.push(...warnings.filter(w => !w.includes('rejected a webview message')).map(w => `host: ${w}`));
    },
  };
}

/** A progress event as the trainer writes it. */
export function progress(step: number, total = 40, t0 = Date.now() / 1000): TrainerEvent {
  return {
    v: 1, type: 'progress', time: t0 + step, step, total_steps: total, epoch: step / 20, loss: 3.2 * Math.exp(-step / 15) + 0.4,
    lr: 2e-4 * Math.min(1, step / 4) * (1 - step / (total + 1)), grad_norm: 1.1, tokens_per_s: 1850 + step, samples_per_s: 24,
    gpu_mem_bytes: null, cpu_mem_bytes: 512 * 1024 * 1024, eta_s: (total - step) * 0.5, elapsed_s: step * 0.5,
  };
}

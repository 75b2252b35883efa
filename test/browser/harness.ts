// Browser-test harness for the dashboard webview: serves the exact HTML the extension serves (same CSP, fresh
// nonce, dist/webview.js + dist/webview.css), fakes only acquireVsCodeApi (state in sessionStorage, so it
// survives a reload like VS Code's) and bridges the page to the real DashboardController, which speaks the
// real message protocol. The training service and the host's native dialogs are the stubbed edges.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { HostToWebview } from '../../src/protocol/messages';
import { DashboardController } from '../../src/dashboard/controller';
import { makeNonce, renderDashboardHtml } from '../../src/dashboard/html';
import type { PlaygroundEngine } from '../../src/dashboard/ports';
import { echoEngine, FakeHost, FakeTraining, ROOT } from './fakes';

export { echoEngine, FakeHost, FakeTraining, progress, ROOT, tinyParams } from './fakes';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const SCREENSHOTS = path.join(ROOT, 'test-results', 'screenshots');
/** Layout screenshots (every tab at sidebar and editor widths). */
export const BROWSER_SHOTS = path.join(ROOT, 'test-results', 'browser');

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

export type DashboardOptions = { theme?: ThemeName; training?: FakeTraining; host?: FakeHost; engine?: PlaygroundEngine; width?: number; height?: number; answerDeadlineMs?: number };

/**
 * One chromium and one page server for a test file: started before its tests, closed after them. Returns the
 * function that opens a dashboard page in them.
 */
export function useDashboards(): (o?: DashboardOptions) => Promise<Dashboard> {
  let browser: Browser | undefined;
  let server: Served | undefined;
  before(async () => {
    ensureBundle();
    [browser, server] = await Promise.all([launch(), serve()]);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });
  return o => openDashboard(browser!, server!.url, o);
}

export async function openDashboard(browser: Browser, url: string, o: DashboardOptions = {}): Promise<Dashboard> {
  const training = o.training ?? new FakeTraining();
  const host = o.host ?? new FakeHost({ file: path.join(ROOT, 'examples', 'code-tasks', 'train.jsonl') });
  const warnings: string[] = [];
  const controller = new DashboardController(training, host, { ...silentLog, warn: m => warnings.push(m) }, o.engine ?? echoEngine, o.answerDeadlineMs);
  const context = await browser.newContext({ viewport: { width: o.width ?? 420, height: o.height ?? 1100 }, deviceScaleFactor: 1 });
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


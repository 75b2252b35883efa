// Runs the end-to-end scenarios against a running code-server with playwright-core + Debian's chromium.
// Started by run.sh (which also starts/stops code-server). env: CS_URL, WORKSPACE, RESULTS, REPO, STATE;
// CHROMIUM_PATH (default /usr/bin/chromium); E2E_HEADED=1. args: scenario name filters (substring match).
// Scenarios share one browser page in order (a later one may use an earlier one's run); each has a deadline,
// screenshots of its steps, and on failure a fail-<name>.png; results.json sums them up.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { Workbench } from './vscode.mjs';

const HERE = path.dirname(new URL(import.meta.url).pathname);
const CS_URL = process.env.CS_URL ?? 'http://127.0.0.1:8765';
const WORKSPACE = process.env.WORKSPACE;
const RESULTS = process.env.RESULTS ?? path.resolve('test-results/e2e');
const filters = process.argv.slice(2);
if (!WORKSPACE) throw new Error('WORKSPACE is not set (run test/e2e/run.sh)');
fs.mkdirSync(RESULTS, { recursive: true });

const scenarioFiles = fs.readdirSync(path.join(HERE, 'scenarios')).filter(f => /^\d+-.*\.mjs$/.test(f)).sort();
const scenarios = [];
for (const f of scenarioFiles) {
  const mod = (await import(path.join(HERE, 'scenarios', f))).default;
  const name = f.replace(/\.mjs$/, '');
  if (filters.length === 0 || filters.some(x => name.includes(x))) scenarios.push({ name, ...mod });
}
if (!scenarios.length) { console.error(`no scenario matches ${filters.join(' ')}`); process.exit(1); }

const chromeXdg = fs.mkdtempSync(path.join(os.tmpdir(), 'bloom-peft-e2e-chromium-'));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  headless: process.env.E2E_HEADED !== '1',
  // chromium's crashpad/cache dirs stay out of ~/.config
  env: { ...process.env, XDG_CONFIG_HOME: chromeXdg, XDG_CACHE_HOME: chromeXdg },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
// the browser may only talk to loopback: a request elsewhere is blocked and logged
await context.route(u => /^(https?|wss?):/.test(u.href) && !/^(https?|wss?):\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?\//.test(u.href),
  r => { console.log('  blocked non-loopback request', r.request().url()); return r.abort(); });
const page = await context.newPage();
const consoleLog = fs.createWriteStream(path.join(RESULTS, 'browser-console.log'));
page.on('console', m => consoleLog.write(`[${m.type()}] ${m.text()}\n`));
page.on('pageerror', e => consoleLog.write(`[pageerror] ${e.message}\n`));

const wb = new Workbench(page, { shotsDir: RESULTS, workspace: WORKSPACE, url: CS_URL });
const ctx = {
  wb, page, workspace: WORKSPACE, repo: process.env.REPO ?? path.resolve(HERE, '../..'), state: process.env.STATE,
  runsDir: path.join(WORKSPACE, '.bloom-peft', 'runs'),
  shared: {},
  log: (...a) => console.log('  ', ...a),
};

const results = [];
const t0 = Date.now();
await wb.open();
console.log(`workbench loaded in ${Date.now() - t0} ms`);
for (const s of scenarios) {
  wb.prefix = `${s.name}-`;
  const start = Date.now();
  let timer;
  try {
    await Promise.race([
      s.run(ctx),
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`scenario deadline of ${s.timeoutMs / 1000} s passed`)), s.timeoutMs ?? 180_000); }),
    ]);
    results.push({ name: s.name, title: s.title, ok: true, ms: Date.now() - start });
    console.log(`PASS ${s.name}: ${s.title} (${((Date.now() - start) / 1000).toFixed(1)} s)`);
  } catch (e) {
    results.push({ name: s.name, title: s.title, ok: false, ms: Date.now() - start, error: String(e?.stack ?? e) });
    console.log(`FAIL ${s.name}: ${s.title} (${((Date.now() - start) / 1000).toFixed(1)} s)\n  ${String(e?.message ?? e).split('\n').slice(0, 6).join('\n  ')}`);
    await wb.shot('fail').catch(() => {});
    // a clean page for the next scenario
    await wb.open().catch(err => console.log('  reload after failure failed:', err.message));
  } finally {
    clearTimeout(timer);
  }
}

await browser.close();
fs.rmSync(chromeXdg, { recursive: true, force: true });
fs.writeFileSync(path.join(RESULTS, 'results.json'), JSON.stringify(results, null, 2));
const failed = results.filter(r => !r.ok);
console.log(`${results.length - failed.length} passed, ${failed.length} failed; screenshots in ${path.relative(process.cwd(), RESULTS) || RESULTS}`);
process.exit(failed.length ? 1 : 0);

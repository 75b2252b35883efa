// The dashboard webview in headless Chromium (Debian's /usr/bin/chromium via playwright-core), served with
// its real HTML and CSP and talking the real message protocol to the real DashboardController. Asserts
// validation next to fields, parameter counts that follow the method, a loss chart that grows with progress
// events, state that survives a reload, and the history / adapters / playground flows; saves screenshots
// (light, dark, high contrast) to test-results/screenshots/.
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { FakeTraining, progress, tinyParams, type Dashboard, useDashboards } from './harness';

const openDashboard = useDashboards();

const text = (page: Page, sel: string) => page.locator(sel).first().innerText();
const points = (page: Page, id: string) => page.locator(`#${id}`).getAttribute('data-points').then(Number);
async function tab(page: Page, id: string): Promise<void> {
  await page.click(`#tab-${id}`);
  await page.locator(`#view-${id}`).waitFor({ state: 'visible' });
}
/** Types into a toolkit text field (its inner <input> lives in the shadow root). */
async function type(page: Page, id: string, value: string): Promise<void> {
  await page.locator(`#${id} input, #${id} textarea`).first().fill(value);
}
async function choose(page: Page, dropdownId: string, value: string): Promise<void> {
  await page.click(`#${dropdownId}`);
  await page.click(`#${dropdownId} vscode-option[value="${value}"]`);
}
async function noProblems(d: Dashboard): Promise<void> {
  await d.close();
  assert.deepEqual(d.problems, [], 'no CSP violations, page errors or host warnings');
}

describe('dashboard webview', () => {
  test('the form validates as typed, with the message next to the field', async () => {
    const d = await openDashboard();
    const { page } = d;
    const err = (id: string) => page.locator(`#${id}-error`);

    await type(page, 'f-training-learning_rate', 'abc');
    await err('f-training-learning_rate').waitFor({ state: 'visible' });
    assert.match(await err('f-training-learning_rate').innerText(), /must be number/);
    assert.equal(await page.locator('#f-training-learning_rate').getAttribute('aria-invalid'), 'true');
    await type(page, 'f-training-learning_rate', '2e-4');
    await err('f-training-learning_rate').waitFor({ state: 'hidden' });

    await type(page, 'f-training-batch_size', '0');
    await err('f-training-batch_size').waitFor({ state: 'visible' });
    assert.match(await err('f-training-batch_size').innerText(), /must be >= 1/);
    await type(page, 'f-training-batch_size', '2.5');
    assert.match(await err('f-training-batch_size').innerText(), /must be integer/);
    await type(page, 'f-training-batch_size', '4');
    await err('f-training-batch_size').waitFor({ state: 'hidden' });

    await type(page, 'f-run_name', 'my run!');
    assert.match(await err('f-run_name').innerText(), /must match pattern/);
    await type(page, 'f-run_name', 'lora-demo');
    await err('f-run_name').waitFor({ state: 'hidden' });

    // a method option: prompt tuning from text needs its text
    await choose(page, 'f-method', 'prompt_tuning');
    await choose(page, 'f-method-init', 'text');
    await page.locator('#f-method-init_text').waitFor();
    // Start without a dataset: the missing file is reported at its picker, and nothing reaches the trainer
    await page.click('#start-training');
    await err('f-data-train_file').waitFor({ state: 'visible' });
    assert.match(await err('f-data-train_file').innerText(), /Choose a training file/);
    assert.equal(await err('f-method-init_text').innerText(), 'Required.');
    assert.equal(d.training.started.length, 0);
    await type(page, 'f-training-learning_rate', '-1');
    await d.screenshot('configure-light');
    await noProblems(d);
  });

  test('trainable-parameter counts follow the method and its options', async () => {
    const d = await openDashboard();
    const { page } = d;
    const trainable = async () => Number(await page.locator('#params-trainable').getAttribute('data-value'));
    const expect = (method: Record<string, unknown>) => tinyParams({ model: { name_or_path: 'embedded' }, method, data: { format: 'instruction', train_file: 'x' } } as never);

    await page.waitForFunction(() => document.querySelector('#params-trainable') !== null);
    assert.equal(await trainable(), expect({ name: 'lora' }).trainable);
    assert.match(await text(page, '#params-count'), /Trainable parameters: [\d,]+ of [\d.]+K \(\d+\.\d+%\)/);

    // keyboard: the method dropdown is reachable and changes with the arrow keys (lora -> ia3)
    await page.focus('#f-method');
    await page.keyboard.press('ArrowDown');
    await page.waitForFunction(n => Number(document.querySelector('#params-trainable')?.getAttribute('data-value')) === n, expect({ name: 'ia3' }).trainable);
    assert.equal(await page.locator('#f-method').evaluate(el => (el as HTMLSelectElement).value), 'ia3');
    assert.match(await text(page, '#method-explain'), /IA3: learned scaling vectors/);

    await choose(page, 'f-method', 'prefix_tuning');
    await page.waitForFunction(n => Number(document.querySelector('#params-trainable')?.getAttribute('data-value')) === n, expect({ name: 'prefix_tuning' }).trainable);
    await type(page, 'f-method-num_virtual_tokens', '8');
    await page.waitForFunction(n => Number(document.querySelector('#params-trainable')?.getAttribute('data-value')) === n, expect({ name: 'prefix_tuning', num_virtual_tokens: 8 }).trainable);

    await choose(page, 'f-method', 'full');
    await page.waitForFunction(() => document.querySelector('#params-percent')?.textContent === '100.0%');
    // an invalid option value stops the counting (and says why) instead of asking the trainer
    await choose(page, 'f-method', 'lora');
    await page.waitForFunction(n => Number(document.querySelector('#params-trainable')?.getAttribute('data-value')) === n, expect({ name: 'lora' }).trainable);
    const calls = d.training.paramsCalls.length;
    await type(page, 'f-method-r', '0');
    await page.waitForFunction(() => /fix the model\/method options/.test(document.querySelector('#params-count')?.textContent ?? ''));
    assert.equal(d.training.paramsCalls.length, calls);
    await type(page, 'f-method-r', '16');
    await page.waitForFunction(n => Number(document.querySelector('#params-trainable')?.getAttribute('data-value')) === n, expect({ name: 'lora', r: 16 }).trainable);
    assert.deepEqual(d.training.paramsCalls.at(-1)?.method, { name: 'lora', r: 16 });
    await noProblems(d);
  });

  test('a count that failed (no torch in the Python used) is asked again when the Python setting changes', async () => {
    const training = new FakeTraining();
    training.paramsFailure = "ModuleNotFoundError: No module named 'torch'";
    const d = await openDashboard({ training });
    const { page } = d;
    // an ImportError is the environment's problem: the setup banner says so (the count waits for it)
    await page.waitForFunction(() => /ModuleNotFoundError: No module named 'torch'/.test(document.querySelector('#env-banner')?.textContent ?? ''));
    assert.equal(await text(page, '#env-setup'), 'Set up (about 2 GB)');
    const calls = training.paramsCalls.length;
    training.paramsFailure = undefined;
    d.controller.environmentChanged(); // what bloomPeft.pythonPath changing (or arriving late) does
    await page.waitForFunction(() => Number(document.querySelector('#params-trainable')?.getAttribute('data-value')) > 0);
    assert.equal(training.paramsCalls.length, calls + 1);
    await noProblems(d);
  });

  test('a run: preview, start, the chart grows with progress, state survives a reload', async () => {
    const d = await openDashboard();
    const { page, training } = d;

    await page.click('#f-data-train_file');
    await page.waitForFunction(() => document.querySelectorAll('.preview-row').length === 3);
    assert.match(await text(page, '.preview-row figcaption'), /Row 1: \d+ tokens \(\d+ in the prompt, masked from the loss\)/);
    // the first row of examples/code-tasks/train.jsonl, rendered through the default template
    const first = JSON.parse(fs.readFileSync(path.resolve('examples/code-tasks/train.jsonl'), 'utf8').split('\n')[0]!);
    assert.equal(await text(page, '.preview-row pre'), `Human: ${first.instruction}\n${first.input}\n\nAssistant: ${first.output}`);
    await type(page, 'f-run_name', 'chart-demo');
    await type(page, 'f-training-eval_every', '10');
    await page.click('#start-training');
    await page.locator('#view-run').waitFor({ state: 'visible' });
    assert.equal(training.started.length, 1);
    assert.equal(training.started[0].run_name, 'chart-demo');
    assert.equal(training.started[0].data.train_file, training.started[0].data.train_file && d.host.files.file);
    const runId = training.current()!.id;
    await page.waitForFunction(() => document.querySelector('#run-title')?.textContent === 'chart-demo');

    const t0 = Date.now() / 1000;
    for (let s = 1; s <= 5; s++) training.emit(runId, progress(s, 40, t0));
    await page.waitForFunction(() => document.querySelector('#chart-loss')?.getAttribute('data-points') === '5');
    for (let s = 6; s <= 10; s++) training.emit(runId, progress(s, 40, t0));
    training.emit(runId, { v: 1, type: 'eval', time: t0 + 10, step: 10, eval_loss: 1.9, perplexity: 6.7 });
    training.emit(runId, { v: 1, type: 'log', time: t0 + 10, level: 'info', message: 'saved checkpoint step-10' });
    for (let s = 11; s <= 20; s++) training.emit(runId, progress(s, 40, t0));
    await page.waitForFunction(() => document.querySelector('#chart-loss')?.getAttribute('data-points') === '20');
    assert.equal(await points(page, 'chart-lr'), 20);
    assert.equal(await page.locator('#run-progress').evaluate(el => (el as HTMLProgressElement).value), 20);
    assert.match(await text(page, '#run-progress-text'), /Step 20 \/ 40 · 50% · epoch 1\.00 · ETA 10s/);
    assert.equal(await text(page, '#stat-eval'), '1.9000');
    assert.match(await text(page, '#stat-tps'), /1,870 tok\/s/);
    assert.match(await text(page, '#stat-mem'), /512 MiB/);
    assert.match(await text(page, '#run-logs'), /saved checkpoint step-10/);
    assert.match(await page.locator('#chart-loss').getAttribute('aria-label') ?? '', /Loss chart: 20 points; last train [\d.]+, last eval 1\.900/);
    assert.equal(await page.locator('#run-stop').evaluate(el => (el as HTMLButtonElement).disabled), false);
    await d.screenshot('run-light');

    // reload the window: the form, the open tab and the run (re-attached from its events) come back
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.ready === 'true');
    await page.locator('#view-run').waitFor({ state: 'visible' });
    await page.waitForFunction(() => document.querySelector('#chart-loss')?.getAttribute('data-points') === '20');
    assert.match(await text(page, '#run-progress-text'), /Step 20 \/ 40/);
    assert.equal(await text(page, '#stat-eval'), '1.9000');
    // live events keep flowing into the re-attached view
    for (let s = 21; s <= 30; s++) training.emit(runId, progress(s, 40, t0));
    await page.waitForFunction(() => document.querySelector('#chart-loss')?.getAttribute('data-points') === '30');
    await tab(page, 'configure');
    assert.equal(await page.locator('#f-run_name').evaluate(el => (el as HTMLInputElement).value), '', 'a started run takes its name along');
    assert.equal(await page.locator('#f-training-eval_every').evaluate(el => (el as HTMLInputElement).value), '10');
    assert.match(await text(page, '#f-data-train_file-path'), /examples\/code-tasks\/train\.jsonl$/);

    // Stop (graceful: the trainer checkpoints) then Resume: the curve continues from the checkpoint
    await tab(page, 'run');
    await page.click('#run-stop');
    await page.waitForFunction(() => document.querySelector('#view-run section')?.getAttribute('data-status') === 'stopped');
    assert.match(await text(page, '#run-final h3'), /Stopped/);
    await page.waitForFunction(() => !(document.querySelector('#run-resume') as HTMLButtonElement).disabled);
    training.runs.get(runId)!.step = 28; // the newest checkpoint
    await page.click('#run-resume');
    await page.waitForFunction(() => document.querySelector('#view-run section')?.getAttribute('data-status') === 'running');
    assert.equal(await points(page, 'chart-loss'), 28); // steps after the checkpoint are replayed, not duplicated
    for (let s = 29; s <= 30; s++) training.emit(runId, progress(s, 40, t0));
    await page.waitForFunction(() => document.querySelector('#chart-loss')?.getAttribute('data-points') === '30');
    assert.match(await text(page, '#run-logs'), /resumed from step 28/);

    // finish: final metrics and where the adapter and export are
    training.emit(runId, { v: 1, type: 'eval', time: t0 + 30, step: 30, eval_loss: 1.2, perplexity: 3.3 });
    training.finish('completed');
    await page.locator('#run-final').waitFor({ state: 'visible' });
    assert.equal(await text(page, '#final-eval'), '1.2000');
    assert.match(await text(page, '#final-adapter-dir'), /chart-demo-1\/adapter$/);
    assert.match(await text(page, '#final-export-dir'), /chart-demo-1\/export$/);
    assert.equal(await page.locator('#run-stop').evaluate(el => (el as HTMLButtonElement).disabled), true);
    await d.setTheme('dark');
    await d.screenshot('run-dark');
    await d.setTheme('high-contrast');
    await d.screenshot('run-high-contrast');
    await tab(page, 'configure');
    await d.setTheme('dark');
    await d.screenshot('configure-dark');
    await noProblems(d);
  });

  test('history compares curves; adapters and playground act through the host', async () => {
    const d = await openDashboard({ theme: 'dark' });
    const { page, training, host } = d;
    // two finished runs with curves
    const cfg = (name: string, method: string) => ({ run_name: name, model: { name_or_path: 'embedded' }, method: { name: method }, data: { format: 'instruction', train_file: host.files.file! } }) as never;
    for (const [name, method, scale] of [['lora-a', 'lora', 1], ['ia3-b', 'ia3', 1.3]] as const) {
      const run = await training.start(cfg(name, method));
      for (let s = 1; s <= 12; s++) training.emit(run.id, { ...progress(s, 12), loss: scale * (2 - s / 10) } as never);
      training.emit(run.id, { v: 1, type: 'eval', time: 1, step: 12, eval_loss: scale });
      training.finish('completed');
    }
    await tab(page, 'history');
    await page.waitForFunction(() => document.querySelectorAll('#runs-grid vscode-data-grid-row[data-row]').length === 2);
    assert.equal(await page.locator('#compare-selected').evaluate(el => (el as HTMLButtonElement).disabled), true);
    await page.click('#sel-lora-a-1');
    await page.click('#sel-ia3-b-2');
    await page.waitForFunction(() => !(document.querySelector('#compare-selected') as HTMLButtonElement).disabled);
    await page.click('#compare-selected');
    await page.waitForFunction(() => document.querySelector('#chart-compare')?.getAttribute('data-points') === '12');
    assert.equal(await page.locator('#chart-compare').getAttribute('data-runs'), '2');
    await d.screenshot('history-dark');

    // adapters: use, open folder, delete with the host's confirmation (declined, then accepted)
    await tab(page, 'adapters');
    const card = page.locator('#adapters-list li[data-run="lora-a-1"]');
    await card.locator('vscode-button', { hasText: 'Use for completions' }).click();
    await page.waitForFunction(() => /serving completions/.test(document.querySelector('#adapters-list li[data-run="lora-a-1"]')?.textContent ?? ''));
    assert.deepEqual(host.used, ['lora-a-1']);
    await card.locator('vscode-button', { hasText: 'Open folder' }).click();
    await page.waitForFunction(() => true);
    await waitFor(() => host.revealed.length === 1);
    assert.match(host.revealed[0], /lora-a-1\/adapter$/);
    host.confirmAnswers = [false, true];
    const other = page.locator('#adapters-list li[data-run="ia3-b-2"]');
    await other.locator('vscode-button', { hasText: 'Delete' }).click();
    await waitFor(() => host.confirmations.length === 1);
    assert.deepEqual(training.deleted, []);
    await other.locator('vscode-button', { hasText: 'Delete' }).click();
    await page.waitForFunction(() => document.querySelector('#adapters-list li[data-run="ia3-b-2"]') === null);
    assert.deepEqual(training.deleted, ['ia3-b-2']);

    // playground: streamed generation from the selected export
    await tab(page, 'playground');
    await type(page, 'pg-prompt', 'reverse a string');
    await page.click('#pg-generate');
    await page.waitForFunction(() => document.querySelector('#pg-status')?.textContent === 'Done.');
    assert.match(await text(page, '#pg-output'), /^def reverse\(s\):\n {4}return s\[::-1\]/);
    await d.screenshot('playground-dark');

    // compare methods: the form's data through three methods, one after another, into a results table
    await tab(page, 'configure');
    await page.click('#f-data-train_file');
    await page.waitForFunction(() => /train\.jsonl$/.test(document.querySelector('#f-data-train_file-path')?.textContent ?? ''));
    await tab(page, 'history');
    await page.click('#cmp-prompt_tuning');
    await page.click('#compare-methods');
    for (let i = 0; i < 4; i++) {
      await waitFor(() => training.started.length === 3 + i && training.current() !== undefined);
      const id = training.current()!.id;
      for (let s = 1; s <= 3; s++) training.emit(id, progress(s, 3));
      training.emit(id, { v: 1, type: 'eval', time: 1, step: 3, eval_loss: 2 - i / 10 });
      training.finish();
    }
    await page.waitForFunction(() => /Comparison done: 4 of 4 done/.test(document.querySelector('#compare-state')?.textContent ?? ''));
    assert.deepEqual(training.started.slice(2).map(c => c.method.name), ['lora', 'ia3', 'prefix_tuning', 'prompt_tuning']);
    assert.equal(await page.locator('#compare-grid vscode-data-grid-row[data-row]').count(), 4);
    assert.match(await text(page, '#compare-grid vscode-data-grid-row[data-row="prompt_tuning"]'), /completed[\s\S]*\/ 1\.700/);
    assert.equal(await page.locator('#view-history').isVisible(), true);
    await page.waitForFunction(() => document.querySelectorAll('#runs-grid vscode-data-grid-row[data-row]').length === 5);
    await d.screenshot('compare-dark');
    await noProblems(d);
  });

  test('the host rejects forged or malformed messages and paths not chosen with a picker', async () => {
    const d = await openDashboard();
    const { page, training } = d;
    // post straight through the webview API, as a compromised webview could
    const send = (msg: unknown) => page.evaluate(m => (window as unknown as { __rawRequest(m: unknown): Promise<unknown> }).__rawRequest(m), msg) as Promise<{ ok: boolean; error?: { message: string } }>;
    const base = { model: { name_or_path: 'embedded' }, method: { name: 'lora' }, data: { format: 'instruction', train_file: '/etc/passwd' } };
    let r = await send({ kind: 'request', id: 9001, method: 'start', params: { config: base } });
    assert.equal(r.ok, false);
    assert.match(r.error!.message, /train_file "\/etc\/passwd" was not chosen with the file picker/);
    r = await send({ kind: 'request', id: 9002, method: 'openFolder', params: { runId: 'x', which: 'run', path: '/etc' } });
    assert.match(r.error!.message, /unexpected parameter "path"/);
    r = await send({ kind: 'request', id: 9003, method: 'start', params: { config: { ...base, model: { name_or_path: '../../secrets' } } } });
    assert.match(r.error!.message, /neither a hub id nor a folder chosen with the picker/);
    r = await send({ kind: 'request', id: 9004, method: 'deleteRun', params: { runId: '../../home' } });
    assert.match(r.error!.message, /"runId" has an invalid format/);
    r = await send({ kind: 'request', id: 9005, method: 'evalCode', params: {} });
    assert.match(r.error!.message, /unknown request "evalCode"/);
    assert.equal(training.started.length, 0);
    await noProblems(d);
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise(r => setTimeout(r, 20));
  }
}

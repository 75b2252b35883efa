// The dashboard as a first-time user meets it, and the smaller things a user trips over: a Python without the
// trainer's packages (a banner with the setup before any form is filled, counts once it is done), an ImportError
// from the trainer (the environment, not "a bug"), a count that never answers, a broken dataset (the problem at
// the file field with a link to its line, Start refused), Start during a run, run names, the column mapping
// from the file's fields, and chart legends with real values.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { BROWSER_SHOTS, FakeHost, FakeTraining, progress, ROOT, type Dashboard, useDashboards } from './harness';
import path from 'node:path';

const openDashboard = useDashboards();

const TRAIN_FILE = path.join(ROOT, 'examples', 'code-tasks', 'train.jsonl');
const text = (page: Page, sel: string) => page.locator(sel).first().innerText();
const disabled = (page: Page, sel: string) => page.locator(sel).evaluate(el => (el as HTMLButtonElement).disabled);
async function type(page: Page, id: string, value: string): Promise<void> {
  await page.locator(`#${id} input, #${id} textarea`).first().fill(value);
}
async function closeClean(d: Dashboard): Promise<void> {
  await d.close();
  assert.deepEqual(d.problems, [], 'no CSP violations, page errors or host warnings');
}

describe('dashboard: first run and small things', () => {
  test('a Python without the trainer: one banner with the setup before the form; counts once it is set up', async () => {
    const host = new FakeHost({ file: TRAIN_FILE });
    host.environmentReady = false;
    const d = await openDashboard({ host, width: 300, height: 700 });
    const { page, training } = d;
    await page.locator('#env-banner').waitFor({ state: 'visible' });
    await page.screenshot({ path: path.join(BROWSER_SHOTS, 'dashboard-300px-first-run.png') });
    assert.match(await text(page, '#env-banner'), /Set up training first\. Training needs PyTorch, Transformers and PEFT; the Python found \(\/usr\/bin\/python3\) does not have them\./);
    assert.equal(await text(page, '#env-setup'), 'Set up (about 2 GB)');
    await page.waitForFunction(() => /waiting for the training environment/.test(document.querySelector('#params-count')?.textContent ?? ''));
    assert.equal(training.paramsCalls.length, 0, 'nothing asks the Python that cannot answer');
    // said once, and only what a .vsix user has
    const body = await page.locator('body').innerText();
    assert.equal(body.match(/set up/gi)?.length, 2, body); // the banner's title and its button
    assert.doesNotMatch(body, /setup\.sh|npm run|bug in the trainer|Set Up Training Environment/);

    await page.click('#env-setup');
    await page.waitForFunction(() => Number(document.querySelector('#params-trainable')?.getAttribute('data-value')) > 0);
    assert.equal(host.setups, 1);
    await page.locator('#env-banner').waitFor({ state: 'hidden' });
    await closeClean(d);
  });

  test('an ImportError from the trainer is an environment problem with the setup, never "a bug in the trainer"', async () => {
    const training = new FakeTraining();
    training.paramsFailure = "ModuleNotFoundError: No module named 'jsonschema'";
    const d = await openDashboard({ training });
    const { page } = d;
    await page.locator('#env-banner').waitFor({ state: 'visible' });
    assert.match(await text(page, '#env-banner'), /cannot run the trainer: ModuleNotFoundError: No module named 'jsonschema'/);
    assert.doesNotMatch(await page.locator('body').innerText(), /bug in the trainer|Parameter count unavailable/);
    training.paramsFailure = undefined;
    await page.click('#env-setup');
    await page.waitForFunction(() => Number(document.querySelector('#params-trainable')?.getAttribute('data-value')) > 0);
    await page.locator('#env-banner').waitFor({ state: 'hidden' });
    await closeClean(d);
  });

  test('a count that never answers ends with a message and a Retry, not "Counting parameters…" forever', async () => {
    const training = new FakeTraining();
    training.paramsHang = true;
    const d = await openDashboard({ training, answerDeadlineMs: 300 });
    const { page } = d;
    await page.waitForFunction(() => /got no answer from the trainer's Python within/.test(document.querySelector('#params-count')?.textContent ?? ''));
    training.paramsHang = false;
    await page.click('#params-retry');
    await page.waitForFunction(() => Number(document.querySelector('#params-trainable')?.getAttribute('data-value')) > 0);
    await closeClean(d);
  });

  test('a broken dataset: the problem at the file field, its file:line opens the file, Start is refused', async () => {
    const training = new FakeTraining();
    training.previewFailure = {
      code: 'invalid_data', file: TRAIN_FILE, line: 3, message: `${TRAIN_FILE}:3: not valid JSON (Unterminated string starting at column 18)`,
      hint: 'Each line of a JSONL file must be one complete JSON object.',
    };
    const d = await openDashboard({ training });
    const { page, host } = d;
    await page.click('#f-data-train_file');
    await page.locator('#data-problem').waitFor({ state: 'visible' });
    assert.equal(await text(page, '#data-problem-link'), 'train.jsonl:3');
    assert.match(await text(page, '#data-problem'), /^train\.jsonl:3: not valid JSON \(Unterminated string starting at column 18\)/);
    // next to the file field: directly under its picker
    const [field, problem] = await Promise.all([page.locator('[data-field="f-data-train_file"]').boundingBox(), page.locator('#data-problem').boundingBox()]);
    assert.ok(problem!.y - (field!.y + field!.height) < 20, 'the problem sits under the file field');
    await page.locator('#data-problem').screenshot({ path: path.join(BROWSER_SHOTS, 'dashboard-data-problem.png') });
    await page.click('#data-problem-link');
    await waitFor(() => host.opened.length === 1);
    assert.deepEqual(host.opened[0], { path: TRAIN_FILE, line: 3 });
    await page.click('#start-training');
    await page.locator('#form-summary').waitFor({ state: 'visible' });
    assert.match(await text(page, '#form-summary'), /dataset has a problem/);
    assert.equal(training.started.length, 0);
    await closeClean(d);
  });

  test('Start waits while a run trains; run names do not carry over; a reused name gets a suffix', async () => {
    const d = await openDashboard();
    const { page, training } = d;
    await page.click('#f-data-train_file');
    await page.waitForFunction(() => document.querySelectorAll('.preview-row').length === 3);
    await type(page, 'f-run_name', 'demo');
    await page.click('#start-training');
    await page.locator('#view-run').waitFor({ state: 'visible' });
    const id = training.current()!.id;
    training.emit(id, progress(1, 40));
    await page.waitForFunction(() => (document.querySelector('#run-start') as HTMLButtonElement).disabled);
    assert.equal(await disabled(page, '#start-training'), true);
    assert.equal(await page.locator('#f-run_name').evaluate(el => (el as HTMLInputElement).value), '', 'the next run gets a fresh name');
    training.finish('completed');
    await page.waitForFunction(() => !(document.querySelector('#run-start') as HTMLButtonElement).disabled);
    await page.click('#tab-configure');
    await page.waitForFunction(() => !(document.querySelector('#start-training') as HTMLButtonElement).disabled);
    await type(page, 'f-run_name', 'demo');
    await page.click('#start-training');
    await waitFor(() => training.started.length === 2);
    assert.deepEqual(training.started.map(c => c.run_name), ['demo', 'demo-2']);
    await closeClean(d);
  });

  test('column mapping offers the fields found in the file; chart legends show the latest values', async () => {
    const d = await openDashboard();
    const { page, training } = d;
    await page.click('#f-data-train_file');
    await page.locator('vscode-dropdown#f-data-columns-instruction').waitFor({ state: 'attached' });
    const options = await page.locator('#f-data-columns-output vscode-option').evaluateAll(os => os.map(o => o.textContent?.trim()));
    assert.deepEqual(options, ['output (default)', 'instruction', 'input']);

    await page.click('#start-training');
    await page.locator('#view-run').waitFor({ state: 'visible' });
    const id = training.current()!.id;
    for (let s = 1; s <= 12; s++) training.emit(id, progress(s, 40));
    await page.waitForFunction(() => document.querySelector('#chart-loss')?.getAttribute('data-points') === '12');
    const legend = await text(page, '#chart-loss .u-legend');
    assert.doesNotMatch(legend, /--/);
    const last = (progress(12, 40) as { loss: number }).loss;
    assert.match(legend, new RegExp(`step:?\\s*12[\\s\\S]*train:?\\s*${String(Number(last.toPrecision(4))).replace('.', '\\.')}`));
    await closeClean(d);
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise(r => setTimeout(r, 20));
  }
}

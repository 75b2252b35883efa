// The dashboard's preset picker and effective values in headless Chromium, against the real DashboardController:
// choosing "Quick demo (embedded model)" fills the form for the current method (its shipped data count as picked,
// so the preview runs), the form says which lr and how many optimizer steps the run will use, the tutorial leaves
// its dataset to be picked, and the Adapters tab exports a Hugging Face checkpoint. Screenshot:
// test-results/screenshots/configure-preset.png.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { useDashboards } from './harness';
import presets from '../../schemas/presets.json';

const openDashboard = useDashboards();

async function choose(page: Page, dropdownId: string, value: string): Promise<void> {
  await page.click(`#${dropdownId}`);
  await page.click(`#${dropdownId} vscode-option[value="${value}"]`);
}
/** Waits until a toolkit text field (its <input> is in the shadow root, which locators pierce) holds `value`. */
async function valueIs(page: Page, id: string, value: string): Promise<void> {
  const input = page.locator(`#${id} input`);
  for (const t0 = Date.now(); Date.now() - t0 < 30_000; await page.waitForTimeout(50)) if (await input.inputValue().catch(() => '') === value) return;
  assert.equal(await input.inputValue(), value, id);
}
const effective = (page: Page) => page.locator('#effective-values').innerText();

describe('presets and effective values', () => {
  test('a preset fills the form; the form says the lr and the optimizer steps that apply', async () => {
    const d = await openDashboard();
    const { page } = d;
    // nothing typed: the method's default lr, and epochs until the dataset is read
    await page.waitForFunction(() => /lr 1e-3 \(LoRA default\)/.test(document.querySelector('#effective-values')?.textContent ?? ''));
    assert.match(await effective(page), /3 epochs/);
    assert.equal(await page.locator('#f-training-learning_rate input').getAttribute('placeholder'), '1e-3 (LoRA default)');
    await choose(page, 'f-method', 'prefix_tuning');
    await page.waitForFunction(() => /lr 0\.01 \(Prefix tuning default\)/.test(document.querySelector('#effective-values')?.textContent ?? ''));

    await choose(page, 'f-preset', 'quick-demo');
    // the preset's values for prefix tuning, its shipped data, a preview (the path counts as picked)
    const demo = presets.presets.find(p => p.id === 'quick-demo')!.methods.prefix_tuning.training;
    await valueIs(page, 'f-training-max_steps', String(demo.max_steps));
    assert.equal(await page.locator('#f-method').getAttribute('current-value') ?? await page.locator('#f-method').evaluate(e => (e as HTMLSelectElement).value), 'prefix_tuning');
    assert.equal(await page.locator('#f-method-num_virtual_tokens input').inputValue(), '20');
    assert.match(await page.locator('#f-data-train_file-path').innerText(), /code-tasks[\\/]train\.jsonl$/);
    await page.locator('#preview .preview-row').first().waitFor();
    const presetText = `lr ${demo.learning_rate} · ${demo.max_steps} optimizer steps`;
    await page.waitForFunction(text => (document.querySelector('#effective-values')?.textContent ?? '').includes(text), presetText);
    assert.equal(d.training.started.length, 0);
    await d.screenshot('configure-preset');

    // epochs: the step count follows the preview's row count as the trainer counts it
    await choose(page, 'f-length-mode', 'epochs');
    await page.waitForFunction(() => /optimizer steps \(\d+ training rows, batch 8 × accumulation 1, 3 epochs\)/.test(document.querySelector('#effective-values')?.textContent ?? ''));
    const m = /(\d+) optimizer steps \((\d+) training rows/.exec(await effective(page))!;
    assert.equal(Number(m[1]), 3 * Math.ceil(Number(m[2]) / 8));

    // the tutorial: its model and recipe, its dataset left to the user
    await choose(page, 'f-preset', 'tutorial');
    await valueIs(page, 'f-training-grad_accum', '8');
    assert.equal(await page.locator('#f-model-name_or_path input').inputValue(), 'Langboat/bloom-1b4-zh');
    assert.equal(await page.locator('#f-training-batch_size input').inputValue(), '1');
    assert.equal(await page.locator('#f-training-max_length input').inputValue(), '256');
    assert.match(await page.locator('#f-data-train_file-path').innerText(), /Nothing chosen/);
    assert.match(await page.locator('#preset-explain').innerText(), /Choose your copy of the dataset/);
    await d.close();
    assert.deepEqual(d.problems, []);
  });

  test('Adapters: export a Hugging Face checkpoint, then open its folder', async () => {
    const d = await openDashboard();
    const { page, training, host } = d;
    const run = await training.start({ run_name: 'zh-lora', model: { name_or_path: 'embedded' }, method: { name: 'lora' }, data: { format: 'instruction', train_file: host.files.file! } } as never);
    training.finish('completed');
    await page.click('#tab-adapters');
    const card = page.locator(`#adapters-list li[data-run="${run.id}"]`);
    await card.waitFor();
    await card.locator('vscode-button', { hasText: 'Export Hugging Face checkpoint' }).click();
    await card.locator('.hf-dir').waitFor();
    assert.equal(await card.locator('.hf-dir bdi').innerText(), path.join(run.dir, 'hf'));
    assert.deepEqual(training.exports, [{ runId: run.id, hf: true }]);
    fs.mkdirSync(path.join(run.dir, 'hf'), { recursive: true });
    await card.locator('vscode-button', { hasText: 'Open checkpoint folder' }).click();
    for (const t0 = Date.now(); !host.revealed.length && Date.now() - t0 < 20_000;) await new Promise(r => setTimeout(r, 20));
    assert.deepEqual(host.revealed, [path.join(run.dir, 'hf')]);
    await d.close();
    assert.deepEqual(d.problems, []);
  });
});


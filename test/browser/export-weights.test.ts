// The Adapters tab's export weights in headless Chromium, against the real DashboardController: the card offers the
// run's config, float32, int8 and the opt-in int4, and Export sends the one picked (none: the run's config).
// Screenshot: test-results/screenshots/export-weights.png.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { useDashboards } from './harness';

const openDashboard = useDashboards();

describe('export weights', () => {
  test('Adapters: export as the run\'s config, then re-export in int4', async () => {
    const d = await openDashboard();
    const { page, training, host } = d;
    const run = await training.start({ run_name: 'code-lora', model: { name_or_path: 'embedded' }, method: { name: 'lora' }, data: { format: 'instruction', train_file: host.files.file! } } as never);
    training.finish('completed');
    await page.click('#tab-adapters');
    const card = page.locator(`#adapters-list li[data-run="${run.id}"]`);
    await card.waitFor();
    const weights = `#export-weights-${run.id}`;
    const options = await page.locator(`${weights} vscode-option`).evaluateAll(os => os.map(o => (o as HTMLElement).getAttribute('value')));
    assert.deepEqual(options, ['', 'none', 'int8', 'int4']);
    const exportButton = card.locator('vscode-button[aria-label^="Export: "], vscode-button[aria-label^="Re-export: "]');
    await exportButton.click();
    for (const t0 = Date.now(); training.exports.length < 1 && Date.now() - t0 < 20_000;) await new Promise(r => setTimeout(r, 20));
    assert.deepEqual(training.exports, [{ runId: run.id, hf: false }]);
    await card.locator('vscode-button[aria-label^="Re-export: "]').waitFor();
    // the card re-renders when the run list refreshes after the export: pick until the dropdown holds int4
    const picked = () => page.locator(weights).evaluate(e => (e as HTMLElement & { value: string }).value);
    for (const t0 = Date.now(); await picked() !== 'int4' && Date.now() - t0 < 20_000;) {
      await page.click(weights);
      await page.click(`${weights} vscode-option[value="int4"]`, { timeout: 2000 }).catch(() => undefined);
    }
    assert.equal(await picked(), 'int4');
    await d.screenshot('export-weights');
    await card.locator('vscode-button[aria-label^="Re-export: "]').click();
    for (const t0 = Date.now(); training.exports.length < 2 && Date.now() - t0 < 20_000;) await new Promise(r => setTimeout(r, 20));
    assert.deepEqual(training.exports[1], { runId: run.id, hf: false, quantize: 'int4' });
    await d.close();
    assert.deepEqual(d.problems, []);
  });
});

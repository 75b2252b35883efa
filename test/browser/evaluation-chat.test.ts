// The evaluation and the chat in headless Chromium against the real DashboardController: a finished run says plainly
// that it answers none of its held-out rows (next to "Use for completions"), Evaluate again shows the new figures
// in the Run view and History; the playground keeps a multi-turn conversation and sends the earlier turns, the
// temperature and top-p to the host. Screenshots: test-results/screenshots/dashboard-run-evaluation*.png,
// dashboard-playground-chat.png.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import type { PlaygroundEngine } from '../../src/dashboard/ports';
import { progress, useDashboards } from './harness';

const openDashboard = useDashboards();

async function tab(page: Page, id: string): Promise<void> {
  await page.click(`#tab-${id}`);
  await page.locator(`#view-${id}`).waitFor({ state: 'visible' });
}
const text = (page: Page, sel: string) => page.locator(sel).first().innerText();

describe('evaluation and chat', () => {
  test('a run that answers none of its held-out rows says so next to "Use for completions"; Evaluate again updates Run and History', async () => {
    const d = await openDashboard();
    const { page, training, host } = d;
    const run = await training.start({ run_name: 'zh-prefix', model: { name_or_path: 'embedded' }, method: { name: 'prefix_tuning' }, data: { format: 'instruction', train_file: host.files.file! } } as never);
    await tab(page, 'run');
    await page.waitForFunction(() => document.querySelector('#run-title')?.textContent === 'zh-prefix'); // the dashboard follows the new run
    for (let s = 1; s <= 4; s++) training.emit(run.id, { ...progress(s, 4), loss: 3 - s / 2 } as never);
    training.finish('completed');
    await page.waitForFunction(() => /Not evaluated yet/.test(document.querySelector('#run-verdict')?.textContent ?? ''));

    training.evaluationFigures = { exact: 0, rouge_l: 0.31, base: { exact: 0, exact_match: 0, rouge_l: 0.12 } };
    await page.click('#run-evaluate');
    await page.waitForFunction(() => /answers none of its held-out rows/.test(document.querySelector('#run-verdict')?.textContent ?? ''));
    assert.equal(await page.locator('#run-verdict.warn').count(), 1);
    assert.equal(await text(page, '#eval-exact'), '0 / 4 (0%)');
    assert.match(await text(page, '#eval-base'), /0 \/ 4 · ROUGE-L 0\.12/);
    await d.screenshot('run-evaluation-none');

    training.evaluationFigures = { exact: 3, rouge_l: 0.9, base: { exact: 0, exact_match: 0, rouge_l: 0.2 } };
    await page.click('#run-evaluate');
    await page.waitForFunction(() => document.querySelector('#eval-exact')?.textContent === '3 / 4 (75%)');
    assert.match(await text(page, '#run-verdict'), /✓ 3 of 4 held-out rows answered exactly \(75%\); the base model 0 of 4/);
    assert.match(await text(page, '#eval-samples'), /父亲、武汉/);
    await d.screenshot('run-evaluation');

    await tab(page, 'history');
    await page.waitForFunction(() => /3\/4 · R 0\.90/.test(document.querySelector('#runs-grid')?.textContent ?? ''));
    await d.close();
    assert.deepEqual(d.problems, []);
  });

  test('the playground is a multi-turn chat: earlier turns, temperature and top-p go to the host', async () => {
    const calls: { prompt: string; history: unknown; temperature?: number; topP?: number; template?: boolean }[] = [];
    const engine: PlaygroundEngine = {
      async generate(_dir, prompt, o) {
        calls.push({ prompt, history: o.history, temperature: o.temperature, topP: o.topP, template: o.template });
        const answer = prompt === '你好' ? '你好！' : `回答${calls.length}`;
        for (const ch of answer) { o.onToken?.(ch); await new Promise(r => setTimeout(r, 2)); }
        return { text: answer, finishReason: 'eos' };
      },
    };
    const d = await openDashboard({ engine });
    const { page, training, host } = d;
    await training.start({ run_name: 'chat', model: { name_or_path: 'embedded' }, method: { name: 'lora' }, data: { format: 'instruction', train_file: host.files.file! } } as never);
    training.finish('completed');
    await tab(page, 'playground');
    await page.locator('#pg-temperature input').fill('0.5');
    await page.locator('#pg-top-p input').fill('0.8');
    for (const [i, question] of ['你好', '把下面的词语用顿号连起来\n父亲 武汉'].entries()) {
      await page.locator('#pg-prompt textarea').fill(question);
      await page.click('#pg-generate');
      await page.waitForFunction(n => document.querySelectorAll('#pg-chat .turn').length === n && document.querySelector('#pg-status')?.textContent === 'Done.', 2 * (i + 1));
    }
    assert.deepEqual(calls.map(c => [c.temperature, c.topP, c.template]), [[0.5, 0.8, true], [0.5, 0.8, true]]);
    assert.deepEqual(calls[0].history, []);
    assert.deepEqual(calls[1].history, [{ user: '你好', assistant: '你好！' }]);
    assert.equal(await text(page, '#pg-output'), '回答2');
    await d.screenshot('playground-chat');

    await page.locator('#pg-temperature input').fill('-3');
    await page.locator('#pg-prompt textarea').fill('again');
    await page.click('#pg-generate');
    await page.waitForFunction(() => /from 0 \(greedy\) to 2/.test(document.querySelector('#pg-temperature')?.closest('.field')?.textContent ?? document.body.textContent ?? ''));
    assert.equal(calls.length, 2, 'a bad temperature is not sent');
    await page.click('#pg-clear');
    await page.waitForFunction(() => document.querySelectorAll('#pg-chat .turn').length === 0);
    await d.close();
    assert.deepEqual(d.problems, []);
  });
});

// The dashboard fits where VS Code puts it: a 300 px sidebar (the default width) and a 700 px editor tab
// ("Open in Editor"). On every tab, with real content (a run with charts, history, adapters), nothing spans
// past the viewport, the page never scrolls sideways, no text or button is clipped, and clicking a field does
// not shift the view. Screenshots of every tab at both widths go to test-results/browser/.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { BROWSER_SHOTS, FakeTraining, progress, useDashboards } from './harness';

const openDashboard = useDashboards();

const TABS = ['configure', 'run', 'history', 'adapters', 'playground'] as const;

/**
 * Every visible element (shadow roots included) that sticks out of the viewport or clips its own content.
 * Paths are the one deliberate exception: they keep their end visible with an ellipsis and carry the full
 * path in a tooltip.
 */
function layoutProblems(page: Page): Promise<string[]> {
  // a string, not a function: tsx's keepNames helpers (__name) do not exist in the page
  return page.evaluate(LAYOUT_PROBLEMS) as Promise<string[]>;
}
const LAYOUT_PROBLEMS = String.raw`(() => {
  var vw = document.documentElement.clientWidth, problems = [], doc = document.scrollingElement;
  if (doc.scrollWidth > doc.clientWidth + 1) problems.push('the page scrolls sideways (' + doc.scrollWidth + ' > ' + doc.clientWidth + ')');
  function name(el) {
    var host = el.getRootNode().host;
    var own = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (typeof el.className === 'string' && el.className.trim() ? '.' + el.className.trim().split(/\s+/).join('.') : '');
    var text = (el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 40);
    return (host ? host.tagName.toLowerCase() + (host.id ? '#' + host.id : '') + ' >> ' : '') + own + ' "' + text + '"';
  }
  function visit(root) {
    root.querySelectorAll('*').forEach(function (el) {
      if (el.shadowRoot) visit(el.shadowRoot);
      if (!(el instanceof HTMLElement) || el.closest('.visually-hidden, .path')) return;
      // inside a box that scrolls sideways (a wide table) the content is reachable: that box itself must fit
      if (el.parentElement && el.parentElement.closest('vscode-data-grid')) return;
      var r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) return;
      var cs = getComputedStyle(el);
      if (cs.visibility === 'hidden') return;
      if (r.right > vw + 0.5 || r.left < -0.5) problems.push(name(el) + ' spans x ' + Math.round(r.left) + '..' + Math.round(r.right) + ' of ' + vw);
      var scrolls = cs.overflowX === 'auto' || cs.overflowX === 'scroll';
      if (cs.overflowX !== 'visible' && !scrolls && el.scrollWidth > el.clientWidth + 1) problems.push(name(el) + ' clips its content (' + el.scrollWidth + ' > ' + el.clientWidth + ')');
    });
  }
  visit(document);
  return problems;
})()`;

async function showTab(page: Page, id: string): Promise<void> {
  await page.click(`#tab-${id}`);
  await page.locator(`#view-${id}`).waitFor({ state: 'visible' });
  await page.evaluate('new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))');
}

/** A finished run with curves, and a second one training: every tab has something to lay out. */
async function withRuns(training: FakeTraining, file: string): Promise<void> {
  const cfg = (name: string, method: string) => ({ run_name: name, model: { name_or_path: 'embedded' }, method: { name: method }, data: { format: 'instruction', train_file: file } }) as never;
  const a = await training.start(cfg('prefix-tuning-with-a-long-name', 'prefix_tuning'));
  for (let s = 1; s <= 40; s++) training.emit(a.id, progress(s, 40));
  training.emit(a.id, { v: 1, type: 'eval', time: 1, step: 40, eval_loss: 1.21 });
  training.finish('completed');
  const b = await training.start(cfg('lora-b', 'lora'));
  for (let s = 1; s <= 12; s++) training.emit(b.id, progress(s, 40));
}

describe('dashboard layout', () => {
  for (const width of [250, 300, 700]) {
    test(`at ${width} px every tab fits: nothing sticks out, nothing is clipped, no sideways scroll`, async () => {
      const training = new FakeTraining();
      const d = await openDashboard({ training, width, height: 900 });
      const { page } = d;
      await withRuns(training, d.host.files.file!);
      await page.reload();
      await page.waitForFunction(() => document.body.dataset.ready === 'true');
      // a dataset so Configure shows its preview, and an open Advanced section and column mapping
      await showTab(page, 'configure');
      await page.click('#f-data-train_file');
      await page.waitForFunction(() => document.querySelectorAll('.preview-row').length === 3);
      await page.evaluate("document.querySelectorAll('details').forEach(x => { x.open = true; })");
      fs.mkdirSync(BROWSER_SHOTS, { recursive: true });
      const found: string[] = [];
      for (const id of TABS) {
        await showTab(page, id);
        if (id === 'run') await page.waitForFunction(() => Number(document.querySelector('#chart-loss')?.getAttribute('data-points')) > 0);
        await page.screenshot({ path: path.join(BROWSER_SHOTS, `dashboard-${width}px-${id}.png`), fullPage: true });
        found.push(...(await layoutProblems(page)).map(p => `${id}: ${p}`));
      }
      assert.deepEqual(found, [], `layout problems at ${width} px`);

      // clicking into fields never moves the view sideways
      await showTab(page, 'configure');
      for (const sel of ['#f-method', '#f-training-learning_rate', '#f-run_name', '#f-template-prompt', '#f-training-scheduler']) {
        await page.click(sel);
        await page.keyboard.press('Escape');
        const x = await page.evaluate('[window.scrollX, document.scrollingElement.scrollLeft]');
        assert.deepEqual(x, [0, 0], `clicking ${sel} scrolled sideways`);
      }
      await d.close();
      assert.deepEqual(d.problems, []);
    });
  }
});

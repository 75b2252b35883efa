// Scenario 1: activity bar -> dashboard: the embedded model, a method, the sample dataset (through VS Code's own
// file dialog); the parameter count follows the method; Start; the loss chart grows; the run finishes with its
// adapter and ONNX export. Its run feeds the ghost-text scenario.
import fs from 'node:fs';
import path from 'node:path';
import { configureRun, events, listRunIds, shownStatus, trainerLogTail, waitDone, waitNewRun } from '../dashboard.mjs';
import { TRAIN } from '../training.mjs';
import { fatal, waitUntil } from '../vscode.mjs';

export default {
  title: 'dashboard: configure, parameter count, start, live loss chart, run completes',
  timeoutMs: 480_000,
  async run({ wb, workspace, runsDir, shared, log }) {
    await wb.openDashboard();
    const d = wb.dashboard();
    await wb.dashTab('configure');
    await wb.dashChoose('f-model-source', 'embedded');

    // the count is the trainer's answer (its `params` command) for the chosen method: it changes with the method
    const trainable = async () => Number(await d.locator('#params-trainable').getAttribute('data-value'));
    const initial = await waitUntil(async () => { const n = await trainable(); return n > 0 ? n : undefined; }, { timeout: 120_000, what: 'a parameter count' });
    await wb.dashChoose('f-method', 'bitfit');
    const bitfit = await waitUntil(async () => { const n = await trainable(); return n > 0 && n !== initial ? n : undefined; }, { timeout: 120_000, what: `the BitFit parameter count (was ${initial})` });
    await wb.dashChoose('f-method', TRAIN.method);
    for (const [k, v] of Object.entries(TRAIN.methodOptions)) await wb.dashType(`f-method-${k}`, v);
    const counts = await waitUntil(async () => {
      const n = await trainable();
      return n > 0 && n !== bitfit && n !== initial ? { trainable: n, total: Number(await d.locator('#params-total').getAttribute('data-value')), percent: await d.locator('#params-percent').textContent() } : undefined;
    }, { timeout: 120_000, what: `the ${TRAIN.method} parameter count with its options (BitFit had ${bitfit}, the default ${initial})` });
    log(`trainable parameters: BitFit ${bitfit}; ${TRAIN.method} ${counts.trainable} of ${counts.total} (${counts.percent})`);
    await d.locator('#params-count').scrollIntoViewIfNeeded();
    await wb.shot('method-and-params');

    await configureRun(wb, { workspace, training: { ...TRAIN.training, eval_every: TRAIN.evalEvery }, runName: 'e2e-dashboard' });
    // the template preview shows the first rows as the model sees them
    await waitUntil(async () => /Human:/.test((await d.locator('#preview').textContent()) ?? ''), { timeout: 180_000, what: 'the template preview' });
    await d.locator('#preview').scrollIntoViewIfNeeded();
    await wb.shot('dataset-and-preview');
    await d.locator('#start-training').scrollIntoViewIfNeeded();
    await wb.shot('hyperparameters');

    const before = new Set(listRunIds(runsDir));
    await d.locator('#start-training').click();
    await waitUntil(async () => (await d.locator('#run-title').textContent()) === 'e2e-dashboard', { timeout: 60_000, what: 'the Run tab showing the new run' });
    const run = await waitNewRun(runsDir, before, 'e2e-dashboard');
    log(`run ${run.id}`);

    const points = async () => Number(await d.locator('#chart-loss').getAttribute('data-points'));
    const failed = async () => { if ((await shownStatus(wb)) === 'failed') throw fatal(`the run failed: ${await d.locator('#run-error').textContent()}\n${trainerLogTail(run.dir)}`); };
    const first = await waitUntil(async () => { await failed(); const n = await points(); return n >= 2 ? n : undefined; }, { timeout: 180_000, what: 'two points on the loss chart' });
    await wb.shot('training-started');
    const later = await waitUntil(async () => { await failed(); const n = await points(); return n >= first + 5 ? n : undefined; }, { timeout: 120_000, what: 'the loss chart to grow' });
    log(`loss chart grew from ${first} to ${later} points`);
    await wb.shot('training-progress');

    const done = await waitDone(run.dir, { timeout: 420_000 });
    if (done.status !== 'completed') throw new Error(`done with status ${done.status}`);
    await waitUntil(async () => (await shownStatus(wb)) === 'completed', { timeout: 30_000, what: 'the dashboard to show the run completed' });
    const exportShown = await waitUntil(async () => (await d.locator('#final-export-dir').getAttribute('title')) ?? undefined, { timeout: 30_000, what: 'the export folder in the final metrics' });
    if (exportShown !== path.join(run.dir, 'export')) throw new Error(`the final export folder reads "${exportShown}"`);
    if (!fs.existsSync(path.join(run.dir, 'export', 'manifest.json'))) throw new Error('the run has no export/manifest.json');
    const progress = events(run.dir).filter(e => e.type === 'progress');
    if ((await points()) < progress.length) throw new Error(`the chart has ${await points()} points for ${progress.length} progress events`);
    log(`completed: ${progress.length} progress events, loss ${progress[0]?.loss?.toFixed(3)} -> ${progress.at(-1)?.loss?.toFixed(3)}, final eval loss ${done.metrics?.eval_loss?.toFixed?.(3)}`);
    await d.locator('#run-final').scrollIntoViewIfNeeded();
    await wb.shot('run-completed');
    await wb.waitToast(/training completed/, 30_000);
    await wb.shot('completed-notification');
    shared.trainedRun = run;
  },
};

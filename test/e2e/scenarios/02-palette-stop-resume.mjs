// Scenario 2: the command palette drives a run: "Start PEFT Training" (with the dashboard's current form as the
// config), "Stop PEFT Training" (graceful: a checkpoint, the run shows as stopped), "Resume PEFT Training" (pick
// the run; it continues from the checkpoint and finishes).
import fs from 'node:fs';
import path from 'node:path';
import { configureRun, events, listRunIds, progressSteps, shownStatus, waitDone, waitNewRun } from '../dashboard.mjs';
import { SHORT as BASE } from '../training.mjs';
import { waitUntil } from '../vscode.mjs';

const SHORT = { ...BASE, max_steps: 60 };

export default {
  title: 'palette: Start PEFT Training starts a run, Stop stops it, Resume finishes it',
  timeoutMs: 420_000,
  async run({ wb, workspace, runsDir, log }) {
    await configureRun(wb, { workspace, method: 'ia3', training: SHORT, runName: 'e2e-palette', evalFile: false });
    // the form reaches the host as the draft config 300 ms after the last edit (webview debounce)
    await new Promise(r => setTimeout(r, 1500));
    await wb.clearToasts();

    const before = new Set(listRunIds(runsDir));
    await wb.runCommand('Bloom PEFT: Start PEFT Training');
    // the palette never starts the form silently: it asks, describing the form's run
    await wb.pickQuick("The dashboard's form", { title: 'Start PEFT Training with' });
    const run = await waitNewRun(runsDir, before, 'e2e-palette');
    const config = JSON.parse(fs.readFileSync(path.join(run.dir, 'config.json'), 'utf8'));
    if (config.method?.name !== 'ia3' || config.training?.max_steps !== SHORT.max_steps) {
      throw new Error(`the palette run did not take the dashboard's config: ${JSON.stringify({ method: config.method, training: config.training })}`);
    }
    log(`run ${run.id} (method ${config.method.name}, ${config.training.max_steps} steps)`);
    // the progress where the user looks: status bar item + progress notification
    const status = wb.page.locator('.statusbar-item', { hasText: /Training step \d+/ }).first();
    await status.waitFor({ timeout: 180_000 });
    log(`status bar: ${(await status.textContent())?.trim()}`);
    await wb.waitToast(/training ia3/, 10_000).catch(() => log('(no progress notification toast visible)'));
    await wb.shot('running');
    // stop right after a first checkpoint
    await waitUntil(() => events(run.dir).some(e => e.type === 'checkpoint'), { timeout: 120_000, interval: 200, what: 'a first checkpoint' });
    await wb.runCommand('Bloom PEFT: Stop PEFT Training');
    const stopped = await waitDone(run.dir, { timeout: 90_000 });
    if (stopped.status !== 'stopped') throw new Error(`the stop ended the run with status ${stopped.status}`);
    const stoppedAt = Math.max(...progressSteps(run.dir));
    if (stoppedAt >= SHORT.max_steps) throw new Error(`the run had already finished (step ${stoppedAt}) when Stop ran: make SHORT.max_steps longer`);
    const checkpoints = events(run.dir).filter(e => e.type === 'checkpoint').map(e => e.step);
    log(`stopped at step ${stoppedAt}; checkpoints at ${checkpoints.join(', ')}`);
    await wb.waitToast(/can be resumed/, 30_000);
    await wb.shot('stopped');
    await wb.openDashboard();
    await wb.dashTab('run');
    await waitUntil(async () => (await shownStatus(wb)) === 'stopped', { timeout: 30_000, what: 'the dashboard to show the run stopped' });
    await wb.shot('stopped-dashboard');

    const eventsBefore = events(run.dir).length;
    await wb.runCommand('Bloom PEFT: Resume PEFT Training');
    await wb.pickQuick(run.id, { title: 'Resume which run?' });
    const done = await waitDone(run.dir, { timeout: 300_000, afterIndex: eventsBefore });
    if (done.status !== 'completed') throw new Error(`the resumed run ended with status ${done.status}`);
    const resumed = events(run.dir).slice(eventsBefore).filter(e => e.type === 'progress').map(e => e.step);
    const resumedFrom = Math.max(...checkpoints.filter(s => s <= stoppedAt));
    if (resumed[0] <= resumedFrom || resumed[0] > resumedFrom + SHORT.log_every || resumed.at(-1) !== SHORT.max_steps) {
      throw new Error(`the resumed steps ${resumed[0]}..${resumed.at(-1)} do not continue the checkpoint at step ${resumedFrom} up to ${SHORT.max_steps}`);
    }
    log(`resumed from step ${resumedFrom}: steps ${resumed[0]}..${resumed.at(-1)}, completed`);
    await waitUntil(async () => (await shownStatus(wb)) === 'completed', { timeout: 30_000, what: 'the dashboard to show the resumed run completed' });
    await wb.shot('resumed-completed');
  },
};

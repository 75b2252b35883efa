// Scenario 5: a window reload in the middle of a run does not stop it. The run is started from the dashboard; after a
// few steps "Developer: Reload Window"; after the reload the same trainer process (pid in run.json) is still training,
// its step counter advancing; the dashboard shows the run running with its loss chart (the history before the
// reload, then live points), and the run completes there.
import { configureRun, events, listRunIds, progressSteps, runRecord, shownStatus, trainerLogTail, waitDone, waitNewRun } from '../dashboard.mjs';
import { SHORT as BASE } from '../training.mjs';
import { waitUntil } from '../vscode.mjs';

// long enough to outlast a reload and the dashboard's re-attach on an idle machine (there 400 steps took 24 s and
// ended before the dashboard was back; a reload takes 10-20 s), short enough to finish inside the scenario on a loaded
// one (about 0.12 s a step there: 2.5 min)
const SHORT = { ...BASE, max_steps: 1200, log_every: 4, save_every: 400 };

const alive = pid => { try { process.kill(pid, 0); return true; } catch { return false; } };

export default {
  title: 'window reload mid-run: the same trainer keeps going, the dashboard re-attaches, the run completes',
  timeoutMs: 900_000,
  async run({ wb, workspace, runsDir, log }) {
    await configureRun(wb, { workspace, method: 'lora', training: SHORT, runName: 'e2e-reload', evalFile: false });
    await wb.clearToasts();
    const d = wb.dashboard();
    const before = new Set(listRunIds(runsDir));
    await d.locator('#start-training').click();
    const run = await waitNewRun(runsDir, before, 'e2e-reload');
    await waitUntil(() => progressSteps(run.dir).length >= 3, { timeout: 180_000, interval: 500, what: 'three progress events' });
    // the steps logged so far are the chart's points before the reload
    const record = runRecord(run.dir);
    if (!record?.pid || record.owner !== 'detached') throw new Error(`run.json does not name a detached owner: ${JSON.stringify(record)}`);
    const reloadStep = Math.max(...progressSteps(run.dir));
    await wb.shot('before-reload');

    const navigated = wb.page.waitForEvent('framenavigated', { predicate: f => f === wb.page.mainFrame(), timeout: 60_000 });
    await wb.runCommand('Developer: Reload Window');
    await navigated;
    await wb.page.waitForSelector('.monaco-workbench', { timeout: 90_000 });
    await wb.activityItem().waitFor({ timeout: 90_000 });
    log(`reloaded the window at step ${reloadStep} (trainer pid ${record.pid}, supervisor pid ${record.ownerPid})`);

    // the same process, still training
    const after = runRecord(run.dir);
    if (after?.pid !== record.pid) throw new Error(`run.json names pid ${after?.pid} after the reload, was ${record.pid}`);
    if (!alive(record.pid)) throw new Error(`trainer pid ${record.pid} is gone after the reload\n${trainerLogTail(run.dir)}`);
    if (events(run.dir).some(e => e.type === 'done' || e.type === 'error')) throw new Error(`the run ended at the reload: ${JSON.stringify(events(run.dir).at(-1))}`);
    const advancing = await waitUntil(() => { const s = Math.max(...progressSteps(run.dir)); return s > reloadStep + 2 ? s : undefined; },
      { timeout: 120_000, interval: 500, what: 'the step counter to advance after the reload' });
    log(`step ${advancing} after the reload (was ${reloadStep}), same pid ${record.pid}`);

    // the dashboard re-attaches: running, the chart holds the history and grows live
    await wb.openDashboard();
    await wb.dashTab('run');
    let shown;
    await waitUntil(async () => (shown = await shownStatus(wb)) === 'running', { timeout: 60_000, what: 'the dashboard to show the run running' })
      .catch(e => { throw new Error(`${e.message} (it shows "${shown}"; the run's last event: ${JSON.stringify(events(run.dir).at(-1))})`); });
    const points = async () => Number(await d.locator('#chart-loss').getAttribute('data-points'));
    const first = await waitUntil(async () => { const n = await points(); return n >= reloadStep / SHORT.log_every ? n : undefined; }, { timeout: 60_000, what: 'the loss chart to show the steps before the reload' });
    await waitUntil(async () => (await points()) > first + 2, { timeout: 120_000, what: 'live points on the loss chart after the reload' });
    await wb.shot('reattached-live-chart');
    log(`dashboard re-attached: loss chart ${first} points, growing`);

    const done = await waitDone(run.dir, { timeout: 600_000 });
    if (done.status !== 'completed' || done.step !== SHORT.max_steps) throw new Error(`the run ended ${done.status} at step ${done.step}`);
    await waitUntil(async () => (await shownStatus(wb)) === 'completed', { timeout: 60_000, what: 'the dashboard to show the run completed' });
    const starts = events(run.dir).filter(e => e.type === 'started').length;
    if (starts !== 1) throw new Error(`the run was started ${starts} times (a resume happened?)`);
    await wb.shot('completed');
    log(`completed at step ${done.step} by the same trainer process`);
  },
};

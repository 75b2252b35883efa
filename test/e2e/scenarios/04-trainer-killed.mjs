// Scenario 4: the trainer process is killed from outside (SIGKILL, as the OOM killer would) in the middle of a run:
// the user gets an error notification with Show Log and Resume; Show Log opens the trainer's log; the dashboard
// shows the run failed, and its Resume continues from the newest checkpoint. The resumed run is left training on
// purpose: run.sh then stops VS Code and fails if any trainer outlives it (the extension must end its trainers).
import fs from 'node:fs';
import { configureRun, events, listRunIds, progressSteps, runRecord, shownStatus, trainerLogTail, waitDone, waitNewRun } from '../dashboard.mjs';
import { SHORT as BASE } from '../training.mjs';
import { fatal, waitUntil } from '../vscode.mjs';

// long enough to be still training when the suite ends
const SHORT = { ...BASE, max_steps: 400 };

export default {
  title: 'trainer killed mid-run: error notification with Show Log and Resume',
  timeoutMs: 360_000,
  async run({ wb, workspace, runsDir, log }) {
    await configureRun(wb, { workspace, method: 'lora', training: SHORT, runName: 'e2e-killed', evalFile: false });
    await wb.clearToasts();
    const d = wb.dashboard();
    const before = new Set(listRunIds(runsDir));
    await d.locator('#start-training').click();
    const run = await waitNewRun(runsDir, before, 'e2e-killed');
    await waitUntil(() => events(run.dir).some(e => e.type === 'checkpoint'), { timeout: 180_000, interval: 500, what: 'a first checkpoint' });
    const pid = runRecord(run.dir)?.pid;
    const cmdline = pid ? fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ') : '';
    if (!/bloom_peft (train|resume)/.test(cmdline)) throw new Error(`run.json names pid ${pid}, which is not the trainer: "${cmdline}"`);
    const killedAt = Math.max(...progressSteps(run.dir));
    process.kill(pid, 'SIGKILL');
    log(`killed trainer pid ${pid} (${cmdline.trim()}) at step ${killedAt}`);

    const toast = await wb.waitToast(/training failed/, 60_000);
    const message = (await toast.locator('.notification-list-item-message').textContent())?.trim();
    log(`notification: ${message}`);
    for (const label of ['Show Log', 'Resume']) await wb.toastButton(toast, label).waitFor({ timeout: 5000 });
    await wb.shot('error-notification');

    await wb.toastButton(toast, 'Show Log').click();
    const output = wb.page.locator('.part.panel .monaco-editor .view-lines');
    await waitUntil(async () => /e2e-killed/.test((await output.allTextContents()).join('\n')), { timeout: 20_000, what: 'the trainer log in the Output panel' });
    await wb.shot('log-shown');

    await wb.openDashboard();
    await wb.dashTab('run');
    await waitUntil(async () => (await shownStatus(wb)) === 'failed', { timeout: 30_000, what: 'the dashboard to show the run failed' });
    await wb.shot('failed-dashboard');
    const checkpoints = events(run.dir).filter(e => e.type === 'checkpoint').map(e => e.step);
    const eventsBefore = events(run.dir).length;
    await d.locator('#run-resume').click();
    const resumed = await waitUntil(() => {
      const ev = events(run.dir).slice(eventsBefore);
      if (ev.some(e => e.type === 'error' || e.type === 'done')) throw fatal(`the resumed run ended: ${JSON.stringify(ev.at(-1))}\n${trainerLogTail(run.dir)}`);
      const steps = ev.filter(e => e.type === 'progress').map(e => e.step);
      return steps.length >= 2 ? steps : undefined;
    }, { timeout: 180_000, interval: 500, what: 'progress of the resumed run' });
    const from = Math.max(...checkpoints);
    if (resumed[0] <= from || resumed[0] > from + SHORT.log_every) throw new Error(`resumed at step ${resumed[0]}, the newest checkpoint was step ${from}`);
    log(`resumed from checkpoint ${from} (killed at ${killedAt}): step ${resumed.at(-1)} and going`);
    await waitUntil(async () => (await shownStatus(wb)) === 'running', { timeout: 30_000, what: 'the dashboard to show the resumed run running' });
    await wb.shot('resumed-running');
    // the next scenarios start runs from the dashboard, whose Start waits while a run is going: stop this one
    const eventsBeforeStop = events(run.dir).length;
    await wb.runCommand('Bloom PEFT: Stop PEFT Training');
    const stopped = await waitDone(run.dir, { timeout: 120_000, afterIndex: eventsBeforeStop });
    log(`stopped the resumed run at step ${stopped.step}`);
  },
};

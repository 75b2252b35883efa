// Dashboard form steps shared by the scenarios, plus run-folder observers (the run's events.jsonl and run.json
// are the extension's own record of what happened).
import fs from 'node:fs';
import path from 'node:path';
import { fatal, readJsonLines, waitUntil } from './vscode.mjs';

/** Picks a training (or eval) file through the host's picker: VS Code's simple file dialog in the browser. */
export async function pickDataset(wb, which, file) {
  const d = wb.dashboard();
  const id = which === 'eval' ? 'f-data-eval_file' : 'f-data-train_file';
  const shown = async () => (await d.locator(`#${id}-path`).textContent()) ?? '';
  if ((await shown()).endsWith(path.basename(file)) && (await d.locator(`#${id}-path`).getAttribute('title')) === file) return;
  await d.locator(`#${id}`).click();
  await wb.chooseInFileDialog(file);
  await waitUntil(async () => (await shown()).endsWith(path.basename(file)), { timeout: 20_000, what: `${path.basename(file)} in the form` });
}

/**
 * Sets the form: embedded model, method (+ options), a preset's recipe for that method if named (as a user picks it in
 * "Start from a preset"), instruction dataset (examples/<dataset> copied into the workspace's data/), hyperparameters
 * in "max_steps" mode, run name.
 * Leaves values not named alone.
 */
export async function configureRun(wb, { workspace, method, methodOptions = {}, preset, training = {}, runName, evalFile = true, dataset = 'code-tasks' }) {
  const d = wb.dashboard();
  await wb.openDashboard();
  await wb.dashTab('configure');
  await wb.dashChoose('f-model-source', 'embedded');
  if (method) await wb.dashChoose('f-method', method);
  if (preset) await choosePreset(wb, preset);
  for (const [k, v] of Object.entries(methodOptions)) await wb.dashType(`f-method-${k}`, v);
  await wb.dashChoose('f-data-format', 'instruction');
  await pickDataset(wb, 'train', path.join(workspace, `data/${dataset}/train.jsonl`));
  if (evalFile) await pickDataset(wb, 'eval', path.join(workspace, `data/${dataset}/heldout.jsonl`));
  await wb.dashChoose('f-length-mode', 'max_steps');
  const advanced = d.locator('details.advanced').filter({ has: d.locator('summary', { hasText: 'Advanced training options' }) });
  if ((await advanced.getAttribute('open')) === null) await advanced.locator('summary').click();
  for (const [k, v] of Object.entries(training)) await wb.dashType(`f-training-${k}`, v);
  if (runName) await wb.dashType('f-run_name', runName);
  // no field may show a validation message
  const errors = (await d.locator('.field-error:not([hidden])').allTextContents()).filter(t => t.trim());
  if (errors.length) throw new Error(`the form shows errors: ${errors.join('; ')}`);
}

/** "Start from a preset": the form is drawn again with the preset's values, and its hint then names the preset. */
async function choosePreset(wb, id) {
  const d = wb.dashboard();
  const label = JSON.parse(fs.readFileSync(new URL('../../schemas/presets.json', import.meta.url), 'utf8')).presets.find(p => p.id === id)?.label;
  if (!label) throw new Error(`schemas/presets.json has no preset ${id}`);
  await d.locator('#f-preset').click();
  await d.locator(`#f-preset vscode-option[value="${id}"]`).click();
  await waitUntil(async () => ((await d.locator('#preset-explain').textContent()) ?? '').startsWith(`${label}:`), { timeout: 30_000, what: `the form filled from the preset "${label}"` });
}

export function listRunIds(runsDir) {
  return fs.existsSync(runsDir) ? fs.readdirSync(runsDir).filter(n => fs.existsSync(path.join(runsDir, n, 'config.json'))) : [];
}

/** Waits for a run folder that was not in `before` and whose name contains `name`. */
export async function waitNewRun(runsDir, before, name, timeout = 60_000) {
  const id = await waitUntil(() => listRunIds(runsDir).find(r => !before.has(r) && r.includes(name)),
    { timeout, what: `a new run folder named *${name}* in ${runsDir}` });
  return { id, dir: path.join(runsDir, id) };
}

export const events = dir => readJsonLines(path.join(dir, 'events.jsonl'));
export const progressSteps = dir => events(dir).filter(e => e.type === 'progress').map(e => e.step);

export function runRecord(dir) {
  try { return JSON.parse(fs.readFileSync(path.join(dir, 'run.json'), 'utf8')); } catch { return undefined; }
}

export function trainerLogTail(dir, n = 15) {
  try { return fs.readFileSync(path.join(dir, 'trainer.log'), 'utf8').split('\n').slice(-n).join('\n'); } catch { return '(no trainer.log)'; }
}

/** Waits for the run's `done` event (after `afterIndex` events), failing early on an `error` event. */
export async function waitDone(dir, { timeout = 300_000, afterIndex = 0 } = {}) {
  return waitUntil(() => {
    const ev = events(dir).slice(afterIndex);
    const err = ev.find(e => e.type === 'error');
    if (err) throw fatal(`the run failed: ${err.code}: ${err.message}\n${trainerLogTail(dir)}`);
    return ev.find(e => e.type === 'done');
  }, { timeout, interval: 1000, what: `the done event of ${path.basename(dir)}` }).catch(e => {
    if (e.fatal) throw e;
    throw new Error(`${e.message}\n${trainerLogTail(dir)}`);
  });
}

/** The run section's status as the dashboard shows it (running, completed, stopped, failed, ...). */
export async function shownStatus(wb) {
  return wb.dashboard().locator('section.run').getAttribute('data-status');
}

// registerTraining(): builds the TrainingService for the extension host and registers the training commands
// (start, stop, resume, export, set up environment, show log), the progress UI and the deactivate hook.
// Behaviour lives in the core (src/training); this file only adapts it to VS Code.
import path from 'node:path';
import * as vscode from 'vscode';
import { QUANTIZATION_LABELS, QUANTIZATIONS, type Quantization, type TrainingConfig } from '../../protocol';
import { setupManagedEnv } from '../python';
import { TrainingService } from '../service';
import { TrainingError, type CheckReport, type Logger, type RunSummary } from '../types';
import { TrainingProgressUi } from './progressUi';
import { pickConfig } from './quickPick';
import { lookupPython, managedVenvDir, pythonFromExtension, runsDirectory, stopTimeoutMs, stopTrainingWhenWindowsClose, workspaceBaseDir } from './settings';

let live: TrainingService | undefined;

/**
 * Called from deactivate(): stops following runs. Their trainers belong to detached run supervisors and go on
 * (a reload re-attaches); bloomPeft.stopTrainingWhenWindowsClose lets them stop when no window comes back.
 */
export function deactivateTraining(): void {
  live?.disposeSync('VS Code closed or reloaded the window');
}

/** `draft`: the dashboard's valid form, which "Start PEFT Training" from the palette offers first. */
export function registerTraining(context: vscode.ExtensionContext, log: vscode.LogOutputChannel, draft: () => TrainingConfig | undefined = () => undefined): TrainingService {
  const training = new TrainingService({
    runsDir: () => runsDirectory(context),
    python: () => lookupPython(context),
    log: log as Logger,
    stopTimeoutMs,
    baseDir: workspaceBaseDir,
    // trainers outlive the window: a detached supervisor owns each one (src/training/runSupervisorMain.ts)
    detachedSupervisor: () => ({ command: process.execPath, args: [path.join(context.extensionPath, 'dist', 'run-supervisor.js')] }),
    stopWhenWindowsClose: stopTrainingWhenWindowsClose,
  });
  live = training;
  const onExit = () => training.disposeSync('the extension host exited');
  process.once('exit', onExit);
  context.subscriptions.push({ dispose: () => { process.off('exit', onExit); training.dispose(); } });

  const showLog = () => log.show(true);
  const resume = (runId?: string) => vscode.commands.executeCommand('bloomPeft.resumeTraining', runId);
  context.subscriptions.push(new TrainingProgressUi(training, { showLog, resume: id => void resume(id) }));

  const command = (id: string, fn: (...args: any[]) => unknown) => context.subscriptions.push(vscode.commands.registerCommand(id, fn));

  command('bloomPeft.startTraining', async (arg?: TrainingConfig | { config: TrainingConfig; name?: string }) => {
    if (!trusted('start training')) return undefined;
    let config: TrainingConfig | undefined;
    let name: string | undefined;
    if (arg && typeof arg === 'object' && 'config' in arg) ({ config, name } = arg);
    else if (arg && typeof arg === 'object' && 'method' in arg) config = arg;
    if (!config) {
      // first run: the environment before any question (a missing one would fail after the three steps)
      const python = await training.python();
      if (!python.ready) {
        const pick = await vscode.window.showWarningMessage(
          `Bloom PEFT: training needs PyTorch, Transformers and PEFT; ${python.path} does not have them.`, 'Set Up (about 2 GB)');
        if (pick) void vscode.commands.executeCommand('bloomPeft.setupEnvironment', { confirmed: true });
        return undefined;
      }
      config = await chooseConfig(draft());
    }
    if (!config) return undefined;
    try {
      const info = await training.start(config, { name });
      log.info(`started ${info.id} in ${info.dir}`);
      return info.id;
    } catch (e) {
      await showFailure('cannot start training', e);
      return undefined;
    }
  });

  command('bloomPeft.stopTraining', async (runId?: string) => {
    const current = training.current();
    if (!current && !runId) {
      void vscode.window.showInformationMessage('Bloom PEFT: no training run is in progress.');
      return;
    }
    try {
      await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'Stopping training (saving a checkpoint)…' },
        () => training.stop(typeof runId === 'string' ? runId : undefined));
    } catch (e) {
      await showFailure('stop failed', e);
    }
  });

  command('bloomPeft.resumeTraining', async (runId?: string) => {
    if (!trusted('resume training')) return undefined;
    const id = typeof runId === 'string' && runId ? runId : await pickRun(training, 'Resume which run?', r => r.resumable,
      'No run can be resumed (only stopped, failed or interrupted runs can).');
    if (!id) return undefined;
    try {
      const info = await training.resume(id);
      return info.id;
    } catch (e) {
      await showFailure('cannot resume', e);
      return undefined;
    }
  });

  command('bloomPeft.exportAdapter', async (runId?: string, quantize?: Quantization) => {
    if (!trusted('export an adapter')) return undefined;
    const given = typeof runId === 'string' && runId;
    const id = given ? runId : await pickRun(training, 'Export which run to ONNX?',
      r => r.status !== 'running' && !!r.adapterDir, 'No finished run with a saved adapter yet.');
    if (!id) return undefined;
    // from the palette the weights are asked (Enter keeps the run's config); a caller with a run id passes them
    if (!given) {
      const weights = await pickQuantization();
      if (weights === null) return undefined;
      quantize = weights;
    }
    try {
      const dir = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `Bloom PEFT: exporting ${id} to ONNX`, cancellable: true },
        (progress, token) => {
          const abort = new AbortController();
          token.onCancellationRequested(() => abort.abort());
          return training.exportRun(id, { signal: abort.signal, quantize, onLog: m => progress.report({ message: m.slice(0, 100) }) });
        });
      const pick = await vscode.window.showInformationMessage(`Bloom PEFT: exported to ${dir}`, 'Use for Completions');
      if (pick) void vscode.commands.executeCommand('bloomPeft.useAdapter', id, training.store.dir(id));
      return dir;
    } catch (e) {
      if ((e as Error).name === 'AbortError') return undefined;
      await showFailure('export failed', e);
      return undefined;
    }
  });

  // { confirmed: true }: the user already chose "Set up (about 2 GB)" (dashboard banner, start prompt): no second question
  command('bloomPeft.setupEnvironment', (o?: { confirmed?: boolean }) => setupEnvironment(context, training, log, o?.confirmed === true));
  command('bloomPeft.showLog', showLog);

  // a window reload kills our trainer (deactivate); runs trained by another window or the CLI are followed
  void training.reattach().then(() => offerInterruptedResume(training)).catch(e => log.warn(`re-attach failed: ${(e as Error).message}`));
  return training;
}

/**
 * The palette never starts the dashboard's form silently: with a draft there, the user picks it (described),
 * the step-by-step questions, or the dashboard to look at it first.
 */
async function chooseConfig(draft: TrainingConfig | undefined): Promise<TrainingConfig | undefined> {
  if (!draft) return pickConfig();
  const file = draft.data.train_file ?? draft.data.hub_id ?? '';
  const length = draft.training?.max_steps ? `${draft.training.max_steps} steps` : `${draft.training?.epochs ?? 'default'} epochs`;
  const items = [
    { label: '$(graph-line) The dashboard\'s form', description: `${draft.method.name} on ${file.split(/[\\/]/).pop() || 'its dataset'}, ${length}`, detail: draft.model.name_or_path, id: 'draft' },
    { label: '$(list-ordered) Choose step by step', description: 'model, method and dataset', id: 'steps' },
    { label: '$(eye) Show the dashboard', description: 'review the form first', id: 'show' },
  ];
  const pick = await vscode.window.showQuickPick(items, { title: 'Start PEFT Training with…', ignoreFocusOut: true });
  if (pick?.id === 'draft') return draft;
  if (pick?.id === 'steps') return pickConfig();
  if (pick?.id === 'show') void vscode.commands.executeCommand('bloomPeft.openDashboard');
  return undefined;
}

function trusted(what: string): boolean {
  if (vscode.workspace.isTrusted) return true;
  void vscode.window.showErrorMessage(
    `Bloom PEFT: cannot ${what} in an untrusted workspace — training runs Python code and reads this workspace's files and settings. Trust the workspace to train.`,
    'Manage Workspace Trust',
  ).then(p => { if (p) void vscode.commands.executeCommand('workbench.trust.manage'); });
  return false;
}

async function showFailure(what: string, e: unknown): Promise<void> {
  const err = e as Error;
  const environment = e instanceof TrainingError && ['python_not_ready', 'python_missing', 'environment'].includes(e.code);
  // the setup button is the hint: the text does not say it a second time
  const hint = e instanceof TrainingError && e.hint && !environment ? ` ${e.hint}` : '';
  const actions: string[] = [];
  if (environment) actions.push('Set Up Training Environment');
  if (e instanceof TrainingError && e.code === 'busy') actions.push('Stop Training');
  actions.push('Show Log');
  const pick = await vscode.window.showErrorMessage(`Bloom PEFT: ${what}: ${err.message}${hint}`, ...actions);
  if (pick === 'Set Up Training Environment') void vscode.commands.executeCommand('bloomPeft.setupEnvironment');
  if (pick === 'Stop Training') void vscode.commands.executeCommand('bloomPeft.stopTraining');
  if (pick === 'Show Log') void vscode.commands.executeCommand('bloomPeft.showLog');
}

async function pickRun(training: TrainingService, title: string, filter: (r: RunSummary) => boolean, empty: string): Promise<string | undefined> {
  const runs = (await training.listRuns()).filter(filter);
  if (!runs.length) {
    void vscode.window.showInformationMessage(`Bloom PEFT: ${empty}`);
    return undefined;
  }
  const pick = await vscode.window.showQuickPick(runs.map(r => ({
    label: r.id,
    description: `${r.status} · ${r.method ?? '?'} · step ${r.step}${r.totalSteps ? `/${r.totalSteps}` : ''}`,
    detail: [r.lastCheckpointStep !== undefined ? `last checkpoint: step ${r.lastCheckpointStep}` : undefined,
      r.finalTrainLoss != null ? `train loss ${r.finalTrainLoss.toFixed(3)}` : undefined, r.error?.message].filter(Boolean).join(' · ') || undefined,
    id: r.id,
  })), { title, ignoreFocusOut: true });
  return pick?.id;
}

/** The export's weights: undefined = as the run's config (the first item), null = cancelled. */
async function pickQuantization(): Promise<Quantization | undefined | null> {
  const items: (vscode.QuickPickItem & { value?: Quantization })[] = [
    { label: 'As the run\'s config', description: 'its export.quantize' },
    ...QUANTIZATIONS.map(q => ({ label: q, description: QUANTIZATION_LABELS[q], value: q })),
  ];
  const pick = await vscode.window.showQuickPick(items, { title: 'Weights of the ONNX export', ignoreFocusOut: true });
  return pick ? pick.value : null;
}

/** On activation: runs interrupted by the last window reload (within 10 minutes) are offered for resume. */
async function offerInterruptedResume(training: TrainingService): Promise<void> {
  const recent = (await training.listRuns()).filter(r => r.status === 'interrupted' && r.endedAt && Date.now() - r.endedAt < 10 * 60_000);
  if (!recent.length || !vscode.workspace.isTrusted) return;
  const r = recent[0];
  const pick = await vscode.window.showInformationMessage(
    `Bloom PEFT: run ${r.id} was interrupted at step ${r.step}${r.lastCheckpointStep ? ` — resume from checkpoint ${r.lastCheckpointStep}` : ''}.`, 'Resume', 'Dismiss');
  if (pick === 'Resume') void vscode.commands.executeCommand('bloomPeft.resumeTraining', r.id);
}

/** "Set Up Training Environment": `check` first (problems with hints), then a managed venv with the pinned packages. */
async function setupEnvironment(context: vscode.ExtensionContext, training: TrainingService, log: vscode.LogOutputChannel, confirmed = false): Promise<string | undefined> {
  const python = await training.python();
  let report: CheckReport | undefined;
  try {
    report = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Bloom PEFT: checking the Python environment…' },
      () => training.check());
  } catch (e) {
    log.warn(`check with ${python.path} failed: ${(e as Error).message}`);
  }
  // messages only: their hints all say "run Set Up Training Environment", which is what this command is
  const problems = (report?.problems ?? []).map(p => p.message);
  if (report) log.info(`environment (${python.path}, ${python.source}): ${JSON.stringify(report)}`);
  for (const p of problems) log.warn(`environment: ${p}`);
  if (python.ready) {
    const summary = problems.length ? ` Problems: ${problems.join('; ')}` : ' No problems found.';
    const pick = await vscode.window.showInformationMessage(
      `Bloom PEFT: training uses ${python.path} (${python.source}).${summary}`, 'Show Log', 'Reinstall Managed Environment');
    if (pick === 'Show Log') log.show(true);
    if (pick !== 'Reinstall Managed Environment') return python.path;
  } else if (!confirmed) {
    const pick = await vscode.window.showWarningMessage(
      `Bloom PEFT: ${python.path} lacks the trainer's packages (${problems.length ? problems.slice(0, 3).join('; ') : 'torch, transformers, peft'}). ` +
      'Create a managed environment with the pinned packages (about 2 GB download)?',
      { modal: false }, 'Set Up', 'Show Log');
    if (pick === 'Show Log') log.show(true);
    if (pick !== 'Set Up') return undefined;
  }
  const venv = managedVenvDir(context);
  let basePython: string | undefined;
  try { basePython = (await pythonFromExtension()) ?? undefined; } catch { basePython = undefined; }
  if (python.source === 'setting' || python.source === 'system') basePython ??= python.path;
  try {
    const py = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'Bloom PEFT: setting up the training environment', cancellable: true },
      (progress, token) => {
        const abort = new AbortController();
        token.onCancellationRequested(() => abort.abort());
        return setupManagedEnv(venv, {
          basePython, signal: abort.signal,
          onProgress: m => progress.report({ message: m }),
          onOutput: t => log.append(t),
        });
      });
    const after = await training.python();
    let afterProblems: string[] = [];
    try {
      const r = await training.check();
      afterProblems = r.problems.map(p => p.message);
    } catch { /* shown below through the python choice */ }
    void vscode.window.showInformationMessage(`Bloom PEFT: training environment ready (${py}).` +
      (after.path !== py ? ` Note: ${after.path} (${after.source}) takes precedence; clear bloomPeft.pythonPath to use it.` : '') +
      (afterProblems.length ? ` ${afterProblems.join('; ')}` : ''));
    // an open dashboard asks for counts and preview again (also when the setup was started from the palette)
    void vscode.commands.executeCommand('bloomPeft.dashboard.environmentChanged').then(undefined, () => undefined);
    return py;
  } catch (e) {
    if ((e as Error).name === 'AbortError') {
      void vscode.window.showWarningMessage('Bloom PEFT: environment setup cancelled; run it again to finish.');
      return undefined;
    }
    await showFailure('environment setup failed', e);
    return undefined;
  }
}

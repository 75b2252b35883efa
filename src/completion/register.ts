// registerCompletions(): the inline completion provider, the status bar item, the bloomPeft.useAdapter and
// bloomPeft.toggleCompletions commands, and settings → service wiring. Behaviour lives in service.ts/pipeline.ts.
import * as vscode from 'vscode';
import type { RunSummary } from '../training/types';
import { engineLoader } from './engine';
import { BloomInlineCompletionProvider, SCHEMES } from './provider';
import type { CompletionProblem, RunSource } from './adapters';
import { CompletionService, type ServiceSettings } from './service';
import { CompletionStatusBar } from './statusbar';
import { DEFAULT_SETTINGS } from './types';

const SECTION = 'bloomPeft.completions';

export interface CompletionDeps {
  /** The TrainingService (listRuns, onRunsChanged) fits this. */
  training: RunSource;
  log: vscode.LogOutputChannel;
}

export function readSettings(): ServiceSettings {
  const c = vscode.workspace.getConfiguration(SECTION);
  const mode = c.get<string>('mode');
  return {
    enabled: c.get<boolean>('enabled', DEFAULT_SETTINGS.enabled),
    adapter: c.get<string>('adapter', ''),
    maxTokens: clamp(c.get<number>('maxTokens', DEFAULT_SETTINGS.maxTokens), 1, 512),
    mode: mode === 'multiLine' ? 'multiLine' : 'singleLine',
    debounceMs: clamp(c.get<number>('debounceMs', DEFAULT_SETTINGS.debounceMs), 0, 2000),
    latencyBudgetMs: clamp(c.get<number>('latencyBudgetMs', DEFAULT_SETTINGS.latencyBudgetMs), 0, 10000),
    temperature: clamp(c.get<number>('temperature', DEFAULT_SETTINGS.temperature), 0, 2),
    languages: c.get<Record<string, boolean>>('languages', DEFAULT_SETTINGS.languages) ?? DEFAULT_SETTINGS.languages,
  };
}

function clamp(v: number, lo: number, hi: number): number {
  return Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : lo;
}

export function registerCompletions(context: vscode.ExtensionContext, deps: CompletionDeps): CompletionService {
  let settings = readSettings();
  const reread = (): void => void (settings = readSettings());
  const service = new CompletionService({
    loadEngine: engineLoader(),
    settings: () => settings,
    runs: deps.training,
    baseDir: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath,
    log: deps.log,
    trusted: () => vscode.workspace.isTrusted,
  });
  const bar = new CompletionStatusBar();
  bar.update(service.status());
  // Resolve the adapter now (the status bar shows it); the engine itself loads on the first completion request.
  void service.refresh();

  const provider = new BloomInlineCompletionProvider(service, () => showTriggerHintOnce(context));
  context.subscriptions.push(
    bar,
    service.onDidChange(s => bar.update(s)),
    service.onProblem(p => void showProblem(p, service, deps.log)),
    vscode.languages.registerInlineCompletionItemProvider(SCHEMES.map(scheme => ({ scheme })), provider),
    // the keystroke's time (the latency budget counts from it), and the prefill of the text it typed
    vscode.workspace.onDidChangeTextDocument(e => provider.noteChange(e, vscode.window.activeTextEditor?.document)),
    vscode.workspace.onDidChangeConfiguration(e => {
      if (!e.affectsConfiguration(SECTION)) return;
      settings = readSettings();
      void service.settingsChanged({ bookkeepingOnly: selecting > 0 });
    }),
    vscode.commands.registerCommand('bloomPeft.useAdapter', (a?: unknown, b?: unknown) => vscode.workspace.isTrusted
      ? useAdapterCommand(service, deps.training, reread, a, b)
      : void vscode.window.showWarningMessage('Bloom PEFT: choosing an adapter from this workspace is disabled while it is not trusted (its runs would load a model into native code). Trust the workspace, or set bloomPeft.completions.adapter in your user settings to an export folder you trust.', 'Manage Workspace Trust')
        .then(pick => pick && vscode.commands.executeCommand('workbench.trust.manage'))),
    // granted trust: an empty adapter setting may now follow the newest run of the workspace
    vscode.workspace.onDidGrantWorkspaceTrust(() => void service.refresh()),
    vscode.commands.registerCommand('bloomPeft.toggleCompletions', () => toggle()),
    { dispose: () => void service.dispose() },
  );
  return service;
}

export const TRIGGER_HINT_KEY = 'bloomPeft.completions.triggerHintShown';

/**
 * Once per user (global state), with the first ghost text: how to ask for one by hand. Ghost text comes by itself
 * as you type, but not everywhere (mid-word, on a blank line, after a very fast burst), and the shortcut is not
 * discoverable in VS Code.
 */
function showTriggerHintOnce(context: vscode.ExtensionContext): void {
  if (context.globalState.get<boolean>(TRIGGER_HINT_KEY)) return;
  void context.globalState.update(TRIGGER_HINT_KEY, true);
  const shortcut = 'Change Shortcut';
  void vscode.window
    .showInformationMessage('Bloom PEFT: ghost text from your adapter appears as you type; Tab accepts it. To ask for it anywhere, press Alt+\\ (command "Trigger Inline Suggestion").', shortcut)
    .then(pick => {
      if (pick === shortcut) void vscode.commands.executeCommand('workbench.action.openGlobalKeybindings', 'editor.action.inlineSuggest.trigger');
    });
}

/** >0 while select() writes settings that it then applies itself (one load, one report, not two). */
let selecting = 0;

/** Writes a completions setting where it takes effect: the workspace when one is open, else the user settings. */
async function writeSetting(key: 'adapter' | 'enabled', value: unknown): Promise<void> {
  const c = vscode.workspace.getConfiguration(SECTION);
  const i = c.inspect(key);
  const target = i?.workspaceFolderValue !== undefined ? vscode.ConfigurationTarget.WorkspaceFolder
    : i?.workspaceValue !== undefined || (key === 'adapter' && vscode.workspace.workspaceFolders?.length) ? vscode.ConfigurationTarget.Workspace
    : vscode.ConfigurationTarget.Global;
  await c.update(key, value, target);
}

async function toggle(): Promise<boolean> {
  const enabled = !vscode.workspace.getConfiguration(SECTION).get<boolean>('enabled', true);
  await writeSetting('enabled', enabled);
  vscode.window.setStatusBarMessage(`Bloom PEFT: inline completions ${enabled ? 'on' : 'off'}`, 3000);
  return enabled;
}

/**
 * bloomPeft.useAdapter: with an argument (run id, run dir or export dir; the host passes (runId, runDir), the
 * dashboard (runDir)) it selects that adapter; without, a quick pick of the runs that have an export.
 */
async function useAdapterCommand(service: CompletionService, runs: RunSource, reread: () => void, a?: unknown, b?: unknown): Promise<string | undefined> {
  const arg = typeof b === 'string' && b ? b : typeof a === 'string' && a ? a : undefined;
  if (arg) return select(service, reread, arg);

  type Item = vscode.QuickPickItem & { run?: RunSummary; action?: 'auto' | 'browse' | 'toggle' | 'reload' };
  const all = await runs.listRuns().catch(() => [] as RunSummary[]);
  const withExport = all.filter(r => r.exportDir).sort((x, y) => (y.endedAt ?? y.startedAt ?? 0) - (x.endedAt ?? x.startedAt ?? 0));
  const active = service.activeAdapter;
  const enabled = vscode.workspace.getConfiguration(SECTION).get<boolean>('enabled', true);
  const items: Item[] = withExport.map(r => ({
    label: `${active?.runId === r.id ? '$(check) ' : ''}${r.name ?? r.id}`,
    description: [r.method, r.status, r.finalEvalLoss != null ? `eval loss ${r.finalEvalLoss.toFixed(3)}` : r.finalTrainLoss != null ? `loss ${r.finalTrainLoss.toFixed(3)}` : ''].filter(Boolean).join(' · '),
    detail: r.exportDir,
    run: r,
  }));
  if (items.length === 0) items.push({ label: 'No run has an ONNX export yet', description: 'train a run (it exports at the end) or export one', alwaysShow: true });
  items.push(
    { label: '', kind: vscode.QuickPickItemKind.Separator },
    { label: '$(sync) Follow the newest run', description: 'use whichever run finished last', action: 'auto' },
    { label: '$(folder-opened) Browse for an export folder…', action: 'browse' },
    ...(service.status().state === 'error' && active ? [{ label: '$(refresh) Reload the adapter', description: active.label, action: 'reload' as const }] : []),
    { label: enabled ? '$(circle-slash) Turn inline completions off' : '$(sparkle) Turn inline completions on', action: 'toggle' },
  );
  const pick = await vscode.window.showQuickPick(items, { title: 'Bloom PEFT: adapter for inline completions', placeHolder: active ? `Now: ${active.label}` : 'Choose a tuned adapter' });
  if (!pick) return undefined;
  if (pick.run) return select(service, reread, pick.run.dir);
  switch (pick.action) {
    case 'auto':
      return select(service, reread, '');
    case 'toggle':
      await toggle();
      reread();
      await service.settingsChanged();
      return undefined;
    case 'reload':
      await service.useAdapter(undefined, true);
      return service.activeAdapter?.exportDir;
    case 'browse': {
      const uris = await vscode.window.showOpenDialog({ title: 'Export folder (with manifest.json) or run folder', canSelectFolders: true, canSelectFiles: false, canSelectMany: false });
      return uris?.[0] ? select(service, reread, uris[0].fsPath) : undefined;
    }
  }
  return undefined;
}

/** Stores the choice in the setting (so it survives reloads) and loads it now; turns completions on if off. */
async function select(service: CompletionService, reread: () => void, target: string): Promise<string | undefined> {
  const c = vscode.workspace.getConfiguration(SECTION);
  selecting++;
  try {
    if (!c.get<boolean>('enabled', true)) await writeSetting('enabled', true);
    if (c.get<string>('adapter', '') !== target) await writeSetting('adapter', target);
  } finally {
    selecting--;
  }
  reread(); // the configuration event may come later than the write
  // Applied here, also when the value did not change (choosing it again after an error starts over).
  const chosen = await service.useAdapter(target);
  return chosen?.exportDir;
}

async function showProblem(p: CompletionProblem, service: CompletionService, log: vscode.LogOutputChannel): Promise<void> {
  const pick = await vscode.window.showWarningMessage(`Bloom PEFT: ${p.message}${p.hint ? ` ${p.hint}` : ''}`, ...p.actions);
  switch (pick) {
    case 'Export Adapter':
      await vscode.commands.executeCommand('bloomPeft.exportAdapter', p.runId);
      return;
    case 'Choose Adapter':
      await vscode.commands.executeCommand('bloomPeft.useAdapter');
      return;
    case 'Reload Adapter':
      await service.useAdapter(undefined, true);
      return;
    case 'Show Log':
      log.show();
  }
}

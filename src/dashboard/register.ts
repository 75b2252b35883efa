// registerDashboard(): the sidebar dashboard view, its editor-tab twin, their controller, and the
// bloomPeft.openDashboard / openDashboardInEditor commands. The VS Code edges (pickers, modal confirmation, reveal
// in OS, opening a file at a line, the useAdapter and setupEnvironment commands, the Python lookup, workspace
// trust, workspaceState) are implemented here; behaviour lives in controller.ts.
import * as vscode from 'vscode';
import type { PythonChoice } from '../training/python';
import type { TrainingServiceApi } from '../training/types';
import { DashboardController } from './controller';
import { engineLoader } from '../completion/engine';
import { type CompletionsLike, Playground } from './playground';
import type { DashboardHost } from './ports';
import { DASHBOARD_VIEW_ID, DashboardPanel, DashboardViewProvider } from './provider';

export interface DashboardDeps {
  /** the service, and the Python it would train with (for the first-run check) */
  training: TrainingServiceApi & { python(): Promise<PythonChoice> };
  completions?: CompletionsLike;
  log: vscode.LogOutputChannel;
}

export function registerDashboard(context: vscode.ExtensionContext, deps: DashboardDeps): DashboardController {
  const host: DashboardHost = {
    async pickFolder(title) {
      const uris = await vscode.window.showOpenDialog({ title, canSelectFiles: false, canSelectFolders: true, canSelectMany: false, defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri });
      return uris?.[0]?.fsPath;
    },
    async pickFile(title, filters) {
      const uris = await vscode.window.showOpenDialog({ title, canSelectFiles: true, canSelectFolders: false, canSelectMany: false, filters, defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri });
      return uris?.[0]?.fsPath;
    },
    async confirm(message, detail, action) {
      return (await vscode.window.showWarningMessage(message, { modal: true, detail }, action)) === action;
    },
    async revealInOS(path) {
      await vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(path));
    },
    async useAdapter(_runId, runDir) {
      await vscode.commands.executeCommand('bloomPeft.useAdapter', runDir);
    },
    async environment() {
      const py = await deps.training.python();
      return { ready: py.ready, python: py.path, source: py.source };
    },
    async setupEnvironment() {
      await vscode.commands.executeCommand('bloomPeft.setupEnvironment', { confirmed: true });
    },
    async openFile(path, line) {
      const at = line ? new vscode.Position(line - 1, 0) : undefined;
      await vscode.window.showTextDocument(vscode.Uri.file(path), { preview: false, selection: at ? new vscode.Range(at, at) : undefined });
    },
    completionsRunId: () => deps.completions?.activeAdapter?.runId ?? null,
    isTrusted: () => vscode.workspace.isTrusted,
    state: context.workspaceState,
  };
  const playground = new Playground(engineLoader(), deps.completions);
  const controller = new DashboardController(deps.training, host, deps.log, playground);
  const provider = new DashboardViewProvider(context.extensionUri, controller);
  const panel = new DashboardPanel(context.extensionUri, controller);
  context.subscriptions.push(
    controller,
    { dispose: () => void playground.dispose() },
    panel,
    vscode.window.registerWebviewViewProvider(DASHBOARD_VIEW_ID, provider),
    vscode.commands.registerCommand('bloomPeft.openDashboard', () => vscode.commands.executeCommand(`${DASHBOARD_VIEW_ID}.focus`)),
    vscode.commands.registerCommand('bloomPeft.openDashboardInEditor', () => panel.show()),
    // internal (not in the palette): Set Up Training Environment finished, from wherever it was started
    vscode.commands.registerCommand('bloomPeft.dashboard.environmentChanged', () => controller.environmentChanged()),
  );
  context.subscriptions.push(vscode.workspace.onDidGrantWorkspaceTrust(() => controller.refresh()));
  // The first window of a new profile can answer before the user settings have loaded (pythonPath empty, so the
  // system Python without torch is asked); when the setting arrives or changes, counts and preview are redone.
  context.subscriptions.push(vscode.workspace.onDidChangeConfiguration(e => {
    if (e.affectsConfiguration('bloomPeft.pythonPath')) controller.environmentChanged();
  }));
  const sub = deps.completions?.onDidChange?.(s => controller.completionsChanged(s.adapter?.runId ?? null));
  if (sub) context.subscriptions.push(sub);
  return controller;
}

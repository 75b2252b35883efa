// registerDashboard(): the sidebar dashboard view, its controller, and the bloomPeft.openDashboard command.
// The VS Code edges (pickers, modal confirmation, reveal in OS, the useAdapter command, workspace trust,
// workspaceState) are implemented here; behaviour lives in controller.ts.
import * as vscode from 'vscode';
import type { TrainingServiceApi } from '../training/types';
import { DashboardController } from './controller';
import { playgroundEngine, type CompletionsLike } from './playground';
import type { DashboardHost } from './ports';
import { DASHBOARD_VIEW_ID, DashboardViewProvider } from './provider';

export interface DashboardDeps {
  training: TrainingServiceApi;
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
    completionsRunId: () => deps.completions?.activeAdapter?.runId ?? null,
    isTrusted: () => vscode.workspace.isTrusted,
    state: context.workspaceState,
  };
  const controller = new DashboardController(deps.training, host, deps.log, playgroundEngine(deps.completions));
  const provider = new DashboardViewProvider(context.extensionUri, controller);
  context.subscriptions.push(
    controller,
    vscode.window.registerWebviewViewProvider(DASHBOARD_VIEW_ID, provider),
    vscode.commands.registerCommand('bloomPeft.openDashboard', () => vscode.commands.executeCommand(`${DASHBOARD_VIEW_ID}.focus`)),
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

// activate() only wires services together and registers disposables; behaviour lives in the concern folders.
import * as vscode from 'vscode';
import { deactivateTraining, registerTraining } from './training/vscode/register';
import type { DashboardController } from './dashboard/controller';
import { registerDashboard } from './dashboard/register';
import { registerCompletions } from './completion/register';

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('Bloom PEFT Trainer', { log: true });
  context.subscriptions.push(log);
  let dashboard: DashboardController | undefined;
  const training = registerTraining(context, log, () => dashboard?.draftConfig);
  const completions = registerCompletions(context, { training, log });
  dashboard = registerDashboard(context, { training, completions, log });
}

/** Stops following runs; their trainers belong to detached run supervisors and outlive the window (docs/host.md). */
export function deactivate(): void {
  deactivateTraining();
}

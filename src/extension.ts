// activate() only wires services together and registers disposables; behaviour lives in the concern folders.
import * as vscode from 'vscode';
import { deactivateTraining, registerTraining } from './training/vscode/register';
import { registerDashboard } from './dashboard/register';
import { registerCompletions } from './completion/register';

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('Bloom PEFT Trainer', { log: true });
  context.subscriptions.push(log);
  const training = registerTraining(context, log);
  const completions = registerCompletions(context, { training, log });
  registerDashboard(context, { training, completions, log });
}

/** Synchronous on purpose: the trainer's process tree must be gone before the extension host goes. */
export function deactivate(): void {
  deactivateTraining();
}

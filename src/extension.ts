// activate() only wires services together and registers disposables; behaviour lives in the concern folders.
import * as vscode from 'vscode';

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('Bloom PEFT Trainer', { log: true });
  context.subscriptions.push(log);
}

export function deactivate(): void {}

// Status bar item: the active adapter, its state (loading/ready/error/off) and the last latency. A click opens
// the adapter picker (bloomPeft.useAdapter), which also has the on/off toggle.
import * as vscode from 'vscode';
import type { CompletionStatus } from './service';
import { statusText } from './status-text';

export class CompletionStatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('bloomPeft.completions', vscode.StatusBarAlignment.Right, 100);

  constructor() {
    this.item.name = 'Bloom PEFT Completions';
    this.item.command = 'bloomPeft.useAdapter';
    this.item.show();
  }

  update(s: CompletionStatus): void {
    const { text, tooltip } = statusText(s);
    this.item.text = text;
    this.item.tooltip = new vscode.MarkdownString(tooltip);
    this.item.backgroundColor = s.state === 'error' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}

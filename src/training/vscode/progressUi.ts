// Progress where the user looks: a status bar item (click opens the dashboard), a cancellable progress
// notification (cancel = graceful stop), the `bloomPeft.training` context key, and the end-of-run notification.
import * as vscode from 'vscode';
import type { TrainingService } from '../service';
import { progressText } from '../format';
import type { RunEnd, RunInfo, RunSummary } from '../types';

export class TrainingProgressUi implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly subscriptions: vscode.Disposable[] = [];
  private notifiedRun: string | undefined;
  private notification: { runId: string; report: (pct: number, message: string) => void; finish: () => void } | undefined;
  private hideTimer: NodeJS.Timeout | undefined;
  private contextOn: boolean | undefined;

  constructor(private readonly training: TrainingService, private readonly actions: { showLog(): void; resume(runId: string): void }) {
    this.item = vscode.window.createStatusBarItem('bloomPeft.training', vscode.StatusBarAlignment.Left, 50);
    this.item.name = 'Bloom PEFT Training';
    this.item.command = 'bloomPeft.openDashboard';
    this.subscriptions.push(
      this.item,
      training.onEvent(runId => this.update(runId)),
      training.onRunsChanged(() => this.update()),
      training.onRunEnded(end => this.ended(end)),
    );
    this.update();
  }

  private update(_runId?: string): void {
    const info = this.training.current();
    this.setTrainingContext(!!info);
    if (!info) {
      this.notification?.finish();
      this.notification = undefined;
      this.notifiedRun = undefined; // a later resume of the same run gets its own notification
      return;
    }
    clearTimeout(this.hideTimer);
    const text = progressText(info);
    const icon = info.state === 'stopping' ? '$(loading~spin)' : '$(sync~spin)';
    this.item.text = `${icon} ${info.state === 'stopping' ? 'Stopping' : 'Training'} ${text}`;
    this.item.tooltip = new vscode.MarkdownString(
      `**Bloom PEFT** — ${info.config.method.name} on \`${info.config.model.name_or_path}\`\n\nrun \`${info.id}\`${info.owned ? '' : ' (trained by another window or the CLI)'}\n\n${text}\n\nClick to open the dashboard.`);
    this.item.backgroundColor = undefined;
    this.item.show();
    if (this.notifiedRun !== info.id) this.openNotification(info);
    const pct = info.totalSteps ? (100 * info.step) / info.totalSteps : 0;
    this.notification?.report(pct, text);
  }

  /** the `bloomPeft.training` context key (view title menu), set only on change: events come several a second */
  private setTrainingContext(on: boolean): void {
    if (on === this.contextOn) return;
    this.contextOn = on;
    void vscode.commands.executeCommand('setContext', 'bloomPeft.training', on);
  }

  private openNotification(info: RunInfo): void {
    this.notifiedRun = info.id;
    this.notification?.finish();
    let last = 0;
    let finish!: () => void;
    const done = new Promise<void>(r => (finish = r));
    let reporter: vscode.Progress<{ message?: string; increment?: number }> | undefined;
    const state = {
      runId: info.id,
      report: (pct: number, message: string) => {
        const inc = Math.max(0, pct - last);
        last = Math.max(last, pct);
        reporter?.report({ increment: inc, message });
      },
      finish,
    };
    this.notification = state;
    void vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Bloom PEFT: training ${info.config.method.name}`, cancellable: true },
      (progress, token) => {
        reporter = progress;
        progress.report({ message: progressText(info) });
        token.onCancellationRequested(() => {
          // cancel = graceful stop of this run (checkpoint, then exit)
          void this.training.stop(info.id).catch(e => vscode.window.showErrorMessage(`Bloom PEFT: stop failed: ${(e as Error).message}`));
        });
        return done;
      },
    );
  }

  private ended(end: RunEnd): void {
    if (this.notification?.runId === end.runId) {
      this.notification.finish();
      this.notification = undefined;
    }
    this.notifiedRun = undefined;
    const icon = end.outcome === 'completed' ? '$(check)' : end.outcome === 'stopped' ? '$(debug-stop)' : '$(error)';
    this.item.text = `${icon} Bloom PEFT: ${end.outcome}`;
    this.item.tooltip = end.message;
    this.item.backgroundColor = end.outcome === 'failed' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
    this.item.show();
    clearTimeout(this.hideTimer);
    this.hideTimer = setTimeout(() => { if (!this.training.current()) this.item.hide(); }, 30_000);
    this.setTrainingContext(!!this.training.current());
    void this.notifyEnd(end);
  }

  /** Resume only means something with a complete checkpoint: a run that failed before its first one has nothing to go on from. */
  private hasCheckpoint(runId: string): boolean {
    try { return this.training.store.summary(runId).lastCheckpointStep !== undefined; } catch { return false; }
  }

  private evaluation(runId: string): RunSummary['evaluation'] {
    try { return this.training.store.summary(runId).evaluation; } catch { return undefined; }
  }

  private async notifyEnd(end: RunEnd): Promise<void> {
    const resume = this.hasCheckpoint(end.runId) ? ['Resume'] : [];
    if (end.outcome === 'failed') {
      const pick = await vscode.window.showErrorMessage(`Bloom PEFT: training failed (run ${end.runId}): ${end.message}`, 'Show Log', ...resume);
      if (pick === 'Show Log') this.actions.showLog();
      if (pick === 'Resume') this.actions.resume(end.runId);
    } else if (end.outcome === 'stopped') {
      const pick = await vscode.window.showInformationMessage(`Bloom PEFT: ${end.message}${resume.length ? ` Run ${end.runId} can be resumed from its last checkpoint.` : ''}`, ...resume, 'Show Log');
      if (pick === 'Resume') this.actions.resume(end.runId);
      if (pick === 'Show Log') this.actions.showLog();
    } else if (end.outcome === 'completed') {
      const actions = end.exportDir ? ['Use for Completions', 'Open Dashboard'] : ['Open Dashboard'];
      // what its held-out answers said goes with "Use for Completions": a warning when it answers none or no better than the base
      const ev = this.evaluation(end.runId);
      const text = `Bloom PEFT: training completed (run ${end.runId}).${ev ? ` ${ev.message}.` : ''}`;
      const pick = await (ev && ev.verdict !== 'ok' ? vscode.window.showWarningMessage(text, ...actions) : vscode.window.showInformationMessage(text, ...actions));
      if (pick === 'Use for Completions') void vscode.commands.executeCommand('bloomPeft.useAdapter', end.runId, end.dir);
      if (pick === 'Open Dashboard') void vscode.commands.executeCommand('bloomPeft.openDashboard');
    }
  }

  dispose(): void {
    clearTimeout(this.hideTimer);
    this.notification?.finish();
    for (const s of this.subscriptions) s.dispose();
  }
}

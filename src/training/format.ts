// Short progress texts shared by the status bar and the progress notification (no vscode: unit-tested).
import type { RunInfo } from './types';

export function formatEta(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** "step 12/100 · loss 1.234 · ETA 2m 05s" */
export function progressText(info: RunInfo): string {
  const parts = [info.totalSteps ? `step ${info.step}/${info.totalSteps}` : `step ${info.step}`];
  if (typeof info.loss === 'number') parts.push(`loss ${info.loss.toFixed(3)}`);
  const eta = formatEta(info.etaS);
  if (eta) parts.push(`ETA ${eta}`);
  return parts.join(' · ');
}

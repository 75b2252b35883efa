// Terminal rendering of trainer events: a one-line progress bar redrawn in place on a TTY, plain
// throttled lines otherwise (CI logs, pipes). Pure formatting helpers are exported for tests.
import type { TrainerEvent } from '../protocol';

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}

export function bar(fraction: number, width: number): string {
  const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
  const full = Math.floor(f * width);
  return '█'.repeat(full) + (full < width ? '░'.repeat(width - full) : '');
}

/** "[██████░░░░]  60/100  loss 1.234  812 tok/s  ETA 0:42" */
export function progressLine(e: { step: number; total_steps: number; loss: number | null; tokens_per_s?: number | null; eta_s?: number | null }, width = 24): string {
  const total = e.total_steps || 0;
  const steps = total ? `${String(e.step).padStart(String(total).length)}/${total}` : `${e.step}`;
  const loss = typeof e.loss === 'number' ? e.loss.toFixed(4) : 'n/a';
  const tps = typeof e.tokens_per_s === 'number' ? `${Math.round(e.tokens_per_s).toLocaleString('en-US')} tok/s` : '';
  return [`[${bar(total ? e.step / total : 0, width)}]`, steps, `loss ${loss}`, tps, `ETA ${formatDuration(e.eta_s)}`].filter(Boolean).join('  ');
}

export class ProgressRenderer {
  private lastPlain = 0;
  private lineOpen = false;

  constructor(private readonly out: NodeJS.WriteStream, private readonly tty = !!out.isTTY, private readonly plainEveryMs = 2000,
    private readonly onSkip: (message: string) => void = m => process.stderr.write(`[cli] ${m}\n`)) {}

  /** Renders one event; one that cannot be rendered (a field of the wrong type) is skipped with a note, never thrown. */
  event(e: TrainerEvent): void {
    try {
      this.render(e);
    } catch (err) {
      this.onSkip(`skipped a ${String((e as { type?: unknown })?.type)} event that cannot be shown (${(err as Error).message}): ${JSON.stringify(e)?.slice(0, 300)}`);
    }
  }

  private render(e: TrainerEvent): void {
    switch (e.type) {
      case 'started':
        this.line(`started: ${e.config?.method?.name ?? '?'} on ${e.device}, ${e.trainable_params.toLocaleString('en-US')} / ${e.total_params.toLocaleString('en-US')} parameters trainable (${e.total_params ? ((100 * e.trainable_params) / e.total_params).toFixed(3) : '?'}%), ${e.total_steps} steps${e.resumed_from_step ? `, resumed from step ${e.resumed_from_step}` : ''}`);
        break;
      case 'progress': {
        const text = progressLine(e, this.tty ? Math.max(10, Math.min(40, (this.out.columns ?? 80) - 60)) : 20);
        if (this.tty) {
          this.out.write(`\r\x1b[2K${text}`);
          this.lineOpen = true;
        } else if (Date.now() - this.lastPlain >= this.plainEveryMs || e.step === e.total_steps || e.step <= 1) {
          this.lastPlain = Date.now();
          this.line(text);
        }
        break;
      }
      case 'eval':
        this.line(`eval @ step ${e.step}: loss ${e.eval_loss.toFixed(4)}${typeof e.perplexity === 'number' ? `, perplexity ${e.perplexity.toFixed(2)}` : ''}`);
        break;
      case 'checkpoint':
        this.line(`checkpoint @ step ${e.step}`);
        break;
      case 'warning':
        this.line(`warning: ${e.message}`);
        break;
      case 'log':
        if (e.level !== 'debug') this.line(`${e.level === 'info' ? '' : `${e.level}: `}${e.message}`);
        break;
      case 'error':
        this.line(`error [${e.code}]: ${e.message}${e.hint ? `\n  hint: ${e.hint}` : ''}`);
        break;
      case 'done':
        this.line(`done (${e.status}) at step ${e.step}` +
          (typeof e.metrics?.train_loss === 'number' ? `, train loss ${e.metrics.train_loss.toFixed(4)}` : '') +
          (typeof e.metrics?.eval_loss === 'number' ? `, eval loss ${e.metrics.eval_loss.toFixed(4)}` : '') +
          (typeof e.metrics?.runtime_s === 'number' ? `, ${formatDuration(e.metrics.runtime_s)}` : ''));
        break;
      default:
        break; // unknown event types are ignored
    }
  }

  /** A full line, closing an open progress bar first. */
  line(text: string): void {
    if (this.lineOpen) this.out.write('\n');
    this.lineOpen = false;
    this.out.write(text + '\n');
  }
}

// A run as the dashboard sees it: trainer events folded into series for the charts and the latest figures.
// Pure (no DOM) so the same fold serves live events and a re-attach from events.jsonl.
import type { DoneEvent, ErrorEvent, ProgressEvent, StartedEvent, TrainerEvent } from '../src/protocol/events';
import type { RunRow } from '../src/protocol/messages';

export interface LogLine { time: number; level: string; text: string }
const MAX_LOGS = 200;

const finite = (x: number | null | undefined): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);

export class RunModel {
  row: RunRow | undefined;
  started: StartedEvent | undefined;
  last: ProgressEvent | undefined;
  done: DoneEvent | undefined;
  error: ErrorEvent | undefined;
  lastEval: { step: number; loss: number } | undefined;
  checkpoints = 0;
  readonly steps: number[] = [];
  readonly loss: (number | null)[] = [];
  readonly lr: number[] = [];
  readonly evalSteps: number[] = [];
  readonly evalLoss: number[] = [];
  logs: LogLine[] = [];

  get runId(): string | undefined { return this.row?.id; }

  reset(row: RunRow | undefined, events: TrainerEvent[] = []): void {
    this.row = row;
    this.started = this.last = this.done = this.error = this.lastEval = undefined;
    this.checkpoints = 0;
    for (const a of [this.steps, this.loss, this.lr, this.evalSteps, this.evalLoss]) a.length = 0;
    this.logs = [];
    for (const e of events) this.apply(e);
  }

  apply(e: TrainerEvent): void {
    switch (e.type) {
      case 'started': {
        this.started = e;
        this.done = this.error = undefined;
        // a resume restarts from its checkpoint: drop the curve beyond it so x stays increasing
        const from = e.resumed_from_step ?? 0;
        this.truncate(from);
        // the trainer sends resumed_from_step: 0 for a fresh start
        this.log(e.time, 'info', from > 0
          ? `resumed from step ${e.resumed_from_step} on ${e.device}` : `started on ${e.device} (${e.world_size} process${e.world_size > 1 ? 'es' : ''}), ${e.total_steps} steps`);
        break;
      }
      case 'progress': {
        this.last = e;
        const n = this.steps.length;
        if (n && e.step <= this.steps[n - 1]) this.truncate(e.step - 1);
        this.steps.push(e.step);
        this.loss.push(finite(e.loss));
        this.lr.push(e.lr);
        if (e.loss !== null && !Number.isFinite(e.loss)) this.log(e.time, 'error', `step ${e.step}: loss is ${e.loss}`);
        break;
      }
      case 'eval':
        if (Number.isFinite(e.eval_loss)) {
          const n = this.evalSteps.length;
          if (n && e.step <= this.evalSteps[n - 1]) { this.evalSteps.length = this.evalLoss.length = this.evalSteps.findIndex(s => s >= e.step); }
          this.evalSteps.push(e.step);
          this.evalLoss.push(e.eval_loss);
          this.lastEval = { step: e.step, loss: e.eval_loss };
        }
        this.log(e.time, 'info', `eval at step ${e.step}: loss ${Number(e.eval_loss).toFixed(4)}${e.perplexity ? `, perplexity ${e.perplexity.toFixed(2)}` : ''}`);
        break;
      case 'checkpoint':
        this.checkpoints++;
        this.log(e.time, 'info', `checkpoint at step ${e.step}`);
        break;
      case 'log':
        this.log(e.time, e.level, e.message);
        break;
      case 'warning':
        this.log(e.time, 'warning', e.message);
        break;
      case 'error':
        this.error = e;
        this.log(e.time, 'error', `${e.code}: ${e.message}${e.hint ? ` — ${e.hint}` : ''}`);
        break;
      case 'done':
        this.done = e;
        this.log(e.time, 'info', `${e.status} at step ${e.step}`);
        break;
      default:
        break; // unknown event types are ignored (protocol rule)
    }
  }

  get step(): number { return this.last?.step ?? this.started?.resumed_from_step ?? 0; }
  get totalSteps(): number { return this.last?.total_steps ?? this.started?.total_steps ?? this.row?.totalSteps ?? 0; }
  get fraction(): number { const t = this.totalSteps; return t > 0 ? Math.min(1, this.step / t) : 0; }

  /** uPlot aligned data: [steps, train loss, eval loss] on the union of progress and eval steps. */
  lossSeries(): [number[], (number | null)[], (number | null)[]] {
    const xs: number[] = [], train: (number | null)[] = [], ev: (number | null)[] = [];
    let i = 0, j = 0;
    while (i < this.steps.length || j < this.evalSteps.length) {
      const a = i < this.steps.length ? this.steps[i] : Infinity;
      const b = j < this.evalSteps.length ? this.evalSteps[j] : Infinity;
      const x = Math.min(a, b);
      xs.push(x);
      train.push(a === x ? this.loss[i++] : null);
      ev.push(b === x ? this.evalLoss[j++] : null);
    }
    return [xs, train, ev];
  }

  lrSeries(): [number[], number[]] { return [this.steps.slice(), this.lr.slice()]; }

  private truncate(maxStep: number): void {
    let n = this.steps.length;
    while (n && this.steps[n - 1] > maxStep) n--;
    this.steps.length = this.loss.length = this.lr.length = n;
    let m = this.evalSteps.length;
    while (m && this.evalSteps[m - 1] > maxStep) m--;
    this.evalSteps.length = this.evalLoss.length = m;
  }

  private log(time: number, level: string, text: string): void {
    this.logs.push({ time, level, text });
    if (this.logs.length > MAX_LOGS) this.logs.splice(0, this.logs.length - MAX_LOGS);
  }
}

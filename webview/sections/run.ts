// Run: Start / Stop / Resume, a progress bar with ETA, the live figures (loss, eval loss, lr, tokens/s,
// memory), loss and learning-rate charts, the last log lines, and for a finished run its final metrics and
// where its adapter and export are. Fed by RunModel (live events or a re-attach from events.jsonl).
import type { EvaluationEvent, TrainerEvent } from '../../src/protocol/events';
import type { RunRow, RunStatus } from '../../src/protocol/messages';
import { LineChart } from '../charts';
import { badge, button, progressBar } from '../components';
import { fill, h } from '../dom';
import { evaluationCell, newest, verdictNote } from '../evaluation';
import { fmtBytes, fmtDuration, fmtLoss, fmtRate, fmtSci } from '../format';
import { request } from '../rpc';
import { RunModel } from '../run-model';
import { METHOD_LABELS } from '../schema';
import type { MethodName } from '../../src/protocol/config';

export interface RunHost {
  startFromForm(): void;
  showError(e: unknown): void;
  useForCompletions(runId: string): void;
  /** the shown run started or ended (Configure's Start follows it) */
  runningChanged?(running: boolean): void;
}

export class RunSection {
  readonly el = h('section', { class: 'section run', 'aria-labelledby': 'run-title' });
  readonly model = new RunModel();
  private readonly title = h('h2', { id: 'run-title' }, 'No run yet');
  private readonly status = h('span', { id: 'run-status', class: 'status' });
  private readonly progress = progressBar('run-progress', 'Training progress');
  private readonly progressText = h('div', { id: 'run-progress-text', class: 'muted', 'aria-live': 'polite' });
  private readonly stats = h('dl', { class: 'stats', id: 'run-stats' });
  private readonly errorBox = h('div', { class: 'run-error', id: 'run-error', role: 'alert', hidden: true });
  private readonly finalBox = h('div', { class: 'final', id: 'run-final', hidden: true });
  private readonly logs = h('pre', { class: 'logs', id: 'run-logs', role: 'log', 'aria-label': 'Last log lines', tabindex: 0 });
  private readonly lossChart: LineChart;
  private readonly lrChart: LineChart;
  private readonly startBtn: HTMLElement & { disabled: boolean };
  private readonly stopBtn: HTMLElement & { disabled: boolean };
  private readonly resumeBtn: HTMLElement & { disabled: boolean };
  private renderTimer: ReturnType<typeof setTimeout> | undefined;
  private stopping = false;
  /** the shown run's newest evaluation event (live or from its events); the row's may be newer */
  private evaluation: EvaluationEvent | undefined;
  private evaluating = false;

  constructor(private readonly host: RunHost) {
    this.startBtn = button('Start', () => host.startFromForm(), { id: 'run-start', title: 'Start a run with the Configure form' });
    this.stopBtn = button('Stop', () => void this.stop(), { id: 'run-stop', appearance: 'secondary', title: 'Stop gracefully (a checkpoint is saved)' });
    this.resumeBtn = button('Resume', () => void this.resume(), { id: 'run-resume', appearance: 'secondary', title: 'Continue from the newest complete checkpoint' });
    const charts = h('div', { class: 'charts' });
    fill(this.el,
      h('div', { class: 'run-head' }, this.title, this.status),
      h('div', { class: 'actions' }, this.startBtn, this.stopBtn, this.resumeBtn),
      this.progress, this.progressText, this.errorBox, this.stats, charts, this.finalBox,
      h('h3', {}, 'Log'), this.logs);
    charts.append(h('h3', {}, 'Loss'));
    this.lossChart = new LineChart(charts, {
      id: 'chart-loss', label: 'Loss chart', yLabel: 'loss', robustY: true,
      series: [{ label: 'train', color: '--vscode-charts-blue' }, { label: 'eval', color: '--vscode-charts-orange', points: true }],
    });
    charts.append(h('h3', {}, 'Learning rate'));
    this.lrChart = new LineChart(charts, { id: 'chart-lr', label: 'Learning rate chart', yLabel: 'lr', yFormat: 'sci', height: 120, series: [{ label: 'lr', color: '--vscode-charts-green' }] });
    this.render();
  }

  get runId(): string | undefined { return this.model.runId; }

  /** Show `row` with its events so far (start, resume, re-attach, or opening a past run). */
  attach(row: RunRow | undefined, events: TrainerEvent[]): void {
    this.stopping = false;
    this.evaluating = false;
    this.evaluation = events.filter((e): e is EvaluationEvent => e.type === 'evaluation').pop();
    this.model.reset(row, events);
    this.render();
  }

  onEvent(runId: string, event: TrainerEvent): void {
    if (runId !== this.model.runId) return;
    this.model.apply(event);
    if (event.type === 'evaluation') this.evaluation = event;
    if (event.type === 'done' || event.type === 'error') this.stopping = false;
    // progress events can come every few ms: redraw at most ~20 times a second
    this.renderTimer ??= setTimeout(() => { this.renderTimer = undefined; this.render(); }, 50);
  }

  /** Newer run rows (status, final metrics, folders) from the host. */
  updateRow(rows: RunRow[]): void {
    const row = rows.find(r => r.id === this.model.runId);
    if (!row) return;
    this.model.row = row;
    this.render();
  }

  private statusOf(): RunStatus | 'idle' {
    const m = this.model;
    if (!m.row) return 'idle';
    // the host's word: a run whose owner died (even if the trainer then stopped itself with a done) was interrupted
    if (m.row.status === 'interrupted') return 'interrupted';
    if (m.done) return m.done.status === 'stopped' ? 'stopped' : 'completed';
    if (m.error && m.row.status !== 'running') return 'failed';
    return m.row.status;
  }

  render(): void {
    const m = this.model;
    const row = m.row;
    const status = this.statusOf();
    this.title.textContent = row ? `${row.name}` : 'No run yet';
    fill(this.status, row ? badge(status === 'running' && this.stopping ? 'stopping' : status) : null,
      row ? h('span', { class: 'muted' }, ` ${METHOD_LABELS[row.method as MethodName] ?? row.method}`) : null);
    this.el.dataset.status = status;
    // one run at a time: Start waits for this one to end (clicking it would only earn a "busy" error)
    this.startBtn.disabled = status === 'running';
    this.startBtn.title = status === 'running' ? 'A run is in progress: stop it or wait for it to finish' : 'Start a run with the Configure form';
    this.host.runningChanged?.(status === 'running');
    this.stopBtn.disabled = status !== 'running' || this.stopping;
    this.resumeBtn.disabled = !row || status === 'running' || status === 'completed';

    // progress
    const total = m.totalSteps;
    this.progress.max = Math.max(1, total);
    this.progress.value = Math.min(m.step, Math.max(1, total));
    this.progress.setAttribute('aria-valuetext', total ? `step ${m.step} of ${total}` : 'not started');
    const eta = status === 'running' ? m.last?.eta_s : undefined;
    this.progressText.textContent = row
      ? `Step ${m.step}${total ? ` / ${total} · ${Math.round(m.fraction * 100)}%` : ''}${m.last ? ` · epoch ${m.last.epoch.toFixed(2)}` : ''}${eta !== undefined && eta !== null ? ` · ETA ${fmtDuration(eta)}` : ''}${m.last?.elapsed_s !== undefined ? ` · elapsed ${fmtDuration(m.last.elapsed_s)}` : ''}`
      : 'Configure a run and press Start.';

    // figures
    const last = m.last;
    const mem = last?.gpu_mem_bytes ?? last?.cpu_mem_bytes;
    const stat = (id: string, label: string, value: string) => [h('dt', {}, label), h('dd', { id: `stat-${id}` }, value)];
    fill(this.stats,
      ...stat('loss', 'Train loss', fmtLoss(last?.loss)),
      ...stat('eval', 'Eval loss', fmtLoss(m.lastEval?.loss)),
      ...stat('lr', 'Learning rate', fmtSci(last?.lr)),
      ...stat('tps', 'Tokens/s', fmtRate(last?.tokens_per_s, 'tok/s')),
      ...stat('mem', last?.gpu_mem_bytes !== undefined && last?.gpu_mem_bytes !== null ? 'GPU memory' : 'Memory', fmtBytes(mem)),
      ...stat('grad', 'Grad norm', fmtSci(last?.grad_norm)),
      ...(m.started ? stat('device', 'Device', `${m.started.device}${m.started.world_size > 1 ? ` ×${m.started.world_size}` : ''}`) : []));

    // error
    const err = m.error;
    this.errorBox.hidden = !err;
    fill(this.errorBox, ...(err ? [h('strong', {}, `${err.code}: `), err.message,
      err.file ? h('div', {}, h('a', {
        href: '#', class: 'file-link', id: 'run-error-link', title: 'Open the file at this line',
        onclick: (e: Event) => { e.preventDefault(); void request('openFile', { path: err.file!, ...(err.line ? { line: err.line } : {}) }).catch(x => this.host.showError(x)); },
      }, `${err.file}${err.line ? `:${err.line}` : ''}`), err.field ? ` (${err.field})` : '') : null,
      err.hint ? h('div', { class: 'field-hint' }, err.hint) : null] : []));

    // finished run
    this.renderFinal();

    // charts and logs
    this.lossChart.setData(m.lossSeries());
    this.lrChart.setData(m.lrSeries());
    const tail = m.logs.slice(-12);
    fill(this.logs, ...tail.map(l => h('div', { class: `log-${l.level}` }, `${new Date(l.time * 1000).toLocaleTimeString()} ${l.level === 'info' ? '' : `[${l.level}] `}${l.text}`)));
    if (!tail.length) this.logs.textContent = '—';
  }

  private renderFinal(): void {
    const m = this.model;
    const row = m.row;
    const d = m.done;
    if (row && this.statusOf() === 'interrupted') {
      // sticky until a resume: never "Finished" with empty metrics for a run that did not finish
      const ckpt = row.lastCheckpointStep;
      this.finalBox.hidden = false;
      fill(this.finalBox, h('h3', { id: 'run-interrupted' },
        `Interrupted at step ${row.step ?? m.step} — ${ckpt ? `resume from checkpoint ${ckpt}` : 'no checkpoint yet: resume starts from step 0'}`));
      return;
    }
    const finished = Boolean(d) || (row && row.status !== 'running' && (row.adapterDir || row.exportDir));
    this.finalBox.hidden = !finished;
    if (!finished || !row) return;
    const adapter = d?.adapter_dir ?? row.adapterDir;
    const exportDir = d?.export_dir ?? row.exportDir;
    const metric = (label: string, value: string, id: string) => [h('dt', {}, label), h('dd', { id: `final-${id}` }, value)];
    const where = (label: string, path: string | null | undefined, which: 'adapter' | 'export') => h('div', { class: 'where' },
      h('span', { class: 'field-label' }, label),
      h('div', { class: 'picker-row' }, h('div', { class: path ? 'path' : 'path empty', id: `final-${which}-dir`, title: path ?? undefined }, path ? h('bdi', {}, path) : 'none'),
        path ? button('Open folder', () => void request('openFolder', { runId: row.id, which }).catch(e => this.host.showError(e)), { appearance: 'secondary', ariaLabel: `Open the ${which} folder` }) : null));
    fill(this.finalBox,
      h('h3', {}, d?.status === 'stopped' ? 'Stopped' : d?.status === 'early_stopped' ? 'Finished (early stop)' : 'Finished'),
      h('dl', { class: 'stats' },
        ...metric('Final train loss', fmtLoss(d?.metrics.train_loss ?? row.trainLoss), 'train'),
        ...metric('Final eval loss', fmtLoss(d?.metrics.eval_loss ?? row.evalLoss), 'eval'),
        // the same clock as the progress line's "elapsed" (training steps, resumes included), not the process's wall time
        ...metric('Training time', fmtDuration(d?.metrics.train_time_s ?? m.last?.elapsed_s ?? d?.metrics.runtime_s ?? (row.endedAt && row.startedAt ? (row.endedAt - row.startedAt) / 1000 : null)), 'runtime'),
        ...metric('Throughput', fmtRate(d?.metrics.tokens_per_s ?? row.tokensPerS, 'tok/s'), 'tps')),
      this.renderEvaluation(row),
      where('Adapter', adapter, 'adapter'),
      where('ONNX export', exportDir, 'export'),
      exportDir ? h('div', { class: 'actions' }, button('Use for completions', () => this.host.useForCompletions(row.id), { appearance: 'secondary' })) : null,
      exportDir || adapter ? verdictNote(this.shownEvaluation(row), 'run-verdict') : null);
  }

  private shownEvaluation(row: RunRow): EvaluationEvent | undefined {
    const ev = newest(this.evaluation, row.evaluation);
    // an evaluation speaks for the adapter of its step (a resumed run that trained further has none yet)
    return ev && (ev.step === undefined || ev.step === (this.model.done?.step ?? row.step)) ? ev : undefined;
  }

  /** Held-out answers: exact match and ROUGE-L against the base model's, a few rows side by side, Evaluate again. */
  private renderEvaluation(row: RunRow): HTMLElement {
    const ev = this.shownEvaluation(row);
    const evaluate = button(this.evaluating ? 'Evaluating…' : ev ? 'Evaluate again' : 'Evaluate', () => void this.evaluate(row.id),
      { id: 'run-evaluate', appearance: 'secondary', title: 'Answer the held-out rows with this adapter and with the base model (greedy)' });
    evaluate.disabled = this.evaluating || !row.adapterDir && !this.model.done?.adapter_dir;
    const metric = (label: string, value: HTMLElement | string, id: string) => [h('dt', {}, label), h('dd', { id: `eval-${id}` }, value)];
    const samples = ev?.samples?.length ? h('table', { class: 'eval-samples', id: 'eval-samples' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Prompt'), h('th', {}, 'Reference'), h('th', {}, 'Answer'), h('th', {}, 'Base model'))),
      h('tbody', {}, ...ev.samples.map(s => h('tr', { class: s.exact ? 'exact' : 'miss' },
        h('td', { title: s.prompt }, s.prompt.trim().split('\n').filter(Boolean).slice(0, -1).join(' · ') || s.prompt),
        h('td', {}, s.reference), h('td', {}, `${s.exact ? '✓ ' : ''}${s.answer}`), h('td', {}, s.base_answer ?? '—'))))) : null;
    return h('div', { class: 'evaluation', id: 'run-evaluation' },
      h('h3', {}, 'Held-out answers'),
      ev ? h('dl', { class: 'stats' },
        ...metric('Exact match', `${ev.exact} / ${ev.rows} (${Math.round(ev.exact_match * 100)}%)`, 'exact'),
        ...metric('ROUGE-L (characters)', ev.rouge_l.toFixed(2), 'rouge'),
        ...metric('Base model', ev.base ? `${ev.base.exact} / ${ev.rows} · ROUGE-L ${ev.base.rouge_l.toFixed(2)}` : '—', 'base'),
        ...metric('Summary', evaluationCell(ev), 'summary'))
        : h('p', { class: 'muted' }, this.evaluating ? 'Answering the held-out rows…' : 'Not evaluated yet.'),
      samples,
      h('div', { class: 'actions' }, evaluate));
  }

  private async evaluate(runId: string): Promise<void> {
    this.evaluating = true;
    this.render();
    try {
      const ev = await request('evaluateRun', { runId });
      if (runId === this.model.runId) this.evaluation = newest(this.evaluation, ev);
    } catch (e) {
      this.host.showError(e);
    } finally {
      this.evaluating = false;
      this.render();
    }
  }

  private async stop(): Promise<void> {
    this.stopping = true;
    this.render();
    try { await request('stop', {}); } catch (e) { this.stopping = false; this.render(); this.host.showError(e); }
  }

  private async resume(): Promise<void> {
    const id = this.model.runId;
    if (!id) return;
    this.resumeBtn.disabled = true;
    try { await request('resume', { runId: id }); } catch (e) { this.host.showError(e); this.render(); }
  }
}

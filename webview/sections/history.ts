// History: past runs (method, trainable %, final losses, time, throughput); pick two or more to overlay
// their loss curves; "compare methods" queues the form's data through several methods on the host and
// fills a results table as each run ends.
import type { MethodName } from '../../src/protocol/config';
import type { TrainerEvent } from '../../src/protocol/events';
import type { CompareJob, RunRow } from '../../src/protocol/messages';
import { LineChart, paletteVar } from '../charts';
import { button, checkbox, dataGrid, type Column } from '../components';
import { fill, h } from '../dom';
import { evaluationCell } from '../evaluation';
import { fmtDate, fmtDuration, fmtLoss, fmtPct, fmtRate } from '../format';
import { request } from '../rpc';
import { RunModel } from '../run-model';
import { METHOD_LABELS, METHODS } from '../schema';
import { save, state } from '../store';
import type { TrainingConfig } from '../../src/protocol/config';

export interface HistoryHost {
  open(row: RunRow): void;
  showError(e: unknown): void;
  formConfig(): TrainingConfig | undefined;
}

const label = (m: string) => METHOD_LABELS[m as MethodName] ?? m;
const fmtLoss3 = (x: number | null | undefined) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(3) : fmtLoss(x));

export class HistorySection {
  readonly el = h('section', { class: 'section history', 'aria-labelledby': 'history-title' });
  private rows: RunRow[] = [];
  private job: CompareJob | undefined;
  private readonly table = h('div', { id: 'history-table' });
  private readonly compareBtn: HTMLElement & { disabled: boolean };
  private readonly chartBox = h('div', { class: 'charts', id: 'compare-curves' });
  private chart: LineChart | undefined;
  private readonly jobBox = h('div', { id: 'compare-job', 'aria-live': 'polite' });
  private readonly methodsBox = h('div', { class: 'block grid methods' });

  constructor(private readonly host: HistoryHost) {
    this.compareBtn = button('Compare curves', () => void this.compareCurves(), { id: 'compare-selected', appearance: 'secondary' });
    fill(this.el,
      h('div', { class: 'run-head' }, h('h2', { id: 'history-title' }, 'Runs'),
        button('Refresh', () => void request('listRuns', {}).then(r => this.setRuns(r), e => host.showError(e)), { appearance: 'secondary', id: 'history-refresh' })),
      this.table,
      h('div', { class: 'actions' }, this.compareBtn, h('span', { class: 'muted', id: 'compare-hint' }, 'Select two or more runs.')),
      this.chartBox,
      h('h2', {}, 'Compare methods'),
      h('p', { class: 'explain' }, 'Trains the Configure form\'s data and hyperparameters once per method, one after another, and tabulates the results.'),
      this.methodsBox,
      h('div', { class: 'actions' },
        button('Run comparison', () => void this.compareMethods(), { id: 'compare-methods' }),
        button('Cancel', () => void request('cancelCompare', {}).catch(e => host.showError(e)), { id: 'compare-cancel', appearance: 'secondary' })),
      this.jobBox);
    this.renderMethods();
    this.render();
  }

  setRuns(rows: RunRow[]): void {
    this.rows = rows;
    const ids = new Set(rows.map(r => r.id));
    state.historySelection = state.historySelection.filter(id => ids.has(id));
    this.render();
  }

  setJob(job: CompareJob | undefined): void {
    this.job = job;
    this.renderJob();
  }

  private render(): void {
    const sel = new Set(state.historySelection);
    // narrow sidebar: name with method and status underneath; the two losses share a cell
    const columns: Column<RunRow>[] = [
      { title: '', width: '30px', cell: r => checkbox({ id: `sel-${r.id}`, label: '', checked: sel.has(r.id), onChange: v => this.select(r.id, v) }).control },
      { title: 'Run', width: 'minmax(90px, 2fr)', cell: r => h('div', { class: 'run-cell' },
        button(r.name, () => this.host.open(r), { appearance: 'icon', title: `Show ${r.name} in Run`, ariaLabel: `Open run ${r.name}` }),
        h('div', { class: 'muted small' }, `${label(r.method)} · ${r.status}`)) },
      { title: 'Trainable', cell: r => fmtPct(r.trainablePercent) },
      { title: 'Loss train / eval', width: '1.3fr', cell: r => `${fmtLoss3(r.trainLoss)} / ${fmtLoss3(r.evalLoss)}` },
      { title: 'Held-out exact', width: '1.2fr', cell: r => evaluationCell(r.evaluation) },
      { title: 'Time', cell: r => h('span', { title: `started ${fmtDate(r.startedAt)}` }, r.startedAt && r.endedAt ? fmtDuration((r.endedAt - r.startedAt) / 1000) : r.status === 'running' ? 'running' : '—') },
      { title: 'tok/s', cell: r => fmtRate(r.tokensPerS, '') },
    ];
    // checkboxes in grid cells get their accessible name from the run
    const grid = this.rows.length ? dataGrid('runs-grid', 'Past runs', columns, this.rows, r => r.id) : h('p', { class: 'muted' }, 'No runs yet.');
    grid.querySelectorAll('vscode-checkbox').forEach((c, i) => { c.setAttribute('aria-label', `Select ${this.rows[i]?.name ?? 'run'}`); });
    fill(this.table, grid);
    this.compareBtn.disabled = sel.size < 2;
  }

  private select(id: string, on: boolean): void {
    const s = new Set(state.historySelection);
    if (on) s.add(id); else s.delete(id);
    state.historySelection = this.rows.map(r => r.id).filter(x => s.has(x));
    this.compareBtn.disabled = state.historySelection.length < 2;
    save();
  }

  private async compareCurves(): Promise<void> {
    const chosen = this.rows.filter(r => state.historySelection.includes(r.id));
    if (chosen.length < 2) return;
    try {
      const all = await Promise.all(chosen.map(r => request('readEvents', { runId: r.id })));
      const models = all.map((events: TrainerEvent[], i) => { const m = new RunModel(); m.reset(chosen[i], events); return m; });
      // one x axis (the union of steps), one train-loss series (solid) and one eval series (points) per run
      const xs = [...new Set(models.flatMap(m => [...m.steps, ...m.evalSteps]))].sort((a, b) => a - b);
      const index = new Map(xs.map((x, i) => [x, i]));
      const series: (number | null)[][] = [];
      for (const m of models) {
        const train = new Array<number | null>(xs.length).fill(null);
        m.steps.forEach((s, k) => { train[index.get(s)!] = m.loss[k]; });
        const ev = new Array<number | null>(xs.length).fill(null);
        m.evalSteps.forEach((s, k) => { ev[index.get(s)!] = m.evalLoss[k]; });
        series.push(train, ev);
      }
      this.chart?.destroy();
      fill(this.chartBox, h('h3', {}, 'Loss by run'));
      this.chart = new LineChart(this.chartBox, {
        id: 'chart-compare', label: 'Loss of the selected runs',
        series: chosen.flatMap((r, i) => [
          { label: `${r.name} train`, color: paletteVar(i) },
          { label: `${r.name} eval`, color: paletteVar(i), dash: [4, 3], points: true },
        ]),
      });
      this.chart.setData([xs, ...series] as never);
      this.chart.el.dataset.runs = String(chosen.length);
    } catch (e) {
      this.host.showError(e);
    }
  }

  private renderMethods(): void {
    const chosen = new Set(state.compareMethods);
    fill(this.methodsBox, ...METHODS.map(m => checkbox({
      id: `cmp-${m}`, label: METHOD_LABELS[m], checked: chosen.has(m),
      onChange: v => {
        const s = new Set(state.compareMethods);
        if (v) s.add(m); else s.delete(m);
        state.compareMethods = METHODS.filter(x => s.has(x));
        save();
      },
    }).el));
  }

  private async compareMethods(): Promise<void> {
    const config = this.host.formConfig();
    if (!config) return;
    if (!state.compareMethods.length) { this.host.showError(new Error('Choose at least one method to compare.')); return; }
    try {
      this.setJob(await request('compareMethods', { config, methods: state.compareMethods }));
    } catch (e) {
      this.host.showError(e);
    }
  }

  private renderJob(): void {
    const job = this.job;
    if (!job) { fill(this.jobBox); return; }
    const cols: Column<CompareJob['entries'][number]>[] = [
      { title: 'Method', width: '1.4fr', cell: e => label(e.method) },
      { title: 'Status', cell: e => h('span', { title: e.error }, e.status) },
      { title: 'Trainable', cell: e => fmtPct(e.trainablePercent) },
      { title: 'Loss train / eval', width: '1.3fr', cell: e => `${fmtLoss3(e.trainLoss)} / ${fmtLoss3(e.evalLoss)}` },
      { title: 'Held-out exact', width: '1.2fr', cell: e => evaluationCell(e.evaluation) },
      { title: 'tok/s', cell: e => fmtRate(e.tokensPerS, '') },
      { title: 'Time', cell: e => fmtDuration(e.runtimeS) },
    ];
    fill(this.jobBox,
      h('p', { class: 'muted', id: 'compare-state' }, `Comparison ${job.state}: ${job.entries.filter(e => e.status !== 'queued' && e.status !== 'running').length} of ${job.entries.length} done.`),
      dataGrid('compare-grid', 'Method comparison results', cols, job.entries, e => e.method));
  }
}

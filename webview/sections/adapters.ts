// Adapters: every run that saved something; use its export for inline completions, export it, open its
// folder, or delete it (the host asks for confirmation in a modal dialog).
import type { MethodName } from '../../src/protocol/config';
import type { RunRow } from '../../src/protocol/messages';
import { QUANTIZATION_LABELS, QUANTIZATIONS, type Quantization } from '../../src/protocol/quantization';
import { badge, button, dropdown } from '../components';
import { fill, h } from '../dom';
import { verdictNote } from '../evaluation';
import { fmtDate, fmtLoss } from '../format';
import { request } from '../rpc';
import { METHOD_LABELS } from '../schema';

export interface AdaptersHost { showError(e: unknown): void; useForCompletions(runId: string): void; refresh(): void }

export class AdaptersSection {
  readonly el = h('section', { class: 'section adapters', 'aria-labelledby': 'adapters-title' });
  private rows: RunRow[] = [];
  private serving: string | null = null;
  private readonly list = h('ul', { class: 'cards', id: 'adapters-list', 'aria-labelledby': 'adapters-title' });
  private readonly busy = new Set<string>();
  /** Hugging Face checkpoints written in this session: run id -> folder */
  private readonly hfDirs = new Map<string, string>();
  /** The weights picked for a run's next ONNX export ('' = as its config says) */
  private readonly weights = new Map<string, Quantization | ''>();

  constructor(private readonly host: AdaptersHost) {
    fill(this.el, h('h2', { id: 'adapters-title' }, 'Adapters'), this.list);
    this.render();
  }

  setRuns(rows: RunRow[]): void { this.rows = rows; this.render(); }
  setServing(runId: string | null): void { this.serving = runId; this.render(); }

  private render(): void {
    const rows = this.rows.filter(r => r.adapterDir || r.exportDir);
    if (!rows.length) { fill(this.list, h('li', { class: 'muted' }, 'No adapters yet: finished runs appear here.')); return; }
    fill(this.list, ...rows.map(r => this.card(r)));
  }

  private card(r: RunRow): HTMLElement {
    const act = (label: string, fn: () => Promise<unknown>, o: { disabled?: boolean; title?: string; appearance?: 'primary' | 'secondary' } = {}) => {
      const b = button(label, () => {
        this.busy.add(r.id);
        b.disabled = true;
        fn().catch(e => this.host.showError(e)).finally(() => { this.busy.delete(r.id); this.render(); });
      }, { appearance: o.appearance ?? 'secondary', title: o.title, ariaLabel: `${label}: ${r.name}` });
      b.disabled = Boolean(o.disabled) || this.busy.has(r.id);
      return b;
    };
    return h('li', { class: 'card', 'data-run': r.id },
      h('div', { class: 'run-head' }, h('strong', {}, r.name), this.serving === r.id ? badge('serving completions') : null),
      h('div', { class: 'muted' }, `${METHOD_LABELS[r.method as MethodName] ?? r.method} · ${r.status} · ${fmtDate(r.startedAt)} · eval loss ${fmtLoss(r.evalLoss)}`),
      h('div', { class: 'muted' }, r.exportDir ? 'ONNX export ready' : 'no ONNX export yet'),
      // what its held-out answers said, next to "Use for completions" (not evaluated: nothing to claim)
      r.evaluation ? verdictNote(r.evaluation, `adapter-verdict-${r.id}`) : null,
      this.hfDirs.has(r.id) ? h('div', { class: 'muted hf-dir' }, 'Hugging Face checkpoint: ', h('bdi', {}, this.hfDirs.get(r.id)!)) : null,
      r.adapterDir ? this.weightsField(r.id) : null,
      h('div', { class: 'actions' },
        act('Use for completions', async () => this.host.useForCompletions(r.id), { disabled: !r.exportDir, title: r.exportDir ? undefined : 'Export it first', appearance: 'primary' }),
        act(r.exportDir ? 'Re-export' : 'Export', () => request('exportRun', { runId: r.id, ...this.quantize(r.id) }).then(() => this.host.refresh())),
        act('Export Hugging Face checkpoint', () => request('exportRun', { runId: r.id, format: 'hf' }).then(({ dir }) => { this.hfDirs.set(r.id, dir); }),
          { disabled: !r.adapterDir, title: 'Merged weights that transformers loads (LoRA, IA3, BitFit, full), or the adapter naming its base (prompt tuning, P-tuning, prefix tuning): RUN/hf' }),
        this.hfDirs.has(r.id) ? act('Open checkpoint folder', () => request('openFolder', { runId: r.id, which: 'hf' })) : null,
        act('Open folder', () => request('openFolder', { runId: r.id, which: r.adapterDir ? 'adapter' : 'run' })),
        act('Delete', () => request('deleteRun', { runId: r.id }).then(deleted => { if (deleted) this.host.refresh(); }), { disabled: r.status === 'running' })));
  }

  /** The ONNX export's weights for this run: as its config says, or one of the quantizations (docs/export.md). */
  private weightsField(runId: string): HTMLElement {
    const options = [{ value: '', label: 'As the run\'s config' }, ...QUANTIZATIONS.map(q => ({ value: q, label: QUANTIZATION_LABELS[q] }))];
    return dropdown({ id: `export-weights-${runId}`, label: 'Export weights', options, value: this.weights.get(runId) ?? '',
      onChange: v => this.weights.set(runId, v as Quantization | '') }).el;
  }

  private quantize(runId: string): { quantize?: Quantization } {
    const q = this.weights.get(runId);
    return q ? { quantize: q } : {};
  }
}

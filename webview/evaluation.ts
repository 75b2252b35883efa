// How the dashboard shows an evaluation (the trainer's `evaluation` event): the held-out figures in a table cell,
// and the plain verdict that goes next to "Use for completions" (docs/dashboard.md).
import type { EvaluationEvent } from '../src/protocol/events';
import { h } from './dom';

const pct = (x: number) => `${Math.round(x * 100)}%`;

/** "18/20 exact · ROUGE-L 0.95", with the base model's figures in the tooltip. */
export function evaluationCell(ev: EvaluationEvent | null | undefined): HTMLElement | string {
  if (!ev) return '—';
  const base = ev.base ? `base model: ${ev.base.exact}/${ev.rows} exact, ROUGE-L ${ev.base.rouge_l.toFixed(2)}` : 'base model not measured';
  return h('span', { class: ev.verdict === 'ok' ? 'eval-cell' : 'eval-cell warn', title: `${ev.message}\n${base}` },
    `${ev.exact}/${ev.rows} · R ${ev.rouge_l.toFixed(2)}`);
}

/** The verdict in one line: a warning unless the adapter answers rows exactly and beats the base model. */
export function verdictNote(ev: EvaluationEvent | null | undefined, id: string): HTMLElement {
  if (!ev) return h('div', { class: 'verdict muted', id }, 'Not evaluated yet: its answers to held-out rows are unknown.');
  // free-form answers longer than the answer budget cannot match exactly: ROUGE-L against the base model says more
  const summary = ev.long_references && ev.exact === 0
    ? `ROUGE-L ${ev.rouge_l.toFixed(2)}${ev.base ? ` against the base model's ${ev.base.rouge_l.toFixed(2)}` : ''} (${ev.long_references} of ${ev.rows} references are too long to match exactly).`
    : `${ev.exact} of ${ev.rows} held-out rows answered exactly (${pct(ev.exact_match)})${ev.base ? `; the base model ${ev.base.exact} of ${ev.rows}` : ''}.`;
  if (ev.verdict === 'no_exact_answers') return h('div', { class: 'verdict warn', id, role: 'status' }, `⚠ This adapter answers none of its held-out rows exactly (ROUGE-L ${ev.rouge_l.toFixed(2)}): it has not learned the task yet. Train longer or with a higher learning rate before using it.`);
  if (ev.verdict === 'not_better_than_base') return h('div', { class: 'verdict warn', id, role: 'status' }, `⚠ No better than the base model: ${summary}`);
  return h('div', { class: 'verdict ok', id, role: 'status' }, `✓ ${summary}`);
}

/** The newest of two evaluations (a live event and the host's run row). */
export function newest(a: EvaluationEvent | null | undefined, b: EvaluationEvent | null | undefined): EvaluationEvent | undefined {
  if (!a) return b ?? undefined;
  if (!b) return a;
  return b.time > a.time ? b : a;
}

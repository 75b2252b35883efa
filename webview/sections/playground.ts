// Playground: the tutorial's QA chatbot. A multi-turn chat with a run's ONNX export: every earlier turn goes back to
// the model in the run's training template (then EOS), the answer streams token by token, sampled with the
// temperature and top-p set here (0 = greedy).
import type { ChatTurn, RunRow } from '../../src/protocol/messages';
import { button, checkbox, dropdown, textArea, textField } from '../components';
import { fill, h } from '../dom';
import { on, request } from '../rpc';
import { save, state } from '../store';

export interface PlaygroundHost { showError(e: unknown): void }

type Field = { get(): string; setError(m?: string): void };
const MAX_TURNS = 50;

/** A sampling field's value, or an error message for it. */
export function checkNumber(raw: string, fallback: number, ok: (n: number) => boolean, want: string): number | string {
  const n = raw.trim() === '' ? fallback : Number(raw);
  return Number.isFinite(n) && ok(n) ? n : `must be ${want}`;
}

export class PlaygroundSection {
  readonly el = h('section', { class: 'section playground', 'aria-labelledby': 'playground-title' });
  private rows: RunRow[] = [];
  private genId: string | undefined;
  /** the question being answered (its answer streams into `output`) */
  private asking: string | undefined;
  private readonly adapter = dropdown({ id: 'pg-adapter', label: 'Adapter', options: [], onChange: v => { state.playground.runId = v; this.clear(); } });
  private readonly transcript = h('div', { class: 'chat', id: 'pg-chat', role: 'log', 'aria-label': 'Conversation' });
  private readonly output = h('div', { class: 'output', id: 'pg-output', 'aria-live': 'polite', 'aria-label': 'Answer being generated', tabindex: 0 });
  private readonly statusLine = h('div', { class: 'muted', id: 'pg-status', role: 'status' });
  private readonly generateBtn: HTMLElement & { disabled: boolean };
  private readonly stopBtn: HTMLElement & { disabled: boolean };
  private readonly clearBtn: HTMLElement & { disabled: boolean };

  constructor(private readonly host: PlaygroundHost) {
    const p = state.playground;
    p.chat ??= [];
    const prompt = textArea({ id: 'pg-prompt', label: 'Message', rows: 3, value: p.prompt, placeholder: '考试有哪些技巧？  (first line: the instruction; further lines: its input)', onInput: v => { p.prompt = v; save(); } });
    const max = textField({ id: 'pg-max-tokens', label: 'Max new tokens', value: p.maxTokens, placeholder: '48', onInput: v => { p.maxTokens = v; save(); } });
    const temperature = textField({ id: 'pg-temperature', label: 'Temperature (0 = greedy)', value: p.temperature, placeholder: '0.7', onInput: v => { p.temperature = v; save(); } });
    const topP = textField({ id: 'pg-top-p', label: 'Top-p', value: p.topP, placeholder: '0.9', onInput: v => { p.topP = v; save(); } });
    const tpl = checkbox({ id: 'pg-template', label: 'Chat in the adapter\'s training template', checked: p.useTemplate, onChange: v => { p.useTemplate = v; save(); } });
    this.generateBtn = button('Send', () => void this.send(prompt, { max, temperature, topP }), { id: 'pg-generate' });
    this.stopBtn = button('Stop', () => void this.stop(), { id: 'pg-stop', appearance: 'secondary' });
    this.clearBtn = button('New chat', () => this.clear(), { id: 'pg-clear', appearance: 'secondary', title: 'Forget the conversation' });
    this.stopBtn.disabled = true;
    fill(this.el, h('h2', { id: 'playground-title' }, 'Playground'), this.adapter.el, this.transcript, prompt.el,
      h('div', { class: 'block grid' }, temperature.el, topP.el, max.el), tpl.el,
      h('div', { class: 'actions' }, this.generateBtn, this.stopBtn, this.clearBtn), this.statusLine);
    on('generation', g => {
      if (g.genId !== this.genId) return;
      if (g.delta) { this.output.append(g.delta); p.output = this.output.textContent ?? ''; }
      if (g.done) {
        this.genId = undefined;
        this.statusLine.textContent = g.error ? `Error: ${g.error}` : 'Done.';
        // the answer joins the conversation (also a stopped one: what the user saw is what the model said)
        if (this.asking !== undefined && !g.error) p.chat = [...p.chat, { user: this.asking, assistant: p.output }].slice(-MAX_TURNS);
        this.asking = undefined;
        this.generateBtn.disabled = false;
        this.stopBtn.disabled = true;
        save();
        this.renderTranscript();
      }
    });
    this.renderTranscript();
    this.render();
  }

  setRuns(rows: RunRow[]): void { this.rows = rows; this.render(); }

  private render(): void {
    const usable = this.rows.filter(r => r.exportDir);
    const p = state.playground;
    if (!usable.some(r => r.id === p.runId)) p.runId = usable[0]?.id ?? '';
    this.adapter.setOptions(usable.length ? usable.map(r => ({ value: r.id, label: `${r.name} (${r.method})` })) : [{ value: '', label: 'No exported adapter yet' }], p.runId);
    this.adapter.setDisabled(!usable.length);
    if (!this.genId) this.generateBtn.disabled = !usable.length;
  }

  /** Finished turns, then the question being answered with its streaming answer (the #pg-output element). */
  private renderTranscript(): void {
    const p = state.playground;
    const bubble = (who: 'user' | 'assistant', text: string) => h('div', { class: `turn ${who}` }, h('span', { class: 'who' }, who === 'user' ? 'You' : 'Assistant'), h('div', { class: 'text' }, text));
    // #pg-output is the newest answer: streaming, or the last finished one
    const answer = () => h('div', { class: 'turn assistant' }, h('span', { class: 'who' }, 'Assistant'), this.output);
    const last = p.chat.length - 1;
    if (this.asking === undefined) this.output.textContent = last >= 0 ? p.chat[last].assistant : '';
    const turns = p.chat.flatMap((t: ChatTurn, i) => [bubble('user', t.user), i === last && this.asking === undefined ? answer() : bubble('assistant', t.assistant)]);
    const live = this.asking !== undefined ? [bubble('user', this.asking), answer()] : [];
    fill(this.transcript, ...turns, ...live, ...(turns.length || live.length ? [] : [h('div', { class: 'muted' }, 'Ask a question: the answer streams here, and the next question sees the conversation so far.')]));
    this.clearBtn.disabled = !p.chat.length || this.genId !== undefined;
    this.transcript.scrollTop = this.transcript.scrollHeight;
  }

  private clear(): void {
    if (this.genId) return;
    state.playground.chat = [];
    state.playground.output = '';
    save();
    this.renderTranscript();
  }

  private async send(prompt: { get(): string; set(v: string): void }, f: { max: Field; temperature: Field; topP: Field }): Promise<void> {
    const p = state.playground;
    const checks: [Field, number | string][] = [
      [f.max, checkNumber(p.maxTokens, 48, n => Number.isInteger(n) && n >= 1 && n <= 512, 'an integer from 1 to 512')],
      [f.temperature, checkNumber(p.temperature, 0.7, n => n >= 0 && n <= 2, 'a number from 0 (greedy) to 2')],
      [f.topP, checkNumber(p.topP, 0.9, n => n > 0 && n <= 1, 'above 0 and at most 1')],
    ];
    for (const [field, v] of checks) field.setError(typeof v === 'string' ? v : undefined);
    if (checks.some(([, v]) => typeof v === 'string')) return;
    const [maxTokens, temperature, topP] = checks.map(([, v]) => v as number);
    const question = prompt.get();
    if (!p.runId || !question.trim()) return;
    this.asking = question;
    this.output.textContent = '';
    p.output = '';
    this.statusLine.textContent = 'Generating…';
    this.generateBtn.disabled = true;
    this.stopBtn.disabled = false;
    this.renderTranscript();
    try {
      const history = p.useTemplate ? p.chat : [];
      const { genId } = await request('generate', { runId: p.runId, prompt: question, maxTokens, temperature, topP, template: p.useTemplate, history });
      this.genId = genId;
      prompt.set('');
      p.prompt = '';
      save();
    } catch (e) {
      this.asking = undefined;
      this.statusLine.textContent = '';
      this.generateBtn.disabled = false;
      this.stopBtn.disabled = true;
      this.renderTranscript();
      this.host.showError(e);
    }
  }

  private async stop(): Promise<void> {
    if (this.genId) await request('cancelGenerate', { genId: this.genId }).catch(e => this.host.showError(e));
  }
}

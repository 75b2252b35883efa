// Playground: a prompt, an adapter (a run with an ONNX export), and the generation streamed token by
// token from the host's ONNX engine.
import type { RunRow } from '../../src/protocol/messages';
import { button, checkbox, dropdown, textArea, textField } from '../components';
import { fill, h } from '../dom';
import { on, request } from '../rpc';
import { save, state } from '../store';

export interface PlaygroundHost { showError(e: unknown): void }

export class PlaygroundSection {
  readonly el = h('section', { class: 'section playground', 'aria-labelledby': 'playground-title' });
  private rows: RunRow[] = [];
  private genId: string | undefined;
  private readonly adapter = dropdown({ id: 'pg-adapter', label: 'Adapter', options: [], onChange: v => { state.playground.runId = v; save(); } });
  private readonly output = h('pre', { class: 'output', id: 'pg-output', 'aria-live': 'polite', 'aria-label': 'Generated text', tabindex: 0 });
  private readonly statusLine = h('div', { class: 'muted', id: 'pg-status', role: 'status' });
  private readonly generateBtn: HTMLElement & { disabled: boolean };
  private readonly stopBtn: HTMLElement & { disabled: boolean };

  constructor(private readonly host: PlaygroundHost) {
    const p = state.playground;
    const prompt = textArea({ id: 'pg-prompt', label: 'Prompt', rows: 4, value: p.prompt, placeholder: 'Write a Python function that reverses a string.', onInput: v => { p.prompt = v; save(); } });
    const max = textField({ id: 'pg-max-tokens', label: 'Max new tokens', value: p.maxTokens, placeholder: '48', onInput: v => { p.maxTokens = v; save(); } });
    const tpl = checkbox({ id: 'pg-template', label: 'Wrap in the adapter\'s training template', checked: p.useTemplate, onChange: v => { p.useTemplate = v; save(); } });
    this.generateBtn = button('Generate', () => void this.generate(prompt.get(), max), { id: 'pg-generate' });
    this.stopBtn = button('Stop', () => void this.stop(), { id: 'pg-stop', appearance: 'secondary' });
    this.stopBtn.disabled = true;
    this.output.textContent = p.output;
    fill(this.el, h('h2', { id: 'playground-title' }, 'Playground'), this.adapter.el, prompt.el, h('div', { class: 'block grid' }, max.el, tpl.el),
      h('div', { class: 'actions' }, this.generateBtn, this.stopBtn), this.statusLine, this.output);
    on('generation', g => {
      if (g.genId !== this.genId) return;
      if (g.delta) { this.output.append(g.delta); p.output = this.output.textContent ?? ''; }
      if (g.done) {
        this.genId = undefined;
        this.statusLine.textContent = g.error ? `Error: ${g.error}` : 'Done.';
        this.generateBtn.disabled = false;
        this.stopBtn.disabled = true;
        save();
      }
    });
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

  private async generate(prompt: string, max: { get(): string; setError(m?: string): void }): Promise<void> {
    const p = state.playground;
    const maxTokens = Number(max.get() || '48');
    if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > 512) { max.setError('must be an integer from 1 to 512'); return; }
    max.setError(undefined);
    if (!p.runId) return;
    fill(this.output);
    p.output = '';
    this.statusLine.textContent = 'Generating…';
    this.generateBtn.disabled = true;
    this.stopBtn.disabled = false;
    try {
      const { genId } = await request('generate', { runId: p.runId, prompt, maxTokens, template: p.useTemplate });
      this.genId = genId;
    } catch (e) {
      this.statusLine.textContent = '';
      this.generateBtn.disabled = false;
      this.stopBtn.disabled = true;
      this.host.showError(e);
    }
  }

  private async stop(): Promise<void> {
    if (this.genId) await request('cancelGenerate', { genId: this.genId }).catch(e => this.host.showError(e));
  }
}

// Stubs at the dashboard's edges, shared by the controller unit tests and the browser tests: a training
// service whose events the test drives (runs, events.jsonl, run ends), the host's native dialogs, and a
// streaming engine. No playwright import here, so unit tests stay light.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TrainingConfig } from '../../src/protocol/config';
import type { EvaluationEvent, TrainerEvent } from '../../src/protocol/events';
import type { DashboardHost, PlaygroundEngine } from '../../src/dashboard/ports';
import type { EnvironmentStatus } from '../../src/protocol/messages';
import type {
  CheckReport, Disposable, EventListener, ParamsResult, PreviewResult, RunEnd, RunInfo, RunSummary, TrainingServiceApi,
} from '../../src/training/types';

export const ROOT = path.resolve(__dirname, '../..');


const TINY = { vocab: 2048, hidden: 64, layers: 2 };

/** Parameter counts of a tiny BLOOM by the usual formulas (the real numbers come from `bloom_peft params`). */
export function tinyParams(config: TrainingConfig): ParamsResult {
  const { vocab: V, hidden: h, layers: L } = TINY;
  const layer = 2 * h + (3 * h * h + 3 * h) + (h * h + h) + 2 * h + (4 * h * h + 4 * h) + (4 * h * h + h);
  const base = V * h + 2 * h + L * layer + 2 * h;
  const m = config.method as Record<string, unknown> & { name: string };
  const n = (m.num_virtual_tokens as number | undefined) ?? 20;
  let trainable: number;
  switch (m.name) {
    case 'full': trainable = base; break;
    case 'bitfit': trainable = 2 * h + L * (2 * h + 3 * h + h + 2 * h + 4 * h + h) + 2 * h; break;
    case 'lora': trainable = L * ((m.r as number | undefined) ?? 8) * (h + 3 * h); break;
    case 'ia3': trainable = L * (2 * h + 4 * h); break;
    case 'prompt_tuning': trainable = n * h; break;
    case 'p_tuning': { const e = (m.encoder_hidden_size as number | undefined) ?? h; trainable = n * h + h * e + e + e * e + e + e * h + h; break; }
    case 'prefix_tuning': trainable = n * L * 2 * h; break;
    default: trainable = 0;
  }
  const total = m.name === 'full' || m.name === 'bitfit' ? base : base + trainable;
  return { trainable, total, percent: (trainable / total) * 100 };
}

class Emitter<T extends unknown[]> {
  private readonly ls = new Set<(...a: T) => void>();
  on(l: (...a: T) => void): Disposable { this.ls.add(l); return { dispose: () => this.ls.delete(l) }; }
  fire(...a: T): void { for (const l of [...this.ls]) l(...a); }
}

export class FakeTraining implements TrainingServiceApi {
  readonly runs = new Map<string, RunSummary>();
  readonly events = new Map<string, TrainerEvent[]>();
  readonly paramsCalls: TrainingConfig[] = [];
  readonly started: TrainingConfig[] = [];
  readonly deleted: string[] = [];
  private active: RunInfo | undefined;
  private seq = 0;
  private readonly ev = new Emitter<[string, TrainerEvent]>();
  private readonly changed = new Emitter<[]>();
  private readonly ended = new Emitter<[RunEnd]>();
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bloom-dash-'));

  onEvent(l: EventListener): Disposable { return this.ev.on(l); }
  onRunsChanged(l: () => void): Disposable { return this.changed.on(l); }
  onRunEnded(l: (end: RunEnd) => void): Disposable { return this.ended.on(l); }
  current(): RunInfo | undefined { return this.active; }

  async start(config: TrainingConfig): Promise<RunInfo> {
    if (this.active) throw Object.assign(new Error(`run ${this.active.id} is in progress`), { hint: 'Stop it first.' });
    this.started.push(config);
    const id = `${config.run_name ?? config.method.name}-${++this.seq}`;
    const dir = path.join(this.dir, id);
    const now = Date.now();
    this.runs.set(id, { id, dir, name: config.run_name ?? id, method: config.method.name, status: 'running', startedAt: now, step: 0, totalSteps: 40, trainablePercent: tinyParams(config).percent, owned: true, resumable: false });
    this.events.set(id, []);
    this.active = { id, dir, config, pid: 1, state: 'running', owned: true, resumed: false, startedAt: now, step: 0, totalSteps: 40 };
    const p = tinyParams(config);
    this.emit(id, { v: 1, type: 'started', time: now / 1000, config, device: 'cpu', world_size: 1, trainable_params: p.trainable, total_params: p.total, total_steps: 40, train_rows: 360, eval_rows: 40 });
    this.changed.fire();
    return this.active;
  }

  /** Appends an event to the run (as events.jsonl would) and broadcasts it. */
  emit(runId: string, event: TrainerEvent): void {
    this.events.get(runId)!.push(event);
    const s = this.runs.get(runId)!;
    if (event.type === 'progress') { s.step = event.step; s.lastLoss = event.loss; s.tokensPerS = event.tokens_per_s; }
    if (event.type === 'eval') s.finalEvalLoss = event.eval_loss;
    if (event.type === 'evaluation') s.evaluation = event;
    this.ev.fire(runId, event);
  }

  /** Ends the active run the way the trainer does: done event, adapter + export folders, run-ended. */
  finish(status: 'completed' | 'stopped' = 'completed'): RunSummary {
    const info = this.active!;
    const s = this.runs.get(info.id)!;
    const adapterDir = path.join(info.dir, 'adapter');
    const exportDir = status === 'completed' ? path.join(info.dir, 'export') : undefined;
    this.emit(info.id, { v: 1, type: 'done', time: Date.now() / 1000, status, step: s.step, adapter_dir: adapterDir, export_dir: exportDir ?? null, metrics: { train_loss: s.lastLoss ?? null, eval_loss: s.finalEvalLoss ?? null, runtime_s: 12.5, tokens_per_s: s.tokensPerS ?? null } });
    Object.assign(s, { status, endedAt: Date.now(), adapterDir, exportDir, finalTrainLoss: s.lastLoss, resumable: status !== 'completed' });
    this.active = undefined;
    this.ended.fire({ runId: info.id, dir: info.dir, outcome: status, exitCode: 0, signal: null, stderrTail: '', message: status, killedAfterDeadline: false, adapterDir, exportDir });
    this.changed.fire();
    return s;
  }

  async stop(): Promise<void> { if (this.active) this.finish('stopped'); }
  async resume(runId: string): Promise<RunInfo> {
    const s = this.runs.get(runId);
    if (!s || s.status === 'running' || s.status === 'completed') throw new Error(`run ${runId} cannot be resumed`);
    Object.assign(s, { status: 'running', endedAt: undefined });
    const config = this.started.find(c => (c.run_name ?? c.method.name) === s.name) ?? this.started[0];
    this.active = { id: runId, dir: s.dir, config, pid: 2, state: 'running', owned: true, resumed: true, startedAt: Date.now(), step: s.step, totalSteps: s.totalSteps };
    const p = tinyParams(config);
    this.emit(runId, { v: 1, type: 'started', time: Date.now() / 1000, config, device: 'cpu', world_size: 1, trainable_params: p.trainable, total_params: p.total, total_steps: s.totalSteps ?? 40, resumed_from_step: s.step });
    this.changed.fire();
    return this.active;
  }
  async listRuns(): Promise<RunSummary[]> { return [...this.runs.values()].sort((a, b) => (b.startedAt ?? 0) - (a.startedAt ?? 0)); }
  async readEvents(runId: string): Promise<TrainerEvent[]> { return [...(this.events.get(runId) ?? [])]; }
  async deleteRun(runId: string): Promise<void> { this.deleted.push(runId); this.runs.delete(runId); this.events.delete(runId); this.changed.fire(); }
  readonly exports: Array<{ runId: string; hf: boolean; quantize?: string }> = [];
  async exportRun(runId: string, opts: { hf?: boolean; quantize?: string } = {}): Promise<string> {
    const s = this.runs.get(runId)!;
    this.exports.push({ runId, hf: Boolean(opts.hf), ...(opts.quantize ? { quantize: opts.quantize } : {}) });
    if (opts.hf) return path.join(s.dir, 'hf'); // a Hugging Face checkpoint: the ONNX export is untouched
    s.exportDir = path.join(s.dir, 'export');
    this.changed.fire();
    return s.exportDir;
  }
  /** The next evaluateRun result's figures (default: 3 of 4 exact, the base model none). */
  evaluationFigures = { exact: 3, rouge_l: 0.9, base: { exact: 0, exact_match: 0, rouge_l: 0.2 } };
  async evaluateRun(runId: string): Promise<EvaluationEvent> {
    const s = this.runs.get(runId)!;
    const f = this.evaluationFigures;
    const verdict = f.exact === 0 ? 'no_exact_answers' : f.exact <= f.base.exact && f.rouge_l <= f.base.rouge_l ? 'not_better_than_base' : 'ok';
    const event: EvaluationEvent = {
      v: 1, type: 'evaluation', time: Date.now() / 1000, step: s.step, trigger: 'on_demand', rows: 4, max_new_tokens: 16,
      exact: f.exact, exact_match: f.exact / 4, rouge_l: f.rouge_l, base: f.base, verdict,
      message: `Answered ${f.exact} of 4 held-out rows exactly (ROUGE-L ${f.rouge_l.toFixed(2)}); the base model ${f.base.exact} of 4 (ROUGE-L ${f.base.rouge_l.toFixed(2)})`,
      samples: [{ prompt: 'Human: 把下面的词语用顿号连起来\n父亲 武汉\n\nAssistant: ', reference: '父亲、武汉', answer: f.exact ? '父亲、武汉' : '父亲', base_answer: '父亲', exact: f.exact > 0, rouge_l: f.exact ? 1 : 0.5 }],
    };
    this.emit(runId, event);
    this.changed.fire();
    return event;
  }
  /** When set, `params` fails with this message (an interpreter without torch, say). */
  paramsFailure: string | undefined;
  async params(config: TrainingConfig): Promise<ParamsResult> {
    this.paramsCalls.push(config);
    // as TrainingService's errors: a message and a hint
    if (this.paramsFailure) throw Object.assign(new Error(this.paramsFailure), { code: 'environment', hint: 'The trainer\'s packages are missing: run "Bloom PEFT: Set Up Training Environment".' });
    if (this.paramsHang) return new Promise<never>(() => undefined);
    return tinyParams(config);
  }
  /** When set, `params` never answers (a Python that hangs). */
  paramsHang = false;
  /** When set, `preview` fails with it (as the trainer's data errors: code, message, file and line). */
  previewFailure: { code: string; message: string; hint?: string; file?: string; line?: number } | undefined;
  async preview(config: TrainingConfig, rows = 3): Promise<PreviewResult> {
    const f = this.previewFailure;
    if (f) throw Object.assign(new Error(f.message), { code: f.code, hint: f.hint, location: f.file ? { file: f.file, line: f.line } : undefined });
    // the template applied to the real file's first rows; "tokens" approximated by words and symbols
    const all = fs.readFileSync(config.data.train_file!, 'utf8').split('\n').filter(Boolean);
    const evalRows = config.data.eval_file ? 0 : Math.round(all.length * (config.data.eval_split ?? 0.1));
    const lines = all.slice(0, rows);
    const t = { prompt: 'Human: {instruction}\n{input}', response_prefix: '\n\nAssistant: ', ...config.template };
    const count = (s: string) => (s.match(/\w+|[^\s\w]/g) ?? []).length;
    const shown = lines.map(l => {
      const r = JSON.parse(l) as Record<string, string>;
      const prompt = t.prompt.replace('{instruction}', r.instruction).replace('{input}', r.input).trim() + t.response_prefix;
      const text = prompt + r.output;
      return { text, prompt, response: r.output, tokens: count(text) + 1, prompt_tokens: count(prompt), truncated: false };
    });
    return { rows: shown, trainRows: all.length - evalRows, evalRows, warnings: [] };
  }
  async check(): Promise<CheckReport> {
    const packages = { torch: '2.13.0', transformers: '4.57.0', peft: '0.17.0', accelerate: '1.10.0', onnx: '1.19.0', onnxruntime: '1.23.0' };
    return {
      python: '3.12.3', python_executable: '/usr/bin/python3', platform: 'Linux', machine: 'x86_64', packages, ...packages,
      cuda: { available: false, version: null, devices: [] }, mps: { available: false }, device: 'cpu', problems: [], ok: true,
    };
  }
}

export class FakeHost implements DashboardHost {
  readonly store = new Map<string, unknown>();
  readonly revealed: string[] = [];
  readonly used: string[] = [];
  confirmAnswers: boolean[] = [];
  confirmations: string[] = [];
  constructor(readonly files: { file?: string; folder?: string } = {}) {}
  async pickFolder(): Promise<string | undefined> { return this.files.folder; }
  async pickFile(): Promise<string | undefined> { return this.files.file; }
  async confirm(message: string): Promise<boolean> { this.confirmations.push(message); return this.confirmAnswers.shift() ?? false; }
  async revealInOS(p: string): Promise<void> { this.revealed.push(p); }
  async useAdapter(runId: string): Promise<void> { this.used.push(runId); }
  completionsRunId(): string | null { return this.used.at(-1) ?? null; }
  /** the trainer's Python as the host reports it; setupEnvironment makes it ready */
  environmentReady = true;
  setups = 0;
  readonly opened: Array<{ path: string; line?: number }> = [];
  async environment(): Promise<EnvironmentStatus> { return { ready: this.environmentReady, python: '/usr/bin/python3', source: 'system' }; }
  async setupEnvironment(): Promise<void> { this.setups++; this.environmentReady = true; }
  async openFile(p: string, line?: number): Promise<void> { this.opened.push({ path: p, line }); }
  isTrusted(): boolean { return true; }
  state = {
    get: <T>(key: string): T | undefined => this.store.get(key) as T | undefined,
    update: async (key: string, value: unknown): Promise<void> => { this.store.set(key, value); },
  };
}

/** Streams a fixed reply word by word (the ONNX engine is the edge here). */
export const echoEngine: PlaygroundEngine = {
  async generate(_dir, prompt, o) {
    const words = `def reverse(s):\n    return s[::-1]  # for: ${prompt.slice(0, 20)}`.split(/(?<= )/);
    let text = '';
    for (const w of words.slice(0, o.maxTokens)) {
      if (o.signal?.aborted) return { text, finishReason: 'aborted' };
      await new Promise(r => setTimeout(r, 5));
      text += w;
      o.onToken?.(w);
    }
    return { text, finishReason: 'length' };
  },
};

/** A progress event as the trainer writes it. */
export function progress(step: number, total = 40, t0 = Date.now() / 1000): TrainerEvent {
  return {
    v: 1, type: 'progress', time: t0 + step, step, total_steps: total, epoch: step / 20, loss: 3.2 * Math.exp(-step / 15) + 0.4,
    lr: 2e-4 * Math.min(1, step / 4) * (1 - step / (total + 1)), grad_norm: 1.1, tokens_per_s: 1850 + step, samples_per_s: 24,
    gpu_mem_bytes: null, cpu_mem_bytes: 512 * 1024 * 1024, eta_s: (total - step) * 0.5, elapsed_s: step * 0.5,
  };
}

// The dashboard's host side, without vscode: validates every webview message, answers requests through the
// TrainingService and the host edges, forwards trainer events, keeps the "watched" run so a hidden or
// reloaded webview can re-attach (snapshot on 'ready' = run row + its events.jsonl), and runs the
// compare-methods queue (it lives here, not in the webview, so it survives hide/show and reloads).
import fs from 'node:fs';
import path from 'node:path';
import type { TrainingConfig } from '../protocol/config';
import { forParamsCount, validateConfig } from '../protocol/config';
import { StudioError } from '../protocol/errors';
import type { TrainerEvent } from '../protocol/events';
import type { PreviewAnswerRow } from '../protocol/generated/preview-answer';
import {
  parseWebviewMessage,
  type DashboardSnapshot, type HostError, type HostToWebview, type Picked, type PreviewRow,
  type RequestMethod, type RequestParams, type RequestResult, type RunRow, type WebviewRequest,
} from '../protocol/messages';
import { extensionRoot } from '../training/paths';
import { findPreset, presetConfig, PRESETS } from '../training/presets';
import type { Disposable, Logger, RunEnd, RunSummary, TrainingServiceApi } from '../training/types';
import { CompareQueue } from './compare';
import { datasetFields } from './dataset-fields';
import type { DashboardHost, PlaygroundEngine } from './ports';

const PICKS_KEY = 'bloomPeft.dashboard.picks';
const WATCHED_KEY = 'bloomPeft.dashboard.watchedRun';
const MAX_PICKS = 50;

/** A request that failed in a way the user can act on; becomes the response's error. */
export class DashboardError extends StudioError {
  constructor(message: string, hint?: string, readonly issues?: HostError['issues'], code = 'invalid_request') { super(code, message, hint); }
}

export function toRunRow(s: RunSummary): RunRow {
  return {
    id: s.id, name: s.name ?? s.id, method: s.method ?? '?', status: s.status, dir: s.dir,
    startedAt: s.startedAt ?? null, endedAt: s.endedAt ?? null,
    trainablePercent: s.trainablePercent ?? null,
    trainLoss: s.finalTrainLoss ?? s.lastLoss ?? null, evalLoss: s.finalEvalLoss ?? null,
    tokensPerS: s.tokensPerS ?? null, step: s.step, totalSteps: s.totalSteps ?? null,
    lastCheckpointStep: s.lastCheckpointStep ?? null,
    adapterDir: s.adapterDir ?? null, exportDir: s.exportDir ?? null,
    evaluation: s.evaluation ?? null,
  };
}

/** A trainer preview row (schemas/preview-answer.schema.json) as the dashboard shows it. */
export function toPreviewRow(row: PreviewAnswerRow): PreviewRow {
  return { text: row.text, prompt: row.prompt, tokens: row.tokens, promptTokens: row.prompt_tokens, truncated: row.truncated };
}

/** Counts, preview and the environment check answer within this, whatever happens on the Python side. */
export const ANSWER_DEADLINE_MS = 150_000;
type Post = (msg: HostToWebview) => void;
const HUB_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)?$/;

export class DashboardController implements Disposable {
  /** every open dashboard (the sidebar view, and the editor tab of "Open in Editor") */
  private readonly views = new Set<Post>();
  private readonly subscriptions: Disposable[] = [];
  private readonly generations = new Map<string, AbortController>();
  private readonly compare: CompareQueue;
  private runsTimer: ReturnType<typeof setTimeout> | undefined;
  private genSeq = 0;
  /** The form's config once it is valid: "Start PEFT Training" from the palette offers it. */
  draftConfig: TrainingConfig | undefined;

  constructor(
    private readonly training: TrainingServiceApi,
    private readonly host: DashboardHost,
    private readonly log: Logger,
    private readonly engine?: PlaygroundEngine,
    private readonly answerDeadlineMs = ANSWER_DEADLINE_MS,
  ) {
    this.compare = new CompareQueue(training, job => this.notify('compare', job), runId => this.watch(runId));
    this.subscriptions.push(
      training.onEvent((runId, event) => this.onTrainerEvent(runId, event)),
      training.onRunsChanged(() => this.scheduleRuns()),
      training.onRunEnded(end => this.onRunEnded(end)),
    );
  }

  /** Resend the whole snapshot (workspace trust granted, settings changed). */
  refresh(): void {
    void this.sendSnapshot();
  }

  /** The trainer's Python may have changed: the webview asks for counts and preview again (a failure shown
   *  before, e.g. torch missing from the interpreter used while settings were still loading, is retried). */
  environmentChanged(): void {
    this.notify('environment', {});
  }

  /** The adapter serving inline completions changed (completion service event). */
  completionsChanged(runId: string | null): void {
    this.notify('completions', { runId });
  }

  /** Connects a (new) webview: notifications go to every attached view until its disposable runs. */
  attach(post: Post): Disposable {
    this.views.add(post);
    return { dispose: () => { this.views.delete(post); } };
  }

  dispose(): void {
    for (const s of this.subscriptions.splice(0)) s.dispose();
    for (const g of this.generations.values()) g.abort();
    this.compare.dispose();
    clearTimeout(this.runsTimer);
    this.views.clear();
  }

  /**
   * Entry point for every message from a webview; `reply` is the view it came from (responses and its snapshot go
   * there only: two views number their requests independently). Never throws.
   */
  async handle(raw: unknown, reply: Post = msg => this.send(msg)): Promise<void> {
    const answer = (msg: HostToWebview) => { try { reply(msg); } catch (e) { this.log.warn(`dashboard: post failed: ${(e as Error).message}`); } };
    const parsed = parseWebviewMessage(raw);
    if (!parsed.ok) {
      this.log.warn(`dashboard: rejected a webview message: ${parsed.error}`);
      if (parsed.id !== undefined) answer({ kind: 'response', id: parsed.id, ok: false, error: { message: `Invalid request: ${parsed.error}` } });
      return;
    }
    const msg = parsed.message;
    if (msg.kind === 'notify') {
      if (msg.method === 'ready') await this.sendSnapshot(answer);
      else this.setDraft(msg.params.config);
      return;
    }
    try {
      const result = await this.dispatch(msg);
      answer({ kind: 'response', id: msg.id, ok: true, result });
    } catch (e) {
      answer({ kind: 'response', id: msg.id, ok: false, error: toHostError(e) });
    }
  }

  private dispatch(msg: WebviewRequest): Promise<unknown> {
    // one table keeps method -> handler typed end to end
    const handlers: { [M in RequestMethod]: (p: RequestParams<M>) => Promise<RequestResult<M>> } = {
      pickModelFolder: () => this.pick(() => this.host.pickFolder('Choose a BLOOM model folder (config.json + safetensors)')),
      pickDataset: p => this.pick(() => p.kind === 'folder'
        ? this.host.pickFolder(p.role === 'train' ? 'Choose a folder of code or text' : 'Choose an eval folder')
        : this.host.pickFile(p.role === 'train' ? 'Choose a training dataset' : 'Choose an eval dataset', { 'Datasets': ['jsonl', 'json', 'csv', 'txt'], 'All files': ['*'] })),
      // counts depend on model + method only: asked before a dataset is chosen (forParamsCount)
      params: async p => {
        this.requireTrust('Counting parameters');
        return this.deadline('Counting parameters', this.training.params(this.checkConfig(forParamsCount(p.config), { dataPaths: false })));
      },
      preview: async p => {
        this.requireTrust('The data preview');
        const r = await this.deadline('The preview', this.training.preview(this.checkConfig(p.config), p.rows ?? 3));
        return { ...r, rows: r.rows.map(toPreviewRow) };
      },
      start: async p => {
        this.requireTrust('Training');
        const info = await this.training.start(await this.uniqueName(this.checkConfig(p.config)));
        return this.watch(info.id);
      },
      stop: async () => { await this.training.stop(); return null; },
      resume: async p => {
        this.requireTrust('Training');
        await this.runById(p.runId);
        const info = await this.training.resume(p.runId);
        return this.watch(info.id);
      },
      listRuns: async () => (await this.training.listRuns()).map(toRunRow),
      readEvents: async p => { await this.runById(p.runId); return this.training.readEvents(p.runId); },
      useAdapter: async p => {
        this.requireTrust('Serving completions from this workspace\'s runs');
        const run = await this.runById(p.runId);
        if (!run.exportDir) throw new DashboardError(`Run "${run.name ?? run.id}" has no ONNX export yet.`, 'Export it first (Export button), then use it for completions.');
        await this.host.useAdapter(run.id, run.dir);
        this.notify('completions', { runId: run.id });
        return null;
      },
      exportRun: async p => {
        this.requireTrust('Export');
        await this.runById(p.runId);
        const dir = await this.training.exportRun(p.runId, { hf: p.format === 'hf', quantize: p.quantize });
        this.scheduleRuns();
        return { dir };
      },
      evaluateRun: async p => {
        this.requireTrust('Evaluation');
        await this.runById(p.runId);
        const evaluation = await this.training.evaluateRun(p.runId);
        this.scheduleRuns();
        return evaluation;
      },
      presetConfig: async p => {
        const preset = findPreset(p.id);
        if (!preset) throw new DashboardError(`There is no preset "${p.id}".`, `Presets: ${PRESETS.map(x => x.label).join(', ')}.`);
        const method = p.method && p.method in preset.methods ? p.method : undefined;
        const config = presetConfig(preset, method, { extension: extensionRoot(), workspace: '' });
        if (preset.data_root === 'workspace') {
          delete config.data.train_file;
          delete config.data.eval_file;
        }
        // the preset's shipped files count as picked: they come from the extension, not from the webview
        for (const file of [config.data.train_file, config.data.eval_file]) if (file) await this.remember(file);
        return config;
      },
      openFolder: async p => {
        const run = await this.runById(p.runId);
        const hfDir = path.join(run.dir, 'hf');
        const dir = p.which === 'run' ? run.dir : p.which === 'adapter' ? run.adapterDir : p.which === 'hf' ? (fs.existsSync(hfDir) ? hfDir : null) : run.exportDir;
        if (!dir) throw new DashboardError(`Run "${run.name ?? run.id}" has no ${p.which} folder.`);
        await this.host.revealInOS(dir);
        return null;
      },
      deleteRun: async p => {
        const run = await this.runById(p.runId);
        if (run.status === 'running') throw new DashboardError('A running run cannot be deleted.', 'Stop it first.');
        const ok = await this.host.confirm(`Delete run "${run.name ?? run.id}"?`, `This removes ${run.dir} with its checkpoints, adapter and export.`, 'Delete');
        if (!ok) return false;
        await this.training.deleteRun(run.id);
        if (this.host.state.get<string>(WATCHED_KEY) === run.id) await this.host.state.update(WATCHED_KEY, undefined);
        this.scheduleRuns();
        return true;
      },
      compareMethods: async p => {
        this.requireTrust('Training');
        return this.compare.start(this.checkConfig(p.config), p.methods);
      },
      cancelCompare: async () => { await this.compare.cancel(); return null; },
      generate: async p => { this.requireTrust('The playground'); return this.generate(p.runId, p.prompt, { maxTokens: p.maxTokens ?? 64, temperature: p.temperature ?? 0, topP: p.topP, seed: p.seed, template: p.template ?? false, history: p.history }); },
      cancelGenerate: async p => { this.generations.get(p.genId)?.abort(); return null; },
      environment: async () => this.deadline('Checking the Python environment', this.host.environment()),
      setupEnvironment: async () => {
        this.requireTrust('Setting up the training environment');
        await this.host.setupEnvironment();
        this.environmentChanged(); // counts and preview are asked again, in every open view
        return this.host.environment();
      },
      openFile: async p => { this.requirePicked(p.path); await this.host.openFile(p.path, p.line); return null; },
      datasetFields: async p => {
        this.requirePicked(p.path);
        try { return datasetFields(p.path); } catch (e) { throw new DashboardError(`cannot read ${p.path}: ${(e as Error).message}`); }
      },
    };
    return (handlers[msg.method] as (p: unknown) => Promise<unknown>)(msg.params);
  }

  // ---- snapshot / re-attach

  async snapshot(): Promise<DashboardSnapshot> {
    const runs = (await this.training.listRuns()).map(toRunRow);
    const live = this.training.current();
    const watchedId = live?.id ?? this.host.state.get<string>(WATCHED_KEY);
    const current = runs.find(r => r.id === watchedId);
    const currentEvents = current ? await this.training.readEvents(current.id).catch(() => [] as TrainerEvent[]) : [];
    return {
      current, currentEvents, runs, compare: this.compare.job, completionsRunId: this.host.completionsRunId(),
      trusted: this.host.isTrusted(), picks: this.picks(),
    };
  }

  /** The snapshot to one view (`to`), or to all (a refresh after trust was granted). */
  private async sendSnapshot(to: Post = msg => this.send(msg)): Promise<void> {
    let params: DashboardSnapshot;
    try {
      params = await this.snapshot();
    } catch (e) {
      this.log.error(`dashboard: snapshot failed: ${(e as Error).message}`);
      params = { currentEvents: [], runs: [], trusted: this.host.isTrusted(), picks: this.picks(), completionsRunId: null };
    }
    to({ kind: 'notify', method: 'init', params });
  }

  /** Makes `runId` the run the dashboard shows, and tells the webview (row + events so far). */
  private async watch(runId: string): Promise<RunRow> {
    await this.host.state.update(WATCHED_KEY, runId);
    const runs = (await this.training.listRuns()).map(toRunRow);
    const run = runs.find(r => r.id === runId);
    if (!run) throw new DashboardError(`Run ${runId} is not in the runs folder.`);
    const events = await this.training.readEvents(runId).catch(() => [] as TrainerEvent[]);
    this.notify('current', { run, events });
    this.notify('runs', { runs });
    return run;
  }

  // ---- events

  private onTrainerEvent(runId: string, event: TrainerEvent): void {
    this.notify('event', { runId, event });
  }

  private onRunEnded(end: RunEnd): void {
    this.scheduleRuns();
    this.compare.onRunEnded(end);
  }

  private scheduleRuns(): void {
    clearTimeout(this.runsTimer);
    this.runsTimer = setTimeout(() => {
      // A run started or resumed elsewhere (palette, CLI, another window) is shown like one started from the form;
      // otherwise the Run tab keeps showing the previous run while this one trains.
      const live = this.training.current();
      if (live && this.host.state.get<string>(WATCHED_KEY) !== live.id) {
        void this.watch(live.id).catch(e => this.log.warn(`dashboard: cannot show run ${live.id}: ${(e as Error).message}`));
        return; // watch() sends the runs too
      }
      this.training.listRuns().then(runs => this.notify('runs', { runs: runs.map(toRunRow) }), e => this.log.warn(`dashboard: listing runs failed: ${(e as Error).message}`));
    }, 150);
  }

  // ---- config paths: only what a host picker returned may reach the trainer

  private picks(): Picked[] { return this.host.state.get<Picked[]>(PICKS_KEY) ?? []; }

  private async pick(open: () => Promise<string | undefined>): Promise<Picked | null> {
    const path = await open();
    return path ? this.remember(path) : null;
  }

  private async remember(path: string): Promise<Picked> {
    const label = path.split(/[\\/]/).filter(Boolean).pop() ?? path;
    const picked = { path, label };
    await this.host.state.update(PICKS_KEY, [picked, ...this.picks().filter(p => p.path !== path)].slice(0, MAX_PICKS));
    return picked;
  }

  /** Schema validation plus the path rule; returns the config to hand to the TrainingService. */
  checkConfig(config: TrainingConfig, o: { dataPaths?: boolean } = {}): TrainingConfig {
    const issues = validateConfig(config);
    if (issues.length) throw new DashboardError(`The configuration is invalid: ${issues[0].message}`, 'Fix the highlighted fields.', issues);
    const picked = new Set(this.picks().map(p => p.path));
    const name = config.model.name_or_path;
    if (name !== 'embedded' && !picked.has(name) && (!HUB_ID.test(name) || name.split('/').some(s => s.startsWith('.')))) {
      throw new DashboardError(`model "${name}" is neither a hub id nor a folder chosen with the picker.`, 'Use "Choose folder…" for a local model.', [{ path: '/model/name_or_path', message: 'choose the folder with the picker' }]);
    }
    const hub = config.data.hub_id;
    if (o.dataPaths !== false && hub !== undefined && !picked.has(hub) && (!HUB_ID.test(hub) || hub.split('/').some(s => s.startsWith('.')))) {
      // the trainer reads an existing path as a local dataset folder: only a picked folder may be one
      throw new DashboardError(`data.hub_id "${hub}" is neither a hub dataset id (org/name) nor a folder chosen with the picker.`, 'Give a hub id such as tatsu-lab/alpaca, or pick a local file with "Choose…".', [{ path: '/data/hub_id', message: 'a hub id (org/name), not a path' }]);
    }
    for (const key of o.dataPaths === false ? [] : ['train_file', 'eval_file'] as const) {
      const value = config.data[key];
      if (value !== undefined && !picked.has(value)) {
        throw new DashboardError(`data.${key} "${value}" was not chosen with the file picker.`, 'Use the "Choose…" button next to the field.', [{ path: `/data/${key}`, message: 'choose it with the picker' }]);
      }
    }
    return config;
  }

  /** A run name already in the history gets a suffix (name-2, name-3...): History never shows two runs alike. */
  private async uniqueName(config: TrainingConfig): Promise<TrainingConfig> {
    const name = config.run_name;
    if (!name) return config;
    const taken = new Set((await this.training.listRuns()).map(r => r.name ?? r.id));
    if (!taken.has(name)) return config;
    let i = 2;
    while (taken.has(`${name}-${i}`)) i++;
    return { ...config, run_name: `${name}-${i}` };
  }

  /** Only files the user picked may be opened or read on the webview's behalf. */
  private requirePicked(path: string): void {
    if (!this.picks().some(p => p.path === path)) throw new DashboardError(`"${path}" was not chosen with a picker.`);
  }

  /**
   * A Python answer that never comes (an interpreter lookup or a process that hangs) must not leave the view
   * saying "Counting parameters…" forever: after the deadline the request fails with a message that says so.
   */
  private deadline<T>(what: string, work: Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DashboardError(`${what} got no answer from the trainer's Python within ${Math.round(this.answerDeadlineMs / 1000)} s.`,
        'The "Bloom PEFT Trainer" log shows what it was doing; change a field to ask again.', undefined, 'timeout')), this.answerDeadlineMs);
    });
    return Promise.race([work, late]).finally(() => clearTimeout(timer));
  }

  private setDraft(config: TrainingConfig): void {
    try { this.draftConfig = this.checkConfig(config); } catch { /* an unfinished form is not a draft */ }
  }

  /** Everything that runs Python or loads a model (ONNX, tokenizer) from the workspace waits for workspace trust. */
  private requireTrust(what: string): void {
    if (!this.host.isTrusted()) throw new DashboardError(`${what} is disabled in an untrusted workspace: it runs Python or loads a model from this workspace.`, 'Trust the workspace (Manage Workspace Trust) to use it.');
  }

  private async runById(runId: string): Promise<RunSummary> {
    const run = (await this.training.listRuns()).find(r => r.id === runId);
    if (!run) throw new DashboardError(`No run "${runId}" in the runs folder.`, 'Refresh the history; it may have been deleted.');
    return run;
  }

  // ---- playground

  private async generate(runId: string, prompt: string, opts: Omit<Parameters<PlaygroundEngine['generate']>[2], 'signal' | 'onToken'>): Promise<{ genId: string }> {
    if (!this.engine) throw new DashboardError('The ONNX completion engine is not available in this window.', 'See the "Bloom PEFT Trainer" log.');
    const run = await this.runById(runId);
    if (!run.exportDir) throw new DashboardError(`Run "${run.name ?? run.id}" has no ONNX export.`, 'Export it first (Adapters → Export).');
    const genId = `g${++this.genSeq}`;
    const abort = new AbortController();
    this.generations.set(genId, abort);
    const engine = this.engine;
    // answer first so the webview knows the id before the first token arrives
    setTimeout(() => {
      engine.generate(run.exportDir!, prompt, { ...opts, signal: abort.signal, onToken: delta => this.notify('generation', { genId, delta }) })
        .then(() => this.notify('generation', { genId, done: true }))
        .catch(e => this.notify('generation', { genId, done: true, error: (e as Error).message }))
        .finally(() => this.generations.delete(genId));
    }, 0);
    return { genId };
  }

  // ---- posting

  private notify<M extends Extract<HostToWebview, { kind: 'notify' }>['method']>(method: M, params: Extract<HostToWebview, { method: M }>['params']): void {
    this.send({ kind: 'notify', method, params } as HostToWebview);
  }

  private send(msg: HostToWebview): void {
    for (const post of [...this.views]) {
      try { post(msg); } catch (e) { this.log.warn(`dashboard: post failed: ${(e as Error).message}`); }
    }
  }
}

export function toHostError(e: unknown): HostError {
  if (e instanceof DashboardError) return { message: e.message, hint: e.hint, issues: e.issues, code: e.code };
  const err = e as { message?: string; hint?: string; issues?: HostError['issues']; code?: unknown; location?: { file?: unknown; line?: unknown } };
  const file = typeof err?.location?.file === 'string' ? err.location.file : undefined;
  const line = typeof err?.location?.line === 'number' ? err.location.line : undefined;
  return {
    message: err?.message ?? String(e), hint: err?.hint, issues: err?.issues?.length ? err.issues : undefined,
    ...(typeof err?.code === 'string' ? { code: err.code } : {}), ...(file ? { file, line } : {}),
  };
}


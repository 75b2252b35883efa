// CompletionService: which adapter serves completions, its engine's lifecycle (lazy load, reload on switch,
// recycle on re-export), the error policy (report once, then stay quiet until something changes), and the
// playground's generate(). No vscode import: register.ts wires it to settings, commands and the status bar.
import fs from 'node:fs';
import path from 'node:path';
import type { RunSummary } from '../training/types';
import { CompletionPipeline } from './pipeline';
import type { ChatTurn } from '../protocol/messages';
import { eosTokenText, renderChat } from './chat';
import type { AdapterInfo, Completion, CompletionRequest, CompletionSettings, GenerateOptions, GenerateResult, Generator, PromptTemplate } from './types';

/** The engine as this service uses it; CompletionEngine (src/inference) fits it structurally. */
export interface EngineLike extends Generator {
  readonly manifest: { template: PromptTemplate | null; instruction_tuned: boolean; method?: string; base_model?: string; eos_token_id?: number | null };
  readonly exportDir: string;
  /** Switches to another export by recycling the worker (no window reload, no request lost). */
  reload(exportDir: string): Promise<void>;
  dispose(): Promise<void>;
}
export type EngineLoader = (exportDir: string) => Promise<EngineLike>;

/** Where runs come from (the TrainingService fits it). */
export interface RunSource {
  listRuns(): Promise<RunSummary[]>;
  onRunsChanged?(listener: () => void): { dispose(): void };
}

export interface ServiceSettings extends CompletionSettings {
  /** bloomPeft.completions.adapter: a run dir, an export dir, a run id, or '' = the newest run with an export. */
  adapter: string;
}

export interface ActiveAdapter {
  exportDir: string;
  runId?: string;
  runDir?: string;
  /** For the status bar and pickers: run name, else the folder name. */
  label: string;
  method?: string;
  /** Chosen automatically (setting empty): the newest run with an export. */
  auto: boolean;
}

export type CompletionState = 'disabled' | 'no-adapter' | 'loading' | 'ready' | 'error';

/** Something the user should hear about once, with the actions that can fix it. */
export interface CompletionProblem {
  code: string;
  message: string;
  hint?: string;
  actions: Array<'Export Adapter' | 'Choose Adapter' | 'Reload Adapter' | 'Show Log'>;
  /** The run to export, for "Export Adapter". */
  runId?: string;
}

export interface CompletionStatus {
  state: CompletionState;
  adapter?: ActiveAdapter;
  problem?: CompletionProblem;
  lastLatencyMs?: number;
  lastEngineMs?: number;
}

export interface CompletionServiceDeps {
  loadEngine: EngineLoader;
  settings: () => ServiceSettings;
  runs?: RunSource;
  /** Relative adapter paths are resolved against this (the first workspace folder). */
  baseDir?: string;
  log?: { info(m: string): void; warn(m: string): void; error(m: string): void };
  /** Pipeline prompt budget in tokens. */
  tokenBudget?: number;
  /** Workspace trust (default: trusted). Untrusted, an empty adapter setting follows no run: the workspace's runs
   *  folder may come from a cloned repository, and its ONNX model and tokenizer would load into native code. */
  trusted?: () => boolean;
}

type Listener<T> = (value: T) => void;

export class CompletionService {
  readonly pipeline: CompletionPipeline;
  private engine: EngineLike | undefined;
  private adapter: ActiveAdapter | undefined;
  private adapterInfo: AdapterInfo | undefined;
  private state: CompletionState = 'no-adapter';
  private problem: CompletionProblem | undefined;
  /** The load in progress (lazy or explicit); requests wait for it. */
  private loading: Promise<void> | undefined;
  /** Bumped by every change of target; a load that finishes for an old target is discarded. */
  private epoch = 0;
  private manifestMtime = 0;
  private playground: { engine: EngineLike; dir: string } | undefined;
  private disposed = false;
  /** The settings last acted on; a configuration event that changes nothing (a late duplicate) is ignored. */
  private lastSettings: ServiceSettings;
  private readonly changeListeners = new Set<Listener<CompletionStatus>>();
  private readonly problemListeners = new Set<Listener<CompletionProblem>>();
  private readonly runsSub: { dispose(): void } | undefined;

  constructor(private readonly deps: CompletionServiceDeps) {
    this.pipeline = new CompletionPipeline({
      getGenerator: () => this.ensureEngine(),
      settings: () => this.deps.settings(),
      onError: err => this.fail(engineProblem(err, this.adapter), err),
      tokenBudget: deps.tokenBudget,
    });
    const s = deps.settings();
    this.state = s.enabled ? 'no-adapter' : 'disabled';
    this.lastSettings = { ...s };
    this.runsSub = deps.runs?.onRunsChanged?.(() => void this.runsChanged());
  }

  // ---- what the editor, the status bar and the dashboard read

  get activeAdapter(): ActiveAdapter | undefined {
    return this.adapter;
  }

  status(): CompletionStatus {
    return { state: this.state, adapter: this.adapter, problem: this.problem, lastLatencyMs: this.pipeline.stats.lastLatencyMs, lastEngineMs: this.pipeline.stats.lastEngineMs };
  }

  onDidChange(listener: Listener<CompletionStatus>): { dispose(): void } {
    this.changeListeners.add(listener);
    return { dispose: () => this.changeListeners.delete(listener) };
  }

  /** Fired once per failure (not per request): the UI shows it with its actions. */
  onProblem(listener: Listener<CompletionProblem>): { dispose(): void } {
    this.problemListeners.add(listener);
    return { dispose: () => this.problemListeners.delete(listener) };
  }

  /** One inline completion request through the pipeline. */
  async complete(req: CompletionRequest, signal?: AbortSignal): Promise<Completion | undefined> {
    const c = await this.pipeline.complete(req, signal);
    if (c) this.emit();
    return c;
  }

  // ---- changes

  /**
   * Serve completions from this adapter: a run dir, an export dir or a run id (undefined: follow the setting).
   * Clears a reported problem and loads at once, so the status bar shows loading → ready.
   */
  async useAdapter(target?: string, force = false): Promise<ActiveAdapter | undefined> {
    const wanted = target ?? this.deps.settings().adapter;
    this.lastSettings = { ...this.deps.settings() };
    if (!force && this.deps.settings().enabled && (this.state === 'loading' || this.state === 'ready') && this.adapter) {
      // Already serving (or loading) this export: a command and the settings event may both ask for it.
      const again = await this.resolve(wanted, false);
      if (again && samePath(again.exportDir, this.adapter.exportDir) && mtime(path.join(again.exportDir, 'manifest.json')) === this.manifestMtimeSeen(again.exportDir)) {
        if (this.loading) await this.loading;
        return this.adapter;
      }
    }
    this.epoch++;
    this.problem = undefined;
    this.state = this.deps.settings().enabled ? 'no-adapter' : 'disabled';
    this.pipeline.reset();
    const resolved = await this.resolve(wanted);
    if (!resolved) {
      if ((this.state as CompletionState) !== 'error') {
        this.adapter = undefined;
        this.setState(this.deps.settings().enabled ? 'no-adapter' : 'disabled');
      }
      return undefined;
    }
    this.adapter = resolved;
    this.adapterInfo = undefined;
    if (!this.deps.settings().enabled) {
      this.setState('disabled');
      return resolved;
    }
    await this.load(this.epoch, force);
    return this.adapter;
  }

  /** Resolves the configured adapter for display (status bar) without loading it or reporting problems. */
  async refresh(): Promise<void> {
    const s = this.deps.settings();
    if (!s.enabled || this.state !== 'no-adapter') return;
    const r = await this.resolve(s.adapter, false);
    if (r && this.state === 'no-adapter' && !this.adapter) {
      this.adapter = r;
      this.emit();
    }
  }

  /**
   * Settings changed. Turning off stops everything; a new adapter setting (or any change after a problem) starts
   * over; other changes (tokens, mode, temperature...) only drop cached completions.
   */
  async settingsChanged(opts: { bookkeepingOnly?: boolean } = {}): Promise<void> {
    const s = this.deps.settings();
    const prev = this.lastSettings;
    if (JSON.stringify(prev) === JSON.stringify(s)) return;
    this.lastSettings = { ...s };
    // The caller applies the change itself (a command that writes the setting, then calls useAdapter).
    if (opts.bookkeepingOnly) return this.pipeline.reset();
    if (!s.enabled) {
      this.epoch++;
      this.pipeline.reset();
      this.problem = undefined;
      this.setState('disabled');
      return;
    }
    if (this.state === 'error' || this.state === 'disabled' || prev.adapter !== s.adapter || !prev.enabled) {
      await this.useAdapter();
      return;
    }
    this.pipeline.reset();
  }

  // ---- playground (dashboard)

  /**
   * Generates for the dashboard's playground with a run's export (default: the active adapter). With
   * `instruction`, the prompt is wrapped in the adapter's training template first, after the chat's earlier turns
   * (`history`, each in the template with its answer and EOS: chat.ts).
   */
  async generate(
    prompt: string,
    adapterRunDir?: string,
    onToken?: (text: string) => void,
    signal?: AbortSignal,
    opts: Partial<Pick<GenerateOptions, 'maxTokens' | 'temperature' | 'topP' | 'stop' | 'seed'>> & { instruction?: boolean; history?: readonly ChatTurn[] } = {},
  ): Promise<GenerateResult> {
    let engine: EngineLike;
    const dir = adapterRunDir ? findExportDir(this.absolute(adapterRunDir)) : this.adapter?.exportDir;
    if (!dir) throw new Error(adapterRunDir ? `${adapterRunDir} has no ONNX export (export/manifest.json). Export the run first.` : 'No adapter is selected for completions. Choose one first.');
    if (this.engine && this.state === 'ready' && samePath(this.engine.exportDir, dir)) engine = this.engine;
    else engine = await this.playgroundEngine(dir);
    const template = engine.manifest.template;
    const history = opts.history ?? [];
    const eos = history.length ? eosTokenText(readJson(path.join(dir, 'tokenizer.json')), engine.manifest.eos_token_id) : '';
    const text = opts.instruction && template ? renderChat(template, history, prompt, eos) : prompt;
    const { instruction: _ignored, history: _history, ...gen } = opts;
    return engine.generate(text, { maxTokens: 64, temperature: 0, ...gen, onToken, signal });
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    this.epoch++;
    this.runsSub?.dispose();
    this.pipeline.reset();
    this.changeListeners.clear();
    this.problemListeners.clear();
    const engines = [this.engine, this.playground?.engine];
    this.engine = undefined;
    this.playground = undefined;
    await Promise.all(engines.map(e => e?.dispose().catch(() => {})));
  }

  // ---- internals

  /** The pipeline's generator: loads lazily; undefined (quietly) while disabled, without adapter or after a problem. */
  private async ensureEngine(): Promise<{ generator: Generator; adapter: AdapterInfo } | undefined> {
    const quiet = (): boolean => this.disposed || this.state === 'error' || this.state === 'disabled';
    if (quiet()) return undefined;
    if (this.loading) await this.loading;
    if (!this.adapterInfo && !quiet()) {
      if (!this.adapter) {
        const resolved = await this.resolve(this.deps.settings().adapter);
        if (!resolved || quiet()) return undefined;
        this.adapter = resolved;
      }
      await (this.loading ?? this.load(this.epoch));
    }
    if (this.state !== 'ready' || !this.engine || !this.adapterInfo) return undefined;
    return { generator: this.engine, adapter: this.adapterInfo };
  }

  private load(epoch: number, force = false): Promise<void> {
    // Loads run one after the other (two first loads at once would make two engines); a superseded one is skipped.
    const prev = this.loading ?? Promise.resolve();
    const run = prev.then(async () => {
      if (epoch !== this.epoch || this.disposed) return;
      const target = this.adapter;
      if (!target) return;
      this.setState('loading');
      const t0 = performance.now();
      try {
        const same = this.engine && samePath(this.engine.exportDir, target.exportDir) && mtime(path.join(target.exportDir, 'manifest.json')) === this.manifestMtime;
        if (this.engine) {
          if (force || !same) await this.engine.reload(target.exportDir); // recycles the worker
        } else {
          const engine = await this.deps.loadEngine(target.exportDir);
          if (this.disposed) return void (await engine.dispose());
          this.engine = engine;
        }
      } catch (err) {
        if (epoch === this.epoch) this.fail(loadProblem(err, target), err);
        return;
      }
      if (epoch !== this.epoch) return; // a newer choice is on its way
      this.manifestMtime = mtime(path.join(target.exportDir, 'manifest.json'));
      const m = this.engine!.manifest;
      this.adapterInfo = { key: `${target.exportDir}@${this.manifestMtime}`, template: m.template, instructionTuned: m.instruction_tuned };
      this.deps.log?.info(`completions: ${target.label} (${target.exportDir}) ready in ${Math.round(performance.now() - t0)} ms`);
      this.setState('ready');
    });
    const tracked = run.finally(() => {
      if (this.loading === tracked) this.loading = undefined;
    });
    this.loading = tracked;
    return tracked;
  }

  /** The manifest mtime the loaded engine was made from; while loading, the current one (it is being loaded). */
  private manifestMtimeSeen(exportDir: string): number {
    return this.state === 'loading' ? mtime(path.join(exportDir, 'manifest.json')) : this.manifestMtime;
  }

  /** Runs changed: a re-export of the active adapter reloads it; an export that fixes the problem clears it. */
  private async runsChanged(): Promise<void> {
    if (this.disposed || this.state === 'disabled') return;
    if (this.state === 'error' && this.problem?.code === 'EXPORT_MISSING') {
      const r = await this.resolve(this.deps.settings().adapter, false);
      if (r) await this.useAdapter();
      return;
    }
    if (this.state === 'error') return;
    const s = this.deps.settings();
    if (this.adapter?.auto || !s.adapter) {
      const r = await this.resolve(s.adapter, false);
      if (r && (!this.adapter || !samePath(r.exportDir, this.adapter.exportDir))) {
        this.epoch++;
        this.pipeline.reset();
        this.adapter = r;
        this.adapterInfo = undefined; // next request (re)loads
        this.emit();
        return;
      }
    }
    if (this.adapter && this.state === 'ready' && mtime(path.join(this.adapter.exportDir, 'manifest.json')) !== this.manifestMtime) {
      this.deps.log?.info(`completions: ${this.adapter.exportDir} was exported again; reloading`);
      this.epoch++;
      this.pipeline.reset();
      await this.load(this.epoch, true);
    }
  }

  /** Setting/argument → export. Reports a missing export or an unknown run (once) unless quiet. */
  private async resolve(target: string, report = true): Promise<ActiveAdapter | undefined> {
    const runs = await this.listRuns();
    if (!target.trim()) {
      if (this.deps.trusted && !this.deps.trusted()) return undefined; // choose one explicitly (user settings)
      // Follow the newest finished run that has an export.
      const newest = runs
        .filter(r => r.exportDir && r.status !== 'running' && fs.existsSync(path.join(r.exportDir, 'manifest.json')))
        .sort((a, b) => (b.endedAt ?? b.startedAt ?? 0) - (a.endedAt ?? a.startedAt ?? 0))[0];
      return newest ? { ...fromRun(newest, newest.exportDir!), auto: true } : undefined;
    }
    const byId = runs.find(r => r.id === target.trim());
    const dir = byId ? byId.dir : this.absolute(target.trim());
    const run = byId ?? runs.find(r => samePath(r.dir, dir) || (r.exportDir !== undefined && samePath(r.exportDir, dir)));
    const exportDir = findExportDir(dir);
    if (exportDir) return run ? fromRun(run, exportDir) : { exportDir, label: path.basename(path.dirname(exportDir)) || exportDir, auto: false, runDir: path.dirname(exportDir) };
    if (report) {
      const known = run !== undefined || fs.existsSync(dir);
      this.adapter = run ? fromRun(run, path.join(run.dir, 'export')) : undefined;
      this.fail(known
        ? { code: 'EXPORT_MISSING', message: `${run ? `Run "${run.name ?? run.id}"` : dir} has no ONNX export, so it cannot serve completions.`, hint: 'Export it (Export Adapter to ONNX), or choose another adapter.', actions: run ? ['Export Adapter', 'Choose Adapter'] : ['Choose Adapter'], runId: run?.id }
        : { code: 'ADAPTER_NOT_FOUND', message: `The completion adapter "${target}" was not found (no such run or folder).`, hint: 'Choose an adapter from your runs.', actions: ['Choose Adapter'] });
    }
    return undefined;
  }

  private async listRuns(): Promise<RunSummary[]> {
    try {
      return (await this.deps.runs?.listRuns()) ?? [];
    } catch (err) {
      this.deps.log?.warn(`completions: cannot list runs: ${(err as Error).message}`);
      return [];
    }
  }

  private async playgroundEngine(dir: string): Promise<EngineLike> {
    if (this.playground && samePath(this.playground.dir, dir)) return this.playground.engine;
    if (this.playground) {
      await this.playground.engine.reload(dir);
      this.playground.dir = dir;
      return this.playground.engine;
    }
    const engine = await this.deps.loadEngine(dir);
    this.playground = { engine, dir };
    return engine;
  }

  /** Enters the error state and reports the problem once; completions stay off until a change. */
  private fail(problem: CompletionProblem, err?: unknown): void {
    if (this.state === 'error') return;
    this.epoch++;
    this.problem = problem;
    this.deps.log?.error(`completions: ${problem.message}${problem.hint ? ` (${problem.hint})` : ''}${err instanceof Error && err.stack ? `\n${err.stack}` : ''}`);
    this.setState('error');
    for (const l of this.problemListeners) l(problem);
  }

  private setState(state: CompletionState): void {
    this.state = state;
    this.emit();
  }

  private emit(): void {
    const s = this.status();
    for (const l of this.changeListeners) l(s);
  }

  private absolute(p: string): string {
    return path.isAbsolute(p) ? p : path.resolve(this.deps.baseDir ?? process.cwd(), p);
  }
}

/** A run dir (with export/) or an export dir itself; undefined when neither holds a manifest. */
export function findExportDir(dir: string): string | undefined {
  if (fs.existsSync(path.join(dir, 'manifest.json'))) return dir;
  if (fs.existsSync(path.join(dir, 'export', 'manifest.json'))) return path.join(dir, 'export');
  return undefined;
}

function fromRun(run: RunSummary, exportDir: string): ActiveAdapter {
  return { exportDir, runId: run.id, runDir: run.dir, label: run.name ?? run.id, method: run.method, auto: false };
}

function samePath(a: string, b: string): boolean {
  return path.resolve(a) === path.resolve(b);
}

function mtime(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function errInfo(err: unknown): { code?: string; message: string; hint?: string } {
  const e = err as { code?: string; message?: string; hint?: string };
  return { code: typeof e?.code === 'string' ? e.code : undefined, message: e?.message ?? String(err), hint: e?.hint };
}

/** A load failure: a broken or incomplete export can be fixed by exporting again. */
function loadProblem(err: unknown, target: ActiveAdapter): CompletionProblem {
  const { code, message, hint } = errInfo(err);
  const reexport = code !== undefined && ['EXPORT_NOT_FOUND', 'MANIFEST_INVALID', 'MANIFEST_VERSION', 'FILE_MISSING', 'MODEL_LOAD_FAILED', 'MODEL_MISMATCH', 'PREFIX_KV_INVALID', 'TOKENIZER_INVALID'].includes(code);
  return {
    code: code ?? 'LOAD_FAILED',
    message: `Cannot load the completion adapter "${target.label}": ${message}`,
    hint,
    actions: reexport && target.runId ? ['Export Adapter', 'Choose Adapter'] : ['Choose Adapter', 'Show Log'],
    runId: target.runId,
  };
}

/** A failure while generating (worker crash, inference error). */
function engineProblem(err: unknown, target: ActiveAdapter | undefined): CompletionProblem {
  const { code, message, hint } = errInfo(err);
  return {
    code: code ?? 'ENGINE_FAILED',
    message: `Inline completions stopped: the engine failed${target ? ` on "${target.label}"` : ''}: ${message}`,
    hint,
    actions: ['Reload Adapter', 'Choose Adapter', 'Show Log'],
    runId: target?.runId,
  };
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

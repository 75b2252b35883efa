// CompletionService: the state of inline completions (disabled, no adapter, loading, ready, error) and what moves
// it: the settings, the adapter commands, runs that change, and failures (reported once, then quiet until something
// changes). Which export a setting names is adapters.ts; the engine that serves it is engineHost.ts. No vscode
// import: register.ts wires it to settings, commands and the status bar.
import type { RunSummary } from '../training/types';
import { type ActiveAdapter, type CompletionProblem, type Resolution, type RunSource, resolveAdapter, samePath } from './adapters';
import { type EngineLike, EngineHost, type EngineLoader, type LoadedAdapter } from './engineHost';
import { CompletionPipeline } from './pipeline';
import type { Completion, CompletionRequest, CompletionSettings } from './types';

export interface ServiceSettings extends CompletionSettings {
  /** bloomPeft.completions.adapter: a run dir, an export dir, a run id, or '' = the newest run with an export. */
  adapter: string;
}

export type CompletionState = 'disabled' | 'no-adapter' | 'loading' | 'ready' | 'error';

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
  /** Workspace trust (default: trusted). Untrusted, an empty adapter setting follows no run (adapters.ts). */
  trusted?: () => boolean;
}

type Listener<T> = (value: T) => void;

export class CompletionService {
  readonly pipeline: CompletionPipeline;
  private readonly engines: EngineHost;
  private state: CompletionState = 'no-adapter';
  private adapter: ActiveAdapter | undefined;
  private problem: CompletionProblem | undefined;
  /** The engine loaded for the current choice; undefined until its load finishes. */
  private loaded: LoadedAdapter | undefined;
  /** The latest load; requests wait for it. */
  private loading: Promise<void> | undefined;
  /** Bumped by every change of choice (adapter, settings, a failure): work begun for an older one is dropped. */
  private choice = 0;
  private disposed = false;
  /** The settings last acted on; a configuration event that changes nothing (a late duplicate) is ignored. */
  private lastSettings: ServiceSettings;
  private readonly changeListeners = new Set<Listener<CompletionStatus>>();
  private readonly problemListeners = new Set<Listener<CompletionProblem>>();
  private readonly runsSub: { dispose(): void } | undefined;

  constructor(private readonly deps: CompletionServiceDeps) {
    this.engines = new EngineHost(deps.loadEngine);
    this.pipeline = new CompletionPipeline({
      getGenerator: () => this.generator(),
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

  /** The document changed (the keystroke): prefill the text at the change now, if an engine is loaded (none is
   * loaded for it); the completion request that follows finds it done. */
  prefillAtChange(req: CompletionRequest): void {
    if (this.state === 'ready' && this.loaded && this.deps.settings().enabled) this.pipeline.prefillAtChange(req, this.loaded);
  }

  /** The engine when it is ready and serves `exportDir`: the playground generates with it instead of a second one. */
  servingEngine(exportDir: string): EngineLike | undefined {
    return this.state === 'ready' && this.loaded ? this.engines.serving(exportDir) : undefined;
  }

  // ---- changes

  /**
   * Serve completions from this adapter: a run dir, an export dir or a run id (undefined: follow the setting).
   * Clears a reported problem and loads at once, so the status bar shows loading → ready. `force` reloads an
   * adapter that is already served.
   */
  async useAdapter(target?: string, force = false): Promise<ActiveAdapter | undefined> {
    this.lastSettings = { ...this.deps.settings() };
    const found = await this.resolve(target ?? this.deps.settings().adapter);
    const enabled = this.deps.settings().enabled;
    // A command and the settings event may both ask for the export already served (or loading).
    if (!force && enabled && found.adapter && this.serves(found.adapter.exportDir)) {
      await this.loading;
      return this.adapter;
    }
    this.startOver();
    this.problem = undefined;
    this.state = enabled ? 'no-adapter' : 'disabled';
    if (found.problem) {
      this.adapter = found.named;
      this.fail(found.problem);
      return undefined;
    }
    this.adapter = found.adapter;
    if (!this.adapter || !enabled) {
      this.setState(enabled ? 'no-adapter' : 'disabled');
      return this.adapter;
    }
    await this.load(force);
    return this.adapter;
  }

  /** Resolves the configured adapter for display (status bar) without loading it or reporting problems. */
  async refresh(): Promise<void> {
    const s = this.deps.settings();
    if (!s.enabled || this.state !== 'no-adapter') return;
    const { adapter } = await this.resolve(s.adapter);
    if (adapter && this.state === 'no-adapter' && !this.adapter) {
      this.adapter = adapter;
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
      this.startOver();
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

  async dispose(): Promise<void> {
    this.disposed = true;
    this.startOver();
    this.runsSub?.dispose();
    this.changeListeners.clear();
    this.problemListeners.clear();
    await this.engines.dispose();
  }

  // ---- internals

  /** The pipeline's generator: loads lazily; undefined (quietly) while disabled, without adapter or after a problem. */
  private async generator(): Promise<LoadedAdapter | undefined> {
    if (this.quiet()) return undefined;
    await this.loading;
    if (!this.loaded && !this.quiet()) {
      if (!this.adapter) {
        const found = await this.resolve(this.deps.settings().adapter);
        if (found.problem) {
          this.adapter = found.named;
          this.fail(found.problem);
        }
        if (!found.adapter || this.quiet()) return undefined;
        this.adapter = found.adapter;
      }
      await (this.loading ?? this.load());
    }
    return this.state === 'ready' ? this.loaded : undefined;
  }

  private quiet(): boolean {
    return this.disposed || this.state === 'error' || this.state === 'disabled';
  }

  /** Loads the chosen adapter into the engine; a load superseded by a newer choice changes nothing. */
  private load(force = false): Promise<void> {
    const choice = this.choice;
    const target = this.adapter;
    if (!target) return Promise.resolve();
    const current = (): boolean => choice === this.choice && !this.disposed;
    this.setState('loading');
    const t0 = performance.now();
    const done = this.engines.load(target.exportDir, { force, wanted: current }).then(
      loaded => {
        if (!loaded || !current()) return;
        this.loaded = loaded;
        this.deps.log?.info(`completions: ${target.label} (${target.exportDir}) ready in ${Math.round(performance.now() - t0)} ms`);
        this.setState('ready');
      },
      err => {
        if (current()) this.fail(loadProblem(err, target), err);
      },
    );
    const tracked = done.finally(() => {
      if (this.loading === tracked) this.loading = undefined;
    });
    this.loading = tracked;
    return tracked;
  }

  /** Serving (or loading) this export for the current choice, as it is on disk now. */
  private serves(exportDir: string): boolean {
    if (!this.adapter || !samePath(this.adapter.exportDir, exportDir)) return false;
    return this.state === 'loading' || (this.state === 'ready' && this.loaded !== undefined && this.engines.serving(exportDir) !== undefined);
  }

  /** Runs changed: an export that fixes the problem clears it; a newer run is followed; a re-export reloads. */
  private async runsChanged(): Promise<void> {
    if (this.disposed || this.state === 'disabled') return;
    const s = this.deps.settings();
    if (this.state === 'error') {
      if (this.problem?.code === 'EXPORT_MISSING' && (await this.resolve(s.adapter)).adapter) await this.useAdapter();
      return;
    }
    if (this.adapter?.auto || !s.adapter) {
      const { adapter } = await this.resolve(s.adapter);
      if (adapter && (!this.adapter || !samePath(adapter.exportDir, this.adapter.exportDir))) {
        this.startOver();
        this.adapter = adapter; // the next request loads it
        this.emit();
        return;
      }
    }
    if (this.adapter && this.state === 'ready' && !this.engines.serving(this.adapter.exportDir)) {
      this.deps.log?.info(`completions: ${this.adapter.exportDir} was exported again; reloading`);
      this.startOver();
      await this.load(true);
    }
  }

  private async resolve(target: string): Promise<Resolution> {
    let runs: RunSummary[] = [];
    try {
      runs = (await this.deps.runs?.listRuns()) ?? [];
    } catch (err) {
      this.deps.log?.warn(`completions: cannot list runs: ${(err as Error).message}`);
    }
    return resolveAdapter(target, { runs, baseDir: this.deps.baseDir, trusted: this.deps.trusted?.() ?? true });
  }

  /** A newer choice: pending loads are dropped, cached completions too. */
  private startOver(): void {
    this.choice++;
    this.loaded = undefined;
    this.pipeline.reset();
  }

  /** Enters the error state and reports the problem once; completions stay off until a change. */
  private fail(problem: CompletionProblem, err?: unknown): void {
    if (this.state === 'error') return;
    this.choice++;
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

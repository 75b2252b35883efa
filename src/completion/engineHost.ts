// Engine hosting: the one engine (one engine process) that serves completions. It loads on first use, recycles its
// process for another export or a re-export of the same one, and runs one load at a time (two first loads at once
// would make two engines).
import { manifestMtime, samePath } from './adapters';
import type { AdapterInfo, Generator, PromptTemplate } from './types';

/** The engine as the completion service and the playground use it; CompletionEngine (src/inference) fits it. */
export interface EngineLike extends Generator {
  readonly manifest: { template: PromptTemplate | null; instruction_tuned: boolean; method?: string; base_model?: string; eos_token_id?: number | null };
  readonly exportDir: string;
  /** Switches to another export by recycling the engine process (no window reload, no request lost). */
  reload(exportDir: string): Promise<void>;
  dispose(): Promise<void>;
}
export type EngineLoader = (exportDir: string) => Promise<EngineLike>;

/** What the pipeline generates with: the engine and what it knows of the loaded export. */
export interface LoadedAdapter {
  generator: EngineLike;
  adapter: AdapterInfo;
}

export class EngineHost {
  private engine: EngineLike | undefined;
  /** The manifest mtime the engine was loaded from: a newer one means the export was written again. */
  private loadedMtime = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private disposed = false;

  constructor(private readonly loadEngine: EngineLoader) {}

  /** The engine when it serves `exportDir` as it is on disk now (not re-exported since it loaded). */
  serving(exportDir: string): EngineLike | undefined {
    const e = this.engine;
    return e && samePath(e.exportDir, exportDir) && manifestMtime(exportDir) === this.loadedMtime ? e : undefined;
  }

  /**
   * Makes the engine serve `exportDir` (`force`: reload even when it already does), after the loads before it.
   * When its turn comes and `wanted()` says no (a newer choice superseded it), it is skipped: undefined.
   */
  load(exportDir: string, opts: { force?: boolean; wanted?: () => boolean } = {}): Promise<LoadedAdapter | undefined> {
    const next = this.queue.then(() => (opts.wanted?.() === false ? undefined : this.loadNow(exportDir, opts.force ?? false)));
    this.queue = next.catch(() => {});
    return next;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    const e = this.engine;
    this.engine = undefined;
    await e?.dispose().catch(() => {});
  }

  private async loadNow(exportDir: string, force: boolean): Promise<LoadedAdapter> {
    if (this.disposed) throw new Error('the completion engine was disposed');
    if (!this.engine) {
      const engine = await this.loadEngine(exportDir);
      if (this.disposed) {
        await engine.dispose();
        throw new Error('the completion engine was disposed');
      }
      this.engine = engine;
    } else if (force || !this.serving(exportDir)) {
      await this.engine.reload(exportDir); // recycles the engine process
    }
    this.loadedMtime = manifestMtime(exportDir);
    const m = this.engine.manifest;
    return { generator: this.engine, adapter: { key: `${exportDir}@${this.loadedMtime}`, template: m.template, instructionTuned: m.instruction_tuned } };
  }
}
